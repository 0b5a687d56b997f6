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

/* libFuzzer harness for the QBM sidecar (common/qbm/qbm.c): the
 * descriptor's JSON and the intent record.
 *
 * An input is a descriptor's text, then optionally a NUL byte and the
 * intent record's bytes (no JSON text holds a raw NUL).  In a scratch
 * directory with a 1 MiB raw image and two bitmap files of fixed
 * contents (the seeds name them with their right checksums), the
 * descriptor is probed, opened, listed, every bitmap loaded and the
 * whole checked.  Then, as a server and nbdcbt-img would, it is marked
 * in use, the bitmaps are stored with new data and one is removed;
 * whatever such an update wrote must open again.  A crash, a sanitizer report, a leak, a hang, or a sidecar that
 * this library wrote and then refuses is a bug: a damaged sidecar must
 * only ever give an error.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitmap-store.h"
#include "hbitmap.h"
#include "qbm.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define IMAGE_SIZE (1024 * 1024)

static char *dir, *image, *desc, *intent, *file0, *file1;

static void
put (const char *path, const void *buf, size_t len)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  if (fd == -1 || write (fd, buf, len) != (ssize_t) len || close (fd) == -1)
    abort ();
}

static void
setup (void)
{
  const char *tmp = getenv ("TMPDIR");
  char templ[4096];
  int fd;

  snprintf (templ, sizeof templ, "%s/fuzz-qbm.XXXXXX", tmp ? tmp : "/tmp");
  dir = mkdtemp (templ) ? strdup (templ) : NULL;
  if (dir == NULL
      || asprintf (&image, "%s/disk.raw", dir) == -1
      || asprintf (&desc, "%s/disk.raw.qbm", dir) == -1
      || asprintf (&intent, "%s/disk.raw.qbm.intent", dir) == -1
      || asprintf (&file0, "%s/disk.raw.qbm.1.0.bitmap", dir) == -1
      || asprintf (&file1, "%s/disk.raw.qbm.1.1.bitmap", dir) == -1)
    abort ();
  fd = open (image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1 || ftruncate (fd, IMAGE_SIZE) == -1 || close (fd) == -1)
    abort ();
}

/* Everything but the image, as the seeds expect it. */
static void
reset (const uint8_t *data, size_t size)
{
  static uint8_t b0[2] = { 0x05, 0x80 };       /* 64 KiB granules */
  static uint8_t b1[256];                       /* 512 B granules */
  const uint8_t *nul = memchr (data, 0, size);
  DIR *d = opendir (dir);
  struct dirent *e;
  size_t i;

  if (d == NULL)
    abort ();
  while ((e = readdir (d)) != NULL)
    if (e->d_name[0] != '.' && strcmp (e->d_name, "disk.raw") != 0
        && unlinkat (dirfd (d), e->d_name, 0) == -1)
      abort ();
  closedir (d);
  for (i = 0; i < sizeof b1; i++)
    b1[i] = i % 7 == 0 ? 0xff : 0;
  put (file0, b0, sizeof b0);
  put (file1, b1, sizeof b1);
  put (desc, data, nul ? (size_t) (nul - data) : size);
  if (nul)
    put (intent, nul + 1, size - (nul - data) - 1);
}

static void
ignore (void *opaque, const char *msg)
{
}

/* What this library just wrote must open again. */
static void
reopen_written (void)
{
  struct qbm *q = qbm_open (desc, image, IMAGE_SIZE,
                            QBM_OPEN_RDONLY | QBM_OPEN_FORCE_SHARE);

  if (q == NULL) {
    fprintf (stderr, "fuzz-qbm: the sidecar written by an update does not "
             "open: %s\n", qbm_last_error ());
    abort ();
  }
  qbm_close (q);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct qbm_bitmap_info *list = NULL;
  struct bitmap_store_entry *entries;
  struct qbm *q;
  char *described = NULL;
  size_t n = 0, nentries = 0, i;
  int r;

  if (dir == NULL)
    setup ();
  reset (data, size);

  r = qbm_probe (desc, &described);
  free (described);

  q = qbm_open (desc, image, IMAGE_SIZE, 0);
  if (q == NULL)
    return 0;
  if (r != 1) {
    fprintf (stderr, "fuzz-qbm: opens, but probes as %d\n", r);
    abort ();
  }
  if (qbm_list (q, &list, &n) == -1)
    n = 0;
  entries = calloc (n + 1, sizeof *entries);
  if (entries == NULL)
    abort ();
  for (i = 0; i < n; i++) {
    struct hbitmap *hb = qbm_load (q, list[i].name);
    if (hb == NULL)
      continue;
    /* New data, so that a store writes new bitmap files. */
    hbitmap_set (hb, 0, 1);
    entries[nentries].name = list[i].name;
    entries[nentries].bitmap = hb;
    entries[nentries].recording = list[i].recording;
    entries[nentries].in_use = true;
    nentries++;
  }
  qbm_check (q, ignore, NULL);
  if (qbm_mark_in_use (q, 0, NULL) == 0)
    reopen_written ();
  if (nentries > 0 && qbm_store (q, entries, nentries, NULL, 0) == 0)
    reopen_written ();
  if (n > 0 && qbm_remove (q, list[0].name) == 0)
    reopen_written ();
  for (i = 0; i < nentries; i++)
    hbitmap_free ((struct hbitmap *) entries[i].bitmap);
  free (entries);
  qbm_list_free (list, n);
  qbm_close (q);
  return 0;
}
