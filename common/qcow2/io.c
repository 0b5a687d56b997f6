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

/* Reading and writing the image file itself. */
#include <config.h>

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2-internal.h"
#include "utils.h"

/* Past the end of the file reads as zeroes, as in QEMU. */
int
qcow2_file_pread (struct qcow2 *q, void *buf, size_t count, uint64_t offset)
{
  if (full_pread (q->fd, buf, count, offset) == -1)
    return qcow2_error (errno, "%s: read at %" PRIu64 ": %m",
                        q->filename, offset);
  return 0;
}

int
qcow2_file_pwrite (struct qcow2 *q, const void *buf, size_t count,
                   uint64_t offset)
{
  if (full_pwrite (q->fd, buf, count, offset) == -1)
    return qcow2_error (errno, "%s: write at %" PRIu64 ": %m",
                        q->filename, offset);
  return 0;
}

/* Write COUNT bytes and make just them durable before returning.  An
 * fdatasync would also write out every dirty page of the image: on the
 * first write into each clean zone, all the data written since the last
 * sync, while the writer and every request behind it wait (a 1 MiB
 * sequential writer spent half its time there).
 */
int
qcow2_file_pwrite_durable (struct qcow2 *q, const void *buf, size_t count,
                           uint64_t offset)
{
  if (full_pwrite_dsync (q->fd, buf, count, offset) == -1)
    return qcow2_error (errno, "%s: durable write at %" PRIu64 ": %m",
                        q->filename, offset);
  return 0;
}

int
qcow2_file_sync (struct qcow2 *q)
{
  if (fdatasync (q->fd) == -1)
    return qcow2_error (errno, "%s: fdatasync: %m", q->filename);
  return 0;
}

uint64_t
qcow2_file_end (struct qcow2 *q)
{
  struct stat st;

  if (fstat (q->fd, &st) == -1)
    return 0;
  return st.st_size;
}
