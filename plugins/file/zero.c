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

/* nbdcbt file plugin: trim and write zeroes.
 *
 * Trim punches a hole (files) or discards (block devices); it is advisory,
 * so a method that turns out unsupported makes it a no-op.  Write zeroes
 * tries the fast methods in order and falls back to writing zeroes,
 * except with NBDCBT_FLAG_FAST_ZERO where it fails with ENOTSUP instead.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "file.h"
#include "rounding.h"

/* Errors meaning "this method is not available here" (as opposed to an
 * I/O error worth reporting).
 */
static inline bool
is_unsupported (int err)
{
  return err == EOPNOTSUPP || err == ENOSYS || err == ENOTTY;
}

static int
sync_if_fua (struct handle *h, uint32_t flags)
{
  if ((flags & NBDCBT_FLAG_FUA) && fdatasync (h->fd) == -1) {
    nbdcbt_error ("file: %s: fdatasync: %m", h->filename);
    return -1;
  }
  return 0;
}

static int
do_fallocate (struct handle *h, int mode, uint64_t count, uint64_t offset)
{
  int r;

  do
    r = fallocate (h->fd, mode, offset, count);
  while (r == -1 && errno == EINTR);
  return r;
}

/* Try METHOD (a fallocate mode) guarded by the feature flag *FEATURE.
 * 1 = done, 0 = not available (try something else), -1 = error.
 */
static int
try_fallocate (struct handle *h, bool *feature, int mode,
               uint64_t count, uint64_t offset, const char *what)
{
  if (!__atomic_load_n (feature, __ATOMIC_RELAXED))
    return 0;
  if (do_fallocate (h, mode, count, offset) == 0)
    return 1;
  if (is_unsupported (errno)) {
    __atomic_store_n (feature, false, __ATOMIC_RELAXED);
    return 0;
  }
  /* EINVAL: e.g. a range the device cannot handle; not fatal. */
  if (errno == EINVAL)
    return 0;
  nbdcbt_error ("file: %s: fallocate: %s: %m", h->filename, what);
  return -1;
}

int
file_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;

  if (h->is_block_device) {
    /* Discard whole sectors only; the rest is left alone. */
    uint64_t start = ROUND_UP (offset, h->sector_size);
    uint64_t end = ROUND_DOWN (offset + count, h->sector_size);
    uint64_t range[2] = { start, end - start };

    if (start < end && ioctl (h->fd, BLKDISCARD, range) == -1
        && !is_unsupported (errno)) {
      nbdcbt_error ("file: %s: BLKDISCARD: %m", h->filename);
      return -1;
    }
  }
  else if (try_fallocate (h, &h->can_punch_hole,
                          FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          count, offset, "punch hole") == -1)
    return -1;
  return sync_if_fua (h, flags);
}

/* The fast methods common to files and block devices: a hole if the
 * client allows trimming (it reads as zeroes and is the cheapest of all),
 * else ZERO_RANGE.  Same results as try_fallocate.
 */
static int
zero_by_fallocate (struct handle *h, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  if (flags & NBDCBT_FLAG_MAY_TRIM) {
    int r = try_fallocate (h, &h->can_punch_hole,
                           FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           count, offset, "punch hole");
    if (r)
      return r;
  }
  return try_fallocate (h, &h->can_zero_range,
                        FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                        count, offset, "zero range");
}

static int
zero_block_device (struct handle *h, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  /* On block devices the fallocate modes only succeed where the
   * device zeroes without writing (the kernel never falls back).
   */
  int r = zero_by_fallocate (h, count, offset, flags);

  if (r)
    return r;
  if (flags & NBDCBT_FLAG_FAST_ZERO)
    return 0;

  /* BLKZEROOUT may write zeroes itself: correct but not fast. */
  if (FEATURE_ON (h, can_blkzeroout)
      && IS_ALIGNED (offset | count, h->sector_size)) {
    uint64_t range[2] = { offset, count };

    if (ioctl (h->fd, BLKZEROOUT, range) == 0)
      return 1;
    if (!is_unsupported (errno) && errno != EINVAL) {
      nbdcbt_error ("file: %s: BLKZEROOUT: %m", h->filename);
      return -1;
    }
    if (errno != EINVAL)
      FEATURE_OFF (h, can_blkzeroout);
  }
  return 0;
}

static int
zero_file (struct handle *h, uint32_t count, uint64_t offset,
           uint32_t flags)
{
  int r = zero_by_fallocate (h, count, offset, flags);

  if (r)
    return r;

  /* Without ZERO_RANGE (tmpfs, for one): punch a hole, then allocate it
   * again since the client did not allow trimming.  If the allocation
   * fails the range is still zero, merely sparse.
   */
  r = try_fallocate (h, &h->can_punch_hole,
                     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     count, offset, "punch hole");
  if (r == 1 && FEATURE_ON (h, can_fallocate)
      && do_fallocate (h, FALLOC_FL_KEEP_SIZE, count, offset) == -1
      && is_unsupported (errno))
    FEATURE_OFF (h, can_fallocate);
  return r;
}

int
file_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct handle *h = handle;
  int r;

  if (!h->can_write) {
    errno = EROFS;
    return -1;
  }
  if (h->is_block_device)
    r = zero_block_device (h, count, offset, flags);
  else
    r = zero_file (h, count, offset, flags);
  if (r == -1)
    return -1;
  if (r == 0) {
    if (flags & NBDCBT_FLAG_FAST_ZERO) {
      errno = ENOTSUP;
      return -1;
    }
    if (file_write_zeroes (h, count, offset) == -1)
      return -1;
  }
  return sync_if_fua (h, flags);
}
