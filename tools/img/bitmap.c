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

/* nbdcbt-img bitmap: qemu-img bitmap's options, order and messages.
 * Several operations in one command are applied in the order given; each
 * one is stored before the next starts, so a failure leaves the earlier
 * ones done (as qemu-img does).
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <sys/types.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap-rules.h"
#include "bitmap-store.h"
#include "cleanup.h"
#include "hbitmap.h"
#include "qbm.h"
#include "qcow2.h"
#include "utils.h"
#include "nbdcbt-img.h"

enum op_type {
  OP_ADD = IMG_BITMAP_ADD, OP_REMOVE = IMG_BITMAP_REMOVE,
  OP_CLEAR = IMG_BITMAP_CLEAR, OP_ENABLE = IMG_BITMAP_ENABLE,
  OP_DISABLE = IMG_BITMAP_DISABLE, OP_MERGE = IMG_BITMAP_MERGE
};

static const char *const op_names[] = {
  "add", "remove", "clear", "enable", "disable", "merge"
};

struct op {
  enum op_type type;
  const char *source;           /* --merge SOURCE */
};

/* Shared state of one command. */
struct bitmap_cmd {
  const char *filename;
  const char *bitmap;
  struct qcow2 *q;
  uint32_t cluster_size;
  uint64_t granularity;         /* -g, or 0 */
  const char *src_filename;     /* -b */
  enum img_format src_fmt;      /* -F */
  char errbuf[1200];            /* the reason an operation failed */
};

static void __attribute__ ((__format__ (__printf__, 2, 3)))
set_err (struct bitmap_cmd *c, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  vsnprintf (c->errbuf, sizeof c->errbuf, fs, args);
  va_end (args);
}

/* Index of NAME in LIST, or -1. */
static ssize_t
find_bitmap (const struct qcow2_bitmap_info *list, size_t n, const char *name)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (strcmp (list[i].name, name) == 0)
      return i;
  return -1;
}

/* Store every bitmap of the image again, in directory order, with TARGET
 * replaced by NEW_DATA / RECORDING.  Inconsistent (in_use) bitmaps are
 * kept as they are on disk.
 */
static int
store_with (struct bitmap_cmd *c, const char *target,
            const struct hbitmap *new_data, bool recording)
{
  struct qcow2_bitmap_info *list;
  struct bitmap_store_entry *set = NULL;
  struct hbitmap **loaded = NULL;
  const char **keep = NULL;
  size_t n, i, nset = 0, nkeep = 0;
  int r = -1;

  if (qcow2_bitmap_list (c->q, &list, &n) == -1) {
    set_err (c, "%s", lib_error (c->filename));
    return -1;
  }
  set = calloc (n + 1, sizeof *set);
  loaded = calloc (n + 1, sizeof *loaded);
  keep = calloc (n + 1, sizeof *keep);
  if (!set || !loaded || !keep) {
    set_err (c, "%s", strerror (errno));
    goto out;
  }

  for (i = 0; i < n; i++) {
    if (strcmp (list[i].name, target) == 0) {
      set[nset].name = list[i].name;
      set[nset].bitmap = new_data;
      set[nset].recording = recording;
      nset++;
    }
    else if (list[i].flags & QCOW2_BME_IN_USE)
      keep[nkeep++] = list[i].name;
    else {
      loaded[i] = qcow2_bitmap_load (c->q, list[i].name);
      if (loaded[i] == NULL) {
        set_err (c, "Could not load bitmap '%s': %s", list[i].name,
                 lib_error (c->filename));
        goto out;
      }
      set[nset].name = list[i].name;
      set[nset].bitmap = loaded[i];
      set[nset].recording = (list[i].flags & QCOW2_BME_AUTO) != 0;
      nset++;
    }
  }

  if (qcow2_bitmaps_store (c->q, set, nset, keep, nkeep) == -1) {
    set_err (c, "%s", lib_error (c->filename));
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
  qcow2_bitmap_list_free (list, n);
  return r;
}

static bool
target_recording (struct bitmap_cmd *c, const char *name)
{
  struct qcow2_bitmap_info *list;
  size_t n;
  ssize_t i;
  bool r = false;

  if (qcow2_bitmap_list (c->q, &list, &n) == -1)
    return false;
  i = find_bitmap (list, n, name);
  if (i >= 0)
    r = (list[i].flags & QCOW2_BME_AUTO) != 0;
  qcow2_bitmap_list_free (list, n);
  return r;
}

int
merge_bitmaps (struct hbitmap *dst, const struct hbitmap *src, char *err,
               size_t errlen)
{
  uint64_t size = hbitmap_size (dst), offset = 0, start, len;

  if (hbitmap_size (src) != size) {
    snprintf (err, errlen, "Bitmaps are of different sizes (destination "
              "size is %" PRIu64 ", source size is %" PRIu64 ") and can't "
              "be merged", size, hbitmap_size (src));
    return -1;
  }
  if (hbitmap_granularity (src) == hbitmap_granularity (dst))
    return hbitmap_merge (dst, src);

  while (offset < size &&
         hbitmap_next_dirty_area (src, offset, size, UINT64_MAX,
                                  &start, &len)) {
    hbitmap_set (dst, start, len);
    offset = start + len;
  }
  return 0;
}

static int
do_add (struct bitmap_cmd *c)
{
  struct qcow2_bitmap_info *list;
  uint64_t g = c->granularity ? c->granularity
    : default_bitmap_granularity (c->cluster_size);
  const char *msg;
  size_t n;
  ssize_t i;

  if ((msg = bitmap_name_error (c->bitmap)) != NULL ||
      (msg = bitmap_granularity_error (g)) != NULL) {
    set_err (c, "%s", msg);
    return -1;
  }
  if (qcow2_bitmaps_supported (c->q) == -1) {
    set_err (c, "%s", lib_error (c->filename));
    return -1;
  }
  if (qcow2_bitmap_list (c->q, &list, &n) == -1) {
    set_err (c, "%s", lib_error (c->filename));
    return -1;
  }
  i = find_bitmap (list, n, c->bitmap);
  qcow2_bitmap_list_free (list, n);
  if (i >= 0) {
    set_err (c, "Bitmap already exists: %s", c->bitmap);
    return -1;
  }
  if (qcow2_bitmap_add (c->q, c->bitmap, g, true) == -1) {
    set_err (c, "%s", lib_error (c->filename));
    return -1;
  }
  return 0;
}

static int
do_remove (struct bitmap_cmd *c)
{
  struct qcow2_bitmap_info *list;
  size_t n;
  ssize_t i;

  if (qcow2_bitmap_list (c->q, &list, &n) == -1) {
    set_err (c, "%s", lib_error (c->filename));
    return -1;
  }
  i = find_bitmap (list, n, c->bitmap);
  qcow2_bitmap_list_free (list, n);
  if (i == -1) {
    set_err (c, "Dirty bitmap '%s' not found", c->bitmap);
    return -1;
  }
  if (qcow2_bitmap_remove (c->q, c->bitmap) == -1) {
    set_err (c, "%s", lib_error (c->filename));
    return -1;
  }
  return 0;
}

static int
do_modify (struct bitmap_cmd *c, const struct op *op)
{
  struct hbitmap *target, *src = NULL;
  bool recording = target_recording (c, c->bitmap);
  int r = -1;

  target = load_usable_bitmap (c->q, c->filename, c->bitmap,
                               c->errbuf, sizeof c->errbuf);
  if (target == NULL)
    return -1;

  switch (op->type) {
  case OP_CLEAR:
    hbitmap_reset_all (target);
    break;
  case OP_ENABLE:
    recording = true;
    break;
  case OP_DISABLE:
    recording = false;
    break;
  case OP_MERGE:
    if (c->src_filename)
      src = load_source_bitmap (c->src_filename, c->src_fmt, op->source,
                                c->errbuf, sizeof c->errbuf);
    else
      src = load_usable_bitmap (c->q, c->filename, op->source,
                                c->errbuf, sizeof c->errbuf);
    if (src == NULL)
      goto out;
    if (merge_bitmaps (target, src, c->errbuf, sizeof c->errbuf) == -1)
      goto out;
    break;
  default:
    abort ();
  }

  r = store_with (c, c->bitmap, target, recording);
 out:
  hbitmap_free (src);
  hbitmap_free (target);
  return r;
}

/* A raw image: the same operations on its QBM sidecar. */
static int
bitmap_raw (struct bitmap_cmd *c, const struct op *ops, size_t nops)
{
  CLEANUP_FREE char *image = NULL;
  struct qbm *q = open_sidecar (c->filename, false, &image);
  size_t i;
  int ret = 0;

  if (q == NULL)
    return 1;
  for (i = 0; i < nops; i++) {
    c->errbuf[0] = '\0';
    if (sidecar_bitmap_op (q, image, (enum img_bitmap_op) ops[i].type,
                           c->bitmap, ops[i].source, c->granularity,
                           c->src_filename, c->src_fmt, c->errbuf,
                           sizeof c->errbuf) == -1) {
      img_error ("Operation %s on bitmap %s failed: %s",
                 op_names[ops[i].type], c->bitmap, c->errbuf);
      ret = 1;
      break;
    }
  }
  qbm_close (q);
  return ret;
}

int
cmd_bitmap (int argc, char *argv[])
{
  enum { OPT_ADD = 256, OPT_REMOVE, OPT_CLEAR, OPT_ENABLE, OPT_DISABLE,
         OPT_MERGE };
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "add", no_argument, NULL, OPT_ADD },
    { "remove", no_argument, NULL, OPT_REMOVE },
    { "clear", no_argument, NULL, OPT_CLEAR },
    { "enable", no_argument, NULL, OPT_ENABLE },
    { "disable", no_argument, NULL, OPT_DISABLE },
    { "merge", required_argument, NULL, OPT_MERGE },
    { "granularity", required_argument, NULL, 'g' },
    { "format", required_argument, NULL, 'f' },
    { "sidecar", required_argument, NULL, 'S' },
    { NULL }
  };
  struct bitmap_cmd cmd = { .src_fmt = FMT_UNKNOWN };
  struct op ops[64];
  size_t nops = 0, i;
  struct img_common_opts o = { .fmt = FMT_UNKNOWN };
  const char *src_fmt = NULL;
  bool have_add = false, have_merge = false;
  struct qcow2_info info;
  int c, ret = 0;

  while ((c = getopt_long (argc, argv, "+f:b:F:g:hq", long_options,
                           NULL)) != -1) {
    if (c >= OPT_ADD && c <= OPT_MERGE) {
      if (nops >= sizeof ops / sizeof ops[0]) {
        img_error ("too many operations");
        return 1;
      }
      ops[nops].type = c - OPT_ADD;
      ops[nops].source = c == OPT_MERGE ? optarg : NULL;
      have_add |= c == OPT_ADD;
      have_merge |= c == OPT_MERGE;
      nops++;
      continue;
    }
    switch (img_common_option (c, optarg, &o)) {
    case -1: return 1;
    case 1: continue;
    }
    switch (c) {
    case 'b': cmd.src_filename = optarg; break;
    case 'F': src_fmt = optarg; break;
    case 'g': {
      const char *err;
      int64_t g = parse_human_size (optarg, &err);

      if (g <= 0) {
        img_error ("Invalid granularity specified");
        return 1;
      }
      cmd.granularity = g; /* checked by --add, as qemu-img does */
      break;
    }
    case 'q': break;
    case 'h':
      printf ("usage: %s bitmap (--merge SOURCE | --add | --remove | --clear "
              "| --enable | --disable)...\n"
              "       [-b SOURCE_FILE [-F SOURCE_FMT]] [-g GRANULARITY] "
              "[-f FMT] [--sidecar=PATH] FILENAME BITMAP\n", PROGNAME);
      return 0;
    default:
      return 1;
    }
  }

  if (nops == 0) {
    img_error ("Need at least one of --add, --remove, --clear, --enable, "
               "--disable, or --merge");
    return 1;
  }
  if (cmd.granularity && !have_add) {
    img_error ("granularity only supported with --add");
    return 1;
  }
  if (src_fmt && !cmd.src_filename) {
    img_error ("-F only supported with -b");
    return 1;
  }
  if (cmd.src_filename && !have_merge) {
    img_error ("Merge bitmap source file only supported with --merge");
    return 1;
  }
  if (src_fmt) {
    cmd.src_fmt = parse_format (src_fmt);
    if (cmd.src_fmt == FMT_UNKNOWN)
      return 1;
  }
  if (optind != argc - 2) {
    img_error ("Expecting filename and bitmap name");
    return 1;
  }
  cmd.filename = argv[optind];
  cmd.bitmap = argv[optind + 1];

  o.fmt = probe_format (cmd.filename, o.fmt);
  if (o.fmt == FMT_UNKNOWN)
    return 1;
  if (o.fmt != FMT_QCOW2)
    return bitmap_raw (&cmd, ops, nops);

  cmd.q = open_qcow2 (cmd.filename, QCOW2_OPEN_NO_BACKING |
                      QCOW2_OPEN_NO_BITMAP_IN_USE);
  if (cmd.q == NULL)
    return 1;
  qcow2_get_info (cmd.q, &info);
  cmd.cluster_size = info.cluster_size;

  for (i = 0; i < nops; i++) {
    int r;

    cmd.errbuf[0] = '\0';
    switch (ops[i].type) {
    case OP_ADD: r = do_add (&cmd); break;
    case OP_REMOVE: r = do_remove (&cmd); break;
    default: r = do_modify (&cmd, &ops[i]); break;
    }
    if (r == -1) {
      img_error ("Operation %s on bitmap %s failed: %s",
                 op_names[ops[i].type], cmd.bitmap, cmd.errbuf);
      ret = 1;
      break;
    }
  }

  if (close_qcow2 (cmd.q, cmd.filename) == -1)
    ret = 1;
  return ret;
}
