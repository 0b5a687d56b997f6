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

/* nbdcbt-img map --bitmap NAME: the dirty map of a persistent bitmap,
 * offline, in the format of nbdinfo --map=qemu:dirty-bitmap:NAME (so the
 * two can be compared directly).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbitmap.h"
#include "qbm.h"
#include "qcow2.h"
#include "nbdcbt-img.h"

static void
print_extent (bool json, bool *first, uint64_t offset, uint64_t len,
              bool dirty)
{
  const char *descr = dirty ? "dirty" : "clean";

  if (json) {
    printf ("%s{ \"offset\": %" PRIu64 ", \"length\": %" PRIu64
            ", \"type\": %d, \"description\": \"%s\"}",
            *first ? "" : ",\n", offset, len, dirty, descr);
    *first = false;
  }
  else
    printf ("%10" PRIu64 "  %10" PRIu64 "  %3d  %s\n", offset, len, dirty,
            descr);
}

int
cmd_map (int argc, char *argv[])
{
  static const struct option long_options[] = {
    IMG_COMMON_LONG_OPTIONS,
    { "bitmap", required_argument, NULL, 'B' },
    { NULL }
  };
  struct img_common_opts o = { .fmt = FMT_UNKNOWN };
  const char *filename, *bitmap = NULL;
  bool first = true;
  char err[1200];
  struct hbitmap *hb = NULL;
  struct image_bitmaps ib;
  uint64_t size, offset;
  int c, ret = 1;

  while ((c = getopt_long (argc, argv, "+f:B:hU", long_options,
                           NULL)) != -1) {
    switch (img_common_option (c, optarg, &o)) {
    case -1: return 1;
    case 1: continue;
    }
    switch (c) {
    case 'B': bitmap = optarg; break;
    case 'h':
      printf ("usage: %s map --bitmap NAME [-U] [-f FMT] [--output=human|json] "
              "[--sidecar=PATH] "
              "FILENAME\n", PROGNAME);
      return 0;
    default:
      return 1;
    }
  }
  if (bitmap == NULL) {
    img_error ("map needs --bitmap NAME (only bitmap maps are supported)");
    return 1;
  }
  if (image_argument (argc, argv, o.fmt, &filename, &o.fmt) == -1)
    return 1;
  if (image_bitmaps_open (&ib, filename, o.fmt, QCOW2_OPEN_RDONLY |
                          QCOW2_OPEN_NO_BACKING |
                          QCOW2_OPEN_NO_BITMAP_IN_USE |
                          (o.force_share ? QCOW2_OPEN_FORCE_SHARE : 0)) == -1)
    return 1;
  hb = image_bitmaps_load_usable (&ib, bitmap, err, sizeof err);
  if (hb == NULL) {
    img_error ("%s", err);
    goto out;
  }

  /* Alternating clean and dirty runs to the end of the disk. */
  size = hbitmap_size (hb);
  if (o.json)
    printf ("[\n");
  for (offset = 0; offset < size; ) {
    bool dirty = hbitmap_get (hb, offset);
    int64_t next = dirty ? hbitmap_next_clean (hb, offset, size - offset)
                         : hbitmap_next_dirty (hb, offset, size - offset);
    uint64_t end = next < 0 ? size : (uint64_t) next;

    print_extent (o.json, &first, offset, end - offset, dirty);
    offset = end;
  }
  if (o.json)
    printf ("%s]\n", first ? "" : "\n");
  ret = 0;

 out:
  hbitmap_free (hb);
  if (image_bitmaps_close (&ib) == -1)
    ret = 1;
  return ret;
}
