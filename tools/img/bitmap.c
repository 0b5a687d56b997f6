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

enum op_type { OP_ADD, OP_REMOVE, OP_CLEAR, OP_ENABLE, OP_DISABLE, OP_MERGE };

static const char *const op_names[] = {
  "add", "remove", "clear", "enable", "disable", "merge"
};

struct op {
  enum op_type type;
  const char *source;           /* --merge SOURCE */
};

/* Shared state of one command. */
struct bitmap_cmd {
  struct image_bitmaps ib;
  const char *bitmap;
  uint64_t granularity;         /* -g, or 0 */
  const char *src_filename;     /* -b */
  enum img_format src_fmt;      /* -F */
  char errbuf[1200];            /* the reason an operation failed */
};

/* --clear, --enable, --disable and --merge: load the bitmap, change it,
 * store it back with the others.
 */
static int
do_modify (struct bitmap_cmd *c, const struct op *op)
{
  struct image_bitmap info;
  struct hbitmap *target, *src = NULL;
  bool recording;
  int r = -1;

  target = image_bitmaps_load_usable (&c->ib, c->bitmap,
                                      c->errbuf, sizeof c->errbuf);
  if (target == NULL)
    return -1;
  recording = image_bitmaps_lookup (&c->ib, c->bitmap, &info, c->errbuf,
                                    sizeof c->errbuf) == 1 && info.recording;

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
      src = image_bitmaps_load_usable (&c->ib, op->source,
                                       c->errbuf, sizeof c->errbuf);
    if (src == NULL)
      goto out;
    if (hbitmap_size (src) != hbitmap_size (target)) {
      snprintf (c->errbuf, sizeof c->errbuf,
                "Bitmaps are of different sizes (destination size is %"
                PRIu64 ", source size is %" PRIu64 ") and can't be merged",
                hbitmap_size (target), hbitmap_size (src));
      goto out;
    }
    if (hbitmap_merge_any (target, src) == -1) {
      snprintf (c->errbuf, sizeof c->errbuf, "%s", strerror (errno));
      goto out;
    }
    break;
  default:
    abort ();
  }

  r = image_bitmaps_replace (&c->ib, c->bitmap, target, recording,
                             c->errbuf, sizeof c->errbuf);
 out:
  hbitmap_free (src);
  hbitmap_free (target);
  return r;
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
  const char *src_fmt = NULL, *filename;
  bool have_add = false, have_merge = false;
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
  filename = argv[optind];
  cmd.bitmap = argv[optind + 1];

  o.fmt = probe_format (filename, o.fmt);
  if (o.fmt == FMT_UNKNOWN)
    return 1;
  if (image_bitmaps_open (&cmd.ib, filename, o.fmt,
                          QCOW2_OPEN_NO_BACKING |
                          QCOW2_OPEN_NO_BITMAP_IN_USE) == -1)
    return 1;

  for (i = 0; i < nops; i++) {
    int r;

    cmd.errbuf[0] = '\0';
    switch (ops[i].type) {
    case OP_ADD:
      r = image_bitmaps_add (&cmd.ib, cmd.bitmap, cmd.granularity,
                             cmd.errbuf, sizeof cmd.errbuf);
      break;
    case OP_REMOVE:
      r = image_bitmaps_remove (&cmd.ib, cmd.bitmap,
                                cmd.errbuf, sizeof cmd.errbuf);
      break;
    default:
      r = do_modify (&cmd, &ops[i]);
      break;
    }
    if (r == -1) {
      char quoted[BITMAP_NAME_MAX * 4 + 8];

      img_error ("Operation %s on bitmap %s failed: %s",
                 op_names[ops[i].type],
                 bitmap_name_quote (cmd.bitmap, quoted, sizeof quoted),
                 cmd.errbuf);
      ret = 1;
      break;
    }
  }

  if (image_bitmaps_close (&cmd.ib) == -1)
    ret = 1;
  return ret;
}
