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

/* nbdcbt-backup: reading a qcow2 layer of an object store (layer.h). */
#include <config.h>

#include <errno.h>

#include "backup.h"
#include "layer.h"

struct remote_qcow2 *
remote_qcow2_open (struct store *st, const char *name, int flags)
{
  layer_set_error ("reading layers from an object store is not supported "
                   "by this build yet");
  return NULL;
}

void remote_qcow2_close (struct remote_qcow2 *r) { }
uint64_t remote_qcow2_size (struct remote_qcow2 *r) { return 0; }
const char *remote_qcow2_backing_file (struct remote_qcow2 *r) { return NULL; }
const char *remote_qcow2_backing_format (struct remote_qcow2 *r) { return NULL; }
int remote_qcow2_pread (struct remote_qcow2 *r, void *buf, uint64_t count, uint64_t offset) { errno = ENOTSUP; return -1; }
int remote_qcow2_block_status (struct remote_qcow2 *r, uint64_t offset, uint64_t count, uint64_t *pnum, int *status, int *depth) { errno = ENOTSUP; return -1; }
int remote_qcow2_check (struct remote_qcow2 *r, uint64_t *c, uint64_t *l, void (*msg) (void *, const char *), void *o) { errno = ENOTSUP; return -1; }
