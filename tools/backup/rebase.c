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

/* nbdcbt-backup: change the backing file name in a qcow2 layer's header
 * (what 'qemu-img rebase -u' and QEMU's block-commit do to the overlay
 * above the committed layers).
 *
 * Prune needs this to be atomic: a process killed at any moment must
 * leave the old name or the new one.  So only the bytes that change are
 * written, by one pwrite, from the backing file's size field (offset 16)
 * to the end of the name, all inside the first 4K page of the file: the
 * kernel copies a write of one page into the page cache whole, so a
 * kill cannot tear it (a power loss would need the sector to be written
 * whole, which is what QEMU's own header updates assume).  The name is
 * the last thing in the header cluster of the files nbdcbt-backup
 * writes; a file laid out otherwise is refused rather than rewritten.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "byte-order.h"
#include "utils.h"

#define HEADER_PAGE 4096

int
qcow2_file_set_backing (const char *path, const char *old_name,
                        const char *new_name)
{
  unsigned char buf[HEADER_PAGE];
  uint64_t off;
  uint32_t old_len, new_len = strlen (new_name), end, i;
  int fd;

  fd = open (path, O_RDWR | O_CLOEXEC);
  if (fd == -1) {
    error_errno ("%s", path);
    return -1;
  }
  if (full_pread (fd, buf, sizeof buf, 0) == -1) {
    error_errno ("%s: read", path);
    goto fail;
  }
  off = load_be64 (buf + 8);
  old_len = load_be32 (buf + 16);
  if (load_be32 (buf) != 0x514649fb || off < 72 ||
      off + old_len > HEADER_PAGE || off + new_len > HEADER_PAGE ||
      old_len != strlen (old_name) ||
      memcmp (buf + off, old_name, old_len) != 0) {
    /* Already done (an earlier run was killed after this step)? */
    if (off + new_len <= HEADER_PAGE &&
        load_be32 (buf + 16) == new_len &&
        memcmp (buf + off, new_name, new_len) == 0) {
      close (fd);
      return 0;
    }
    error ("%s: the header does not name the backing file %s where "
           "expected; not changed", path, old_name);
    goto fail;
  }
  /* Nothing may follow the name in the page (the rest is zeroes). */
  for (i = off + old_len; i < HEADER_PAGE; ++i)
    if (buf[i] != 0) {
      error ("%s: data follows the backing file name in the header; "
             "not changed", path);
      goto fail;
    }
  end = off + (old_len > new_len ? old_len : new_len);
  memset (buf + off, 0, end - off);
  memcpy (buf + off, new_name, new_len);
  store_be32 (buf + 16, new_len);
  if (pwrite (fd, buf + 16, end - 16, 16) != (ssize_t) (end - 16)) {
    error_errno ("%s: write", path);
    goto fail;
  }
  if (fsync (fd) == -1) {
    error_errno ("%s: fsync", path);
    goto fail;
  }
  close (fd);
  return 0;

 fail:
  close (fd);
  return -1;
}
