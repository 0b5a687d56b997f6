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

/* The dirty filter: persistence through a bitmap store.
 *
 * With a bitmap store below (the "bitmap-store" service, see
 * bitmap-store.h) the stored bitmaps are loaded at get_ready, marked in
 * use at the first read-write connection and stored at clean shutdown
 * (and on flush with store-on-flush=true).
 *
 * Crash safety (docs/persistence.md): a store that keeps an intent record
 * (start_intent: the qcow2 plugin, the file plugin's QBM sidecar) hands
 * it over when the bitmaps are marked in use.  Every write then marks its
 * zones durably before it goes down (dirty_store_before_write); every
 * store (flush, every store-interval seconds, cleanup) is bracketed by
 * intent_store_begin/end, which clears the zones nobody wrote since.
 * After a crash the store loads each bitmap as stored | marked zones.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdcbt-filter.h>

#include "cleanup.h"
#include "dirty.h"
#include "hbitmap.h"
#include "intent.h"
#include "utils.h"

static const char *
store_error (struct dirty_instance *d)
{
  const struct bitmap_store *store = d->store;
  const char *msg = store->last_error ? store->last_error (store->opaque)
    : NULL;

  return msg ? msg : strerror (errno);
}

int
dirty_store_config (struct dirty_instance *d, const char *key,
                    const char *value)
{
  if (strcmp (key, "intent") == 0) {
    int r = nbdcbt_parse_bool (value);
    if (r == -1)
      return -1;
    d->no_intent = !r;
    return 1;
  }
  if (strcmp (key, "zone-size") == 0) {
    const char *err;
    int64_t z = parse_human_size (value, &err);

    if (z == -1 || !intent_zone_size_valid (z)) {
      nbdcbt_error ("dirty: zone-size=%s: must be a power of two from "
                    "64K to 1T", value);
      return -1;
    }
    d->zone_size = z;
    return 1;
  }
  if (strcmp (key, "store-interval") == 0) {
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul (value, &end, 10);
    if (errno || end == value || *end || v > 86400 || value[0] == '-') {
      nbdcbt_error ("dirty: store-interval=%s: expected seconds, 0 to "
                    "86400", value);
      return -1;
    }
    d->store_interval = v;
    return 1;
  }
  return 0;
}

int
dirty_store_before_write (struct dirty_instance *d, uint64_t offset,
                          uint64_t count, int *err)
{
  if (intent_mark (d->intent, offset, count) == -1) {
    *err = errno ? errno : EIO;
    nbdcbt_error ("dirty: cannot record the write in the intent record of "
                  "the %s store: %s", d->store->name, store_error (d));
    return -1;
  }
  return 0;
}

/* Load the store's bitmaps and reconcile them with bitmap=. */
static int
load_store (struct dirty_instance *d)
{
  const struct bitmap_store *store = d->store;
  struct bitmap_store_info *list = NULL;
  size_t i, n = 0, nconfig = d->npending;
  int r = -1;

  if (store->list (store->opaque, &list, &n) == -1) {
    /* ENOTSUP: this store can hold no bitmaps at all (a qcow2 v2 image).
     * Fine without bitmap=; a bitmap= one would be lost at shutdown, so
     * refuse it now, as QEMU refuses to make a bitmap persistent there.
     */
    if (errno == ENOTSUP && nconfig == 0) {
      nbdcbt_debug ("dirty: no persistent bitmaps: %s", store_error (d));
      d->store = NULL;
      return 0;
    }
    if (errno == ENOTSUP)
      nbdcbt_error ("dirty: bitmap=%s cannot be kept: %s",
                    d->pending[0].name, store_error (d));
    else
      nbdcbt_error ("dirty: cannot list the bitmaps in the %s store: %s",
                    store->name, store_error (d));
    return -1;
  }
  /* Every bitmap= one is persistent too: the store keeps it. */
  for (i = 0; i < nconfig; i++)
    d->pending[i].persistent = true;

  for (i = 0; i < n; i++) {
    struct dirty_pending *p = dirty_pending_find (d, list[i].name);

    if (p) {
      if (list[i].in_use) {
        nbdcbt_error ("dirty: bitmap=%s: the stored bitmap is inconsistent "
                      "(in use: the image was not closed cleanly); remove "
                      "it first", list[i].name);
        goto out;
      }
      if (p->granularity && p->granularity != list[i].granularity) {
        nbdcbt_error ("dirty: bitmap=%s:%" PRIu64 ": the stored bitmap "
                      "has granularity %" PRIu64, p->name, p->granularity,
                      list[i].granularity);
        goto out;
      }
    }
    else {
      p = dirty_pending_append (d, list[i].name);
      if (p == NULL) {
        nbdcbt_error ("dirty: %m");
        goto out;
      }
      p->persistent = true;
    }
    p->granularity = list[i].granularity;
    /* As QEMU loads it: an in-use bitmap does not record. */
    p->disabled = !list[i].recording || list[i].in_use;
    d->recovered |= list[i].recovered;
    p->inconsistent = list[i].in_use;
    if (!p->inconsistent) {
      p->data = store->load (store->opaque, p->name);
      if (p->data == NULL) {
        nbdcbt_error ("dirty: cannot load bitmap '%s' from the %s store: %s",
                      p->name, store->name, store_error (d));
        goto out;
      }
    }
    else
      nbdcbt_debug ("dirty: bitmap '%s' is inconsistent: not exported",
                    p->name);
  }
  /* A bitmap= one the store does not hold yet must be stored before the
   * first write (start_intent_locked).
   */
  for (i = 0; i < nconfig; i++)
    if (d->pending[i].data == NULL && !d->pending[i].inconsistent)
      d->unstored = true;
  r = 0;
 out:
  if (store->list_free)
    store->list_free (store->opaque, list, n);
  return r;
}

int
dirty_store_get_ready (struct dirty_instance *d, nbdcbt_backend *nxdata)
{
  d->store = nbdcbt_next_service (nxdata, BITMAP_STORE_SERVICE);
  if (d->store) {
    nbdcbt_debug ("dirty: using the %s bitmap store", d->store->name);
    return load_store (d);
  }
  if (d->store_on_flush)
    nbdcbt_debug ("dirty: store-on-flush ignored: no bitmap store below");
  return 0;
}

/* Store every persistent bitmap.  LOCK held. */
static int
store_all (struct dirty_instance *d, bool in_use)
{
  const struct bitmap_store *store = d->store;
  struct dirty_bitmap_info *info = NULL;
  struct bitmap_store_entry *entries = NULL;
  struct hbitmap **refs = NULL;
  const char **keep = NULL;
  size_t i, n = 0, nentries = 0, nkeep = 0;
  int r = -1;

  if (dirty_bitmaps_list (d->bitmaps, &info, &n) == -1) {
    nbdcbt_error ("dirty: %m");
    return -1;
  }
  entries = calloc (n + 1, sizeof *entries);
  refs = calloc (n + 1, sizeof *refs);
  keep = calloc (n + 1, sizeof *keep);
  if (entries == NULL || refs == NULL || keep == NULL) {
    nbdcbt_error ("dirty: %m");
    goto out;
  }
  for (i = 0; i < n; i++) {
    if (!info[i].persistent)
      continue;
    if (info[i].inconsistent) {
      keep[nkeep++] = info[i].name;
      continue;
    }
    /* A snapshot, with a frozen bitmap's successor merged in: what a
     * restart after a crash must find (the job then failed).
     */
    refs[nentries] = dirty_bitmaps_persistent_copy (d->bitmaps,
                                                    info[i].name);
    if (refs[nentries] == NULL) {
      if (errno == ENOENT)
        continue;               /* removed meanwhile */
      nbdcbt_error ("dirty: bitmap '%s': %m", info[i].name);
      goto out;
    }
    entries[nentries].name = info[i].name;
    entries[nentries].bitmap = refs[nentries];
    entries[nentries].recording = info[i].recording;
    entries[nentries].in_use = in_use;
    nentries++;
  }
  if (store->store (store->opaque, entries, nentries, keep, nkeep) == -1) {
    nbdcbt_error ("dirty: cannot store the bitmaps in the %s store: %s",
                  store->name, store_error (d));
    goto out;
  }
  r = 0;
 out:
  for (i = 0; i < nentries; i++)
    hbitmap_free (refs[i]);
  free (refs);
  free (entries);
  free (keep);
  dirty_bitmap_info_free (info, n);
  return r;
}

/* One store: the intent record's zones that nobody wrote while the
 * snapshot was taken and stored are cleared afterwards.  LOCK held.
 */
static int
store_locked (struct dirty_instance *d, bool in_use)
{
  if (d->intent)
    intent_store_begin (d->intent);
  if (store_all (d, in_use) == -1)
    return -1;
  if (d->intent && intent_store_end (d->intent) == -1) {
    nbdcbt_error ("dirty: cannot clear the intent record of the %s store: "
                  "%s", d->store->name, store_error (d));
    return -1;
  }
  return 0;
}

/* The store thread: a store every STORE_INTERVAL seconds if anything was
 * written, and the first store of a record, asked for by
 * start_intent_locked (store_requested), so that it is off the first
 * writer's path.
 */
static void *
store_thread (void *arg)
{
  struct dirty_instance *d = arg;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);

  while (!d->stopping) {
    struct timespec ts;
    bool timed_out = false;

    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec += d->store_interval;
    while (!d->stopping && !d->store_requested && !timed_out) {
      if (d->store_interval == 0)
        pthread_cond_wait (&d->stop_cond, &d->lock);
      else
        timed_out = pthread_cond_timedwait (&d->stop_cond, &d->lock,
                                            &ts) == ETIMEDOUT;
    }
    if (d->stopping)
      break;
    if (d->store_requested) {
      d->store_requested = false;
      if (store_locked (d, true) == 0)
        nbdcbt_debug ("dirty: bitmaps stored (first store of the record)");
    }
    else if (intent_marked_zones (d->intent) > 0
             && store_locked (d, true) == 0)
      nbdcbt_debug ("dirty: bitmaps stored (interval)");
  }
  return NULL;
}

static bool
has_persistent (struct dirty_instance *d)
{
  struct dirty_bitmap_info *info;
  size_t i, n;
  bool r = false;

  if (d->bitmaps == NULL || dirty_bitmaps_list (d->bitmaps, &info, &n) == -1)
    return false;
  for (i = 0; i < n; i++)
    r |= info[i].persistent;
  dirty_bitmap_info_free (info, n);
  return r;
}

/* Take the store's intent record (start_intent marks the bitmaps in use
 * too), have everything stored once and start the store thread.  1 if the
 * store keeps no record (or intent=false): the caller marks in use the
 * plain way.  LOCK held.
 */
static int
start_intent_locked (struct dirty_instance *d, bool background)
{
  const struct bitmap_store *store = d->store;

  if (d->no_intent || store->start_intent == NULL)
    return 1;
  if (store->start_intent (store->opaque, d->zone_size, &d->intent) == -1) {
    d->intent = NULL;
    if (errno != ENOTSUP && errno != ENOSPC) {
      nbdcbt_error ("dirty: cannot start the intent record in the %s "
                    "store: %s", store->name, store_error (d));
      return -1;
    }
    nbdcbt_warning ("dirty: no intent record (%s): the bitmaps will be "
                    "inconsistent after a crash", store_error (d));
    return 1;
  }
  d->marked_in_use = true;
  /* The first store of the record.  It stores the bitmaps new since the
   * last store (bitmap=, or one added at run time) and the recovered ones
   * whole, so that the zones carried over for them can go.  A new bitmap
   * must be in the store before the first write (a crash would lose it,
   * and a bitmap= of the same name after a restart would start clean):
   * then store now.  Otherwise the record carries every zone the old one
   * marked (start_intent), so stored | record still covers every change
   * and the store can run in the store thread, off the first writer's
   * path.
   */
  if (d->unstored || !background) {
    if (store_locked (d, true) == -1)
      return -1;
    d->unstored = false;
  }
  else
    d->store_requested = true;
  nbdcbt_debug ("dirty: intent record in the %s store, zones of %" PRIu64
                " bytes", store->name, intent_zone_size (d->intent));
  if (!d->store_thread_started
      && (d->store_interval > 0 || d->store_requested)) {
    int e = pthread_create (&d->store_thread, NULL, store_thread, d);
    if (e) {
      errno = e;
      nbdcbt_error ("dirty: cannot start the store thread: %m");
      return -1;
    }
    d->store_thread_started = true;
  }
  else if (d->store_requested)
    pthread_cond_signal (&d->stop_cond);
  return 0;
}

int
dirty_store_mark_in_use (struct dirty_instance *d)
{
  const struct bitmap_store *store = d->store;

  if (store == NULL || d->marked_in_use)
    return 0;
  /* Without a persistent bitmap an intent record protects nothing: an
   * image served without bitmaps is left as it is.
   */
  if (has_persistent (d)) {
    int r = start_intent_locked (d, true);
    if (r <= 0)
      return r;
  }
  if (store->mark_in_use (store->opaque) == -1) {
    nbdcbt_error ("dirty: cannot mark the bitmaps in use in the %s "
                  "store: %s", store->name, store_error (d));
    return -1;
  }
  d->marked_in_use = true;
  return 0;
}

int
dirty_store_on_flush (struct dirty_instance *d)
{
  if (!d->store_on_flush || d->store == NULL)
    return 0;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if (!d->marked_in_use)
    return 0;
  return store_locked (d, true);
}

/* The model was never made (no client prepared): store the loaded data
 * of the pending bitmaps as it is.  LOCK held.
 */
static void
store_pending (struct dirty_instance *d)
{
  struct bitmap_store_entry *e = calloc (d->npending + 1, sizeof *e);
  const char **keep = calloc (d->npending + 1, sizeof *keep);
  size_t i, n = 0, nkeep = 0;

  if (e == NULL || keep == NULL) {
    free (e);
    free (keep);
    return;
  }
  for (i = 0; i < d->npending; i++) {
    struct dirty_pending *p = &d->pending[i];
    if (!p->persistent)
      continue;
    if (p->inconsistent || p->data == NULL) {
      keep[nkeep++] = p->name;
      continue;
    }
    e[n].name = p->name;
    e[n].bitmap = p->data;
    e[n].recording = !p->disabled;
    n++;
  }
  if (d->store->store (d->store->opaque, e, n, keep, nkeep) == 0)
    nbdcbt_debug ("dirty: recovered bitmaps stored");
  free (e);
  free (keep);
}

void
dirty_store_cleanup (struct dirty_instance *d)
{
  if (d->store_thread_started) {
    pthread_mutex_lock (&d->lock);
    d->stopping = true;
    pthread_cond_signal (&d->stop_cond);
    pthread_mutex_unlock (&d->lock);
    pthread_join (d->store_thread, NULL);
    d->store_thread_started = false;
  }

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);

  if (d->store && d->bitmaps && d->marked_in_use) {
    struct dirty_bitmap_info *info;
    size_t i, n;

    /* A job still running at shutdown failed: give its successor back. */
    if (dirty_bitmaps_list (d->bitmaps, &info, &n) == 0) {
      for (i = 0; i < n; i++)
        if (info[i].has_successor)
          dirty_bitmaps_reclaim (d->bitmaps, info[i].name, NULL);
      dirty_bitmap_info_free (info, n);
    }
    if (store_locked (d, false) == 0)
      nbdcbt_debug ("dirty: bitmaps stored");
  }
  else if (d->store && d->recovered && !nbdcbt_read_only ()) {
    /* Recovered after a crash and nobody wrote: store them once, clean,
     * so that QEMU sees consistent bitmaps again.
     */
    if (d->bitmaps) {
      if (store_all (d, false) == 0)
        nbdcbt_debug ("dirty: recovered bitmaps stored");
    }
    else
      store_pending (d);
  }
}


int
dirty_store_now (struct dirty_instance *d, char **errp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);

  if (d->store == NULL || d->bitmaps == NULL)
    return 0;
  /* The first persistent bitmap of a running export: its record now. */
  if (d->marked_in_use && d->intent == NULL && has_persistent (d)
      && start_intent_locked (d, false) == 0)
    return 0;
  if (store_all (d, d->marked_in_use) == -1) {
    dirty_bitmap_error (errp, "Cannot store the bitmaps in the %s store: %s",
              d->store->name, store_error (d));
    return -1;
  }
  return 0;
}

int
dirty_store_remove (struct dirty_instance *d, const char *name, char **errp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);

  if (d->store == NULL || d->bitmaps == NULL)
    return 0;
  if (d->store->remove) {
    if (d->store->remove (d->store->opaque, name) == -1 && errno != ENOENT) {
      dirty_bitmap_error (errp, "Cannot remove bitmap '%s' from the %s store: %s",
                name, d->store->name, store_error (d));
      return -1;
    }
    return 0;
  }
  /* No remove (): storing the persistent set drops it. */
  if (store_all (d, d->marked_in_use) == -1) {
    dirty_bitmap_error (errp, "Cannot remove bitmap '%s' from the %s store: %s",
              name, d->store->name, store_error (d));
    return -1;
  }
  return 0;
}
