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
bool img_sidecar_force_share;

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
  int r = img_sidecar_path ? 0 : qbm_probe (path, &described);

  if (r == -1) {
    img_error ("%s", qbm_last_error ());
    return NULL;
  }
  if (img_sidecar_path)
    desc = strdup (img_sidecar_path);
  else if (r == 1) {
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
  q = qbm_open (desc, image, size, (rdonly ? QBM_OPEN_RDONLY : 0)
                | (rdonly && img_sidecar_force_share ? QBM_OPEN_FORCE_SHARE
                   : 0));
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

/* The bitmap NAME of a --merge source file (qcow2 or raw + sidecar). */
struct hbitmap *
load_source_bitmap (const char *path, enum img_format fmt, const char *name,
                    char *err, size_t errlen)
{
  const char *saved = img_sidecar_path;
  struct image_bitmaps src;
  struct hbitmap *hb;
  int r;

  fmt = probe_format (path, fmt);
  if (fmt == FMT_UNKNOWN) {
    snprintf (err, errlen, "Could not open source file '%s'", path);
    return NULL;
  }
  img_sidecar_path = NULL;      /* --sidecar names the target's */
  r = image_bitmaps_open (&src, path, fmt, QCOW2_OPEN_RDONLY |
                          QCOW2_OPEN_NO_BACKING |
                          QCOW2_OPEN_NO_BITMAP_IN_USE);
  img_sidecar_path = saved;
  if (r == -1) {
    snprintf (err, errlen, "Could not open the bitmaps of '%s'", path);
    return NULL;
  }
  hb = image_bitmaps_load_usable (&src, name, err, errlen);
  image_bitmaps_close (&src);   /* read-only: nothing to lose */
  return hb;
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
