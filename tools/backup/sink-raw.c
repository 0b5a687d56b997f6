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

/* nbdcbt-backup: sink writing a raw file or block device. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "utils.h"

struct raw_sink {
  struct sink s;
  int fd;
  const char *path;
};

static int
r_pwrite (struct sink *s, const void *buf, uint64_t count, uint64_t offset)
{
  struct raw_sink *rs = (struct raw_sink *) s;

  if (full_pwrite (rs->fd, buf, count, offset) == -1) {
    error_errno ("%s: write at offset %" PRIu64, rs->path, offset);
    return -1;
  }
  return 0;
}

static int
r_zero (struct sink *s, uint64_t count, uint64_t offset)
{
  struct raw_sink *rs = (struct raw_sink *) s;
  static const char zeroes[65536];

#ifdef FALLOC_FL_PUNCH_HOLE
  if (fallocate (rs->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 offset, count) == 0)
    return 0;
#endif
  while (count > 0) {
    size_t n = count < sizeof zeroes ? count : sizeof zeroes;
    if (full_pwrite (rs->fd, zeroes, n, offset) == -1) {
      error_errno ("%s: write at offset %" PRIu64, rs->path, offset);
      return -1;
    }
    count -= n;
    offset += n;
  }
  return 0;
}

static int
r_flush (struct sink *s)
{
  struct raw_sink *rs = (struct raw_sink *) s;

  if (fsync (rs->fd) == -1) {
    error_errno ("%s: fsync", rs->path);
    return -1;
  }
  return 0;
}

static int
r_close (struct sink *s)
{
  struct raw_sink *rs = (struct raw_sink *) s;
  int r = 0;

  if (close (rs->fd) == -1) {
    error_errno ("%s: close", rs->path);
    r = -1;
  }
  free (rs);
  return r;
}

static const struct sink_ops raw_ops = {
  .name = "raw",
  .pwrite = r_pwrite,
  .zero = r_zero,
  .flush = r_flush,
  .close = r_close,
};

struct sink *
sink_raw_create (const char *path, uint64_t size)
{
  struct raw_sink *rs;
  struct stat st;
  int fd;

  /* The disk is written out of order: only a file or a block device
   * will do (and opening a FIFO would wait for a reader).
   */
  if (stat (path, &st) == 0 && !S_ISREG (st.st_mode) &&
      !S_ISBLK (st.st_mode)) {
    error ("%s: not a regular file or a block device (the disk is written "
           "out of order, it cannot be streamed)", path);
    return NULL;
  }
  fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd == -1) {
    error_errno ("%s", path);
    return NULL;
  }
  if (fstat (fd, &st) == -1) {
    error_errno ("%s: fstat", path);
    close (fd);
    return NULL;
  }
  rs = calloc (1, sizeof *rs);
  if (rs == NULL) {
    error_errno ("calloc");
    close (fd);
    return NULL;
  }
  rs->s.ops = &raw_ops;
  rs->fd = fd;
  rs->path = path;
  if (S_ISREG (st.st_mode)) {
    /* A fresh sparse file of the right size. */
    if (ftruncate (fd, 0) == -1 || ftruncate (fd, size) == -1) {
      error_errno ("%s: truncate", path);
      close (fd);
      free (rs);
      return NULL;
    }
    rs->s.reads_zero = true;
  }
  else {
    off_t end = lseek (fd, 0, SEEK_END);
    if (end == -1 || (uint64_t) end < size) {
      error ("%s: the target is smaller than the disk (%" PRIu64 " bytes)",
             path, size);
      close (fd);
      free (rs);
      return NULL;
    }
  }
  return &rs->s;
}
