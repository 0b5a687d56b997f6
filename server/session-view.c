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

/* nbdcbt server: the exports of a backup session.
 *
 * Each view is a chain of one layer: a plugin built into the server whose
 * instance reads the session through the fleece filter's engine.  Granules
 * the engine has copied come from the session's store; the others from
 * the source disk, through a context of the source export's chain opened
 * below the fleece filter (so the view's reads are neither copied nor
 * marked as changes).
 *
 * The point-in-time view (backup-ID) answers reads with the disk as it
 * was at the session's instant, base:allocation from the disk below where
 * the disk still holds that data (data elsewhere), and, for an
 * incremental, the frozen bitmap as qemu:dirty-bitmap:BITMAP.
 *
 * The delta view (backup-ID-delta) is made for stock nbdcopy: granules
 * clean in the frozen bitmap are reported as hole and zero; dirty ones
 * (written zeroes and trims included) are always reported as data, so
 * that
 *   nbdcopy --destination-is-zero -S 0 DELTA MIRROR
 * brings a mirror of the previous state to the instant.  nbdcopy reads
 * whole 256 KiB requests that hold any data and writes back all it read,
 * so clean granules read as their data at the instant (the session keeps
 * every granule), never as zeroes.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "session-view.h"

struct view {
  struct view_source src;
  bool delta;
  void (*release) (void *opaque);
  void *opaque;
};

static void
view_instance_free (void *instance)
{
  struct view *v = instance;

  if (v->release)
    v->release (v->opaque);
  free (v);
}

static int
view_thread_model (void *instance)
{
  return NBDCBT_THREAD_MODEL_PARALLEL;
}

static void *
view_open (void *instance, int readonly)
{
  return instance;
}

static int64_t
view_get_size (void *handle)
{
  return ((struct view *) handle)->src.size;
}

static int
view_zero_answer (void *handle)
{
  return 0;
}

static int
view_one (void *handle)
{
  return 1;
}

/* The engine reads the disk through the context below the fleece
 * filter; a chain that cannot take parallel requests gets one at a time.
 */
static int
read_below (void *opaque, void *buf, uint32_t count, uint64_t offset,
            int *err)
{
  const struct view_source *src = opaque;
  int r;

  if (src->below_lock)
    pthread_mutex_lock (src->below_lock);
  r = backend_pread (src->below, buf, count, offset, 0, err);
  if (src->below_lock)
    pthread_mutex_unlock (src->below_lock);
  return r;
}

static int
view_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  struct view *v = handle;
  int err = 0;

  if (v->src.fleece->session_read (v->src.cbw, buf, count, offset, v->delta,
                                   read_below, &v->src, &err) == -1) {
    nbdcbt_set_error (err ? err : EIO);
    return -1;
  }
  return 0;
}

/* The runs of a request, collected under the engine's lock, then
 * answered without it.
 */
struct run {
  uint64_t offset, len;
  enum cbw_where where;
  bool dirty;
};
struct runs {
  struct run *v;
  size_t n, cap, max;
};

static int
collect_run (void *opaque, uint64_t offset, uint64_t len,
             enum cbw_where where, bool dirty)
{
  struct runs *r = opaque;

  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    struct run *nv = realloc (r->v, cap * sizeof *nv);

    if (nv == NULL)
      return -1;
    r->v = nv;
    r->cap = cap;
  }
  r->v[r->n++] = (struct run) { offset, len, where, dirty };
  return r->n >= r->max;        /* enough for one reply */
}

static int
get_runs (struct view *v, uint32_t count, uint64_t offset, uint32_t flags,
          struct runs *r)
{
  r->v = NULL;
  r->n = r->cap = 0;
  r->max = flags & NBDCBT_FLAG_REQ_ONE ? 1 : 4096;
  if (v->src.fleece->session_map (v->src.cbw, offset, count, collect_run,
                                  r) == -1) {
    free (r->v);
    nbdcbt_set_error (ENOMEM);
    return -1;
  }
  return 0;
}

/* base:allocation of a run the disk below still holds. */
static int
below_extents (struct view *v, const struct run *run,
               struct nbdcbt_extents *extents)
{
  struct nbdcbt_extents *below;
  uint64_t pos = run->offset, end = run->offset + run->len;
  int err = 0;

  if (v->src.below->can_extents <= 0)
    return nbdcbt_add_extent (extents, run->offset, run->len, 0);

  while (pos < end) {
    size_t i, n;
    uint32_t len = end - pos > UINT32_MAX ? UINT32_MAX : end - pos;
    uint64_t last = pos;

    below = nbdcbt_extents_new (pos, pos + len);
    if (below == NULL)
      return -1;
    if (v->src.below_lock)
      pthread_mutex_lock (v->src.below_lock);
    if (backend_extents (v->src.below, len, pos, 0, below, &err) == -1) {
      if (v->src.below_lock)
        pthread_mutex_unlock (v->src.below_lock);
      nbdcbt_extents_free (below);
      errno = err;
      return -1;
    }
    if (v->src.below_lock)
      pthread_mutex_unlock (v->src.below_lock);
    n = nbdcbt_extents_count (below);
    /* Stop once the list is full: an extent it drops leaves a gap that
     * the next one must not jump over.
     */
    for (i = 0; i < n && !nbdcbt_extents_full (extents); i++) {
      struct nbdcbt_extent e = nbdcbt_get_extent (below, i);

      if (nbdcbt_add_extent (extents, e.offset, e.length, e.type) == -1) {
        nbdcbt_extents_free (below);
        return -1;
      }
      last = e.offset + e.length;
    }
    nbdcbt_extents_free (below);
    if (last <= pos || nbdcbt_extents_full (extents))
      break;                    /* the reply is full, or nothing came */
    pos = last;
  }
  return 0;
}

static int
view_extents (void *handle, uint32_t count, uint64_t offset, uint32_t flags,
              struct nbdcbt_extents *extents)
{
  struct view *v = handle;
  struct cbw_hold *hold = NULL;
  struct runs r;
  size_t i;
  int ret = 0, err = 0;

  /* The runs on the disk must stay there while the disk below answers
   * for them: a write in between would copy the old data away and show
   * its own allocation (a zeroed granule reported as a hole, say).
   */
  if (!v->delta) {
    hold = v->src.fleece->session_hold (v->src.cbw, offset, count, &err);
    if (hold == NULL) {
      nbdcbt_set_error (err);
      return -1;
    }
  }
  if (get_runs (v, count, offset, flags, &r) == -1) {
    v->src.fleece->session_unhold (hold);
    return -1;
  }
  for (i = 0; i < r.n && ret == 0 && !nbdcbt_extents_full (extents); i++) {
    const struct run *run = &r.v[i];

    if (v->delta)
      /* Clean: nothing to apply.  Dirty: always data, zeroes included. */
      ret = nbdcbt_add_extent (extents, run->offset, run->len,
                               run->dirty ? 0
                               : NBDCBT_EXTENT_HOLE | NBDCBT_EXTENT_ZERO);
    else if (run->where == CBW_DISK)
      ret = below_extents (v, run, extents);
    else
      /* In the store, or gone (reads fail): data either way. */
      ret = nbdcbt_add_extent (extents, run->offset, run->len, 0);
  }
  if (hold)
    v->src.fleece->session_unhold (hold);
  free (r.v);
  if (ret == -1)
    nbdcbt_set_error (errno ? errno : EIO);
  return ret;
}

static int
view_list_meta_contexts (void *instance, const char *export_name,
                         struct nbdcbt_meta_contexts *contexts)
{
  struct view *v = instance;

  if (v->src.bitmap_context)
    return nbdcbt_add_meta_context (contexts, v->src.bitmap_context);
  return 0;
}

/* qemu:dirty-bitmap:BITMAP: the frozen bitmap, which the session's
 * needed mask is a copy of (same granularity).
 */
static int
view_meta_extents (void *handle, const char *context, uint32_t count,
                   uint64_t offset, uint32_t flags,
                   struct nbdcbt_extents *extents)
{
  struct view *v = handle;
  struct runs r;
  size_t i;
  int ret = 0;

  if (v->src.bitmap_context == NULL
      || strcmp (context, v->src.bitmap_context) != 0) {
    nbdcbt_set_error (EINVAL);
    return -1;
  }
  if (get_runs (v, count, offset, flags, &r) == -1)
    return -1;
  for (i = 0; i < r.n && ret == 0 && !nbdcbt_extents_full (extents); i++)
    ret = nbdcbt_add_extent (extents, r.v[i].offset, r.v[i].len,
                             r.v[i].dirty ? 1 : 0);
  free (r.v);
  if (ret == -1)
    nbdcbt_set_error (errno ? errno : EIO);
  return ret;
}

static const struct nbdcbt_plugin view_plugin = {
  .name = "session-view",
  .longname = "nbdcbt backup session view",
  .description = "a point-in-time view of a backup session",
  .instance_free = view_instance_free,
  .thread_model = view_thread_model,
  .open = view_open,
  .get_size = view_get_size,
  .can_write = view_zero_answer,
  .can_flush = view_zero_answer,
  .is_rotational = view_zero_answer,
  .can_trim = view_zero_answer,
  .can_zero = view_zero_answer,
  .can_fast_zero = view_zero_answer,
  .can_extents = view_one,
  .can_fua = view_zero_answer,
  .can_multi_conn = view_one,
  .can_cache = view_zero_answer,
  .pread = view_pread,
  .extents = view_extents,
  .list_meta_contexts = view_list_meta_contexts,
  .meta_extents = view_meta_extents,
};

struct nbdcbt_backend *
session_view_chain (const struct view_source *src, bool delta,
                    void (*release) (void *opaque), void *opaque)
{
  struct nbdcbt_backend *b;
  struct view *v;

  b = calloc (1, sizeof *b);
  v = calloc (1, sizeof *v);
  if (b == NULL || v == NULL) {
    nbdcbt_error ("calloc: %m");
    free (b);
    free (v);
    return NULL;
  }
  v->src = *src;
  v->delta = delta;
  v->release = release;
  v->opaque = opaque;
  b->name = view_plugin.name;
  b->filename = "(built in)";
  b->plugin = &view_plugin;
  b->ops = &plugin_ops;
  b->instance = v;
  b->has_instance = true;
  return b;
}
