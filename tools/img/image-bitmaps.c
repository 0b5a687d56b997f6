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

/* The persistent bitmaps of one image, wherever they live: the bitmaps
 * extension of a qcow2 image or the QBM sidecar of a raw one.  The bitmap
 * and map subcommands work through these calls and never ask which, so
 * the rules and messages of each operation are written once.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap-rules.h"
#include "bitmap-store.h"
#include "hbitmap.h"
#include "qbm.h"
#include "qcow2.h"
#include "nbdcbt-img.h"

/* The backend's last error, as the message of an operation. */
static const char *
backend_error (const struct image_bitmaps *ib)
{
  return ib->q ? lib_error (ib->filename) : qbm_last_error ();
}

int
image_bitmaps_open (struct image_bitmaps *ib, const char *filename,
                    enum img_format fmt, unsigned qcow2_flags)
{
  memset (ib, 0, sizeof *ib);
  ib->filename = filename;
  if (fmt == FMT_QCOW2) {
    struct qcow2_info info;

    ib->q = open_qcow2 (filename, qcow2_flags);
    if (ib->q == NULL)
      return -1;
    qcow2_get_info (ib->q, &info);
    ib->default_granularity = default_bitmap_granularity (info.cluster_size);
    return 0;
  }

  ib->qbm = open_sidecar (filename,
                          (qcow2_flags & QCOW2_OPEN_RDONLY) != 0,
                          &ib->image);
  if (ib->qbm == NULL)
    return -1;
  /* A raw image has no cluster size; QEMU falls back to 64 KiB. */
  ib->default_granularity = 65536;
  return 0;
}

int
image_bitmaps_close (struct image_bitmaps *ib)
{
  int r = 0;

  if (ib->q)
    r = close_qcow2 (ib->q, ib->filename);
  if (ib->qbm)
    qbm_close (ib->qbm);
  free (ib->image);
  memset (ib, 0, sizeof *ib);
  return r;
}

int
image_bitmaps_list (struct image_bitmaps *ib, struct image_bitmap **list,
                    size_t *n, char *err, size_t errlen)
{
  size_t i;

  if (ib->q) {
    struct qcow2_bitmap_info *l;

    if (qcow2_bitmap_list (ib->q, &l, n) == -1)
      goto fail;
    *list = calloc (*n + 1, sizeof **list);
    if (*list == NULL) {
      qcow2_bitmap_list_free (l, *n);
      goto fail;
    }
    for (i = 0; i < *n; i++) {
      bool in_use = (l[i].flags & QCOW2_BME_IN_USE) != 0;

      (*list)[i].name = l[i].name;
      l[i].name = NULL;
      (*list)[i].recording = (l[i].flags & QCOW2_BME_AUTO) != 0;
      (*list)[i].in_use = in_use;
      (*list)[i].usable =
        !in_use || qcow2_bitmap_recoverable (ib->q, (*list)[i].name);
    }
    qcow2_bitmap_list_free (l, *n);
    return 0;
  }
  else {
    struct qbm_bitmap_info *l;

    if (qbm_list (ib->qbm, &l, n) == -1)
      goto fail;
    *list = calloc (*n + 1, sizeof **list);
    if (*list == NULL) {
      qbm_list_free (l, *n);
      goto fail;
    }
    for (i = 0; i < *n; i++) {
      (*list)[i].name = l[i].name;
      l[i].name = NULL;
      (*list)[i].recording = l[i].recording;
      /* The sidecar's in_use only means "a writer had it open"; the
       * intent record makes such a bitmap usable.  Only an inconsistent
       * one must be kept as it is.
       */
      (*list)[i].in_use = l[i].inconsistent;
      (*list)[i].usable = !l[i].inconsistent;
    }
    qbm_list_free (l, *n);
    return 0;
  }

 fail:
  snprintf (err, errlen, "Could not read the bitmaps of '%s': %s",
            ib->filename, errno == ENOMEM ? strerror (errno)
            : backend_error (ib));
  return -1;
}

void
image_bitmap_list_free (struct image_bitmap *list, size_t n)
{
  size_t i;

  if (list == NULL)
    return;
  for (i = 0; i < n; i++)
    free (list[i].name);
  free (list);
}

/* Index of NAME in LIST, or -1. */
static ssize_t
find (const struct image_bitmap *list, size_t n, const char *name)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (strcmp (list[i].name, name) == 0)
      return i;
  return -1;
}

int
image_bitmaps_lookup (struct image_bitmaps *ib, const char *name,
                      struct image_bitmap *info, char *err, size_t errlen)
{
  struct image_bitmap *list;
  size_t n;
  ssize_t i;

  if (image_bitmaps_list (ib, &list, &n, err, errlen) == -1)
    return -1;
  i = find (list, n, name);
  if (i >= 0 && info) {
    *info = list[i];
    info->name = NULL;
  }
  image_bitmap_list_free (list, n);
  return i >= 0 ? 1 : 0;
}

struct hbitmap *
image_bitmaps_load_usable (struct image_bitmaps *ib, const char *name,
                           char *err, size_t errlen)
{
  struct image_bitmap info;
  struct hbitmap *hb;

  switch (image_bitmaps_lookup (ib, name, &info, err, errlen)) {
  case -1:
    return NULL;
  case 0:
    snprintf (err, errlen, "Dirty bitmap '%s' not found", name);
    return NULL;
  }
  if (!info.usable) {
    snprintf (err, errlen, "Bitmap '%s' is inconsistent and cannot be used",
              name);
    return NULL;
  }
  hb = ib->q ? qcow2_bitmap_load (ib->q, name) : qbm_load (ib->qbm, name);
  if (hb == NULL)
    snprintf (err, errlen, "Could not load bitmap '%s' of '%s': %s", name,
              ib->filename, backend_error (ib));
  return hb;
}

/* Store every bitmap again, in directory order, with TARGET replaced by
 * NEW_DATA / RECORDING, or TARGET appended if APPEND.  Bitmaps in use by
 * someone else (or inconsistent) are kept on disk as they are.
 */
static int
store_with (struct image_bitmaps *ib, const char *target,
            const struct hbitmap *new_data, bool recording, bool append,
            char *err, size_t errlen)
{
  struct image_bitmap *list;
  struct bitmap_store_entry *set = NULL;
  struct hbitmap **loaded = NULL;
  const char **keep = NULL;
  size_t n, i, nset = 0, nkeep = 0;
  int r = -1;

  if (image_bitmaps_list (ib, &list, &n, err, errlen) == -1)
    return -1;
  set = calloc (n + 1, sizeof *set);
  loaded = calloc (n + 1, sizeof *loaded);
  keep = calloc (n + 1, sizeof *keep);
  if (!set || !loaded || !keep) {
    snprintf (err, errlen, "%s", strerror (errno));
    goto out;
  }

  for (i = 0; i < n; i++) {
    if (strcmp (list[i].name, target) == 0) {
      set[nset].name = list[i].name;
      set[nset].bitmap = new_data;
      set[nset].recording = recording;
      nset++;
    }
    else if (list[i].in_use)
      keep[nkeep++] = list[i].name;
    else {
      loaded[i] = ib->q ? qcow2_bitmap_load (ib->q, list[i].name)
                        : qbm_load (ib->qbm, list[i].name);
      if (loaded[i] == NULL) {
        snprintf (err, errlen, "Could not load bitmap '%s': %s",
                  list[i].name, backend_error (ib));
        goto out;
      }
      set[nset].name = list[i].name;
      set[nset].bitmap = loaded[i];
      set[nset].recording = list[i].recording;
      nset++;
    }
  }
  if (append) {
    set[nset].name = target;
    set[nset].bitmap = new_data;
    set[nset].recording = recording;
    nset++;
  }

  if ((ib->q ? qcow2_bitmaps_store (ib->q, set, nset, keep, nkeep)
             : qbm_store (ib->qbm, set, nset, keep, nkeep)) == -1) {
    snprintf (err, errlen, "%s", backend_error (ib));
    goto out;
  }
  r = 0;

 out:
  if (loaded)
    for (i = 0; i < n; i++)
      hbitmap_free (loaded[i]);
  free (loaded);
  free (set);
  free (keep);
  image_bitmap_list_free (list, n);
  return r;
}

int
image_bitmaps_add (struct image_bitmaps *ib, const char *name,
                   uint64_t granularity, char *err, size_t errlen)
{
  uint64_t g = granularity ? granularity : ib->default_granularity;
  const char *msg;
  uint64_t size;
  struct hbitmap *hb;
  int r;

  if ((msg = bitmap_new_name_error (name)) != NULL ||
      (msg = bitmap_granularity_error (g)) != NULL) {
    snprintf (err, errlen, "%s", msg);
    return -1;
  }
  if (ib->q && qcow2_bitmaps_supported (ib->q) == -1) {
    snprintf (err, errlen, "%s", backend_error (ib));
    return -1;
  }
  switch (image_bitmaps_lookup (ib, name, NULL, err, errlen)) {
  case -1:
    return -1;
  case 1:
    snprintf (err, errlen, "Bitmap already exists: %s", name);
    return -1;
  }

  if (ib->q) {
    if (qcow2_bitmap_add (ib->q, name, g, true) == -1) {
      snprintf (err, errlen, "%s", backend_error (ib));
      return -1;
    }
    return 0;
  }

  if (image_size_of (ib->image, &size) == -1) {
    snprintf (err, errlen, "%s: %s", ib->image, strerror (errno));
    return -1;
  }
  hb = hbitmap_new (size, g);
  if (hb == NULL) {
    snprintf (err, errlen, "%s", strerror (errno));
    return -1;
  }
  r = store_with (ib, name, hb, true, true, err, errlen);
  hbitmap_free (hb);
  return r;
}

int
image_bitmaps_remove (struct image_bitmaps *ib, const char *name,
                      char *err, size_t errlen)
{
  switch (image_bitmaps_lookup (ib, name, NULL, err, errlen)) {
  case -1:
    return -1;
  case 0:
    snprintf (err, errlen, "Dirty bitmap '%s' not found", name);
    return -1;
  }
  if ((ib->q ? qcow2_bitmap_remove (ib->q, name)
             : qbm_remove (ib->qbm, name)) == -1) {
    snprintf (err, errlen, "%s", backend_error (ib));
    return -1;
  }
  return 0;
}

int
image_bitmaps_replace (struct image_bitmaps *ib, const char *name,
                       const struct hbitmap *data, bool recording,
                       char *err, size_t errlen)
{
  return store_with (ib, name, data, recording, false, err, errlen);
}
