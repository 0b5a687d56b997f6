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

/* The "dirty-bitmaps" service: the dirty filter's bitmaps, managed live.
 *
 * The dirty filter offers it per instance (per export) from get_service;
 * the server's control socket (server/control-block.c) finds it in an
 * export's chain and drives QEMU's bitmap commands through it:
 *
 *   const struct dirty_bitmaps_service *svc =
 *     nbdcbt_next_service (nxdata, DIRTY_BITMAPS_SERVICE);
 *
 * Every change is an action in two steps, as QEMU's transactions are:
 * the call applies it at once (or fails changing nothing) and hands back
 * a struct dirty_bitmaps_action; then exactly one of commit (keep it) or
 * abort (undo it) is called.  Actions are undone in the reverse order
 * they were applied.  A single command is an action committed at once.
 *
 * While a transaction runs, the caller holds every involved instance
 * quiesced (quiesce/resume): writes wait before they are marked, so an
 * abort restores exactly what was there (a merge's target, a cleared
 * bitmap) without losing a write made meanwhile.
 *
 * Persistence: with a bitmap store below, adding a persistent bitmap
 * stores it at once and removing one deletes it from the store (so both
 * survive a restart); the other actions change the bitmaps in memory,
 * stored at clean shutdown (and on flush with store-on-flush=true).
 *
 * Errors: -1 with *ERRP a malloc'd message in QEMU's words.  Callers
 * serialise calls (the control socket runs one command at a time).
 */
#ifndef NBDCBT_DIRTY_BITMAPS_SERVICE_H
#define NBDCBT_DIRTY_BITMAPS_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dirty-bitmap.h"

#define DIRTY_BITMAPS_SERVICE "dirty-bitmaps"

struct dirty_bitmaps_action;
struct dirty_bitmaps_service;

/* A merge source: a bitmap of this or another instance. */
struct dirty_bitmaps_source {
  const struct dirty_bitmaps_service *service;
  const char *name;
};

struct dirty_bitmaps_service {
  void *opaque;                 /* the instance, passed back */

  /* Whether the bitmaps exist: they are created when the export's size
   * is first known, at the first open of its chain.  The control socket
   * opens the chain once (read-only) before using a service that is not
   * ready, so bitmaps can be queried and added before any NBD client.
   */
  bool (*ready) (void *opaque);
  /* The export's size in bytes (bitmaps cover exactly this). */
  uint64_t (*size) (void *opaque);
  /* Whether persistent bitmaps can be kept (a store is below). */
  bool (*can_persist) (void *opaque);

  /* Every bitmap in creation order (query-block's BlockDirtyInfo). */
  int (*list) (void *opaque, struct dirty_bitmap_info **list, size_t *n);
  void (*list_free) (struct dirty_bitmap_info *list, size_t n);
  /* x-debug-block-dirty-bitmap-sha256: OUT gets 64 hex digits. */
  int (*sha256) (void *opaque, const char *name, char out[65],
                 char **errp);

  /* The actions.  NODE is the node name, for messages. */
  int (*add) (void *opaque, const char *node, const char *name,
              const struct dirty_bitmap_opts *opts,
              struct dirty_bitmaps_action **action, char **errp);
  int (*remove) (void *opaque, const char *name,
                 struct dirty_bitmaps_action **action, char **errp);
  int (*clear) (void *opaque, const char *name,
                struct dirty_bitmaps_action **action, char **errp);
  int (*enable) (void *opaque, const char *name,
                 struct dirty_bitmaps_action **action, char **errp);
  int (*disable) (void *opaque, const char *name,
                  struct dirty_bitmaps_action **action, char **errp);
  /* TARGET |= every source, sources from any instance of the filter. */
  int (*merge) (void *opaque, const char *target,
                const struct dirty_bitmaps_source *sources, size_t n,
                struct dirty_bitmaps_action **action, char **errp);
  /* Keep or undo an action; either frees it. */
  void (*commit) (struct dirty_bitmaps_action *action);
  void (*abort) (struct dirty_bitmaps_action *action);

  /* Backup sessions (server/sessions.c): freeze NAME (it becomes busy
   * and disabled, and a successor records the writes from now on;
   * *FROZEN is NAME's data, which does not change until unfreeze), and
   * end that: abdicate (SYNC: the successor takes NAME's place, the
   * frozen bits are dropped) or reclaim (the successor's bits are merged
   * back).  KEEP (NULL, or only with SYNC): bits of any granularity that
   * stay dirty although the bitmap abdicates (bitmap-mode=always after a
   * failure: what the backup did not copy).  The caller holds the writes
   * (the fleece filter's gate) around freeze, so that no write is marked
   * on one side of the instant and reaches the disk on the other.
   */
  int (*freeze) (void *opaque, const char *name,
                 const struct hbitmap **frozen, char **errp);
  int (*unfreeze) (void *opaque, const char *name, bool sync,
                   const struct hbitmap *keep, char **errp);

  /* Hold / release the marking of writes (does not nest: once per
   * instance).
   */
  void (*quiesce) (void *opaque);
  void (*resume) (void *opaque);
};

#endif /* NBDCBT_DIRTY_BITMAPS_SERVICE_H */
