/* nbdcbt
 * Copyright (C) 2026 the nbdcbt authors
 * All rights reserved.
 *
 * Redistribution and use in source and binary forms, with or without
 * modification, are permitted provided that the following conditions are
 * met:
 *
 * * Redistributions of source code must retain the above copyright
 * notice, this list of conditions and the following disclaimer.
 *
 * * Redistributions in binary form must reproduce the above copyright
 * notice, this list of conditions and the following disclaimer in the
 * documentation and/or other materials provided with the distribution.
 *
 * * Neither the name of the nbdcbt authors nor the names of its
 * contributors may be used to endorse or promote products derived from
 * this software without specific prior written permission.
 *
 * THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
 * "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
 * LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
 * PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
 * HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
 * SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
 * LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
 * DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
 * THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
 * (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
 * OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
 */

/* The bitmap store interface: where persistent bitmaps live between runs.
 *
 * The qcow2 plugin implements it over the image's bitmaps extension and
 * hands it out as the service BITMAP_STORE_SERVICE from its get_service
 * callback (common/qbm/qbm-store.c implements it over a raw image's
 * sidecar); a plugin offers one like this:
 *
 *   static const struct bitmap_store my_store = { ... };
 *   static const void *
 *   my_get_service (const char *name)
 *   {
 *     if (strcmp (name, BITMAP_STORE_SERVICE) == 0)
 *       return &my_store;
 *     return NULL;
 *   }
 *
 * The dirty filter finds it with nbdcbt_next_service (nxdata,
 * BITMAP_STORE_SERVICE) in its get_ready and then:
 *
 *   1. get_ready:   list () and load () each consistent bitmap; those
 *                   with in_use set on disk are inconsistent (listed in
 *                   the model, never exported, only removable).
 *   2. first read-write connection (prepare with readonly = 0):
 *                   mark_in_use () once, before the first write goes down.
 *                   On a read-only server nothing is ever written.
 *   3. flush (if the filter's store-on-flush=true) and cleanup (clean
 *                   shutdown): store () with every persistent bitmap;
 *                   in_use is cleared at cleanup and kept on flush.
 *   4. remove ():   a persistent bitmap is removed while the server
 *                   runs (nothing calls it yet; without it the next
 *                   store () drops the bitmap).
 *
 * All calls come from the server's threads; a store must be thread-safe
 * against the plugin's own I/O.  The filter never calls two store
 * functions at once.
 *
 * Errors: -1 (or NULL) with errno set; last_error () then returns a
 * message for the user (may be NULL).
 */
#ifndef NBDCBT_BITMAP_STORE_H
#define NBDCBT_BITMAP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hbitmap;
struct intent;

#define BITMAP_STORE_SERVICE "bitmap-store"

/* One stored bitmap, as list () reports it. */
struct bitmap_store_info {
  char *name;
  uint64_t granularity;
  bool recording;   /* qcow2: the "auto" flag */
  bool in_use;      /* qcow2: "in_use" when opened: inconsistent */
  bool recovered;   /* in use when opened, recovered by the intent record */
};

/* One bitmap to store. */
struct bitmap_store_entry {
  const char *name;
  const struct hbitmap *bitmap; /* granularity and size taken from it */
  bool recording;               /* stored as "auto" */
  bool in_use;                  /* keep in_use set (still running) */
};

struct bitmap_store {
  /* Short name for messages ("qcow2", "qbm"). */
  const char *name;
  /* Passed back to every call. */
  void *opaque;

  /* The stored bitmaps.  *LIST is malloc'd; free it with list_free. */
  int (*list) (void *opaque, struct bitmap_store_info **list, size_t *n);
  void (*list_free) (void *opaque, struct bitmap_store_info *list,
                     size_t n);

  /* NAME's data in a new hbitmap sized to the disk.  Fails for an in_use
   * bitmap unless this store marked it in use itself.
   */
  struct hbitmap *(*load) (void *opaque, const char *name);

  /* Set in_use on every stored bitmap (a read-write start), durably. */
  int (*mark_in_use) (void *opaque);

  /* Replace the stored set by ENTRIES.  Stored bitmaps neither in ENTRIES
   * nor named in KEEP (inconsistent bitmaps, kept as they are) are
   * removed.
   */
  int (*store) (void *opaque, const struct bitmap_store_entry *entries,
                size_t n, const char *const *keep, size_t nkeep);

  /* Remove NAME from the store now.  May be NULL: then the next store ()
   * drops it.
   */
  int (*remove) (void *opaque, const char *name);

  /* A message for the last failure in this thread, or NULL. */
  const char *(*last_error) (void *opaque);

  /* Optional: the store keeps an intent record (intent.h), so that its
   * bitmaps survive a crash.  Called instead of mark_in_use: marks the
   * stored bitmaps in use and starts a record of ZONE_SIZE zones (0: the
   * default) that still holds every zone the previous record marked,
   * durably.  *INTENT is the record to drive (owned by the store).  With
   * a record, list () reports in_use only for bitmaps it cannot recover
   * and load () returns stored data | marked zones.
   */
  int (*start_intent) (void *opaque, uint64_t zone_size,
                       struct intent **intent);
};

#endif /* NBDCBT_BITMAP_STORE_H */
