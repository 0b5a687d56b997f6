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

/* nbdcbt file plugin: read, write, flush, cache.
 *
 * The usual case is one pread or pwrite straight between the client's
 * buffer and the file (pwritev2 with RWF_DSYNC for FUA).  With cache=none
 * the file is open with O_DIRECT, which needs offsets, lengths and buffer
 * addresses aligned: requests whose offset or length is not aligned go
 * through a second, buffered descriptor of the same file (Linux keeps
 * the two coherent: direct I/O writes back and drops cached pages in its
 * range), and aligned requests in a misaligned buffer are copied through
 * a per-thread aligned bounce buffer.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "file.h"
#include "minmax.h"

/* Zeroes for write_zeroes fallbacks; in .bss, so it costs no memory. */
static char zero_buf[BOUNCE_SIZE] __attribute__ ((aligned (MAX_DIRECT_ALIGN)));

static pthread_key_t bounce_key;
static bool have_bounce_key;

int
file_rw_load (void)
{
  if (pthread_key_create (&bounce_key, free) != 0)
    return -1;
  have_bounce_key = true;
  return 0;
}

void
file_rw_unload (void)
{
  if (have_bounce_key) {
    free (pthread_getspecific (bounce_key));
    pthread_key_delete (bounce_key);
    have_bounce_key = false;
  }
}

/* This thread's aligned bounce buffer (BOUNCE_SIZE bytes), allocated
 * once per thread and freed when the thread exits.
 */
static char *
get_bounce (void)
{
  void *p = pthread_getspecific (bounce_key);

  if (p == NULL) {
    int err = posix_memalign (&p, MAX_DIRECT_ALIGN, BOUNCE_SIZE);

    if (err) {
      errno = err;
      nbdcbt_error ("file: cannot allocate a bounce buffer: %m");
      return NULL;
    }
    if (pthread_setspecific (bounce_key, p) != 0) {
      free (p);
      errno = ENOMEM;
      return NULL;
    }
  }
  return p;
}

static int
read_all (const struct handle *h, int fd, char *buf, size_t count,
          off_t offset)
{
  while (count > 0) {
    ssize_t r = pread (fd, buf, count, offset);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      nbdcbt_error ("file: %s: pread at offset %jd: %m", h->filename,
                    (intmax_t) offset);
      return -1;
    }
    if (r == 0) {
      nbdcbt_error ("file: %s: pread at offset %jd: unexpected end of "
                    "file (was the file truncated?)", h->filename,
                    (intmax_t) offset);
      errno = EIO;
      return -1;
    }
    buf += r;
    offset += r;
    count -= r;
  }
  return 0;
}

/* Write everything; with FUA the data is durable on return. */
static int
write_all (struct handle *h, int fd, const char *buf, size_t count,
           off_t offset, bool fua)
{
  bool dsync = fua && FEATURE_ON (h, can_rwf_dsync);

  while (count > 0) {
    ssize_t r;

    if (dsync) {
      struct iovec iov = { .iov_base = (void *) buf, .iov_len = count };

      r = pwritev2 (fd, &iov, 1, offset, RWF_DSYNC);
      if (r == -1 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
        FEATURE_OFF (h, can_rwf_dsync);
        dsync = false;
        continue;
      }
    }
    else
      r = pwrite (fd, buf, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      nbdcbt_error ("file: %s: pwrite at offset %jd: %m", h->filename,
                    (intmax_t) offset);
      return -1;
    }
    buf += r;
    offset += r;
    count -= r;
  }
  if (fua && !dsync && fdatasync (fd) == -1) {
    nbdcbt_error ("file: %s: fdatasync: %m", h->filename);
    return -1;
  }
  return 0;
}

/* O_DIRECT needs the offset and length aligned to h->align ... */
static inline bool
range_aligned (const struct handle *h, uint64_t count, uint64_t offset)
{
  return ((count | offset) & (h->align - 1)) == 0;
}

/* ... and the buffer to h->mem_align. */
static inline bool
buffer_aligned (const struct handle *h, const void *buf)
{
  return ((uintptr_t) buf & (h->mem_align - 1)) == 0;
}

int
file_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  struct handle *h = handle;
  char *b = buf;
  char *bounce;

  if (!h->direct)
    return read_all (h, h->fd, buf, count, offset);
  if (!range_aligned (h, count, offset))
    return read_all (h, h->fd_buffered, buf, count, offset);
  if (buffer_aligned (h, buf))
    return read_all (h, h->fd, buf, count, offset);

  bounce = get_bounce ();
  if (bounce == NULL)
    return -1;
  while (count > 0) {
    uint32_t n = MIN (count, (uint32_t) BOUNCE_SIZE);

    if (read_all (h, h->fd, bounce, n, offset) == -1)
      return -1;
    memcpy (b, bounce, n);
    b += n;
    offset += n;
    count -= n;
  }
  return 0;
}

/* pwrite for any alignment of offset, length and buffer. */
static int
do_pwrite (struct handle *h, const char *buf, uint64_t count,
           uint64_t offset, bool fua)
{
  char *bounce;

  if (!h->direct)
    return write_all (h, h->fd, buf, count, offset, fua);
  if (!range_aligned (h, count, offset))
    return write_all (h, h->fd_buffered, buf, count, offset, fua);
  if (buffer_aligned (h, buf))
    return write_all (h, h->fd, buf, count, offset, fua);

  bounce = get_bounce ();
  if (bounce == NULL)
    return -1;
  while (count > 0) {
    uint64_t n = MIN (count, (uint64_t) BOUNCE_SIZE);

    memcpy (bounce, buf, n);
    if (write_all (h, h->fd, bounce, n, offset, fua) == -1)
      return -1;
    buf += n;
    offset += n;
    count -= n;
  }
  return 0;
}

int
file_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
             uint32_t flags)
{
  return do_pwrite (handle, buf, count, offset, flags & NBDCBT_FLAG_FUA);
}

int
file_write_zeroes (struct handle *h, uint64_t count, uint64_t offset)
{
  while (count > 0) {
    uint64_t n = MIN (count, (uint64_t) BOUNCE_SIZE);
    uint64_t mis = offset & (h->align - 1);

    /* Under O_DIRECT, get to an aligned offset first so that the rest
     * goes direct.
     */
    if (mis)
      n = MIN (n, h->align - mis);
    if (do_pwrite (h, zero_buf, n, offset, false) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

int
file_flush (void *handle, uint32_t flags)
{
  struct handle *h = handle;

  if (fdatasync (h->fd) == -1) {
    nbdcbt_error ("file: %s: fdatasync: %m", h->filename);
    return -1;
  }
  return 0;
}

int
file_cache (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;
  int err;

  /* A hint: the kernel starts reading ahead and we return at once. */
  err = posix_fadvise (h->fd_buffered, offset, count, POSIX_FADV_WILLNEED);
  if (err) {
    errno = err;
    nbdcbt_error ("file: %s: posix_fadvise: %m", h->filename);
    return -1;
  }
  return 0;
}
