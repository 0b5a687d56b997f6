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

/* QEMU-compatible image locks: see image-lock.h. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>

#include "image-lock.h"

#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200

#define PERM_CONSISTENT_READ (1u << 0)
#define PERM_WRITE (1u << 1)
#define PERM_WRITE_UNCHANGED (1u << 2)
#define PERM_RESIZE (1u << 3)
#define PERM_COUNT 4
#define PERM_ALL ((1u << PERM_COUNT) - 1)

static const char *const perm_names[PERM_COUNT] = {
  "consistent read", "write", "write unchanged", "resize",
};

/* A shared lock on byte OFF.  Returns 0, or -1 with errno. */
static int
lock_byte (int fd, off_t off)
{
  struct flock fl = {
    .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
  };
  return fcntl (fd, F_OFD_SETLK, &fl);
}

/* Does another open file description lock byte OFF?  1 yes, 0 no, -1
 * error.
 */
static int
byte_locked_by_others (int fd, off_t off)
{
  struct flock fl = {
    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
  };
  if (fcntl (fd, F_OFD_GETLK, &fl) == -1)
    return -1;
  return fl.l_type != F_UNLCK;
}

int
image_lock (int fd, bool writable, bool force_share, const char **perm_ret,
            bool *shared_ret)
{
  unsigned perm = PERM_CONSISTENT_READ, shared, i;
  int r;

  *perm_ret = NULL;
  *shared_ret = false;
  if (writable)
    perm |= PERM_WRITE | PERM_RESIZE;
  shared = force_share ? PERM_ALL : PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED;

  /* Take ours first, then look for conflicts, as QEMU does: of two
   * processes racing, at least one sees the other.
   */
  for (i = 0; i < PERM_COUNT; i++) {
    if (((perm >> i) & 1) && lock_byte (fd, LOCK_PERM_BASE + i) == -1)
      goto lock_failed;
    if (!((shared >> i) & 1) && lock_byte (fd, LOCK_SHARED_BASE + i) == -1)
      goto lock_failed;
  }
  for (i = 0; i < PERM_COUNT; i++)
    if ((perm >> i) & 1) {
      r = byte_locked_by_others (fd, LOCK_SHARED_BASE + i);
      if (r == -1)
        goto lock_failed;
      if (r == 1) {
        *perm_ret = perm_names[i];
        errno = EAGAIN;
        return -1;
      }
    }
  for (i = 0; i < PERM_COUNT; i++)
    if (!((shared >> i) & 1)) {
      r = byte_locked_by_others (fd, LOCK_PERM_BASE + i);
      if (r == -1)
        goto lock_failed;
      if (r == 1) {
        *perm_ret = perm_names[i];
        *shared_ret = true;
        errno = EAGAIN;
        return -1;
      }
    }
  return 0;

 lock_failed:
  /* A filesystem without OFD locks: QEMU (locking=auto) goes on
   * without them too.
   */
  if (errno == EINVAL || errno == ENOTSUP || errno == ENOLCK ||
      errno == ENOSYS)
    return 0;
  /* Someone holds an exclusive lock on our bytes. */
  if (errno == EACCES)
    errno = EAGAIN;
  return -1;
}
