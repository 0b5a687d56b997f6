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

/* Changing the virtual size: growing (with a larger L1 table when
 * needed) or shrinking when no cluster past the new end is in use.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "qcow2-internal.h"

static int
grow_l1 (struct qcow2 *q, uint64_t new_l1_size)
{
  uint64_t bytes = new_l1_size * 8, i;
  uint64_t clusters = (bytes + q->cluster_size - 1) >> q->cluster_bits;
  uint64_t old_off = q->l1_table_offset, old_size = q->l1_size;
  uint64_t *nl1;
  uint8_t *buf;
  int64_t off;

  if (bytes > MAX_L1_BYTES)
    return qcow2_error (EFBIG, "%s: the L1 table would exceed 32 MiB",
                        q->filename);
  /* Every L2 table the L1 points to must be on disk first. */
  if (qcow2_writeback (q) == -1)
    return -1;
  nl1 = calloc (new_l1_size, 8);
  buf = calloc (clusters, q->cluster_size);
  if (nl1 == NULL || buf == NULL) {
    free (nl1);
    free (buf);
    return qcow2_error (errno, "calloc: %m");
  }
  memcpy (nl1, q->l1, old_size * 8);
  for (i = 0; i < new_l1_size; i++)
    store_be64 (buf + i * 8, nl1[i]);
  off = qcow2_alloc_clusters (q, clusters);
  if (off == -1 ||
      qcow2_file_pwrite (q, buf, clusters << q->cluster_bits, off) == -1 ||
      qcow2_writeback (q) == -1 || qcow2_file_sync (q) == -1) {
    free (nl1);
    free (buf);
    return -1;
  }
  free (buf);
  free (q->l1);
  q->l1 = nl1;
  q->l1_size = new_l1_size;
  q->l1_table_offset = off;
  if (qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1) {
    q->write_error = true;
    return -1;
  }
  if (old_size &&
      qcow2_update_refcount (q, old_off,
                             (old_size * 8 + q->cluster_size - 1)
                             >> q->cluster_bits, -1) == -1)
    return -1;
  return 0;
}

static int
resize_locked (struct qcow2 *q, uint64_t new_size)
{
  uint64_t per_l1 = q->l2_entries * q->cluster_size;
  uint64_t need_l1 = (new_size + per_l1 - 1) / per_l1;
  uint64_t old_size = q->size;

  if (q->readonly)
    return qcow2_error (EROFS, "%s: image is read-only", q->filename);
  if (q->write_error)
    return qcow2_error (EIO, "%s: an earlier metadata write failed",
                        q->filename);
  if (new_size % 512)
    return qcow2_error (EINVAL, "%s: the new size must be a multiple of 512",
                        q->filename);
  if (new_size > (UINT64_C (1) << 62))
    return qcow2_error (EINVAL, "%s: the new size is too large", q->filename);
  if (q->nr_bms > 0 && !q->bitmaps_ours)
    return qcow2_error (EBUSY, "%s: cannot resize qcow2 with persistent "
                        "bitmaps that were not loaded into memory",
                        q->filename);
  if (q->nb_snapshots > 0 && new_size < old_size)
    return qcow2_error (ENOTSUP, "%s: cannot shrink an image with internal "
                        "snapshots", q->filename);

  if (new_size < old_size) {
    uint64_t g = (new_size + q->cluster_size - 1) & ~(q->cluster_size - 1);
    for (; g < old_size; g += q->cluster_size) {
      uint64_t e, b;
      if (qcow2_get_l2_entry (q, g, &e, &b) == -1)
        return -1;
      if (qcow2_cluster_type (q, e) != CT_UNALLOCATED || b != 0)
        return qcow2_error (EBUSY, "%s: cannot shrink: data lies past the "
                            "new end (at guest offset %#" PRIx64 ")",
                            q->filename, g);
    }
  }
  else if (need_l1 > q->l1_size) {
    if (grow_l1 (q, need_l1) == -1)
      return -1;
  }
  q->size = new_size;
  if (qcow2_writeback (q) == -1 || qcow2_file_sync (q) == -1 ||
      qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1) {
    q->size = old_size;
    return -1;
  }
  return 0;
}

int
qcow2_resize (struct qcow2 *q, uint64_t new_size)
{
  int r;

  if (q->is_raw)
    return qcow2_error (EROFS, "%s: backing file is read-only", q->filename);
  pthread_rwlock_wrlock (&q->io_lock);
  pthread_mutex_lock (&q->lock);
  r = resize_locked (q, new_size);
  pthread_mutex_unlock (&q->lock);
  pthread_rwlock_unlock (&q->io_lock);
  return r;
}
