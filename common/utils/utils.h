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

/* Small shared helpers: full I/O loops and human size parsing. */
#ifndef NBDCBT_UTILS_H
#define NBDCBT_UTILS_H
#include <stdint.h>
#include <sys/types.h>

/* Read/write exactly COUNT bytes (EINTR and short transfers retried).
 * 0 or -1 with errno.  full_read at end of file fails with errno EPIPE
 * (ENODATA if nothing was read); full_pread past the end of file fills
 * the rest of BUF with zeroes and succeeds.
 */
extern int full_read (int fd, void *buf, size_t count);
extern int full_write (int fd, const void *buf, size_t count);
extern int full_pread (int fd, void *buf, size_t count, off_t offset);
extern int full_pwrite (int fd, const void *buf, size_t count, off_t offset);
/* full_pwrite, durable when it returns: RWF_DSYNC makes the bytes
 * written durable and nothing else, where fdatasync would also write out
 * every other dirty page of the file.  Without RWF_DSYNC in the kernel:
 * full_pwrite, then fdatasync.
 */
extern int full_pwrite_dsync (int fd, const void *buf, size_t count,
                              off_t offset);

/* "512", "4k", "4K", "1M", "1MiB", "2G", "1T", "1E" (powers of 1024).  Returns
 * -1 and sets *err to a static message on bad input.
 */
extern int64_t parse_human_size (const char *str, const char **err);
#endif
