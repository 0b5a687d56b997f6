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

#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include "utils.h"

/* The loop of the full_* functions: transfer COUNT bytes at OFFSET (or
 * at the file position if OFFSET is -1), retrying short transfers and
 * EINTR; positioned writes with pwritev2's flags RWF if not 0.  Returns
 * the bytes done, fewer than COUNT only at end of file (reads), or -1
 * with errno set.
 */
static ssize_t
transfer_all (int fd, char *buf, size_t count, off_t offset, bool is_write,
              int rwf)
{
  size_t done = 0;

  while (done < count) {
    char *p = buf + done;
    size_t n = count - done;
    ssize_t r;

    if (is_write && rwf) {
      struct iovec iov = { .iov_base = p, .iov_len = n };

      r = pwritev2 (fd, &iov, 1, offset + done, rwf);
    }
    else if (is_write)
      r = offset == -1 ? write (fd, p, n) : pwrite (fd, p, n, offset + done);
    else
      r = offset == -1 ? read (fd, p, n) : pread (fd, p, n, offset + done);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      if (is_write) {
        /* Not expected from a file; never spin on it. */
        errno = EIO;
        return -1;
      }
      break;
    }
    done += r;
  }
  return done;
}

int
full_read (int fd, void *buf, size_t count)
{
  ssize_t r = transfer_all (fd, buf, count, -1, false, 0);

  if (r == -1)
    return -1;
  if ((size_t) r < count) {
    errno = r ? EPIPE : ENODATA;
    return -1;
  }
  return 0;
}

int
full_write (int fd, const void *buf, size_t count)
{
  return transfer_all (fd, (char *) buf, count, -1, true, 0) == -1 ? -1 : 0;
}

int
full_pread (int fd, void *buf, size_t count, off_t offset)
{
  ssize_t r = transfer_all (fd, buf, count, offset, false, 0);

  if (r == -1)
    return -1;
  /* Past the end of file: reads as zeroes. */
  memset ((char *) buf + r, 0, count - r);
  return 0;
}

int
full_pwrite (int fd, const void *buf, size_t count, off_t offset)
{
  return transfer_all (fd, (char *) buf, count, offset, true, 0) == -1
    ? -1 : 0;
}

int
full_pwrite_dsync (int fd, const void *buf, size_t count, off_t offset)
{
  if (transfer_all (fd, (char *) buf, count, offset, true, RWF_DSYNC) != -1)
    return 0;
  if (errno != EOPNOTSUPP && errno != ENOSYS)
    return -1;
  /* No RWF_DSYNC in this kernel: all of it again (rewriting what the
   * first try may have written is harmless), then the whole file.
   */
  if (full_pwrite (fd, buf, count, offset) == -1)
    return -1;
  return fdatasync (fd);
}

int64_t
parse_human_size (const char *str, const char **err)
{
  char *end;
  unsigned long long v;
  int shift = 0;

  while (isspace ((unsigned char) *str))
    str++;
  if (*str == '-' || !isdigit ((unsigned char) *str)) {
    *err = "expected a non-negative number";
    return -1;
  }
  errno = 0;
  v = strtoull (str, &end, 10);
  if (errno == ERANGE) {
    *err = "number too large";
    return -1;
  }
  switch (*end) {
  case '\0': break;
  case 'b': case 'B': shift = 0; end++; break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  case 'p': case 'P': shift = 50; end++; break;
  case 'e': case 'E': shift = 60; end++; break;
  default:
    *err = "unknown size suffix (use b, k, M, G, T, P or E)";
    return -1;
  }
  if (shift && (strcmp (end, "iB") == 0 || strcmp (end, "B") == 0))
    end += strlen (end);
  if (*end != '\0') {
    *err = "trailing characters after the size";
    return -1;
  }
  if (v > (UINT64_C (0x7fffffffffffffff) >> shift)) {
    *err = "size too large";
    return -1;
  }
  return (int64_t) (v << shift);
}
