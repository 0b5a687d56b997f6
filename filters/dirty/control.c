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

/* The dirty filter: the "dirty-bitmaps" service (dirty-bitmaps-service.h),
 * through which the control socket manages an instance's bitmaps live.
 *
 * Each action applies at once and keeps what its undo needs:
 *
 *   add       the new bitmap (stored at once if persistent); undo removes
 *             it (from the store too)
 *   remove    hides the bitmap first, as QEMU does: busy, not recording,
 *             no longer persistent, and gone from the store; commit
 *             removes it, undo brings all of that back
 *   clear     a copy of the bits; undo ORs them back in
 *   merge     the sources are merged into a copy of the target first (a
 *             failure changes nothing), then into the target, keeping its
 *             old bits; undo puts them back
 *   enable,
 *   disable   the previous state
 *
 * While a transaction runs the caller holds the instance quiesced: the
 * writes already marked are done and new ones wait in write_begin (), so
 * undoing a clear or a merge restores the bitmap exactly.  Messages are QEMU's (block/dirty-bitmap.c,
 * block/monitor/bitmap-qmp-cmds.c).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdcbt-filter.h>

#include "bitmap-rules.h"
#include "dirty.h"
#include "dirty-bitmaps-service.h"
#include "hbitmap.h"

enum action_kind { ADD, REMOVE, CLEAR, ENABLE, DISABLE, MERGE };

struct dirty_bitmaps_action {
  struct dirty_instance *d;
  enum action_kind kind;
  char *name;
  bool persistent;              /* add, remove: the store was changed */
  bool was_recording;           /* remove, enable, disable */
  struct hbitmap *backup;       /* clear, merge: the bits before */
};


/* The model, created when the export's size became known.  The control
 * socket opens the chain once before its first look at an export, so
 * this fails only for an export that cannot be opened at all.
 */
static struct dirty_bitmaps *
model (struct dirty_instance *d, char **errp)
{
  if (d->bitmaps == NULL)
    dirty_bitmap_error (errp, "The export's size is not known yet (it could not be "
               "opened)");
  return d->bitmaps;
}

static struct dirty_bitmaps_action *
new_action (struct dirty_instance *d, enum action_kind kind,
            const char *name, char **errp)
{
  struct dirty_bitmaps_action *a = calloc (1, sizeof *a);

  if (a == NULL || (a->name = strdup (name)) == NULL) {
    free (a);
    dirty_bitmap_error (errp, "%s", strerror (ENOMEM));
    return NULL;
  }
  a->d = d;
  a->kind = kind;
  return a;
}

static void
action_free (struct dirty_bitmaps_action *a)
{
  if (a) {
    hbitmap_free (a->backup);
    free (a->name);
    free (a);
  }
}

/* QEMU's bdrv_dirty_bitmap_check, on a snapshot of the bitmap's state. */
static int
check (const struct dirty_bitmap_info *info, bool allow_ro, char **errp)
{
  if (info->busy) {
    dirty_bitmap_error (errp, "Bitmap '%s' is currently in use by another operation "
               "and cannot be used", info->name);
    return -1;
  }
  if (!allow_ro && info->readonly) {
    dirty_bitmap_error (errp, "Bitmap '%s' is readonly and cannot be modified",
               info->name);
    return -1;
  }
  if (info->inconsistent) {
    /* QEMU adds "try block-dirty-bitmap-remove" as a hint, not to the
     * message.
     */
    dirty_bitmap_error (errp, "Bitmap '%s' is inconsistent and cannot be used",
               info->name);
    return -1;
  }
  return 0;
}

static bool
svc_ready (void *opaque)
{
  struct dirty_instance *d = opaque;

  return d->bitmaps != NULL;
}

static uint64_t
svc_size (void *opaque)
{
  struct dirty_instance *d = opaque;

  return d->bitmaps ? dirty_bitmaps_size (d->bitmaps) : 0;
}

static bool
svc_can_persist (void *opaque)
{
  struct dirty_instance *d = opaque;

  return d->store != NULL;
}

static int
svc_list (void *opaque, struct dirty_bitmap_info **list, size_t *n)
{
  struct dirty_instance *d = opaque;

  if (d->bitmaps == NULL) {
    *list = NULL;
    *n = 0;
    return 0;
  }
  return dirty_bitmaps_list (d->bitmaps, list, n);
}

static void
svc_list_free (struct dirty_bitmap_info *list, size_t n)
{
  dirty_bitmap_info_free (list, n);
}

static int
svc_sha256 (void *opaque, const char *name, char out[65], char **errp)
{
  struct dirty_instance *d = opaque;
  struct dirty_bitmaps *set = model (d, errp);
  struct dirty_bitmap *bm;
  int r;

  if (set == NULL || (bm = dirty_bitmaps_get (set, name, errp)) == NULL)
    return -1;
  r = hbitmap_sha256 (dirty_bitmap_data (bm), out);
  dirty_bitmap_put (bm);
  if (r == -1)
    dirty_bitmap_error (errp, "Cannot compute the digest of '%s': %s", name,
               strerror (errno));
  return r;
}

static int
svc_add (void *opaque, const char *node, const char *name,
         const struct dirty_bitmap_opts *opts,
         struct dirty_bitmaps_action **action, char **errp)
{
  struct dirty_instance *d = opaque;
  struct dirty_bitmaps *set = model (d, errp);
  struct dirty_bitmaps_action *a;

  if (set == NULL)
    return -1;
  if (opts->persistent && d->store == NULL) {
    dirty_bitmap_error (errp, "Can't store persistent bitmaps to %s: %s", node,
               strerror (ENOTSUP));
    return -1;
  }
  /* QEMU's wording for the add command (bdrv_create_dirty_bitmap). */
  if (strlen (name) > BITMAP_NAME_MAX && !dirty_bitmaps_exists (set,
                                                                      name)) {
    dirty_bitmap_error (errp, "Bitmap name too long: %s", name);
    return -1;
  }
  /* The QMP parser refuses such strings already; this covers any other
   * caller (NBD needs the name as UTF-8).
   */
  if (!bitmap_name_is_utf8 (name) && !dirty_bitmaps_exists (set, name)) {
    dirty_bitmap_error (errp, BITMAP_NAME_NOT_UTF8);
    return -1;
  }
  a = new_action (d, ADD, name, errp);
  if (a == NULL)
    return -1;
  if (dirty_bitmaps_add (set, name, opts, NULL, errp) == -1) {
    action_free (a);
    return -1;
  }
  if (opts->persistent) {
    if (dirty_store_now (d, errp) == -1) {
      dirty_bitmaps_remove (set, name, NULL, NULL);
      action_free (a);
      return -1;
    }
    a->persistent = true;
  }
  nbdcbt_debug ("dirty: bitmap '%s' added%s", name,
                opts->persistent ? " and stored" : "");
  *action = a;
  return 0;
}

static int
svc_remove (void *opaque, const char *name,
            struct dirty_bitmaps_action **action, char **errp)
{
  struct dirty_instance *d = opaque;
  struct dirty_bitmaps *set = model (d, errp);
  struct dirty_bitmap_info info;
  struct dirty_bitmaps_action *a;

  if (set == NULL || dirty_bitmaps_query (set, name, &info, errp) == -1)
    return -1;
  if (info.busy || info.readonly) {
    check (&info, false, errp);
    free (info.name);
    return -1;
  }
  a = new_action (d, REMOVE, name, errp);
  if (a == NULL) {
    free (info.name);
    return -1;
  }
  a->was_recording = info.recording;
  a->persistent = info.persistent;
  free (info.name);

  /* Hide it: nothing else may use it until commit or abort. */
  if (a->was_recording)
    dirty_bitmaps_disable (set, name, NULL);
  dirty_bitmaps_set_busy (set, name, true, NULL);
  if (a->persistent) {
    dirty_bitmaps_set_persistent (set, name, false, NULL);
    if (dirty_store_remove (d, name, errp) == -1) {
      dirty_bitmaps_set_persistent (set, name, true, NULL);
      dirty_bitmaps_set_busy (set, name, false, NULL);
      if (a->was_recording)
        dirty_bitmaps_enable (set, name, NULL);
      action_free (a);
      return -1;
    }
  }
  *action = a;
  return 0;
}

static int
svc_clear (void *opaque, const char *name,
           struct dirty_bitmaps_action **action, char **errp)
{
  struct dirty_instance *d = opaque;
  struct dirty_bitmaps *set = model (d, errp);
  struct dirty_bitmap_info info;
  struct dirty_bitmaps_action *a;
  struct dirty_bitmap *bm;
  int r;

  if (set == NULL || dirty_bitmaps_query (set, name, &info, errp) == -1)
    return -1;
  r = check (&info, false, errp);
  free (info.name);
  if (r == -1)
    return -1;
  a = new_action (d, CLEAR, name, errp);
  if (a == NULL)
    return -1;
  bm = dirty_bitmaps_get (set, name, errp);
  if (bm == NULL) {
    action_free (a);
    return -1;
  }
  a->backup = hbitmap_copy (dirty_bitmap_data (bm));
  dirty_bitmap_put (bm);
  if (a->backup == NULL) {
    dirty_bitmap_error (errp, "%s", strerror (ENOMEM));
    action_free (a);
    return -1;
  }
  if (dirty_bitmaps_clear (set, name, errp) == -1) {
    action_free (a);
    return -1;
  }
  *action = a;
  return 0;
}

static int
set_recording (struct dirty_instance *d, const char *name, bool on,
               struct dirty_bitmaps_action **action, char **errp)
{
  struct dirty_bitmaps *set = model (d, errp);
  struct dirty_bitmap_info info;
  struct dirty_bitmaps_action *a;
  int r;

  if (set == NULL || dirty_bitmaps_query (set, name, &info, errp) == -1)
    return -1;
  if (check (&info, true, errp) == -1) {
    free (info.name);
    return -1;
  }
  a = new_action (d, on ? ENABLE : DISABLE, name, errp);
  if (a == NULL) {
    free (info.name);
    return -1;
  }
  a->was_recording = info.recording;
  free (info.name);
  r = on ? dirty_bitmaps_enable (set, name, errp)
    : dirty_bitmaps_disable (set, name, errp);
  if (r == -1) {
    action_free (a);
    return -1;
  }
  *action = a;
  return 0;
}

static int
svc_enable (void *opaque, const char *name,
            struct dirty_bitmaps_action **action, char **errp)
{
  return set_recording (opaque, name, true, action, errp);
}

static int
svc_disable (void *opaque, const char *name,
             struct dirty_bitmaps_action **action, char **errp)
{
  return set_recording (opaque, name, false, action, errp);
}

/* A merge source: a reference to its data after QEMU's checks. */
static struct dirty_bitmap *
get_source (const struct dirty_bitmaps_source *src, char **errp)
{
  struct dirty_instance *sd = src->service->opaque;
  struct dirty_bitmaps *set = model (sd, errp);
  struct dirty_bitmap_info info;
  int r;

  if (set == NULL || dirty_bitmaps_query (set, src->name, &info, errp) == -1)
    return NULL;
  r = check (&info, true, errp);
  free (info.name);
  if (r == -1)
    return NULL;
  return dirty_bitmaps_get (set, src->name, errp);
}

static int
svc_merge (void *opaque, const char *target,
           const struct dirty_bitmaps_source *sources, size_t n,
           struct dirty_bitmaps_action **action, char **errp)
{
  struct dirty_instance *d = opaque;
  struct dirty_bitmaps *set = model (d, errp);
  struct dirty_bitmaps_action *a = NULL;
  struct dirty_bitmap_info info;
  struct dirty_bitmap *dst = NULL;
  struct hbitmap *result = NULL;
  size_t i;
  int r;

  if (set == NULL || dirty_bitmaps_query (set, target, &info, errp) == -1)
    return -1;
  r = check (&info, false, errp);
  free (info.name);
  if (r == -1)
    return -1;
  a = new_action (d, MERGE, target, errp);
  if (a == NULL)
    return -1;
  dst = dirty_bitmaps_get (set, target, errp);
  if (dst == NULL)
    goto err;
  result = hbitmap_copy (dirty_bitmap_data (dst));
  a->backup = hbitmap_copy (dirty_bitmap_data (dst));
  if (result == NULL || a->backup == NULL) {
    dirty_bitmap_error (errp, "%s", strerror (ENOMEM));
    goto err;
  }
  /* Into a copy first: a bad source leaves the target as it was. */
  for (i = 0; i < n; i++) {
    struct dirty_bitmap *src = get_source (&sources[i], errp);

    if (src == NULL)
      goto err;
    r = -1;
    if (hbitmap_size (dirty_bitmap_data (src)) == hbitmap_size (result))
      r = hbitmap_merge_any (result, dirty_bitmap_data (src));
    dirty_bitmap_put (src);
    if (r == -1) {
      dirty_bitmap_error (errp, "Bitmaps are incompatible and can't be merged");
      goto err;
    }
  }
  /* Same size and granularity: cannot fail. */
  hbitmap_merge (dirty_bitmap_data (dst), result);
  hbitmap_free (result);
  dirty_bitmap_put (dst);
  *action = a;
  return 0;

 err:
  hbitmap_free (result);
  dirty_bitmap_put (dst);
  action_free (a);
  return -1;
}

static void
svc_commit (struct dirty_bitmaps_action *a)
{
  struct dirty_instance *d = a->d;

  if (a->kind == REMOVE) {
    dirty_bitmaps_set_busy (d->bitmaps, a->name, false, NULL);
    if (dirty_bitmaps_remove (d->bitmaps, a->name, NULL, NULL) == 0)
      nbdcbt_debug ("dirty: bitmap '%s' removed", a->name);
  }
  action_free (a);
}

/* Put back the bits of A's backup: the bitmap as it was. */
static void
restore_bits (struct dirty_bitmaps_action *a, bool replace)
{
  struct dirty_bitmap *bm = dirty_bitmaps_get (a->d->bitmaps, a->name, NULL);

  if (bm) {
    if (replace)
      hbitmap_reset_all (dirty_bitmap_data (bm));
    hbitmap_merge (dirty_bitmap_data (bm), a->backup);
    dirty_bitmap_put (bm);
  }
}

static void
svc_abort (struct dirty_bitmaps_action *a)
{
  struct dirty_instance *d = a->d;
  struct dirty_bitmaps *set = d->bitmaps;
  char *msg = NULL;

  switch (a->kind) {
  case ADD:
    dirty_bitmaps_remove (set, a->name, NULL, NULL);
    if (a->persistent && dirty_store_remove (d, a->name, &msg) == -1)
      nbdcbt_error ("dirty: undoing the addition of '%s': %s", a->name,
                    msg);
    break;
  case REMOVE:
    dirty_bitmaps_set_busy (set, a->name, false, NULL);
    if (a->was_recording)
      dirty_bitmaps_enable (set, a->name, NULL);
    if (a->persistent) {
      dirty_bitmaps_set_persistent (set, a->name, true, NULL);
      if (dirty_store_now (d, &msg) == -1)
        nbdcbt_error ("dirty: undoing the removal of '%s': %s", a->name,
                      msg);
    }
    break;
  case CLEAR:
    restore_bits (a, false);
    break;
  case MERGE:
    restore_bits (a, true);
    break;
  case ENABLE:
  case DISABLE:
    if (a->was_recording)
      dirty_bitmaps_enable (set, a->name, NULL);
    else
      dirty_bitmaps_disable (set, a->name, NULL);
    break;
  }
  free (msg);
  action_free (a);
}

static int
svc_freeze (void *opaque, const char *name, const struct hbitmap **frozen,
            char **errp)
{
  struct dirty_instance *d = opaque;
  struct dirty_bitmaps *set = model (d, errp);
  struct dirty_bitmap *bm;

  if (set == NULL || dirty_bitmaps_create_successor (set, name, errp) == -1)
    return -1;
  /* Busy and frozen now: its data stays as it is until unfreeze. */
  bm = dirty_bitmaps_get (set, name, errp);
  if (bm == NULL) {
    dirty_bitmaps_reclaim (set, name, NULL);
    return -1;
  }
  *frozen = dirty_bitmap_data (bm);
  dirty_bitmap_put (bm);
  return 0;
}

static int
svc_unfreeze (void *opaque, const char *name, bool sync,
              const struct hbitmap *keep, char **errp)
{
  struct dirty_instance *d = opaque;
  struct dirty_bitmaps *set = model (d, errp);

  bool in_use;
  char *msg = NULL;

  if (set == NULL)
    return -1;
  if (!sync)
    return dirty_bitmaps_reclaim (set, name, errp);
  if (dirty_bitmaps_abdicate_keeping (set, name, keep, errp) == -1)
    return -1;
  /* Nobody has written since the start, so nothing will store the
   * bitmaps at the stop (only an image in use is stored then): store the
   * abdicated bitmap now, or the next backup would copy it all again.
   */
  pthread_mutex_lock (&d->lock);
  in_use = d->marked_in_use;
  pthread_mutex_unlock (&d->lock);
  if (!in_use && dirty_store_now (d, &msg) == -1) {
    nbdcbt_error ("dirty: bitmap '%s': %s", name, msg);
    free (msg);
  }
  return 0;
}

static void
svc_quiesce (void *opaque)
{
  struct dirty_instance *d = opaque;

  pthread_rwlock_wrlock (&d->quiesce);
}

static void
svc_resume (void *opaque)
{
  struct dirty_instance *d = opaque;

  pthread_rwlock_unlock (&d->quiesce);
}

void
dirty_control_init (struct dirty_instance *d)
{
  struct dirty_bitmaps_service *s = &d->service;

  s->opaque = d;
  s->ready = svc_ready;
  s->size = svc_size;
  s->can_persist = svc_can_persist;
  s->list = svc_list;
  s->list_free = svc_list_free;
  s->sha256 = svc_sha256;
  s->add = svc_add;
  s->remove = svc_remove;
  s->clear = svc_clear;
  s->enable = svc_enable;
  s->disable = svc_disable;
  s->merge = svc_merge;
  s->commit = svc_commit;
  s->abort = svc_abort;
  s->freeze = svc_freeze;
  s->unfreeze = svc_unfreeze;
  s->quiesce = svc_quiesce;
  s->resume = svc_resume;
}
