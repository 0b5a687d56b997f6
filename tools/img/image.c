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

/* nbdcbt-img: opening images and their bitmaps, shared by the subcommands. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "hbitmap.h"
#include "qcow2.h"
#include "nbdcbt-img.h"

int
image_argument (int argc, char *argv[], enum img_format fmt,
                const char **filename, enum img_format *fmt_ret)
{
  if (optind != argc - 1) {
    img_error ("Expecting one image file name");
    return -1;
  }
  *filename = argv[optind];
  *fmt_ret = probe_format (*filename, fmt);
  return *fmt_ret == FMT_UNKNOWN ? -1 : 0;
}

struct qcow2 *
open_qcow2 (const char *path, unsigned flags)
{
  struct qcow2 *q = qcow2_open (path, flags);

  if (q == NULL) {
    bool locked = errno == EAGAIN;

    img_error ("Could not open '%s': %s", path, lib_error (path));
    if (locked && (flags & QCOW2_OPEN_RDONLY) &&
        !(flags & QCOW2_OPEN_FORCE_SHARE))
      fprintf (stderr, "Use -U (--force-share) to read it while another "
               "process writes it (the data may be inconsistent).\n");
  }
  return q;
}

int
close_qcow2 (struct qcow2 *q, const char *path)
{
  if (qcow2_close (q) == -1) {
    img_error ("%s: %s", path, lib_error (path));
    return -1;
  }
  return 0;
}

char *
backing_path (const char *filename, const char *backing)
{
  CLEANUP_FREE char *copy = NULL;
  char *r;

  if (backing[0] == '/' || strchr (filename, '/') == NULL)
    return strdup (backing);
  copy = strdup (filename);
  if (copy == NULL)
    return NULL;
  if (asprintf (&r, "%s/%s", dirname (copy), backing) == -1)
    return NULL;
  return r;
}
