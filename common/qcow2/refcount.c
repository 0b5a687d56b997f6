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

/* Refcount table and refcount blocks (any width from 1 to 64 bits),
 * cluster allocation and freeing, and growth of the refcount table.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "cleanup.h"
#include "qcow2-internal.h"

uint64_t
rb_get (const uint8_t *block, unsigned bits, uint64_t i)
{
  switch (bits) {
  case 64: return load_be64 (block + i * 8);
  case 32: return load_be32 (block + i * 4);
  case 16: return load_be16 (block + i * 2);
  case 8: return block[i];
  default: {
    /* Sub-byte widths start at the least significant bit. */
    uint64_t bit = i * bits;
    return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
  }
  }
}

void
rb_set (uint8_t *block, unsigned bits, uint64_t i, uint64_t v)
{
  switch (bits) {
  case 64: store_be64 (block + i * 8, v); break;
  case 32: store_be32 (block + i * 4, v); break;
  case 16: store_be16 (block + i * 2, v); break;
  case 8: block[i] = v; break;
  default: {
    uint64_t bit = i * bits;
    uint8_t mask = ((1u << bits) - 1) << (bit % 8);
    block[bit / 8] = (block[bit / 8] & ~mask) | ((v << (bit % 8)) & mask);
  }
  }
}

static uint64_t
max_refcount (struct qcow2 *q)
{
  return q->refcount_bits == 64 ? UINT64_MAX
    : (UINT64_C (1) << q->refcount_bits) - 1;
}

int
qcow2_load_reftable (struct qcow2 *q)
{
  uint64_t i, n = (uint64_t) q->refcount_table_clusters * q->cluster_size / 8;
  uint8_t *buf = malloc (n * 8);

  if (buf == NULL)
    return qcow2_error (errno, "malloc: %m");
  q->reftable = malloc (n * 8);
  if (q->reftable == NULL) {
    free (buf);
    return qcow2_error (errno, "malloc: %m");
  }
  if (qcow2_file_pread (q, buf, n * 8, q->refcount_table_offset) == -1) {
    free (buf);
    return -1;
  }
  q->reftable_entries = n;
  for (i = 0; i < n; i++) {
    uint64_t e = load_be64 (buf + i * 8);
    q->reftable[i] = e;
    if (e == 0)
      continue;
    if (e & REFT_RESERVED_MASK) {
      free (buf);
      return qcow2_error (EINVAL, "%s: refcount table entry %" PRIu64
                          " has reserved bits set (%#" PRIx64 ")",
                          q->filename, i, e);
    }
    if (e < q->cluster_size || e >= q->host_end ||
        (e & (q->cluster_size - 1))) {
      free (buf);
      return qcow2_error (EINVAL, "%s: refcount block %" PRIu64 " at %#"
                          PRIx64 " is unaligned, in the header or past the "
                          "end of the file", q->filename, i, e);
    }
  }
  free (buf);
  return 0;
}

/* The refcount block for table index TI, or NULL with *none set when the
 * table has no block there.
 */
static uint8_t *
get_block (struct qcow2 *q, uint64_t ti, bool *none)
{
  *none = false;
  if (ti >= q->reftable_entries || q->reftable[ti] == 0) {
    *none = true;
    return NULL;
  }
  return mcache_get (q, &q->rb_cache, q->reftable[ti] & REFT_OFFSET_MASK,
                     true);
}

int
qcow2_get_refcount (struct qcow2 *q, uint64_t idx, uint64_t *ref)
{
  bool none;
  uint8_t *b = get_block (q, idx / q->rb_entries, &none);

  if (none) {
    *ref = 0;
    return 0;
  }
  if (b == NULL)
    return -1;
  *ref = rb_get (b, q->refcount_bits, idx % q->rb_entries);
  return 0;
}

int
qcow2_update_refcount (struct qcow2 *q, uint64_t offset, uint64_t nb,
                       int64_t delta)
{
  uint64_t idx = offset >> q->cluster_bits, end = idx + nb;

  uint8_t *b = NULL;
  uint64_t bti = UINT64_MAX;

  /* One block lookup and one dirty mark per refcount block. */
  for (; idx < end; idx++) {
    uint64_t v;

    if (idx / q->rb_entries != bti) {
      bool none;

      bti = idx / q->rb_entries;
      b = get_block (q, bti, &none);
      if (none)
        return qcow2_error (EIO, "%s: cluster %#" PRIx64 " has no refcount "
                            "block (image corrupt)", q->filename,
                            idx << q->cluster_bits);
      if (b == NULL)
        return -1;
      mcache_mark_dirty (&q->rb_cache, b);
    }
    v = rb_get (b, q->refcount_bits, idx % q->rb_entries);
    if ((delta < 0 && v < (uint64_t) -delta) ||
        (delta > 0 && max_refcount (q) - v < (uint64_t) delta))
      return qcow2_error (EIO, "%s: refcount of cluster %#" PRIx64
                          " would %s (image corrupt)", q->filename,
                          idx << q->cluster_bits,
                          delta < 0 ? "underflow" : "overflow");
    v += delta;
    rb_set (b, q->refcount_bits, idx % q->rb_entries, v);
    if (v == 0 && idx < q->free_hint)
      q->free_hint = idx;
  }
  return 0;
}

static int
write_reftable_entry (struct qcow2 *q, uint64_t ti)
{
  uint8_t buf[8];

  store_be64 (buf, q->reftable[ti]);
  return qcow2_file_pwrite (q, buf, 8, q->refcount_table_offset + ti * 8);
}

/* A range without a refcount block has no used cluster, so the new block
 * goes into the first cluster of its own range and counts itself.
 */
static int
create_block (struct qcow2 *q, uint64_t ti)
{
  uint64_t off = ti * q->rb_entries << q->cluster_bits;
  uint8_t *b;

  if (ti == 0)
    return qcow2_error (EIO, "%s: refcount table has no block for the "
                        "header (image corrupt)", q->filename);
  if (off >= MAX_HOST_OFFSET)
    return qcow2_error (ENOSPC, "%s: image would grow past 2^56 bytes",
                        q->filename);
  b = mcache_get (q, &q->rb_cache, off, false);
  if (b == NULL)
    return -1;
  rb_set (b, q->refcount_bits, 0, 1);
  if (qcow2_file_pwrite (q, b, q->cluster_size, off) == -1 ||
      qcow2_file_sync (q) == -1)
    goto err;
  q->reftable[ti] = off;
  if (write_reftable_entry (q, ti) == -1 || qcow2_file_sync (q) == -1)
    goto err;
  if (off + q->cluster_size > q->host_end)
    q->host_end = off + q->cluster_size;
  return 0;
 err:
  q->write_error = true;
  return -1;
}

/* A larger refcount table covering table index TI, placed with its own
 * new refcount blocks in fresh ranges beyond every used cluster.
 */
static int
grow_reftable (struct qcow2 *q, uint64_t ti)
{
  uint64_t cs = q->cluster_size, per = cs / 8;
  uint64_t host_clusters = (q->host_end + cs - 1) >> q->cluster_bits;
  uint64_t r = (host_clusters + q->rb_entries - 1) / q->rb_entries;
  uint64_t new_entries, n, k = 1, S, j, c;
  uint64_t old_off = q->refcount_table_offset;
  uint64_t old_clusters = q->refcount_table_clusters;
  uint64_t *nt;
  uint8_t *buf;

  if (r < ti)
    r = ti;
  for (;;) {
    new_entries = q->reftable_entries * 2;
    if (new_entries < ti + 1)
      new_entries = ti + 1;
    if (new_entries < r + k)
      new_entries = r + k;
    new_entries = (new_entries + per - 1) / per * per;
    n = new_entries / per;
    if (k * q->rb_entries >= k + n)
      break;
    k++;
  }
  if (n * cs > MAX_REFTABLE_BYTES)
    return qcow2_error (ENOSPC, "%s: the refcount table would exceed "
                        "8 MiB", q->filename);
  S = r * q->rb_entries;
  if (((S + k + n) << q->cluster_bits) >= MAX_HOST_OFFSET ||
      S + k + n < S)
    return qcow2_error (ENOSPC, "%s: image would grow past 2^56 bytes",
                        q->filename);
  if (qcow2_writeback (q) == -1)
    return -1;

  buf = calloc (1, cs);
  nt = calloc (new_entries, 8);
  if (buf == NULL || nt == NULL) {
    free (buf);
    free (nt);
    return qcow2_error (errno, "calloc: %m");
  }
  memcpy (nt, q->reftable, q->reftable_entries * 8);
  for (j = 0; j < k; j++) {
    memset (buf, 0, cs);
    for (c = S; c < S + k + n; c++)
      if (c / q->rb_entries == r + j)
        rb_set (buf, q->refcount_bits, c % q->rb_entries, 1);
    if (qcow2_file_pwrite (q, buf, cs, (S + j) << q->cluster_bits) == -1)
      goto err;
    nt[r + j] = (S + j) << q->cluster_bits;
  }
  for (j = 0; j < n; j++) {
    uint64_t e;
    for (e = 0; e < per; e++)
      store_be64 (buf + e * 8, nt[j * per + e]);
    if (qcow2_file_pwrite (q, buf, cs, (S + k + j) << q->cluster_bits) == -1)
      goto err;
  }
  if (qcow2_file_sync (q) == -1)
    goto err;
  free (q->reftable);
  q->reftable = nt;
  nt = NULL;
  q->reftable_entries = new_entries;
  q->refcount_table_offset = (S + k) << q->cluster_bits;
  q->refcount_table_clusters = n;
  q->host_end = (S + k + n) << q->cluster_bits;
  if (qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1)
    goto err;
  free (buf);
  /* Nothing points at the old table any more. */
  return qcow2_update_refcount (q, old_off, old_clusters, -1);

 err:
  free (buf);
  free (nt);
  q->write_error = true;
  return -1;
}

/* NB contiguous free clusters, counted (refcount 1); their byte offset. */
/* Refcount blocks for the MISSING ranges without one that a run of NB
 * clusters at RUN_START touches: they go right after the run (clusters
 * RUN_START + NB ...), each written with the refcounts of the new blocks
 * it covers before the refcount table points to it, so a crash leaves at
 * most leaks.
 */
static int
place_blocks (struct qcow2 *q, uint64_t run_start, uint64_t nb,
              uint64_t missing)
{
  uint64_t first_ti = run_start / q->rb_entries;
  uint64_t last_ti = (run_start + nb + missing - 1) / q->rb_entries;
  uint64_t cs = q->cluster_size, ti, j, k, n = 0;
  CLEANUP_FREE uint64_t *tis = calloc (missing, sizeof *tis);
  CLEANUP_FREE uint8_t *bufs = calloc (missing, cs);

  if (tis == NULL || bufs == NULL)
    return qcow2_error (errno, "calloc: %m");
  for (ti = first_ti; ti <= last_ti; ti++)
    if (q->reftable[ti] == 0) {
      if (n == missing)
        return qcow2_error (EIO, "%s: refcount block count mismatch",
                            q->filename);
      tis[n++] = ti;
    }
  if (n != missing)
    return qcow2_error (EIO, "%s: refcount block count mismatch",
                        q->filename);
  /* Each new block's own refcount: in a new block, or in an existing
   * one (through the cache, written back before the table points to
   * the new blocks).
   */
  for (j = 0; j < missing; j++) {
    uint64_t c = run_start + nb + j, tc = c / q->rb_entries;

    mcache_drop (&q->rb_cache, c << q->cluster_bits);
    for (k = 0; k < missing && tis[k] != tc; k++)
      ;
    if (k < missing)
      rb_set (bufs + k * cs, q->refcount_bits, c % q->rb_entries, 1);
    else if (qcow2_update_refcount (q, c << q->cluster_bits, 1, 1) == -1)
      return -1;
  }
  for (k = 0; k < missing; k++)
    if (qcow2_file_pwrite (q, bufs + k * cs, cs,
                           (run_start + nb + k) << q->cluster_bits) == -1)
      goto err;
  if (qcow2_writeback (q) == -1 || qcow2_file_sync (q) == -1)
    goto err;
  for (k = 0; k < missing; k++) {
    q->reftable[tis[k]] = (run_start + nb + k) << q->cluster_bits;
    if (write_reftable_entry (q, tis[k]) == -1)
      goto err;
  }
  if (qcow2_file_sync (q) == -1)
    goto err;
  if (((run_start + nb + missing) << q->cluster_bits) > q->host_end)
    q->host_end = (run_start + nb + missing) << q->cluster_bits;
  return 0;
 err:
  q->write_error = true;
  return -1;
}

int64_t
qcow2_alloc_clusters (struct qcow2 *q, uint64_t nb)
{
  bool fresh;

  return qcow2_alloc_fresh_clusters (q, nb, &fresh);
}

int64_t
qcow2_alloc_fresh_clusters (struct qcow2 *q, uint64_t nb, bool *fresh)
{
  uint64_t idx = q->free_hint, run_start = 0, run = 0;
  /* Free clusters past this were never written (nothing below moves it;
   * the blocks and tables written on the way are counted, so not in
   * the run).
   */
  uint64_t zero_from = q->zero_from;
  uint64_t first_free = UINT64_MAX;
  /* A run longer than a refcount block covers cannot get self-describing
   * blocks at the start of each range it crosses (they would break it):
   * the ranges without a block count as free, and their blocks go after
   * the run (MISSING of them).
   */
  bool long_run = nb >= q->rb_entries / 2;
  uint64_t missing = 0;

  if (q->write_error)
    return qcow2_error (EIO, "%s: an earlier metadata write failed; the "
                        "image is read-only now", q->filename);
  while (run < nb + missing) {
    uint64_t ti = idx / q->rb_entries;
    bool none;
    uint8_t *b;

    if ((idx << q->cluster_bits) >= MAX_HOST_OFFSET)
      return qcow2_error (ENOSPC, "%s: image would grow past 2^56 bytes",
                          q->filename);
    if (ti >= q->reftable_entries) {
      if (grow_reftable (q, ti) == -1)
        return -1;
      /* The new table and its blocks may lie where the run was. */
      if (run > 0) {
        idx = run_start;
        run = missing = 0;
      }
      continue;
    }
    b = get_block (q, ti, &none);
    if (none && long_run) {
      uint64_t take = (ti + 1) * q->rb_entries - idx;

      if (run == 0)
        run_start = idx;
      if (first_free == UINT64_MAX)
        first_free = idx;
      missing++;
      if (take > nb + missing - run)
        take = nb + missing - run;
      run += take;
      idx += take;
      continue;
    }
    if (none) {
      if (create_block (q, ti) == -1)
        return -1;
      continue;
    }
    if (b == NULL)
      return -1;
    /* Scan the rest of this block. */
    for (; idx / q->rb_entries == ti && run < nb + missing; idx++) {
      if (rb_get (b, q->refcount_bits, idx % q->rb_entries) == 0) {
        if (first_free == UINT64_MAX)
          first_free = idx;
        if (run == 0)
          run_start = idx;
        run++;
      }
      else
        run = missing = 0;
    }
  }
  /* Cluster 0 is the header: free only in a corrupt refcount structure
   * (QEMU likewise refuses to allocate at offset 0).
   */
  if (run_start == 0)
    return qcow2_error (EIO, "%s: the header cluster has refcount 0: the "
                        "image is corrupt; refusing to allocate over it "
                        "('qemu-img check -r all' repairs it)", q->filename);
  if (missing > 0 && place_blocks (q, run_start, nb, missing) == -1)
    return -1;
  if (qcow2_update_refcount (q, run_start << q->cluster_bits, nb, 1) == -1)
    return -1;
  q->free_hint = first_free < run_start ? first_free
    : run_start + nb + missing;
  if (((run_start + nb) << q->cluster_bits) > q->host_end)
    q->host_end = (run_start + nb) << q->cluster_bits;
  *fresh = (run_start << q->cluster_bits) >= zero_from;
  if (q->host_end > q->zero_from)
    q->zero_from = q->host_end;
  return run_start << q->cluster_bits;
}

int
qcow2_free_later (struct qcow2 *q, uint64_t offset, uint64_t nb)
{
  if (q->nr_pending_free + 2 > q->cap_pending_free) {
    size_t ncap = q->cap_pending_free ? q->cap_pending_free * 2 : 64;
    uint64_t *n = realloc (q->pending_free, ncap * sizeof *n);
    if (n == NULL)
      return qcow2_error (errno, "realloc: %m");
    q->pending_free = n;
    q->cap_pending_free = ncap;
  }
  q->pending_free[q->nr_pending_free++] = offset;
  q->pending_free[q->nr_pending_free++] = nb;
  return 0;
}

/* Frees whatever host clusters an L2 entry points to (later). */
int
qcow2_free_any (struct qcow2 *q, uint64_t entry)
{
  switch (qcow2_cluster_type (q, entry)) {
  case CT_NORMAL:
  case CT_ZERO_ALLOC:
    return qcow2_free_later (q, entry & L2E_OFFSET_MASK, 1);
  case CT_COMPRESSED: {
    uint64_t off = entry & ((UINT64_C (1) << q->csize_shift) - 1);
    uint64_t nsec = ((entry >> q->csize_shift) & q->csize_mask) + 1;
    uint64_t start = off & ~UINT64_C (511);
    uint64_t end = start + nsec * 512;
    uint64_t first = start >> q->cluster_bits;
    uint64_t last = (end - 1) >> q->cluster_bits;
    return qcow2_free_later (q, first << q->cluster_bits, last - first + 1);
  }
  default:
    return 0;
  }
}

int
qcow2_apply_pending_frees (struct qcow2 *q)
{
  size_t i;

  for (i = 0; i < q->nr_pending_free; i += 2) {
    if (qcow2_update_refcount (q, q->pending_free[i],
                               q->pending_free[i + 1], -1) == -1) {
      q->nr_pending_free = 0;
      return -1;
    }
  }
  q->nr_pending_free = 0;
  return 0;
}
