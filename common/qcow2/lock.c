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

/* Image locking compatible with QEMU's file-posix driver, so that QEMU,
 * qemu-img and qemu-nbd refuse an image we write and we refuse an image
 * they write: the byte-range scheme is common/utils/image-lock.c's.
 */
#include <config.h>

#include <errno.h>

#include "image-lock.h"
#include "qcow2-internal.h"

int
qcow2_lock_file (struct qcow2 *q, bool writable, bool force_share)
{
  const char *perm;
  bool shared;

  if (image_lock (q->fd, writable, force_share, &perm, &shared) == 0)
    return 0;
  /* QEMU's messages: "Failed to get [shared ]"PERM" lock". */
  if (errno == EAGAIN && perm)
    return qcow2_error (EAGAIN, "%s: Failed to get %s\"%s\" lock: is "
                        "another process (QEMU, qemu-img, qemu-nbd, nbdcbt) "
                        "using the image?", q->filename,
                        shared ? "shared " : "", perm);
  if (errno == EAGAIN)
    return qcow2_error (EAGAIN, "%s: the image is locked exclusively by "
                        "another process", q->filename);
  return qcow2_error (errno, "%s: cannot lock the image: %m", q->filename);
}
