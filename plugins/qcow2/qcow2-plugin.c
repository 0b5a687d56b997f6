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

/* nbdcbt qcow2 plugin: serves a qcow2 image through common/qcow2.
 *
 * Each instance (export) opens its image once (get_ready) and shares it
 * between the export's connections; the library is thread-safe, so
 * requests run in parallel.  It is opened
 * read-only on a read-only server (-r) and read-write otherwise; a file
 * that cannot be opened for writing is served read-only.
 *
 * Persistent bitmaps: the plugin hands the image's bitmaps extension to
 * the dirty filter as the "bitmap-store" service (bitmap-store.h), which
 * loads, records and stores them.  The filter has the bitmaps marked in
 * use on disk (store_mark_in_use) when the first client that may write
 * connects, before its first request, as QEMU marks them at a read-write
 * open; until then nothing is written.  Without such a filter nothing
 * would record writes, so the plugin marks them in use (left
 * inconsistent) at the first write instead.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdcbt-plugin.h"
#include "bitmap-store.h"
#include "cleanup.h"
#include "hbitmap.h"
#include "intent.h"
#include "qcow2.h"

/* One instance per export: its image and the state of its bitmaps. */
struct qcow2_instance {
  char *filename;

  /* The open image, from get_ready to cleanup. */
  struct qcow2 *image;
  bool image_writable;

  /* The bitmaps as they were on disk at open (names and in_use), so that
   * the store lists the open-time state after we marked them in use.
   */
  struct qcow2_bitmap_info *bitmaps_at_open;
  size_t nbitmaps_at_open;
  bool bitmaps_unsupported;   /* the library cannot read them */
  bool bitmaps_safe;          /* marked in use: writes may proceed */
  bool bitmaps_marked;        /* we set in_use on disk */
  bool written;               /* a write reached the image */
  bool stored;                /* the filter stored after the mark */
  bool write_fast;            /* written and safe: nothing to do */
  pthread_mutex_t bitmaps_lock;

  /* The store's message for a v2 image (see store_list). */
  char v2_error[PATH_MAX + 128];

  /* This image's bitmap store (opaque = the instance). */
  struct bitmap_store store;
  /* The intent record the dirty filter drives (store_start_intent). */
  struct intent *intent;

  /* Every instance with an image open, for restore_at_exit. */
  struct qcow2_instance *list_next;
};

static pthread_mutex_t instances_lock = PTHREAD_MUTEX_INITIALIZER;
static struct qcow2_instance *instances;

static void restore_untouched_bitmaps (struct qcow2_instance *q);


/* Warnings (nbdcbt_warning) are not errors: an error logged while the
 * server stops makes it exit with status 1.
 */
static void warning (const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));
static void
warning (const char *fs, ...)
{
  char msg[1024];
  va_list args;

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  nbdcbt_warning ("qcow2: %s", msg);
}

static const struct bitmap_store qcow2_bitmap_store;

static void *
qcow2_plugin_instance_new (void)
{
  struct qcow2_instance *q = calloc (1, sizeof *q);

  if (q == NULL) {
    nbdcbt_error ("qcow2: calloc: %m");
    return NULL;
  }
  pthread_mutex_init (&q->bitmaps_lock, NULL);
  q->store = qcow2_bitmap_store;
  q->store.opaque = q;
  return q;
}

static void
qcow2_plugin_instance_free (void *instance)
{
  struct qcow2_instance *q = instance;

  pthread_mutex_destroy (&q->bitmaps_lock);
  free (q->filename);
  free (q);
}

static int
qcow2_plugin_config (void *instance, const char *key, const char *value)
{
  struct qcow2_instance *q = instance;

  if (strcmp (key, "file") == 0) {
    free (q->filename);
    q->filename = nbdcbt_absolute_path (value);
    if (q->filename == NULL)
      return -1;
    return 0;
  }
  nbdcbt_error ("qcow2: unknown parameter '%s'", key);
  return -1;
}

static int
qcow2_plugin_config_complete (void *instance)
{
  struct qcow2_instance *q = instance;

  if (q->filename == NULL) {
    nbdcbt_error ("qcow2: you must supply the file=IMAGE parameter");
    return -1;
  }
  return 0;
}

#define qcow2_plugin_config_help \
  "file=<IMAGE>     (required) The qcow2 image to serve."

static int
qcow2_plugin_thread_model (void *instance)
{
  return NBDCBT_THREAD_MODEL_PARALLEL;
}

/* Bitmaps are marked in use by the plugin or the dirty filter through
 * the bitmap store, not by the library at open.
 */
#define OPEN_FLAGS QCOW2_OPEN_NO_BITMAP_IN_USE

/* Open read-write, or read-only on -r or if the file is not writable. */
static int
open_image (struct qcow2_instance *q)
{
  if (!nbdcbt_read_only ()) {
    q->image = qcow2_open (q->filename, OPEN_FLAGS);
    if (q->image) {
      q->image_writable = true;
      return 0;
    }
    if (errno != EACCES && errno != EROFS && errno != EPERM) {
      /* The library's messages name the file. */
      nbdcbt_error ("qcow2: %s", qcow2_last_error ());
      return -1;
    }
    warning ("cannot open for writing: %s; serving "
                  "it read-only", qcow2_last_error ());
  }
  q->image = qcow2_open (q->filename, OPEN_FLAGS | QCOW2_OPEN_RDONLY);
  if (q->image == NULL) {
    nbdcbt_error ("qcow2: %s", qcow2_last_error ());
    return -1;
  }
  q->image_writable = false;
  return 0;
}

static int
qcow2_plugin_get_ready (void *instance)
{
  struct qcow2_instance *q = instance;

  if (open_image (q) == -1)
    return -1;

  /* A broken bitmap directory makes the image unusable, as in QEMU, even
   * when no filter asks for the bitmaps.
   */
  if (qcow2_bitmap_list (q->image, &q->bitmaps_at_open,
                         &q->nbitmaps_at_open) == -1) {
    if (errno == ENOTSUP) {
      /* The library cannot read bitmaps at all: serve the data. */
      nbdcbt_debug ("qcow2: bitmaps not available: %s", qcow2_last_error ());
      q->bitmaps_at_open = NULL;
      q->nbitmaps_at_open = 0;
      q->bitmaps_unsupported = true;
    }
    else {
      nbdcbt_error ("qcow2: %s", qcow2_last_error ());
      qcow2_close (q->image);
      q->image = NULL;
      return -1;
    }
  }
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&instances_lock);
    q->list_next = instances;
    instances = q;
  }
  return 0;
}

static void
qcow2_plugin_cleanup (void *instance)
{
  struct qcow2_instance *q = instance;
  struct qcow2_instance **pp;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->bitmaps_lock);
    restore_untouched_bitmaps (q);
  }
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&instances_lock);
    for (pp = &instances; *pp; pp = &(*pp)->list_next)
      if (*pp == q) {
        *pp = q->list_next;
        break;
      }
  }
  intent_free (q->intent);
  q->intent = NULL;
  if (q->image && q->image_writable) {
    uint64_t runs;
    unsigned maxp;

    qcow2_alloc_stats (q->image, &runs, &maxp);
    nbdcbt_debug ("qcow2: %s: %" PRIu64 " allocating writes, at most %u "
                  "in parallel", q->filename, runs, maxp);
  }
  if (q->image && qcow2_close (q->image) == -1)
    nbdcbt_error ("qcow2: %s: close: %s", q->filename, qcow2_last_error ());
  q->image = NULL;
  if (q->bitmaps_at_open)
    qcow2_bitmap_list_free (q->bitmaps_at_open, q->nbitmaps_at_open);
  q->bitmaps_at_open = NULL;
  q->nbitmaps_at_open = 0;
}

/* Mark every bitmap in use on disk, once.  BITMAPS_LOCK held. */
static int
mark_in_use_locked (struct qcow2_instance *q)
{
  if (q->bitmaps_safe || !q->image_writable)
    return 0;
  if (q->nbitmaps_at_open > 0) {
    if (qcow2_bitmaps_mark_in_use (q->image) == -1)
      return -1;
    q->bitmaps_marked = true;
    q->stored = false;
  }
  q->bitmaps_safe = true;
  return 0;
}

/* The bitmaps were marked in use but nothing was written and nobody
 * stored them: a server that stops before any client wrote (a clean stop
 * without writes, or a startup failure after get_ready) puts them back
 * as they were, consistent, rather than leave them inconsistent.  Each
 * one is loaded (ours) and stored unchanged; inconsistent ones are kept.
 */
static void
restore_untouched_bitmaps (struct qcow2_instance *q)
{
  struct bitmap_store_entry *set;
  const char **keep;
  size_t i, n = 0, nkeep = 0;

  if (q->image == NULL || !q->bitmaps_marked || q->written || q->stored)
    return;
  set = calloc (q->nbitmaps_at_open, sizeof *set);
  keep = calloc (q->nbitmaps_at_open, sizeof *keep);
  if (set == NULL || keep == NULL) {
    nbdcbt_error ("qcow2: %m");
    goto out;
  }
  for (i = 0; i < q->nbitmaps_at_open; i++) {
    const struct qcow2_bitmap_info *b = &q->bitmaps_at_open[i];

    if (b->flags & QCOW2_BME_IN_USE) {
      keep[nkeep++] = b->name;
      continue;
    }
    set[n].bitmap = qcow2_bitmap_load (q->image, b->name);
    if (set[n].bitmap == NULL) {
      /* Only this one stays in use (inconsistent); the others are
       * still restored.
       */
      nbdcbt_error ("qcow2: cannot reload bitmap '%s' to clear its in-use "
                    "flag (it stays inconsistent): %s", b->name,
                    qcow2_last_error ());
      keep[nkeep++] = b->name;
      continue;
    }
    set[n].name = b->name;
    set[n].recording = (b->flags & QCOW2_BME_AUTO) != 0;
    set[n].in_use = false;
    n++;
  }
  if (qcow2_bitmaps_store (q->image, set, n, keep, nkeep) == -1)
    nbdcbt_error ("qcow2: cannot clear the in-use flag of the persistent "
                  "bitmaps: %s", qcow2_last_error ());
  else {
    q->stored = true;
    nbdcbt_debug ("qcow2: nothing was written: bitmaps stored back "
                  "unchanged");
  }
 out:
  for (i = 0; i < n; i++)
    hbitmap_free ((struct hbitmap *) set[i].bitmap);
  free (set);
  free (keep);
}

/* exit () after a failed startup skips cleanup: restore them then, and
 * flush what the library may still cache (the image is not closed: this
 * runs at exit).
 */
static void
restore_at_exit (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&instances_lock);
  struct qcow2_instance *q;

  for (q = instances; q; q = q->list_next) {
    pthread_mutex_lock (&q->bitmaps_lock);
    if (q->image && q->bitmaps_marked && !q->written && !q->stored) {
      restore_untouched_bitmaps (q);
      if (qcow2_flush (q->image) == -1)
        nbdcbt_error ("qcow2: %s: flush: %s", q->filename,
                      qcow2_last_error ());
    }
    pthread_mutex_unlock (&q->bitmaps_lock);
  }
}

/* Writes must never leave persistent bitmaps on disk that look valid but
 * missed them.  With the dirty filter above, the bitmaps were marked in
 * use when the writing client connected.  Without it, the plugin marks
 * them in use at the first write, so that they are inconsistent
 * afterwards (only removable), as QEMU would leave bitmaps it could not
 * update.
 */
static int
before_write (struct qcow2_instance *q)
{
  if (__atomic_load_n (&q->write_fast, __ATOMIC_ACQUIRE))
    return 0;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->bitmaps_lock);
  q->written = true;
  if (!q->bitmaps_safe && q->nbitmaps_at_open > 0) {
    if (mark_in_use_locked (q) == -1) {
      nbdcbt_error ("qcow2: cannot mark the persistent bitmaps in use "
                    "before writing: %s", qcow2_last_error ());
      nbdcbt_set_error (EIO);
      return -1;
    }
    warning ("no filter records writes into the "
                  "persistent bitmaps of %s; they are now marked in use "
                  "(inconsistent).  Serve the image with --filter=dirty "
                  "to keep them.", q->filename);
  }
  q->bitmaps_safe = true;
  __atomic_store_n (&q->write_fast, true, __ATOMIC_RELEASE);
  return 0;
}

/* The handle records whether this connection may write. */
struct handle {
  struct qcow2_instance *q;
  int readonly;
};

static void *
qcow2_plugin_open (void *instance, int readonly)
{
  struct qcow2_instance *q = instance;
  struct handle *h;

  h = malloc (sizeof *h);
  if (h == NULL) {
    nbdcbt_error ("malloc: %m");
    return NULL;
  }
  h->q = q;
  h->readonly = readonly || !q->image_writable;
  return h;
}

static void
qcow2_plugin_close (void *handle)
{
  free (handle);
}

static int64_t
qcow2_plugin_get_size (void *handle)
{
  struct handle *h = handle;
  struct qcow2_instance *q = h->q;

  return qcow2_get_size (q->image);
}

static int
qcow2_plugin_can_write (void *handle)
{
  struct handle *h = handle;

  return !h->readonly;
}

static int
qcow2_plugin_can_true (void *handle)
{
  return 1;
}

static int
qcow2_plugin_can_zero (void *handle)
{
  return NBDCBT_ZERO_NATIVE;
}

static int
qcow2_plugin_can_fua (void *handle)
{
  return NBDCBT_FUA_NATIVE;
}

/* Report a library failure as the request's error. */
static int
io_error (const char *what)
{
  int err = errno ? errno : EIO;

  nbdcbt_error ("qcow2: %s: %s", what, qcow2_last_error ());
  nbdcbt_set_error (err);
  return -1;
}

static int
qcow2_plugin_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                    uint32_t flags)
{
  struct qcow2_instance *q = ((struct handle *) handle)->q;

  if (qcow2_pread (q->image, buf, count, offset) == -1)
    return io_error ("read");
  return 0;
}

static int
qcow2_plugin_pwrite (void *handle, const void *buf, uint32_t count,
                     uint64_t offset, uint32_t flags)
{
  struct qcow2_instance *q = ((struct handle *) handle)->q;

  if (before_write (q) == -1)
    return -1;
  if (qcow2_pwrite (q->image, buf, count, offset,
                    flags & NBDCBT_FLAG_FUA ? QCOW2_WRITE_FUA : 0) == -1)
    return io_error ("write");
  return 0;
}

static int
qcow2_plugin_zero (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  struct qcow2_instance *q = ((struct handle *) handle)->q;

  int qflags = 0;

  if (flags & NBDCBT_FLAG_FUA)
    qflags |= QCOW2_WRITE_FUA;
  if (flags & NBDCBT_FLAG_MAY_TRIM)
    qflags |= QCOW2_ZERO_MAY_UNMAP;
  if (before_write (q) == -1)
    return -1;
  if (qcow2_zero (q->image, count, offset, qflags) == -1)
    return io_error ("zero");
  return 0;
}

static int
qcow2_plugin_trim (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  struct qcow2_instance *q = ((struct handle *) handle)->q;

  if (before_write (q) == -1)
    return -1;
  if (qcow2_discard (q->image, count, offset,
                     flags & NBDCBT_FLAG_FUA ? QCOW2_WRITE_FUA : 0) == -1)
    return io_error ("trim");
  return 0;
}

static int
qcow2_plugin_flush (void *handle, uint32_t flags)
{
  struct qcow2_instance *q = ((struct handle *) handle)->q;

  if (qcow2_flush (q->image) == -1)
    return io_error ("flush");
  return 0;
}

/* base:allocation as QEMU reports it: a hole where no host cluster
 * backs the data, zero where it reads as zeroes.
 */
static uint32_t
allocation_type (int status, int depth)
{
  uint32_t type = 0;

  if (!(status & QCOW2_STATUS_DATA))
    type |= NBDCBT_EXTENT_HOLE;
  if (status & QCOW2_STATUS_ZERO)
    type |= NBDCBT_EXTENT_ZERO;
  return type;
}

/* qemu:allocation-depth: 0 unallocated, 1 this image, 2 its backing ... */
static uint32_t
depth_type (int status, int depth)
{
  return depth;
}

static int
walk_block_status (struct qcow2_instance *q, uint32_t count, uint64_t offset,
                   uint32_t flags,
                   struct nbdcbt_extents *extents,
                   uint32_t (*type_of) (int status, int depth))
{
  uint64_t end = offset + count;
  while (offset < end) {
    uint64_t pnum;
    int status, depth;

    if (qcow2_block_status (q->image, offset, end - offset, &pnum, &status,
                            &depth) == -1)
      return io_error ("block status");
    if (pnum == 0 || pnum > end - offset) {
      nbdcbt_error ("qcow2: block status returned a bad length");
      nbdcbt_set_error (EIO);
      return -1;
    }
    if (nbdcbt_add_extent (extents, offset, pnum,
                           type_of (status, depth)) == -1)
      return -1;
    offset += pnum;
    if ((flags & NBDCBT_FLAG_REQ_ONE) || nbdcbt_extents_full (extents))
      break;
  }
  return 0;
}

static int
qcow2_plugin_extents (void *handle, uint32_t count, uint64_t offset,
                      uint32_t flags, struct nbdcbt_extents *extents)
{
  struct handle *h = handle;

  return walk_block_status (h->q, count, offset, flags, extents,
                            allocation_type);
}

#define ALLOCATION_DEPTH "qemu:allocation-depth"

static int
qcow2_plugin_list_meta_contexts (void *instance, const char *export_name,
                                 struct nbdcbt_meta_contexts *contexts)
{
  return nbdcbt_add_meta_context (contexts, ALLOCATION_DEPTH);
}

static int
qcow2_plugin_meta_extents (void *handle, const char *context, uint32_t count,
                           uint64_t offset, uint32_t flags,
                           struct nbdcbt_extents *extents)
{
  if (strcmp (context, ALLOCATION_DEPTH) != 0) {
    nbdcbt_error ("qcow2: unknown metadata context %s", context);
    nbdcbt_set_error (EINVAL);
    return -1;
  }
  struct handle *h = handle;

  return walk_block_status (h->q, count, offset, flags, extents, depth_type);
}

/* --- The bitmap store: the image's bitmaps extension ------------------- */

static void
store_list_free (void *opaque, struct bitmap_store_info *list, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    free (list[i].name);
  free (list);
}

/* Was NAME in use (inconsistent) when the image was opened?  -1 if it
 * was not in the directory then.
 */
static int
in_use_at_open (struct qcow2_instance *q, const char *name)
{
  size_t i;

  for (i = 0; i < q->nbitmaps_at_open; i++)
    if (strcmp (q->bitmaps_at_open[i].name, name) == 0)
      return (q->bitmaps_at_open[i].flags & QCOW2_BME_IN_USE) != 0;
  return -1;
}

static int
store_list (void *opaque, struct bitmap_store_info **list, size_t *n)
{
  struct qcow2_instance *q = opaque;
  struct qcow2_bitmap_info *qlist;
  size_t i, qn;

  /* A v2 image has no autoclear bits and so cannot hold persistent
   * bitmaps (QEMU refuses to make one persistent there): the store is
   * unusable, and the filter refuses to start with bitmaps it would
   * lose at shutdown.
   */
  if (qcow2_bitmaps_supported (q->image) == -1) {
    snprintf (q->v2_error, sizeof q->v2_error, "%s (convert it with "
              "'qemu-img amend -o compat=v3')", qcow2_last_error ());
    errno = ENOTSUP;
    return -1;
  }

  if (qcow2_bitmap_list (q->image, &qlist, &qn) == -1)
    return -1;
  *list = calloc (qn ? qn : 1, sizeof **list);
  if (*list == NULL) {
    qcow2_bitmap_list_free (qlist, qn);
    return -1;
  }
  for (i = 0; i < qn; i++) {
    int was_in_use = in_use_at_open (q, qlist[i].name);

    (*list)[i].name = strdup (qlist[i].name);
    if ((*list)[i].name == NULL) {
      store_list_free (opaque, *list, i);
      qcow2_bitmap_list_free (qlist, qn);
      return -1;
    }
    (*list)[i].granularity = qlist[i].granularity;
    (*list)[i].recording = (qlist[i].flags & QCOW2_BME_AUTO) != 0;
    /* Our own in_use mark does not make a bitmap inconsistent, nor does
     * a crash when the intent record survived (the load recovers it).
     */
    if (was_in_use >= 0) {
      bool rec = qcow2_bitmap_recoverable (q->image, qlist[i].name);
      (*list)[i].in_use = was_in_use && !rec;
      (*list)[i].recovered = was_in_use && rec;
    }
    else
      (*list)[i].in_use = (qlist[i].flags & QCOW2_BME_IN_USE) != 0;
  }
  qcow2_bitmap_list_free (qlist, qn);
  *n = qn;
  return 0;
}

static struct hbitmap *
store_load (void *opaque, const char *name)
{
  struct qcow2_instance *q = opaque;
  return qcow2_bitmap_load (q->image, name);
}

static int
store_mark_in_use (void *opaque)
{
  struct qcow2_instance *q = opaque;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->bitmaps_lock);

  /* Done already when the filter took the store; a no-op on a read-only
   * image (-r, or not writable), where nothing will be written.
   */
  return mark_in_use_locked (q);
}

static int
persist_intent (void *opaque, const uint8_t *bits, size_t offset, size_t len)
{
  struct qcow2_instance *q = opaque;
  return qcow2_intent_persist (q->image, bits, offset, len);
}

/* Mark in use, then the record in the image's header extension. */
static int
store_start_intent (void *opaque, uint64_t zone_size, struct intent **ret)
{
  struct qcow2_instance *q = opaque;
  struct intent_backend backend = { .opaque = q, .persist = persist_intent };
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->bitmaps_lock);
  uint8_t *bits;
  size_t nbytes;
  uint64_t zone;

  if (!q->image_writable) {
    errno = ENOTSUP;
    return -1;
  }
  if (mark_in_use_locked (q) == -1)
    return -1;
  if (q->intent == NULL) {
    if (qcow2_intent_start (q->image, zone_size ? zone_size
                            : INTENT_DEFAULT_ZONE_SIZE,
                            &bits, &nbytes, &zone) == -1)
      return -1;
    q->intent = intent_new (qcow2_get_size (q->image), zone, bits, &backend);
    free (bits);
    if (q->intent == NULL)
      return -1;
  }
  *ret = q->intent;
  return 0;
}

static int
store_store (void *opaque, const struct bitmap_store_entry *entries,
             size_t n, const char *const *keep, size_t nkeep)
{
  struct qcow2_instance *q = opaque;
  int r;

  if (!q->image_writable) {
    warning ("%s is not writable: the persistent "
                  "bitmaps are left as they were", q->filename);
    return 0;
  }

  r = qcow2_bitmaps_store (q->image, entries, n, keep, nkeep);
  if (r == 0) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->bitmaps_lock);
    q->stored = true;
  }
  return r;
}

static int
store_remove (void *opaque, const char *name)
{
  struct qcow2_instance *q = opaque;
  return qcow2_bitmap_remove (q->image, name);
}

static const char *
store_last_error (void *opaque)
{
  struct qcow2_instance *q = opaque;
  if (errno == ENOTSUP && q->v2_error[0])
    return q->v2_error;
  return qcow2_last_error ();
}

static const struct bitmap_store qcow2_bitmap_store = {
  .name = "qcow2",
  .list = store_list,
  .list_free = store_list_free,
  .load = store_load,
  .mark_in_use = store_mark_in_use,
  .store = store_store,
  .remove = store_remove,
  .last_error = store_last_error,
  .start_intent = store_start_intent,
};

/* The dirty filter takes the store in its get_ready, once our image is
 * open, and validates its bitmaps against it (bitmap= parameters, loads).
 * Nothing is written to the image then: a startup refused by the filter
 * leaves it as it was.  The bitmaps are marked in use by the filter's
 * mark_in_use at the first writable connection, before anything is
 * written (QEMU marks them at a read-write open; no one else can open the
 * image meanwhile, it is locked).
 */
static const void *
qcow2_plugin_get_service (void *instance, const char *name)
{
  struct qcow2_instance *q = instance;

  if (strcmp (name, BITMAP_STORE_SERVICE) != 0)
    return NULL;
  if (q->image && !q->bitmaps_unsupported) {
    static bool registered;
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&instances_lock);

    if (!registered && atexit (restore_at_exit) == 0)
      registered = true;
  }
  return &q->store;
}

static struct nbdcbt_plugin plugin = {
  .name = "qcow2",
  .longname = "nbdcbt qcow2 plugin",
  .version = PACKAGE_VERSION,
  .description = "Serve a qcow2 image (with its backing chain and "
                 "persistent bitmaps)",
  .config_help = qcow2_plugin_config_help,
  .magic_config_key = "file",
  .instance_new = qcow2_plugin_instance_new,
  .instance_free = qcow2_plugin_instance_free,
  .config = qcow2_plugin_config,
  .config_complete = qcow2_plugin_config_complete,
  .thread_model = qcow2_plugin_thread_model,
  .get_ready = qcow2_plugin_get_ready,
  .cleanup = qcow2_plugin_cleanup,
  .get_service = qcow2_plugin_get_service,
  .open = qcow2_plugin_open,
  .close = qcow2_plugin_close,
  .get_size = qcow2_plugin_get_size,
  .can_write = qcow2_plugin_can_write,
  .can_flush = qcow2_plugin_can_true,
  .can_trim = qcow2_plugin_can_true,
  .can_zero = qcow2_plugin_can_zero,
  .can_extents = qcow2_plugin_can_true,
  .can_fua = qcow2_plugin_can_fua,
  .can_multi_conn = qcow2_plugin_can_true,
  .pread = qcow2_plugin_pread,
  .pwrite = qcow2_plugin_pwrite,
  .flush = qcow2_plugin_flush,
  .trim = qcow2_plugin_trim,
  .zero = qcow2_plugin_zero,
  .extents = qcow2_plugin_extents,
  .list_meta_contexts = qcow2_plugin_list_meta_contexts,
  .meta_extents = qcow2_plugin_meta_extents,
};

NBDCBT_REGISTER_PLUGIN (plugin)
