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

/* The bitmap model of an export: see dirty-bitmap.h. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap-rules.h"
#include "cleanup.h"
#include "dirty-bitmap.h"
#include "hbitmap.h"

/* One bitmap.  A named bitmap is in the set's list; a successor hangs from
 * its parent and has no name.  REFS counts the set's own reference (while
 * the node is in the set) plus every dirty_bitmaps_get; the node and its data
 * are freed when it drops to zero.  The fields other than REFS change only
 * under the set's write lock; HB never changes once set.
 */
struct dirty_bitmap {
  char *name;
  struct hbitmap *hb;
  bool recording;
  bool persistent;
  bool busy;
  bool inconsistent;
  bool readonly;
  struct dirty_bitmap *successor;
  atomic_uint refs;
};

struct dirty_bitmaps {
  pthread_rwlock_t lock;
  uint64_t size;
  struct dirty_bitmap **bitmaps; /* named bitmaps, in creation order */
  size_t nbitmaps, bitmaps_cap;
  /* What dirty_bitmaps_mark writes to: the data of every recording bitmap
   * and successor.  Rebuilt under the write lock after each change, never
   * reallocated there: RECORDING_CAP is kept at 2 x BITMAPS_CAP (a bitmap
   * and its successor) by dirty_bitmaps_add, which may fail cleanly.
   */
  struct hbitmap **recording;
  size_t nrecording, recording_cap;
};

static void
vset_errp (char **errp, const char *fs, va_list args)
{
  char *msg;

  if (errp == NULL)
    return;
  if (vasprintf (&msg, fs, args) == -1)
    msg = NULL;
  free (*errp);
  *errp = msg;
}

void
dirty_bitmap_error (char **errp, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  vset_errp (errp, fs, args);
  va_end (args);
}

static void __attribute__ ((__format__ (__printf__, 3, 4)))
set_error (char **errp, int err, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  vset_errp (errp, fs, args);
  va_end (args);
  errno = err;
}

static void
bitmap_free (struct dirty_bitmap *bm)
{
  if (bm) {
    bitmap_free (bm->successor);
    hbitmap_free (bm->hb);
    free (bm->name);
    free (bm);
  }
}

/* Drop one reference. */
void
dirty_bitmap_put (struct dirty_bitmap *bm)
{
  if (bm && atomic_fetch_sub (&bm->refs, 1) == 1)
    bitmap_free (bm);
}

struct hbitmap *
dirty_bitmap_data (struct dirty_bitmap *bm)
{
  return bm->hb;
}

struct dirty_bitmaps *
dirty_bitmaps_new (uint64_t size)
{
  struct dirty_bitmaps *set = calloc (1, sizeof *set);

  if (set == NULL)
    return NULL;
  if ((errno = pthread_rwlock_init (&set->lock, NULL)) != 0) {
    free (set);
    return NULL;
  }
  set->size = size;
  return set;
}

void
dirty_bitmaps_free (struct dirty_bitmaps *set)
{
  size_t i;

  if (set == NULL)
    return;
  for (i = 0; i < set->nbitmaps; i++)
    dirty_bitmap_put (set->bitmaps[i]);
  free (set->bitmaps);
  free (set->recording);
  pthread_rwlock_destroy (&set->lock);
  free (set);
}

uint64_t
dirty_bitmaps_size (struct dirty_bitmaps *set)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&set->lock);
  return set->size;
}

/* Rebuild the list of recording data.  Write lock held.  Never allocates
 * (see recording_cap).
 */
static void
rebuild_recording (struct dirty_bitmaps *set)
{
  size_t i, n = 0;

  for (i = 0; i < set->nbitmaps; i++) {
    struct dirty_bitmap *bm = set->bitmaps[i];

    if (bm->recording && !bm->inconsistent && !bm->readonly)
      set->recording[n++] = bm->hb;
    if (bm->successor && bm->successor->recording)
      set->recording[n++] = bm->successor->hb;
  }
  set->nrecording = n;
}

/* Index of NAME in the set, or -1.  Lock held. */
static ssize_t
find_index (struct dirty_bitmaps *set, const char *name)
{
  size_t i;

  if (name == NULL)
    return -1;
  for (i = 0; i < set->nbitmaps; i++)
    if (strcmp (set->bitmaps[i]->name, name) == 0)
      return i;
  return -1;
}

/* Find NAME or fail with QEMU's message.  Lock held. */
static struct dirty_bitmap *
lookup (struct dirty_bitmaps *set, const char *name, char **errp)
{
  ssize_t i = find_index (set, name);

  if (i == -1) {
    set_error (errp, ENOENT, "Dirty bitmap '%s' not found",
               name ? name : "");
    return NULL;
  }
  return set->bitmaps[i];
}

/* QEMU's bdrv_dirty_bitmap_check. */
#define CHECK_BUSY 1
#define CHECK_RO 2
#define CHECK_INCONSISTENT 4
#define CHECK_DEFAULT (CHECK_BUSY | CHECK_RO | CHECK_INCONSISTENT)
#define CHECK_ALLOW_RO (CHECK_BUSY | CHECK_INCONSISTENT)

static int
check (const struct dirty_bitmap *bm, int flags, char **errp)
{
  if ((flags & CHECK_BUSY) && bm->busy) {
    set_error (errp, EBUSY, "Bitmap '%s' is currently in use by another "
               "operation and cannot be used", bm->name);
    return -1;
  }
  if ((flags & CHECK_RO) && bm->readonly) {
    set_error (errp, EROFS, "Bitmap '%s' is readonly and cannot be "
               "modified", bm->name);
    return -1;
  }
  if ((flags & CHECK_INCONSISTENT) && bm->inconsistent) {
    set_error (errp, EINVAL, "Bitmap '%s' is inconsistent and cannot be "
               "used; try block-dirty-bitmap-remove to delete it",
               bm->name);
    return -1;
  }
  return 0;
}

int
dirty_bitmaps_add (struct dirty_bitmaps *set, const char *name,
                const struct dirty_bitmap_opts *opts, struct hbitmap *data,
                char **errp)
{
  static const struct dirty_bitmap_opts default_opts;
  uint64_t granularity;
  struct dirty_bitmap *bm;
  const char *msg;

  if (opts == NULL)
    opts = &default_opts;
  if ((msg = bitmap_name_error (name)) != NULL) {
    set_error (errp, EINVAL, "%s", msg);
    return -1;
  }
  granularity = opts->granularity;
  if (granularity == 0)
    granularity = data ? hbitmap_granularity (data)
      : BITMAP_GRANULARITY_DEFAULT;
  if ((msg = bitmap_granularity_error (granularity)) != NULL) {
    set_error (errp, EINVAL, "%s", msg);
    return -1;
  }

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  if (find_index (set, name) != -1) {
    set_error (errp, EEXIST, "Bitmap already exists: %s", name);
    return -1;
  }
  if ((msg = bitmap_count_error (set->nbitmaps + 1)) != NULL) {
    set_error (errp, ENOSPC, "%s", msg);
    return -1;
  }
  if (data && (hbitmap_size (data) != set->size
               || hbitmap_granularity (data) != granularity)) {
    set_error (errp, EINVAL, "Bitmap '%s' has size %" PRIu64
               " and granularity %" PRIu64 ", expected %" PRIu64
               " and %" PRIu64, name, hbitmap_size (data),
               hbitmap_granularity (data), set->size, granularity);
    return -1;
  }

  /* Reserve room first so that nothing below can fail half-way. */
  if (set->nbitmaps == set->bitmaps_cap) {
    size_t cap = set->bitmaps_cap ? set->bitmaps_cap * 2 : 8;
    struct dirty_bitmap **b;
    struct hbitmap **r;

    b = realloc (set->bitmaps, cap * sizeof *b);
    if (b == NULL)
      goto nomem;
    set->bitmaps = b;
    r = realloc (set->recording, 2 * cap * sizeof *r);
    if (r == NULL)
      goto nomem;
    set->recording = r;
    set->bitmaps_cap = cap;
    set->recording_cap = 2 * cap;
  }

  bm = calloc (1, sizeof *bm);
  if (bm == NULL)
    goto nomem;
  bm->name = strdup (name);
  bm->hb = data ? data : hbitmap_new (set->size, granularity);
  if (bm->name == NULL || bm->hb == NULL) {
    if (data)
      bm->hb = NULL;            /* not ours on error */
    bitmap_free (bm);
    goto nomem;
  }
  bm->recording = !opts->disabled;
  bm->persistent = opts->persistent;
  bm->inconsistent = opts->inconsistent;
  bm->readonly = opts->readonly;
  atomic_init (&bm->refs, 1);

  set->bitmaps[set->nbitmaps++] = bm;
  rebuild_recording (set);
  return 0;

 nomem:
  set_error (errp, ENOMEM, "Cannot allocate bitmap '%s': %s", name,
             strerror (ENOMEM));
  return -1;
}

int
dirty_bitmaps_remove (struct dirty_bitmaps *set, const char *name,
                   bool *was_persistent, char **errp)
{
  struct dirty_bitmap *bm;
  ssize_t i;

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup (set, name, errp);
  if (bm == NULL || check (bm, CHECK_BUSY | CHECK_RO, errp) == -1)
    return -1;
  if (was_persistent)
    *was_persistent = bm->persistent;
  i = find_index (set, name);
  memmove (&set->bitmaps[i], &set->bitmaps[i + 1],
           (set->nbitmaps - i - 1) * sizeof set->bitmaps[0]);
  set->nbitmaps--;
  rebuild_recording (set);
  dirty_bitmap_put (bm);
  return 0;
}

int
dirty_bitmaps_clear (struct dirty_bitmaps *set, const char *name, char **errp)
{
  struct dirty_bitmap *bm;

  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup (set, name, errp);
  if (bm == NULL || check (bm, CHECK_DEFAULT, errp) == -1)
    return -1;
  hbitmap_reset_all (bm->hb);
  return 0;
}

static int
set_recording (struct dirty_bitmaps *set, const char *name, bool on,
               char **errp)
{
  struct dirty_bitmap *bm;

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup (set, name, errp);
  if (bm == NULL || check (bm, CHECK_ALLOW_RO, errp) == -1)
    return -1;
  bm->recording = on;
  rebuild_recording (set);
  return 0;
}

int
dirty_bitmaps_enable (struct dirty_bitmaps *set, const char *name, char **errp)
{
  return set_recording (set, name, true, errp);
}

int
dirty_bitmaps_disable (struct dirty_bitmaps *set, const char *name, char **errp)
{
  return set_recording (set, name, false, errp);
}

int
dirty_bitmaps_merge (struct dirty_bitmaps *set, const char *target,
                  const char *const *sources, size_t nsources, char **errp)
{
  struct dirty_bitmap *dst;
  CLEANUP_FREE struct dirty_bitmap **src = NULL;
  struct hbitmap *result;
  size_t i;

  /* The write lock: the target's data is replaced as a whole, so no write
   * may land in the old copy meanwhile.
   */
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  dst = lookup (set, target, errp);
  if (dst == NULL || check (dst, CHECK_DEFAULT, errp) == -1)
    return -1;
  src = calloc (nsources ? nsources : 1, sizeof *src);
  if (src == NULL) {
    set_error (errp, ENOMEM, "%s", strerror (ENOMEM));
    return -1;
  }
  for (i = 0; i < nsources; i++) {
    src[i] = lookup (set, sources[i], errp);
    if (src[i] == NULL || check (src[i], CHECK_ALLOW_RO, errp) == -1)
      return -1;
  }

  /* Merge into a copy so that a failure changes nothing. */
  result = hbitmap_copy (dst->hb);
  if (result == NULL) {
    set_error (errp, ENOMEM, "%s", strerror (ENOMEM));
    return -1;
  }
  for (i = 0; i < nsources; i++) {
    if (hbitmap_merge_any (result, src[i]->hb) == -1) {
      int err = errno;
      hbitmap_free (result);
      set_error (errp, err, "Bitmaps are incompatible and can't be merged");
      return -1;
    }
  }
  /* Same size and granularity: cannot fail. */
  if (hbitmap_merge (dst->hb, result) == -1) {
    int err = errno;
    hbitmap_free (result);
    set_error (errp, err, "Bitmaps are incompatible and can't be merged");
    return -1;
  }
  hbitmap_free (result);
  return 0;
}

int
dirty_bitmaps_set_persistent (struct dirty_bitmaps *set, const char *name,
                           bool persistent, char **errp)
{
  struct dirty_bitmap *bm;

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup (set, name, errp);
  if (bm == NULL)
    return -1;
  bm->persistent = persistent;
  return 0;
}

int
dirty_bitmaps_set_busy (struct dirty_bitmaps *set, const char *name, bool busy,
                     char **errp)
{
  struct dirty_bitmap *bm;

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup (set, name, errp);
  if (bm == NULL)
    return -1;
  if (busy && check (bm, CHECK_DEFAULT & ~CHECK_RO, errp) == -1)
    return -1;
  if (!busy && bm->successor) {
    set_error (errp, EBUSY, "Bitmap '%s' has a successor: end its job "
               "first", name);
    return -1;
  }
  bm->busy = busy;
  return 0;
}

int
dirty_bitmaps_create_successor (struct dirty_bitmaps *set, const char *name,
                             char **errp)
{
  struct dirty_bitmap *bm, *child;

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup (set, name, errp);
  if (bm == NULL || check (bm, CHECK_DEFAULT, errp) == -1)
    return -1;
  if (bm->successor) {
    set_error (errp, EBUSY, "Cannot create a successor for a bitmap that "
               "already has one");
    return -1;
  }
  child = calloc (1, sizeof *child);
  if (child == NULL
      || (child->hb = hbitmap_new (set->size,
                                   hbitmap_granularity (bm->hb))) == NULL) {
    free (child);
    set_error (errp, ENOMEM, "Cannot create a successor for bitmap '%s': "
               "%s", name, strerror (ENOMEM));
    return -1;
  }
  child->recording = bm->recording;
  atomic_init (&child->refs, 1);
  bm->successor = child;
  bm->recording = false;
  bm->busy = true;
  rebuild_recording (set);
  return 0;
}

/* Find NAME with a successor, or fail.  Lock held. */
static struct dirty_bitmap *
lookup_frozen (struct dirty_bitmaps *set, const char *name, char **errp)
{
  struct dirty_bitmap *bm = lookup (set, name, errp);

  if (bm && bm->successor == NULL) {
    set_error (errp, EINVAL, "Cannot relinquish control if there's no "
               "successor present");
    return NULL;
  }
  return bm;
}

int
dirty_bitmaps_abdicate (struct dirty_bitmaps *set, const char *name, char **errp)
{
  return dirty_bitmaps_abdicate_keeping (set, name, NULL, errp);
}

int
dirty_bitmaps_abdicate_keeping (struct dirty_bitmaps *set, const char *name,
                                const struct hbitmap *keep, char **errp)
{
  struct dirty_bitmap *bm, *child;
  size_t i;

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup_frozen (set, name, errp);
  if (bm == NULL)
    return -1;
  child = bm->successor;
  /* Into the successor first, so that no moment shows the bitmap
   * without them.
   */
  if (keep && (hbitmap_size (keep) != set->size
               || hbitmap_merge_any (child->hb, keep) == -1)) {
    set_error (errp, EINVAL, "Cannot keep the bits the "
               "job did not copy in bitmap '%s'", name);
    return -1;
  }
  for (i = 0; set->bitmaps[i] != bm; i++)
    ;
  /* The successor takes the name and the place in the list. */
  child->name = bm->name;
  bm->name = NULL;
  child->persistent = bm->persistent;
  bm->successor = NULL;
  set->bitmaps[i] = child;
  rebuild_recording (set);
  /* Readers holding the parent keep its (frozen) data; name is gone. */
  dirty_bitmap_put (bm);
  return 0;
}

int
dirty_bitmaps_reclaim (struct dirty_bitmaps *set, const char *name, char **errp)
{
  struct dirty_bitmap *bm, *child;

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup_frozen (set, name, errp);
  if (bm == NULL)
    return -1;
  child = bm->successor;
  if (hbitmap_merge_any (bm->hb, child->hb) == -1) {
    set_error (errp, errno, "Merging of parent and successor bitmap "
               "failed");
    return -1;
  }
  bm->recording = child->recording;
  bm->busy = false;
  bm->successor = NULL;
  rebuild_recording (set);
  dirty_bitmap_put (child);
  return 0;
}

void
dirty_bitmaps_mark (struct dirty_bitmaps *set, uint64_t offset, uint64_t len)
{
  size_t i;

  if (len == 0)
    return;
  pthread_rwlock_rdlock (&set->lock);
  /* A bitmap's word for a random write is usually not in the cache (the
   * 512-byte bitmap of a 3 GiB disk is 768 KiB): ask for every bitmap's
   * before waiting for the first.
   */
  for (i = 0; i < set->nrecording; i++)
    hbitmap_prefetch (set->recording[i], offset);
  for (i = 0; i < set->nrecording; i++)
    hbitmap_set (set->recording[i], offset, len);
  pthread_rwlock_unlock (&set->lock);
}

size_t
dirty_bitmaps_recording_count (struct dirty_bitmaps *set)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&set->lock);
  return set->nrecording;
}

int
dirty_bitmaps_resize (struct dirty_bitmaps *set, uint64_t new_size,
                   bool mark_growth, char **errp)
{
  CLEANUP_FREE struct hbitmap **all = NULL;
  size_t i, n = 0, done;
  uint64_t old_size;

  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&set->lock);

  old_size = set->size;
  if (new_size == old_size)
    return 0;
  all = malloc ((2 * set->nbitmaps + 1) * sizeof *all);
  if (all == NULL) {
    set_error (errp, ENOMEM, "%s", strerror (ENOMEM));
    return -1;
  }
  for (i = 0; i < set->nbitmaps; i++) {
    all[n++] = set->bitmaps[i]->hb;
    if (set->bitmaps[i]->successor)
      all[n++] = set->bitmaps[i]->successor->hb;
  }
  for (done = 0; done < n; done++) {
    if (hbitmap_resize (all[done], new_size) == -1) {
      int err = errno;

      /* Undo.  A bitmap grown back after a shrink has lost its bits
       * past NEW_SIZE: mark that area, false dirty being harmless and
       * false clean never allowed.
       */
      while (done-- > 0) {
        hbitmap_resize (all[done], old_size);
        if (new_size < old_size)
          hbitmap_set (all[done], new_size, old_size - new_size);
      }
      set_error (errp, err, "Cannot resize bitmaps to %" PRIu64 ": %s",
                 new_size, strerror (err));
      return -1;
    }
  }
  set->size = new_size;
  if (mark_growth && new_size > old_size) {
    for (i = 0; i < set->nrecording; i++)
      hbitmap_set (set->recording[i], old_size, new_size - old_size);
  }
  return 0;
}

static int
fill_info (const struct dirty_bitmap *bm, struct dirty_bitmap_info *info)
{
  info->name = strdup (bm->name);
  if (info->name == NULL)
    return -1;
  info->granularity = hbitmap_granularity (bm->hb);
  info->count = hbitmap_count (bm->hb);
  /* As QEMU reports it: a frozen bitmap does not record itself, but its
   * successor does on its behalf.
   */
  info->recording = bm->recording
    || (bm->successor && bm->successor->recording);
  info->busy = bm->busy;
  info->persistent = bm->persistent;
  info->inconsistent = bm->inconsistent;
  info->readonly = bm->readonly;
  info->has_successor = bm->successor != NULL;
  return 0;
}

int
dirty_bitmaps_list (struct dirty_bitmaps *set, struct dirty_bitmap_info **list,
                 size_t *n)
{
  struct dirty_bitmap_info *l;
  size_t i;

  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&set->lock);

  l = calloc (set->nbitmaps ? set->nbitmaps : 1, sizeof *l);
  if (l == NULL)
    return -1;
  for (i = 0; i < set->nbitmaps; i++) {
    if (fill_info (set->bitmaps[i], &l[i]) == -1) {
      dirty_bitmap_info_free (l, i);
      errno = ENOMEM;
      return -1;
    }
  }
  *list = l;
  *n = set->nbitmaps;
  return 0;
}

int
dirty_bitmaps_query (struct dirty_bitmaps *set, const char *name,
                  struct dirty_bitmap_info *info, char **errp)
{
  struct dirty_bitmap *bm;

  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup (set, name, errp);
  if (bm == NULL)
    return -1;
  if (fill_info (bm, info) == -1) {
    set_error (errp, ENOMEM, "%s", strerror (ENOMEM));
    return -1;
  }
  return 0;
}

void
dirty_bitmap_info_free (struct dirty_bitmap_info *list, size_t n)
{
  size_t i;

  if (list == NULL)
    return;
  for (i = 0; i < n; i++)
    free (list[i].name);
  free (list);
}

struct dirty_bitmap *
dirty_bitmaps_get (struct dirty_bitmaps *set, const char *name, char **errp)
{
  struct dirty_bitmap *bm;

  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&set->lock);

  bm = lookup (set, name, errp);
  if (bm == NULL || check (bm, CHECK_INCONSISTENT, errp) == -1)
    return NULL;
  atomic_fetch_add (&bm->refs, 1);
  return bm;
}

bool
dirty_bitmaps_exists (struct dirty_bitmaps *set, const char *name)
{
  ssize_t i;

  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&set->lock);

  i = find_index (set, name);
  return i != -1 && !set->bitmaps[i]->inconsistent;
}

struct hbitmap *
dirty_bitmaps_persistent_copy (struct dirty_bitmaps *set, const char *name)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&set->lock);
  struct dirty_bitmap *bm = lookup (set, name, NULL);
  struct hbitmap *copy;

  if (bm == NULL) {
    errno = ENOENT;
    return NULL;
  }
  copy = hbitmap_copy (bm->hb);
  if (copy && bm->successor && hbitmap_merge (copy, bm->successor->hb) == -1) {
    hbitmap_free (copy);
    return NULL;
  }
  return copy;
}
