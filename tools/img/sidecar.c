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

/* nbdcbt-img on raw images: persistent bitmaps in the QBM sidecar
 * (common/qbm, docs/qbm.md), with the same options and messages as on
 * qcow2.  The sidecar is IMAGE.qbm unless --sidecar=PATH names it; a QBM
 * descriptor given as FILENAME stands for the image it describes.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "bitmap-store.h"
#include "hbitmap.h"
#include "qbm.h"
#include "qcow2.h"
#include "nbdcbt-img.h"

const char *img_sidecar_path;

int
image_size_of (const char *path, uint64_t *size)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1 || fstat (fd, &st) == -1) {
    if (fd >= 0)
      close (fd);
    return -1;
  }
  if (S_ISBLK (st.st_mode)) {
    if (ioctl (fd, BLKGETSIZE64, size) == -1) {
      close (fd);
      return -1;
    }
  }
  else
    *size = st.st_size;
  close (fd);
  return 0;
}

struct qbm *
open_sidecar (const char *path, bool rdonly, char **image_ret)
{
  CLEANUP_FREE char *image = NULL;
  CLEANUP_FREE char *desc = NULL;
  struct qbm *q;
  uint64_t size;
  char *described = NULL;

  if (img_sidecar_path)
    desc = strdup (img_sidecar_path);
  else if (qbm_probe (path, &described)) {
    /* FILENAME is the descriptor itself. */
    desc = strdup (path);
    image = described;
  }
  else
    desc = qbm_default_path (path);
  if (image == NULL)
    image = realpath (path, NULL);
  if (desc == NULL || image == NULL) {
    img_error ("Could not open '%s': %m", path);
    return NULL;
  }
  if (image_size_of (image, &size) == -1) {
    img_error ("Could not open '%s': %m", image);
    return NULL;
  }
  q = qbm_open (desc, image, size, rdonly ? QBM_OPEN_RDONLY : 0);
  if (q == NULL) {
    img_error ("%s", qbm_last_error ());
    return NULL;
  }
  if (image_ret) {
    *image_ret = image;
    image = NULL;
  }
  return q;
}

int
sidecar_bitmap_list (struct qbm *q, struct qcow2_bitmap_info **list,
                     size_t *n)
{
  struct qbm_bitmap_info *l;
  size_t i;

  if (qbm_list (q, &l, n) == -1)
    return -1;
  *list = calloc (*n + 1, sizeof **list);
  if (*list == NULL) {
    qbm_list_free (l, *n);
    return -1;
  }
  for (i = 0; i < *n; i++) {
    (*list)[i].name = l[i].name;
    l[i].name = NULL;
    (*list)[i].granularity = l[i].granularity;
    (*list)[i].flags = (l[i].in_use ? QCOW2_BME_IN_USE : 0)
      | (l[i].recording ? QCOW2_BME_AUTO : 0);
  }
  qbm_list_free (l, *n);
  return 0;
}

struct hbitmap *
load_usable_sidecar_bitmap (struct qbm *q, const char *name, char *err,
                            size_t errlen)
{
  struct qbm_bitmap_info *l;
  struct hbitmap *hb;
  size_t n, i;

  if (qbm_list (q, &l, &n) == -1) {
    snprintf (err, errlen, "%s", qbm_last_error ());
    return NULL;
  }
  for (i = 0; i < n; i++)
    if (strcmp (l[i].name, name) == 0)
      break;
  if (i == n) {
    snprintf (err, errlen, "Dirty bitmap '%s' not found", name);
    qbm_list_free (l, n);
    return NULL;
  }
  if (l[i].inconsistent) {
    snprintf (err, errlen, "Bitmap '%s' is inconsistent and cannot be used",
              name);
    qbm_list_free (l, n);
    return NULL;
  }
  qbm_list_free (l, n);
  hb = qbm_load (q, name);
  if (hb == NULL)
    snprintf (err, errlen, "Could not load bitmap '%s': %s", name,
              qbm_last_error ());
  return hb;
}

/* The bitmap NAME of a --merge source file (qcow2 or raw + sidecar). */
struct hbitmap *
load_source_bitmap (const char *path, enum img_format fmt, const char *name,
                    char *err, size_t errlen)
{
  struct hbitmap *hb;

  fmt = probe_format (path, fmt);
  if (fmt == FMT_UNKNOWN) {
    snprintf (err, errlen, "Could not open source file '%s'", path);
    return NULL;
  }
  if (fmt == FMT_QCOW2) {
    struct qcow2 *sq = qcow2_open (path, QCOW2_OPEN_RDONLY |
                                   QCOW2_OPEN_NO_BACKING |
                                   QCOW2_OPEN_NO_BITMAP_IN_USE);
    if (sq == NULL) {
      snprintf (err, errlen, "Could not open '%s': %s", path,
                lib_error (path));
      return NULL;
    }
    hb = load_usable_bitmap (sq, path, name, err, errlen);
    qcow2_close (sq);           /* read-only: nothing to lose */
    return hb;
  }
  else {
    const char *saved = img_sidecar_path;
    struct qbm *sq;

    img_sidecar_path = NULL;    /* --sidecar names the target's */
    sq = open_sidecar (path, true, NULL);
    img_sidecar_path = saved;
    if (sq == NULL) {
      snprintf (err, errlen, "Could not open the bitmaps of '%s'", path);
      return NULL;
    }
    hb = load_usable_sidecar_bitmap (sq, name, err, errlen);
    qbm_close (sq);
    return hb;
  }
}

/* Store every bitmap of the sidecar again with TARGET replaced by
 * NEW_DATA / RECORDING (NULL data: TARGET removed).  Inconsistent ones
 * are kept as they are.
 */
static int
store_with (struct qbm *q, const char *target, const struct hbitmap *new_data,
            bool recording, bool add, char *err, size_t errlen)
{
  struct qbm_bitmap_info *l;
  struct bitmap_store_entry *set;
  struct hbitmap **loaded;
  const char **keep;
  size_t n, i, nset = 0, nkeep = 0;
  int r = -1;

  if (qbm_list (q, &l, &n) == -1) {
    snprintf (err, errlen, "%s", qbm_last_error ());
    return -1;
  }
  set = calloc (n + 2, sizeof *set);
  loaded = calloc (n + 1, sizeof *loaded);
  keep = calloc (n + 1, sizeof *keep);
  if (!set || !loaded || !keep) {
    snprintf (err, errlen, "%s", strerror (errno));
    goto out;
  }
  for (i = 0; i < n; i++) {
    if (strcmp (l[i].name, target) == 0) {
      if (new_data == NULL)
        continue;
      set[nset].name = l[i].name;
      set[nset].bitmap = new_data;
      set[nset].recording = recording;
      nset++;
    }
    else if (l[i].inconsistent)
      keep[nkeep++] = l[i].name;
    else {
      loaded[i] = qbm_load (q, l[i].name);
      if (loaded[i] == NULL) {
        snprintf (err, errlen, "Could not load bitmap '%s': %s", l[i].name,
                  qbm_last_error ());
        goto out;
      }
      set[nset].name = l[i].name;
      set[nset].bitmap = loaded[i];
      set[nset].recording = l[i].recording;
      nset++;
    }
  }
  if (add) {
    set[nset].name = target;
    set[nset].bitmap = new_data;
    set[nset].recording = recording;
    nset++;
  }
  if (qbm_store (q, set, nset, keep, nkeep) == -1) {
    snprintf (err, errlen, "%s", qbm_last_error ());
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
  qbm_list_free (l, n);
  return r;
}

static int
lookup (struct qbm *q, const char *name, struct qbm_bitmap_info *out)
{
  struct qbm_bitmap_info *l;
  size_t n, i;
  int r = -1;

  if (qbm_list (q, &l, &n) == -1)
    return -1;
  for (i = 0; i < n; i++)
    if (strcmp (l[i].name, name) == 0) {
      *out = l[i];
      out->name = NULL;
      r = 0;
    }
  qbm_list_free (l, n);
  return r;
}

int
sidecar_bitmap_op (struct qbm *q, const char *image, enum img_bitmap_op op,
                   const char *bitmap, const char *source,
                   uint64_t granularity, const char *src_filename,
                   enum img_format src_fmt, char *err, size_t errlen)
{
  struct qbm_bitmap_info info;
  struct hbitmap *target = NULL, *src = NULL;
  bool recording;
  int r = -1;

  switch (op) {
  case IMG_BITMAP_ADD: {
    uint64_t g = granularity ? granularity : 65536, size;

    if (bitmap[0] == '\0') {
      snprintf (err, errlen, "Bitmap name cannot be empty");
      return -1;
    }
    if (g < 512 || (g & (g - 1)) != 0) {
      snprintf (err, errlen, "Granularity must be power of 2 and at least "
                "512");
      return -1;
    }
    if (g > (UINT64_C(1) << 31)) {
      snprintf (err, errlen, "Granularity must be at most 2 GiB");
      return -1;
    }
    if (strlen (bitmap) > 1023) {
      snprintf (err, errlen, "Bitmap name is too long");
      return -1;
    }
    if (lookup (q, bitmap, &info) == 0) {
      snprintf (err, errlen, "Bitmap already exists: %s", bitmap);
      return -1;
    }
    if (image_size_of (image, &size) == -1) {
      snprintf (err, errlen, "%s: %s", image, strerror (errno));
      return -1;
    }
    target = hbitmap_new (size, g);
    if (target == NULL) {
      snprintf (err, errlen, "%s", strerror (errno));
      return -1;
    }
    r = store_with (q, bitmap, target, true, true, err, errlen);
    hbitmap_free (target);
    return r;
  }
  case IMG_BITMAP_REMOVE:
    if (lookup (q, bitmap, &info) == -1) {
      snprintf (err, errlen, "Dirty bitmap '%s' not found", bitmap);
      return -1;
    }
    if (qbm_remove (q, bitmap) == -1) {
      snprintf (err, errlen, "%s", qbm_last_error ());
      return -1;
    }
    return 0;
  default:
    break;
  }

  target = load_usable_sidecar_bitmap (q, bitmap, err, errlen);
  if (target == NULL)
    return -1;
  recording = lookup (q, bitmap, &info) == 0 && info.recording;
  switch (op) {
  case IMG_BITMAP_CLEAR: hbitmap_reset_all (target); break;
  case IMG_BITMAP_ENABLE: recording = true; break;
  case IMG_BITMAP_DISABLE: recording = false; break;
  case IMG_BITMAP_MERGE:
    if (src_filename)
      src = load_source_bitmap (src_filename, src_fmt, source, err, errlen);
    else
      src = load_usable_sidecar_bitmap (q, source, err, errlen);
    if (src == NULL)
      goto out;
    if (merge_bitmaps (target, src, err, errlen) == -1)
      goto out;
    break;
  default:
    abort ();
  }
  r = store_with (q, bitmap, target, recording, false, err, errlen);
 out:
  hbitmap_free (src);
  hbitmap_free (target);
  return r;
}

static void
report_problem (void *opaque, const char *msg)
{
  int *quiet = opaque;
  if (!*quiet)
    fprintf (stderr, "ERROR %s\n", msg);
}

int
sidecar_check (const char *path, bool quiet, bool json)
{
  CLEANUP_FREE char *image = NULL;
  struct qbm *q = open_sidecar (path, true, &image);
  int problems, q_ = quiet;

  if (q == NULL)
    return 2;                   /* a damaged descriptor is a corruption */
  if (!qbm_exists (q)) {
    qbm_close (q);
    img_error ("This image format does not support checks");
    return 63;
  }
  problems = qbm_check (q, report_problem, &q_);
  if (!quiet) {
    if (json) {
      printf ("{\n    \"filename\": ");
      json_print_string (path);
      printf (",\n    \"format\": \"raw\",\n    \"check-errors\": 0,\n"
              "    \"corruptions\": %d\n}\n", problems);
    }
    else if (problems == 0)
      printf ("No errors were found on the image.\n");
    else
      printf ("\n%d errors were found on the image.\n"
              "Data may be corrupted, or further writes to the image may "
              "corrupt it.\n", problems);
  }
  qbm_close (q);
  return problems ? 2 : 0;
}
