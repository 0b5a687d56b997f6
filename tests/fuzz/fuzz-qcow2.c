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

/* libFuzzer harness for the qcow2 library: header, extensions, bitmap
 * directory and tables, L1/L2 and refcount parsing, and the paths a
 * writable open takes.
 *
 * Each input is an image file (in a memfd), opened read-only without its
 * backing chain, then listed, checked, and a little of it read.  Then a
 * copy is opened read-write (bitmap table checks, the autoclear rewrite,
 * the repair of a dirty image), its bitmaps are marked in use, stored
 * back, one is added and removed, a little is written, and it is checked
 * again.  Any crash, sanitizer report, leak or hang is a bug in the
 * library: a damaged image must only ever give an error.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bitmap-store.h"
#include "hbitmap.h"
#include "qcow2.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
ignore_message (void *opaque, const char *text)
{
}

/* Bitmaps whose data would need more than this are not loaded (memory is
 * not what is being tested here).
 */
#define MAX_BITMAP_BYTES (64 * 1024 * 1024)

static void
exercise (struct qcow2 *q)
{
  struct qcow2_bitmap_info *list;
  struct qcow2_check_result result;
  uint64_t disk_size = qcow2_get_size (q), offset = 0;
  size_t n, i;
  int steps;
  static char buf[65536];

  if (qcow2_bitmap_list (q, &list, &n) == 0) {
    for (i = 0; i < n; i++) {
      struct hbitmap *hb;

      if (list[i].granularity == 0 ||
          disk_size / list[i].granularity / 8 > MAX_BITMAP_BYTES)
        continue;
      hb = qcow2_bitmap_load (q, list[i].name);
      if (hb)
        hbitmap_free (hb);
    }
    qcow2_bitmap_list_free (list, n);
  }

  qcow2_check (q, 0, &result, ignore_message, NULL);

  /* Walk a few extents and read the start of the disk: L1/L2 lookups. */
  for (steps = 0; steps < 16 && offset < disk_size; steps++) {
    uint64_t pnum = 0;
    int status, depth;

    if (qcow2_block_status (q, offset, disk_size - offset, &pnum, &status,
                            &depth) == -1 || pnum == 0)
      break;
    offset += pnum;
  }
  if (disk_size > 0)
    qcow2_pread (q, buf, disk_size < sizeof buf ? disk_size : sizeof buf, 0);
}

/* The writable paths, on Q opened read-write. */
static void
exercise_writable (struct qcow2 *q)
{
  struct qcow2_bitmap_info *list;
  struct bitmap_store_entry set[8];
  const char *keep[8];
  struct qcow2_check_result result;
  uint64_t disk_size = qcow2_get_size (q);
  size_t n, i, nset = 0, nkeep = 0;
  static char buf[4096];

  if (qcow2_bitmap_list (q, &list, &n) == 0) {
    if (qcow2_bitmaps_mark_in_use (q) == 0 && n <= 8) {
      for (i = 0; i < n; i++) {
        struct hbitmap *hb = NULL;

        if (list[i].flags & QCOW2_BME_IN_USE) {
          keep[nkeep++] = list[i].name;
          continue;
        }
        if (list[i].granularity > 0 &&
            disk_size / list[i].granularity / 8 <= MAX_BITMAP_BYTES)
          hb = qcow2_bitmap_load (q, list[i].name);
        if (hb == NULL) {
          keep[nkeep++] = list[i].name;
          continue;
        }
        set[nset].name = list[i].name;
        set[nset].bitmap = hb;
        set[nset].recording = true;
        set[nset].in_use = false;
        nset++;
      }
      if (disk_size > 0)
        qcow2_pwrite (q, buf, disk_size < sizeof buf ? disk_size
                      : sizeof buf, 0, 0);
      qcow2_bitmaps_store (q, set, nset, keep, nkeep);
      for (i = 0; i < nset; i++)
        hbitmap_free ((struct hbitmap *) set[i].bitmap);
    }
    qcow2_bitmap_list_free (list, n);
  }
  if (disk_size > 0 && disk_size / 65536 / 8 <= MAX_BITMAP_BYTES &&
      qcow2_bitmap_add (q, "fuzz-added", 65536, true) == 0)
    qcow2_bitmap_remove (q, "fuzz-added");
  if (disk_size > 0)
    qcow2_zero (q, disk_size < 8192 ? disk_size : 8192, 0,
                QCOW2_ZERO_MAY_UNMAP);
  qcow2_flush (q);
  qcow2_check (q, QCOW2_CHECK_REPAIR_LEAKS, &result, ignore_message, NULL);
}

/* A memfd holding DATA, and its path. */
static int
memfd_with (const uint8_t *data, size_t size, char *path, size_t len)
{
  int fd = memfd_create ("fuzz-qcow2", MFD_CLOEXEC);

  if (fd == -1) {
    perror ("memfd_create");
    abort ();
  }
  if (size > 0 && write (fd, data, size) != (ssize_t) size) {
    perror ("write");
    abort ();
  }
  snprintf (path, len, "/proc/self/fd/%d", fd);
  return fd;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char path[64];
  struct qcow2 *q;
  int fd;

  fd = memfd_with (data, size, path, sizeof path);

  q = qcow2_open (path, QCOW2_OPEN_RDONLY | QCOW2_OPEN_NO_BACKING |
                  QCOW2_OPEN_NO_BITMAP_IN_USE);
  if (q) {
    exercise (q);
    qcow2_close (q);
  }
  else if (qcow2_last_error () == NULL || qcow2_last_error ()[0] == '\0') {
    /* Every refusal must say why. */
    fprintf (stderr, "qcow2_open failed without a message\n");
    abort ();
  }
  close (fd);

  /* The same image, writable, in its own copy. */
  fd = memfd_with (data, size, path, sizeof path);
  q = qcow2_open (path, QCOW2_OPEN_NO_BACKING | QCOW2_OPEN_NO_BITMAP_IN_USE);
  if (q) {
    exercise_writable (q);
    qcow2_close (q);
  }
  else if (qcow2_last_error () == NULL || qcow2_last_error ()[0] == '\0') {
    fprintf (stderr, "writable qcow2_open failed without a message\n");
    abort ();
  }
  close (fd);
  return 0;
}
