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

/* nbdcbt-img info: the layout and JSON keys of qemu-img 7.2's info. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "hbitmap.h"
#include "qbm.h"
#include "qcow2.h"
#include "nbdcbt-img.h"

struct image_info {
  const char *filename;
  enum img_format fmt;
  uint64_t virtual_size;
  uint64_t actual_size;
  struct qcow2_info q;          /* qcow2 only */
  char *sidecar;                /* raw with a QBM sidecar only */
  char *full_backing;           /* qcow2 with backing only */
  struct qcow2_bitmap_info *bitmaps;
  size_t nbitmaps;
  int64_t *counts;              /* dirty bytes, or -1 if not loadable */
  /* SHA-256 of each loadable bitmap as QEMU's
   * x-debug-block-dirty-bitmap-sha256 computes it, or "" if not loadable.
   */
  char (*sha256)[65];
};

static const char *
compression_name (int type)
{
  return type == 1 ? "zstd" : "zlib";
}

static void
print_human_bitmaps (const struct image_info *ii)
{
  size_t i;

  if (ii->nbitmaps > 0) {
    printf ("    bitmaps:\n");
    for (i = 0; i < ii->nbitmaps; i++) {
      const struct qcow2_bitmap_info *b = &ii->bitmaps[i];
      int n = 0;

      printf ("        [%zu]:\n", i);
      printf ("            flags:\n");
      if (b->flags & QCOW2_BME_IN_USE)
        printf ("                [%d]: in-use\n", n++);
      if (b->flags & QCOW2_BME_AUTO)
        printf ("                [%d]: auto\n", n++);
      printf ("            name: %s\n", b->name);
      printf ("            granularity: %" PRIu64 "\n", b->granularity);
      /* Not in qemu-img's output: the dirty bytes of each bitmap. */
      if (ii->counts[i] >= 0)
        printf ("            count: %" PRIi64 "\n", ii->counts[i]);
      if (ii->sha256[i][0])
        printf ("            sha256: %s\n", ii->sha256[i]);
    }
  }
}

static void
print_human (const struct image_info *ii)
{
  char buf[64];

  printf ("image: %s\n", ii->filename);
  printf ("file format: %s\n", format_name (ii->fmt));
  size_to_str (ii->virtual_size, buf, sizeof buf);
  printf ("virtual size: %s (%" PRIu64 " bytes)\n", buf, ii->virtual_size);
  size_to_str (ii->actual_size, buf, sizeof buf);
  printf ("disk size: %s\n", buf);
  if (ii->fmt != FMT_QCOW2 && ii->sidecar == NULL)
    return;
  if (ii->fmt != FMT_QCOW2) {
    printf ("Format specific information:\n");
    printf ("    sidecar: %s\n", ii->sidecar);
    print_human_bitmaps (ii);
    return;
  }

  printf ("cluster_size: %" PRIu32 "\n", ii->q.cluster_size);
  if (ii->q.dirty)
    printf ("dirty flag: yes\n");
  if (ii->q.backing_file) {
    printf ("backing file: %s", ii->q.backing_file);
    if (ii->full_backing && strcmp (ii->full_backing, ii->q.backing_file))
      printf (" (actual path: %s)", ii->full_backing);
    printf ("\n");
    if (ii->q.backing_format)
      printf ("backing file format: %s\n", ii->q.backing_format);
  }

  printf ("Format specific information:\n");
  printf ("    compat: %s\n", ii->q.version >= 3 ? "1.1" : "0.10");
  printf ("    compression type: %s\n",
          compression_name (ii->q.compression_type));
  if (ii->q.version >= 3)
    printf ("    lazy refcounts: %s\n", ii->q.lazy_refcounts ? "true" : "false");
  print_human_bitmaps (ii);
  printf ("    refcount bits: %d\n", ii->q.refcount_bits);
  if (ii->q.version >= 3) {
    printf ("    corrupt: %s\n", ii->q.corrupt ? "true" : "false");
    printf ("    extended l2: %s\n", ii->q.extended_l2 ? "true" : "false");
  }
}

static const char *
json_bool (bool b)
{
  return b ? "true" : "false";
}

static void
print_json_bitmaps (const struct image_info *ii, const char *comma)
{
  size_t i;

    if (ii->nbitmaps > 0) {
      printf ("            \"bitmaps\": [\n");
      for (i = 0; i < ii->nbitmaps; i++) {
        const struct qcow2_bitmap_info *b = &ii->bitmaps[i];
        bool first = true;

        printf ("                {\n");
        printf ("                    \"flags\": [\n");
        if (b->flags & QCOW2_BME_IN_USE) {
          printf ("                        \"in-use\"");
          first = false;
        }
        if (b->flags & QCOW2_BME_AUTO) {
          printf ("%s                        \"auto\"", first ? "" : ",\n");
          first = false;
        }
        if (!first)
          printf ("\n");
        printf ("                    ],\n");
        printf ("                    \"name\": ");
        json_print_string (b->name);
        printf (",\n");
        if (ii->counts[i] >= 0)
          printf ("                    \"count\": %" PRIi64 ",\n",
                  ii->counts[i]);
        if (ii->sha256[i][0])
          printf ("                    \"sha256\": \"%s\",\n",
                  ii->sha256[i]);
        printf ("                    \"granularity\": %" PRIu64 "\n",
                b->granularity);
        printf ("                }%s\n", i + 1 < ii->nbitmaps ? "," : "");
      }
      printf ("            ]%s\n", comma);
    }
}

/* Pretty-printed as QEMU's qobject_to_json_pretty: 4-space indents, keys
 * in the order QEMU's dictionaries print them.
 */
static void
print_json (const struct image_info *ii)
{
  printf ("{\n");
  if (ii->fmt == FMT_QCOW2 && ii->q.backing_file && ii->q.backing_format) {
    printf ("    \"backing-filename-format\": ");
    json_print_string (ii->q.backing_format);
    printf (",\n");
  }
  printf ("    \"virtual-size\": %" PRIu64 ",\n", ii->virtual_size);
  printf ("    \"filename\": ");
  json_print_string (ii->filename);
  printf (",\n");
  if (ii->fmt == FMT_QCOW2)
    printf ("    \"cluster-size\": %" PRIu32 ",\n", ii->q.cluster_size);
  printf ("    \"format\": \"%s\",\n", format_name (ii->fmt));
  printf ("    \"actual-size\": %" PRIu64 ",\n", ii->actual_size);

  if (ii->fmt == FMT_QCOW2) {
    bool v3 = ii->q.version >= 3;

    printf ("    \"format-specific\": {\n");
    printf ("        \"type\": \"qcow2\",\n");
    printf ("        \"data\": {\n");
    printf ("            \"compat\": \"%s\",\n", v3 ? "1.1" : "0.10");
    printf ("            \"compression-type\": \"%s\",\n",
            compression_name (ii->q.compression_type));
    if (v3)
      printf ("            \"lazy-refcounts\": %s,\n",
              json_bool (ii->q.lazy_refcounts));
    print_json_bitmaps (ii, ",");
    printf ("            \"refcount-bits\": %d%s\n", ii->q.refcount_bits,
            v3 ? "," : "");
    if (v3) {
      printf ("            \"corrupt\": %s,\n", json_bool (ii->q.corrupt));
      printf ("            \"extended-l2\": %s\n",
              json_bool (ii->q.extended_l2));
    }
    printf ("        }\n");
    printf ("    },\n");
    if (ii->q.backing_file) {
      printf ("    \"full-backing-filename\": ");
      json_print_string (ii->full_backing ? ii->full_backing
                         : ii->q.backing_file);
      printf (",\n");
      printf ("    \"backing-filename\": ");
      json_print_string (ii->q.backing_file);
      printf (",\n");
    }
  }
  if (ii->fmt != FMT_QCOW2 && ii->sidecar) {
    printf ("    \"format-specific\": {\n");
    printf ("        \"type\": \"raw\",\n");
    printf ("        \"data\": {\n");
    printf ("            \"sidecar\": ");
    json_print_string (ii->sidecar);
    printf ("%s\n", ii->nbitmaps ? "," : "");
    print_json_bitmaps (ii, "");
    printf ("        }\n");
    printf ("    },\n");
  }
  printf ("    \"dirty-flag\": %s\n",
          json_bool (ii->fmt == FMT_QCOW2 && ii->q.dirty));
  printf ("}\n");
}

int
cmd_info (int argc, char *argv[])
{
  static const struct option long_options[] = {
    IMG_COMMON_LONG_OPTIONS,
    { NULL }
  };
  struct image_info ii = { 0 };
  struct qbm *sidecar = NULL;
  struct img_common_opts o = { .fmt = FMT_UNKNOWN };
  struct qcow2 *q = NULL;
  struct stat st;
  int c, ret = 1;
  size_t i;

  while ((c = getopt_long (argc, argv, "+f:hU", long_options, NULL)) != -1) {
    switch (img_common_option (c, optarg, &o)) {
    case -1: return 1;
    case 1: continue;
    }
    switch (c) {
    case 'h':
      printf ("usage: %s info [-U] [-f FMT] [--output=human|json] "
              "[--sidecar=PATH] FILENAME\n",
              PROGNAME);
      return 0;
    default:
      return 1;
    }
  }
  if (image_argument (argc, argv, o.fmt, &ii.filename, &ii.fmt) == -1)
    return 1;
  if (stat (ii.filename, &st) == -1) {
    img_error ("Could not open '%s': %m", ii.filename);
    return 1;
  }
  ii.actual_size = (uint64_t) st.st_blocks * 512;

  if (ii.fmt == FMT_RAW) {
    CLEANUP_FREE char *image = NULL;

    sidecar = open_sidecar (ii.filename, true, &image);
    if (sidecar == NULL)
      goto out;
    if (image_size_of (image, &ii.virtual_size) == -1) {
      img_error ("Could not open '%s': %m", image);
      goto out;
    }
    if (qbm_exists (sidecar)) {
      ii.sidecar = strdup (qbm_path (sidecar));
      if (ii.sidecar == NULL
          || sidecar_bitmap_list (sidecar, &ii.bitmaps, &ii.nbitmaps) == -1) {
        img_error ("Could not read the bitmaps of '%s': %s", ii.filename,
                   qbm_last_error ());
        goto out;
      }
    }
  }
  else {
    q = open_qcow2 (ii.filename, QCOW2_OPEN_RDONLY | QCOW2_OPEN_NO_BACKING |
                    QCOW2_OPEN_NO_BITMAP_IN_USE |
                    (o.force_share ? QCOW2_OPEN_FORCE_SHARE : 0));
    if (q == NULL)
      return 1;
    qcow2_get_info (q, &ii.q);
    ii.virtual_size = ii.q.size;
    if (ii.q.backing_file) {
      ii.full_backing = backing_path (ii.filename, ii.q.backing_file);
      if (ii.full_backing == NULL) {
        img_error ("%m");
        goto out;
      }
    }
    if (qcow2_bitmap_list (q, &ii.bitmaps, &ii.nbitmaps) == -1) {
      img_error ("Could not read the bitmaps of '%s': %s", ii.filename,
                 lib_error (ii.filename));
      goto out;
    }
  }
  ii.counts = calloc (ii.nbitmaps ? ii.nbitmaps : 1, sizeof *ii.counts);
  ii.sha256 = calloc (ii.nbitmaps ? ii.nbitmaps : 1, sizeof *ii.sha256);
  if (ii.counts == NULL || ii.sha256 == NULL) {
    img_error ("%m");
    goto out;
  }
  for (i = 0; i < ii.nbitmaps; i++) {
    struct hbitmap *hb = NULL;

    ii.counts[i] = -1;
    if (sidecar)
      hb = qbm_load (sidecar, ii.bitmaps[i].name);
    else if (!(ii.bitmaps[i].flags & QCOW2_BME_IN_USE)
             || qcow2_bitmap_recoverable (q, ii.bitmaps[i].name))
      hb = qcow2_bitmap_load (q, ii.bitmaps[i].name);
    if (hb) {
      ii.counts[i] = hbitmap_count (hb);
      if (hbitmap_sha256 (hb, ii.sha256[i]) == -1) {
        img_error ("bitmap '%s': cannot compute its SHA-256: %m",
                   ii.bitmaps[i].name);
        hbitmap_free (hb);
        goto out;
      }
      hbitmap_free (hb);
    }
  }

  if (o.json)
    print_json (&ii);
  else
    print_human (&ii);
  ret = 0;

 out:
  if (ii.bitmaps)
    qcow2_bitmap_list_free (ii.bitmaps, ii.nbitmaps);
  free (ii.counts);
  free (ii.sha256);
  free (ii.full_backing);
  free (ii.sidecar);
  qbm_close (sidecar);
  if (q)
    qcow2_close (q);
  return ret;
}
