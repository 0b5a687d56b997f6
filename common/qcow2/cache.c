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

/* Write-back caches of L2 tables and refcount blocks, and the order in
 * which dirty metadata reaches the disk:
 *
 *   refcount blocks, sync, L2 tables, sync, L1 table
 *
 * so that a cluster is always counted before anything points to it (a
 * crash can leak clusters but never corrupt the image).  Clusters freed
 * by discard or overwrite wait in a pending list until the L2 tables that
 * no longer point to them are on disk (see qcow2_flush_locked).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "qcow2-internal.h"

int
mcache_init (struct mcache *c, size_t n, bool is_l2)
{
  /* A slot's cluster buffer is allocated when the slot is first used
   * (mcache_get): an open touches no memory for tables it never reads.
   */
  c->n = n;
  c->tick = 0;
  c->is_l2 = is_l2;
  c->e = calloc (n, sizeof *c->e);
  if (c->e == NULL)
    return qcow2_error (errno, "calloc: %m");
  return 0;
}

void
mcache_free (struct mcache *c)
{
  size_t i;

  if (c->e == NULL)
    return;
  for (i = 0; i < c->n; i++)
    free (c->e[i].data);
  free (c->e);
  c->e = NULL;
}

static int
write_dirty (struct qcow2 *q, struct mcache *c, bool *wrote)
{
  size_t i;

  for (i = 0; i < c->n; i++) {
    if (c->e[i].offset && c->e[i].dirty) {
      if (qcow2_file_pwrite (q, c->e[i].data, q->cluster_size,
                             c->e[i].offset) == -1) {
        q->write_error = true;
        return -1;
      }
      c->e[i].dirty = false;
      *wrote = true;
    }
  }
  return 0;
}

static bool
any_dirty (struct mcache *c)
{
  size_t i;

  for (i = 0; i < c->n; i++)
    if (c->e[i].offset && c->e[i].dirty)
      return true;
  return false;
}

/* Writes refcount blocks, then L2 tables, then L1, each step synced
 * before the next one that depends on it.
 */
int
qcow2_writeback (struct qcow2 *q)
{
  bool wrote = false;

  if (q->readonly)
    return 0;
  if (write_dirty (q, &q->rb_cache, &wrote) == -1)
    return -1;
  if (any_dirty (&q->l2_cache) || q->l1_dirty) {
    if (wrote && qcow2_file_sync (q) == -1)
      return -1;
    wrote = false;
    if (write_dirty (q, &q->l2_cache, &wrote) == -1)
      return -1;
  }
  if (q->l1_dirty) {
    uint64_t i, n = q->l1_size;
    uint8_t *buf = malloc (n * 8 + 1);
    if (buf == NULL)
      return qcow2_error (errno, "malloc: %m");
    for (i = 0; i < n; i++)
      store_be64 (buf + i * 8, q->l1[i]);
    if ((wrote && qcow2_file_sync (q) == -1) ||
        qcow2_file_pwrite (q, buf, n * 8, q->l1_table_offset) == -1) {
      free (buf);
      q->write_error = true;
      return -1;
    }
    free (buf);
    q->l1_dirty = false;
  }
  return 0;
}

/* The slot holding OFFSET, loading it (READ_IT) or zero-filling it (a new
 * table) when absent.  Valid until the next mcache_get on the same cache.
 */
uint8_t *
mcache_get (struct qcow2 *q, struct mcache *c, uint64_t offset, bool read_it)
{
  size_t i, victim = 0;

  /* 0 marks a free slot; no table lives in the header cluster. */
  if (offset == 0)
    return qcow2_error_null (EIO, "%s: a metadata table at offset 0 (the "
                             "header): the image is corrupt", q->filename);
  for (i = 0; i < c->n; i++) {
    if (c->e[i].offset == offset) {
      c->e[i].last_used = ++c->tick;
      if (!read_it) {
        memset (c->e[i].data, 0, q->cluster_size);
      }
      return c->e[i].data;
    }
  }
  for (i = 0; i < c->n; i++) {
    if (c->e[i].offset == 0) {
      victim = i;
      break;
    }
    if (c->e[i].last_used < c->e[victim].last_used)
      victim = i;
  }
  if (c->e[victim].offset && c->e[victim].dirty) {
    if (c->is_l2) {
      /* The refcounts of whatever this table points to go first. */
      bool wrote = false;
      if (write_dirty (q, &q->rb_cache, &wrote) == -1)
        return NULL;
      if (wrote && qcow2_file_sync (q) == -1)
        return NULL;
    }
    if (qcow2_file_pwrite (q, c->e[victim].data, q->cluster_size,
                           c->e[victim].offset) == -1) {
      q->write_error = true;
      return NULL;
    }
    c->e[victim].dirty = false;
  }
  c->e[victim].offset = 0;
  if (c->e[victim].data == NULL) {
    c->e[victim].data = malloc (q->cluster_size);
    if (c->e[victim].data == NULL)
      return qcow2_error_null (errno, "malloc: %m");
  }
  if (read_it) {
    if (qcow2_file_pread (q, c->e[victim].data, q->cluster_size,
                          offset) == -1)
      return NULL;
  }
  else
    memset (c->e[victim].data, 0, q->cluster_size);
  c->e[victim].offset = offset;
  c->e[victim].dirty = false;
  c->e[victim].last_used = ++c->tick;
  return c->e[victim].data;
}

void
mcache_mark_dirty (struct mcache *c, const uint8_t *data)
{
  size_t i;

  for (i = 0; i < c->n; i++)
    if (c->e[i].data == data)
      c->e[i].dirty = true;
}

/* Forget OFFSET (its cluster was freed) without writing it. */
void
mcache_drop (struct mcache *c, uint64_t offset)
{
  size_t i;

  for (i = 0; i < c->n; i++)
    if (c->e[i].offset == offset) {
      c->e[i].offset = 0;
      c->e[i].dirty = false;
    }
}

/* Everything to disk, then the pending frees.  Called with the metadata
 * lock held, and the I/O lock held for writing if frees are pending.
 */
int
qcow2_flush_locked (struct qcow2 *q)
{
  if (q->readonly)
    return 0;
  if (qcow2_writeback (q) == -1)
    return -1;
  if (q->nr_pending_free) {
    if (qcow2_file_sync (q) == -1)
      return -1;
    if (qcow2_apply_pending_frees (q) == -1)
      return -1;
    if (qcow2_writeback (q) == -1)
      return -1;
  }
  return qcow2_file_sync (q);
}
