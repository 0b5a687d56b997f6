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

/* The dirty filter: change tracking in named dirty bitmaps.
 *
 * Every write, write-zeroes and trim marks the granules it touches
 * (partial ones too) in every recording bitmap before the request goes
 * down the chain: a request that then fails leaves false dirty bits, which
 * are harmless, and a write can never reach the disk unrecorded.  Reads,
 * cache, flush and block status mark nothing.
 *
 * Each consistent bitmap is exported as the metadata context
 * qemu:dirty-bitmap:NAME (flag 1 = dirty), answered here from the bitmap;
 * any other context (qemu:allocation-depth from a plugin with a backing
 * chain, say) passes down the chain.
 *
 * The bitmaps are sized from the plugin's size, which is known only once
 * a connection is open: the model (struct dirty_bitmaps) is created at the
 * first prepare, under a lock.  Until then the bitmaps exist as a list of
 * pending names, which is what list_meta_contexts reports during the
 * first handshake.  (The control socket opens the chain once before it
 * looks at an export, so with it the model exists from start-up.)
 *
 * Each export has its own instance (dirty.h); persistence is in store.c.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdcbt-filter.h>

#include "bitmap-rules.h"
#include "cleanup.h"
#include "dirty.h"
#include "hbitmap.h"
#include "utils.h"

#define CONTEXT_PREFIX "qemu:dirty-bitmap:"
#define CONTEXT_PREFIX_LEN (sizeof CONTEXT_PREFIX - 1)

static void
pending_free_all (struct dirty_instance *d)
{
  size_t i;

  for (i = 0; i < d->npending; i++) {
    free (d->pending[i].name);
    hbitmap_free (d->pending[i].data);
  }
  free (d->pending);
  d->pending = NULL;
  d->npending = 0;
}

struct dirty_pending *
dirty_pending_find (struct dirty_instance *d, const char *name)
{
  size_t i;

  for (i = 0; i < d->npending; i++)
    if (strcmp (d->pending[i].name, name) == 0)
      return &d->pending[i];
  return NULL;
}

struct dirty_pending *
dirty_pending_append (struct dirty_instance *d, const char *name)
{
  struct dirty_pending *p;

  p = realloc (d->pending, (d->npending + 1) * sizeof *p);
  if (p == NULL)
    return NULL;
  d->pending = p;
  p = &d->pending[d->npending];
  memset (p, 0, sizeof *p);
  p->name = strdup (name);
  if (p->name == NULL)
    return NULL;
  d->npending++;
  return p;
}

static void *
dirty_instance_new (void)
{
  struct dirty_instance *d = calloc (1, sizeof *d);
  pthread_rwlockattr_t attr;

  if (d == NULL) {
    nbdcbt_error ("dirty: calloc: %m");
    return NULL;
  }
  pthread_mutex_init (&d->lock, NULL);
  /* Writer preference: a transaction must not starve behind a stream of
   * writes, each holding QUIESCE shared until it is done.
   */
  pthread_rwlockattr_init (&attr);
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&d->quiesce, &attr);
  pthread_rwlockattr_destroy (&attr);
  dirty_control_init (d);
  pthread_cond_init (&d->stop_cond, NULL);
  d->store_interval = DIRTY_DEFAULT_STORE_INTERVAL;
  return d;
}

static void
dirty_instance_free (void *instance)
{
  struct dirty_instance *d = instance;

  pending_free_all (d);
  dirty_bitmaps_free (d->bitmaps);
  pthread_rwlock_destroy (&d->quiesce);
  pthread_mutex_destroy (&d->lock);
  free (d);
}

/* bitmap=NAME or bitmap=NAME:GRANULARITY.  The granularity follows the
 * last colon, so a name containing colons needs an explicit granularity.
 */
static int
parse_bitmap (struct dirty_instance *d, const char *value)
{
  CLEANUP_FREE char *name = strdup (value);
  const char *msg;
  uint64_t granularity = 0;
  char *colon;
  struct dirty_pending *p;

  if (name == NULL) {
    nbdcbt_error ("strdup: %m");
    return -1;
  }
  colon = strrchr (name, ':');
  if (colon) {
    const char *err;
    int64_t g;

    *colon = '\0';
    g = parse_human_size (colon + 1, &err);
    if (g == -1) {
      nbdcbt_error ("dirty: bitmap=%s: cannot parse granularity '%s': %s",
                    value, colon + 1, err);
      return -1;
    }
    if ((msg = bitmap_granularity_error (g)) != NULL) {
      nbdcbt_error ("dirty: bitmap=%s: %s", value, msg);
      return -1;
    }
    granularity = g;
  }
  /* A bitmap= name may be a new one: it must be UTF-8 too. */
  if ((msg = bitmap_new_name_error (name)) != NULL) {
    char quoted[80];            /* not a 1000-byte name back */

    nbdcbt_error ("dirty: bitmap=%s: %s",
                  bitmap_name_quote (value, quoted, sizeof quoted), msg);
    return -1;
  }
  if (dirty_pending_find (d, name)) {
    nbdcbt_error ("dirty: bitmap=%s: Bitmap already exists: %s "
                  "(bitmap names must be unique)", value, name);
    return -1;
  }
  if ((msg = bitmap_count_error (d->npending + 1)) != NULL) {
    nbdcbt_error ("dirty: bitmap=%.*s%s: %s", 64, value,
                  strlen (value) > 64 ? "..." : "", msg);
    return -1;
  }
  p = dirty_pending_append (d, name);
  if (p == NULL) {
    nbdcbt_error ("dirty: %m");
    return -1;
  }
  p->granularity = granularity;
  return 0;
}

static int
dirty_config (nbdcbt_next_config *next, nbdcbt_backend *nxdata,
              void *instance, const char *key, const char *value)
{
  struct dirty_instance *d = instance;

  if (strcmp (key, "bitmap") == 0)
    return parse_bitmap (d, value);
  if (strcmp (key, "store-on-flush") == 0) {
    int r = nbdcbt_parse_bool (value);
    if (r == -1)
      return -1;
    d->store_on_flush = r;
    return 0;
  }
  switch (dirty_store_config (d, key, value)) {
  case 1: return 0;
  case -1: return -1;
  }
  return next (nxdata, key, value);
}

#define dirty_config_help \
  "bitmap=NAME[:GRANULARITY]  Track changes in bitmap NAME (repeatable;\n" \
  "                           granularity 512..2G, default 64K).\n" \
  "store-on-flush=BOOL        Also store persistent bitmaps on flush.\n" \
  "store-interval=SECONDS     Store them this often (default 30, 0 never).\n" \
  "zone-size=SIZE             Intent record zone (default 64M).\n" \
  "intent=BOOL                Keep an intent record (default true)."

static int
dirty_get_ready (nbdcbt_backend *nxdata, void *instance)
{
  return dirty_store_get_ready (instance, nxdata);
}

static void
dirty_cleanup (nbdcbt_backend *nxdata, void *instance)
{
  dirty_store_cleanup (instance);
}

/* Create the model from the pending list.  LOCK held. */
static int
create_bitmaps (struct dirty_instance *d,
                const struct nbdcbt_next_ops *next_ops,
                nbdcbt_context *nxdata)
{
  int64_t size = next_ops->get_size (nxdata);
  struct dirty_bitmaps *s;
  size_t i;

  if (size == -1)
    return -1;
  s = dirty_bitmaps_new (size);
  if (s == NULL) {
    nbdcbt_error ("dirty: %m");
    return -1;
  }
  for (i = 0; i < d->npending; i++) {
    struct dirty_pending *p = &d->pending[i];
    struct dirty_bitmap_opts opts = {
      .granularity = p->granularity,
      .disabled = p->disabled,
      .persistent = p->persistent,
      .inconsistent = p->inconsistent,
    };
    CLEANUP_FREE char *msg = NULL;

    if (p->data && hbitmap_size (p->data) != (uint64_t) size
        && hbitmap_resize (p->data, size) == -1) {
      nbdcbt_error ("dirty: bitmap '%s': cannot resize to %" PRIi64 ": %m",
                    p->name, size);
      goto err;
    }
    if (dirty_bitmaps_add (s, p->name, &opts, p->data, &msg) == -1) {
      nbdcbt_error ("dirty: %s", msg ? msg : strerror (errno));
      goto err;
    }
    p->data = NULL;             /* the model owns it now */
  }
  d->bitmaps = s;
  nbdcbt_debug ("dirty: %zu bitmap(s) over %" PRIi64 " bytes, %zu "
                "recording", d->npending, size,
                dirty_bitmaps_recording_count (s));
  return 0;

 err:
  dirty_bitmaps_free (s);
  return -1;
}

static int
dirty_prepare (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, int readonly)
{
  struct dirty_instance *d = handle;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);

  if (d->bitmaps == NULL && create_bitmaps (d, next_ops, nxdata) == -1)
    return -1;
  if (!readonly && dirty_store_mark_in_use (d) == -1)
    return -1;
  return 0;
}

static int
dirty_list_meta_contexts (nbdcbt_next_list_meta_contexts *next,
                          nbdcbt_backend *nxdata, void *instance,
                          const char *export_name,
                          struct nbdcbt_meta_contexts *contexts)
{
  struct dirty_instance *d = instance;
  size_t i;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);

    if (d->bitmaps) {
      struct dirty_bitmap_info *info;
      size_t n;

      if (dirty_bitmaps_list (d->bitmaps, &info, &n) == -1) {
        nbdcbt_error ("dirty: %m");
        return -1;
      }
      for (i = 0; i < n; i++) {
        CLEANUP_FREE char *ctx = NULL;

        if (info[i].inconsistent)
          continue;
        if (asprintf (&ctx, CONTEXT_PREFIX "%s", info[i].name) == -1
            || nbdcbt_add_meta_context (contexts, ctx) == -1) {
          dirty_bitmap_info_free (info, n);
          return -1;
        }
      }
      dirty_bitmap_info_free (info, n);
    }
    else {
      for (i = 0; i < d->npending; i++) {
        CLEANUP_FREE char *ctx = NULL;

        if (d->pending[i].inconsistent)
          continue;
        if (asprintf (&ctx, CONTEXT_PREFIX "%s", d->pending[i].name) == -1
            || nbdcbt_add_meta_context (contexts, ctx) == -1)
          return -1;
      }
    }
  }
  return next (nxdata, export_name, contexts);
}

/* The write path: the fine bitmaps, then the intent record (store.c),
 * then the request goes down, all with QUIESCE held shared until the
 * request is done.  A control transaction holds QUIESCE exclusively, so
 * it waits for the writes already marked to be done and holds the new
 * ones before they are marked.  Releasing it after the mark instead let
 * a clear come between a write's mark and its data: the data landed
 * after the clear, unrecorded, and the next incremental backup missed
 * it.  (QEMU marks a write once it is done, and drains the node for a
 * transaction.  Here the mark comes first: the intent record must hold
 * the write's zones before its data reaches the disk, and a store
 * between the record's mark and the bitmap's would clear them.)
 */
static inline int
write_begin (struct dirty_instance *d, uint64_t offset, uint32_t count,
             int *err)
{
  if (d->bitmaps) {
    pthread_rwlock_rdlock (&d->quiesce);
    dirty_bitmaps_mark (d->bitmaps, offset, count);
  }
  if (d->intent && dirty_store_before_write (d, offset, count, err) == -1) {
    if (d->bitmaps)
      pthread_rwlock_unlock (&d->quiesce);
    return -1;
  }
  return 0;
}

static inline int
write_end (struct dirty_instance *d, int r)
{
  if (d->bitmaps)
    pthread_rwlock_unlock (&d->quiesce);
  return r;
}

/* The control socket's service for this instance (control.c). */
static const void *
dirty_get_service (nbdcbt_backend *nxdata, void *instance, const char *name)
{
  struct dirty_instance *d = instance;

  if (strcmp (name, DIRTY_BITMAPS_SERVICE) == 0)
    return &d->service;
  return NULL;
}

static int
dirty_pwrite (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
              void *handle, const void *buf, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  struct dirty_instance *d = handle;

  if (write_begin (d, offset, count, err) == -1)
    return -1;
  return write_end (d, next_ops->pwrite (nxdata, buf, count, offset, flags,
                                         err));
}

static int
dirty_zero (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
            void *handle, uint32_t count, uint64_t offset, uint32_t flags,
            int *err)
{
  struct dirty_instance *d = handle;

  if (write_begin (d, offset, count, err) == -1)
    return -1;
  return write_end (d, next_ops->zero (nxdata, count, offset, flags, err));
}

static int
dirty_trim (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
            void *handle, uint32_t count, uint64_t offset, uint32_t flags,
            int *err)
{
  struct dirty_instance *d = handle;

  if (write_begin (d, offset, count, err) == -1)
    return -1;
  return write_end (d, next_ops->trim (nxdata, count, offset, flags, err));
}

static int
dirty_flush (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
             void *handle, uint32_t flags, int *err)
{
  if (next_ops->flush (nxdata, flags, err) == -1)
    return -1;
  if (dirty_store_on_flush (handle) == -1) {
    *err = EIO;
    return -1;
  }
  return 0;
}

struct extents_walk {
  struct nbdcbt_extents *extents;
  uint64_t pos;                 /* end of what was added so far */
  int err;
};

/* One dirty area: the clean gap before it, then the area.  1 stops the
 * walk once the list is full, -1 on error.
 */
static int
add_dirty_area (void *opaque, uint64_t start, uint64_t len)
{
  struct extents_walk *w = opaque;

  if (start > w->pos
      && nbdcbt_add_extent (w->extents, w->pos, start - w->pos, 0) == -1)
    goto err;
  if (nbdcbt_extents_full (w->extents))
    return 1;
  if (nbdcbt_add_extent (w->extents, start, len, 1) == -1)
    goto err;
  w->pos = start + len;
  return nbdcbt_extents_full (w->extents);
 err:
  w->err = errno;
  return -1;
}

/* Block status of one bitmap, as qemu-nbd answers it: clean and dirty
 * extents alternating, boundaries on granule multiples except where they
 * are clipped to the request and the export end.  One walk under the
 * bitmap's lock (a 4 GiB request over scattered writes has hundreds of
 * areas).
 */
static int
bitmap_extents (struct hbitmap *hb, uint32_t count, uint64_t offset,
                struct nbdcbt_extents *extents, int *err)
{
  struct extents_walk w = { .extents = extents, .pos = offset };
  uint64_t end = offset + count, size = hbitmap_size (hb);
  int r;

  if (end > size)
    end = size;
  r = hbitmap_walk_dirty (hb, offset, end, add_dirty_area, &w);
  if (r == -1) {
    *err = w.err;
    return -1;
  }
  if (r == 0 && w.pos < end
      && nbdcbt_add_extent (extents, w.pos, end - w.pos, 0) == -1) {
    *err = errno;
    return -1;
  }
  return 0;
}

static int
dirty_meta_extents (const struct nbdcbt_next_ops *next_ops,
                    nbdcbt_context *nxdata, void *handle,
                    const char *context, uint32_t count, uint64_t offset,
                    uint32_t flags, struct nbdcbt_extents *extents, int *err)
{
  struct dirty_instance *d = handle;
  struct dirty_bitmap *bm;
  int r;

  if (d->bitmaps == NULL
      || strncmp (context, CONTEXT_PREFIX, CONTEXT_PREFIX_LEN)
      || (bm = dirty_bitmaps_get (d->bitmaps, context + CONTEXT_PREFIX_LEN,
                                  NULL)) == NULL)
    /* Not ours: qemu:allocation-depth and the like live below. */
    return next_ops->meta_extents (nxdata, context, count, offset, flags,
                                   extents, err);

  r = bitmap_extents (dirty_bitmap_data (bm), count, offset, extents, err);
  dirty_bitmap_put (bm);
  return r;
}

static struct nbdcbt_filter filter = {
  .name = "dirty",
  .longname = "nbdcbt dirty filter",
  .version = PACKAGE_VERSION,
  .description = "track changes in named dirty bitmaps",
  .config_help = dirty_config_help,
  .instance_new = dirty_instance_new,
  .instance_free = dirty_instance_free,
  .config = dirty_config,
  .get_ready = dirty_get_ready,
  .cleanup = dirty_cleanup,
  .get_service = dirty_get_service,
  .list_meta_contexts = dirty_list_meta_contexts,
  .prepare = dirty_prepare,
  .pwrite = dirty_pwrite,
  .zero = dirty_zero,
  .trim = dirty_trim,
  .flush = dirty_flush,
  .meta_extents = dirty_meta_extents,
};

NBDCBT_REGISTER_FILTER (filter)
