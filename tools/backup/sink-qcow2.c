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

/* nbdcbt-backup: sink writing into a qcow2 image through common/qcow2. */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>

#include "backup.h"
#include "qcow2.h"

struct qcow2_sink {
  struct sink s;
  struct qcow2 *q;
};

static int
q_pwrite (struct sink *s, const void *buf, uint64_t count, uint64_t offset)
{
  struct qcow2_sink *qs = (struct qcow2_sink *) s;

  if (qcow2_pwrite (qs->q, buf, count, offset, 0) == -1) {
    error ("qcow2 write at offset %" PRIu64 ": %s", offset,
           qcow2_last_error ());
    return -1;
  }
  return 0;
}

static int
q_zero (struct sink *s, uint64_t count, uint64_t offset)
{
  struct qcow2_sink *qs = (struct qcow2_sink *) s;

  if (qcow2_zero (qs->q, count, offset, QCOW2_ZERO_MAY_UNMAP) == -1) {
    error ("qcow2 zero at offset %" PRIu64 ": %s", offset,
           qcow2_last_error ());
    return -1;
  }
  return 0;
}

static int
q_flush (struct sink *s)
{
  struct qcow2_sink *qs = (struct qcow2_sink *) s;

  if (qcow2_flush (qs->q) == -1) {
    error ("qcow2 flush: %s", qcow2_last_error ());
    return -1;
  }
  return 0;
}

static int
q_close (struct sink *s)
{
  struct qcow2_sink *qs = (struct qcow2_sink *) s;
  int r = qcow2_close (qs->q);

  if (r == -1)
    error ("qcow2 close: %s", qcow2_last_error ());
  free (qs);
  return r;
}

static const struct sink_ops qcow2_ops = {
  .name = "qcow2",
  .pwrite = q_pwrite,
  .zero = q_zero,
  .flush = q_flush,
  .close = q_close,
};

struct sink *
sink_qcow2_wrap (struct qcow2 *q)
{
  struct qcow2_sink *qs = calloc (1, sizeof *qs);

  if (qs == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  qs->s.ops = &qcow2_ops;
  qs->s.reads_zero = true;
  qs->q = q;
  return &qs->s;
}
