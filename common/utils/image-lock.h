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

/* QEMU's image locks (block/file-posix.c's scheme), for every image file
 * nbdcbt opens: the qcow2 library, the file plugin's raw images and block
 * devices.
 *
 * QEMU takes shared (read) OFD locks on single bytes of the image file:
 * byte 100 + i while it holds permission bit i, byte 200 + i while it does
 * not let others have permission bit i.  Before using a permission it
 * tests that nobody else locks 200 + i; before denying one to others it
 * tests that nobody else locks 100 + i.  The bits (BLK_PERM_*) are
 * consistent read (0), write (1), write unchanged (2) and resize (3).
 *
 * An image file node QEMU writes (qemu-img bitmap, qemu-nbd, qemu-io,
 * QEMU's disks) holds consistent read, write and resize and shares only
 * consistent read and write unchanged (bytes 100, 101, 103, 201, 203);
 * read-only: consistent read, sharing the same (bytes 100, 201, 203);
 * read-only with force-share (-U): consistent read, sharing everything
 * (byte 100).  image_lock takes the same bytes, so either side refuses the
 * other as QEMU refuses a second QEMU.
 */
#ifndef NBDCBT_IMAGE_LOCK_H
#define NBDCBT_IMAGE_LOCK_H

#include <stdbool.h>

/* Lock FD (any open mode: the locks are shared ones) for a read-write
 * (WRITABLE) or read-only user, sharing every permission with
 * FORCE_SHARE.  0 when locked, or when the filesystem has no OFD locks
 * (QEMU's locking=auto goes on without them as well).  -1 with errno
 * EAGAIN when another process's locks conflict: *PERM names the
 * permission ("write", ...) and *SHARED tells whether it was the shared
 * one (QEMU's messages: "Failed to get [shared ]"PERM" lock").  -1 with
 * another errno on other errors (*PERM NULL).
 */
extern int image_lock (int fd, bool writable, bool force_share,
                       const char **perm, bool *shared);

#endif /* NBDCBT_IMAGE_LOCK_H */
