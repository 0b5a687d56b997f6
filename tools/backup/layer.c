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

/* nbdcbt-backup: reading a backup layer from any store (layer.h). */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "cleanup.h"
#include "layer.h"
#include "store.h"

struct layer {
  struct qcow2 *q;              /* a directory's layer, or */
  struct remote_qcow2 *r;       /* an object store's */
  struct qcow2_info qi;
};

static __thread char *last_error;
static __thread bool last_is_qcow2;

void
layer_set_error (const char *fs, ...)
{
  va_list args;

  free (last_error);
  va_start (args, fs);
  if (vasprintf (&last_error, fs, args) == -1)
    last_error = NULL;
  va_end (args);
  last_is_qcow2 = false;
}

const char *
layer_last_error (void)
{
  if (last_is_qcow2)
    return qcow2_last_error ();
  return last_error ? last_error : "unknown error";
}

static void
qcow2_failed (void)
{
  last_is_qcow2 = true;
}

struct layer *
layer_open (struct store *st, const char *name, int flags)
{
  struct layer *l = calloc (1, sizeof *l);

  if (l == NULL) {
    layer_set_error ("%s", strerror (errno));
    return NULL;
  }
  if (store_dir (st)) {
    CLEANUP_FREE char *path = store_object_path (st, name);
    int qflags = QCOW2_OPEN_RDONLY | QCOW2_OPEN_NO_BITMAP_IN_USE;

    if (flags & LAYER_NO_BACKING)
      qflags |= QCOW2_OPEN_NO_BACKING;
    if (path == NULL || (l->q = qcow2_open (path, qflags)) == NULL) {
      qcow2_failed ();
      free (l);
      return NULL;
    }
    qcow2_get_info (l->q, &l->qi);
  }
  else if ((l->r = remote_qcow2_open (st, name, flags)) == NULL) {
    free (l);
    return NULL;
  }
  return l;
}

void
layer_close (struct layer *l)
{
  if (l == NULL)
    return;
  if (l->q)
    qcow2_close (l->q);
  if (l->r)
    remote_qcow2_close (l->r);
  free (l);
}

uint64_t
layer_size (struct layer *l)
{
  return l->q ? qcow2_get_size (l->q) : remote_qcow2_size (l->r);
}

const char *
layer_backing_file (struct layer *l)
{
  return l->q ? l->qi.backing_file : remote_qcow2_backing_file (l->r);
}

const char *
layer_backing_format (struct layer *l)
{
  return l->q ? l->qi.backing_format : remote_qcow2_backing_format (l->r);
}

int
layer_pread (struct layer *l, void *buf, uint64_t count, uint64_t offset)
{
  if (l->q) {
    if (qcow2_pread (l->q, buf, count, offset) == -1) {
      qcow2_failed ();
      return -1;
    }
    return 0;
  }
  return remote_qcow2_pread (l->r, buf, count, offset);
}

int
layer_block_status (struct layer *l, uint64_t offset, uint64_t count,
                    uint64_t *pnum, int *status, int *depth)
{
  if (l->q) {
    if (qcow2_block_status (l->q, offset, count, pnum, status,
                            depth) == -1) {
      qcow2_failed ();
      return -1;
    }
    return 0;
  }
  return remote_qcow2_block_status (l->r, offset, count, pnum, status,
                                    depth);
}

int
layer_check (struct layer *l, uint64_t *corruptions, uint64_t *leaks,
             void (*msg) (void *opaque, const char *text), void *opaque)
{
  if (l->q) {
    struct qcow2_check_result cr;

    if (qcow2_check (l->q, 0, &cr, msg, opaque) == -1) {
      int e = errno;
      qcow2_failed ();
      errno = e;
      return -1;
    }
    *corruptions = cr.corruptions;
    *leaks = cr.leaks;
    return 0;
  }
  return remote_qcow2_check (l->r, corruptions, leaks, msg, opaque);
}
