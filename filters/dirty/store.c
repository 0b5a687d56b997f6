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

#include <nbdcbt-filter.h>

#include "cleanup.h"
#include "dirty.h"
#include "hbitmap.h"

static const char *
store_error (struct dirty_instance *d)
{
  const struct bitmap_store *store = d->store;
  const char *msg = store->last_error ? store->last_error (store->opaque)
    : NULL;

  return msg ? msg : strerror (errno);
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

int
dirty_store_mark_in_use (struct dirty_instance *d)
{
  if (d->store == NULL || d->marked_in_use)
    return 0;
  if (d->store->mark_in_use (d->store->opaque) == -1) {
    nbdcbt_error ("dirty: cannot mark the bitmaps in use in the %s "
                  "store: %s", d->store->name, store_error (d));
    return -1;
  }
  d->marked_in_use = true;
  return 0;
}

/* Store every persistent bitmap.  LOCK held. */
static int
store_all (struct dirty_instance *d, bool in_use)
{
  const struct bitmap_store *store = d->store;
  struct dirty_bitmap_info *info = NULL;
  struct bitmap_store_entry *entries = NULL;
  struct dirty_bitmap **refs = NULL;
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
    refs[nentries] = dirty_bitmaps_get (d->bitmaps, info[i].name, NULL);
    if (refs[nentries] == NULL)
      continue;                 /* removed meanwhile */
    entries[nentries].name = info[i].name;
    entries[nentries].bitmap = dirty_bitmap_data (refs[nentries]);
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
    dirty_bitmap_put (refs[i]);
  free (refs);
  free (entries);
  free (keep);
  dirty_bitmap_info_free (info, n);
  return r;
}

int
dirty_store_on_flush (struct dirty_instance *d)
{
  if (!d->store_on_flush || d->store == NULL)
    return 0;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);
  if (!d->marked_in_use)
    return 0;
  return store_all (d, true);
}

void
dirty_store_cleanup (struct dirty_instance *d)
{
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
    if (store_all (d, false) == 0)
      nbdcbt_debug ("dirty: bitmaps stored");
  }
}

static void __attribute__ ((__format__ (__printf__, 2, 3)))
set_errp (char **errp, const char *fs, ...)
{
  va_list args;
  char *msg;

  if (errp == NULL)
    return;
  va_start (args, fs);
  if (vasprintf (&msg, fs, args) == -1)
    msg = NULL;
  va_end (args);
  free (*errp);
  *errp = msg;
}

int
dirty_store_now (struct dirty_instance *d, char **errp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&d->lock);

  if (d->store == NULL || d->bitmaps == NULL)
    return 0;
  if (store_all (d, d->marked_in_use) == -1) {
    set_errp (errp, "Cannot store the bitmaps in the %s store: %s",
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
      set_errp (errp, "Cannot remove bitmap '%s' from the %s store: %s",
                name, d->store->name, store_error (d));
      return -1;
    }
    return 0;
  }
  /* No remove (): storing the persistent set drops it. */
  if (store_all (d, d->marked_in_use) == -1) {
    set_errp (errp, "Cannot remove bitmap '%s' from the %s store: %s",
              name, d->store->name, store_error (d));
    return -1;
  }
  return 0;
}
