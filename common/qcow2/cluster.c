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

/* The L1 table and L2 lookups: reading, validating and changing the
 * descriptor of a guest cluster, allocating (or copying, when shared with
 * a snapshot) L2 tables.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "qcow2-internal.h"

int
qcow2_load_l1 (struct qcow2 *q)
{
  uint64_t i, n = q->l1_size;
  uint8_t *buf;

  q->l1 = calloc (n ? n : 1, 8);
  if (q->l1 == NULL)
    return qcow2_error (errno, "calloc: %m");
  if (n == 0)
    return 0;
  buf = malloc (n * 8);
  if (buf == NULL)
    return qcow2_error (errno, "malloc: %m");
  if (qcow2_file_pread (q, buf, n * 8, q->l1_table_offset) == -1) {
    free (buf);
    return -1;
  }
  for (i = 0; i < n; i++) {
    uint64_t e = load_be64 (buf + i * 8), off = e & L1E_OFFSET_MASK;
    q->l1[i] = e;
    if (e & L1E_RESERVED_MASK) {
      free (buf);
      return qcow2_error (EINVAL, "%s: L1 entry %" PRIu64 " has reserved "
                          "bits set (%#" PRIx64 ")", q->filename, i, e);
    }
    if (off == 0)
      continue;
    if (off < q->cluster_size || (off & (q->cluster_size - 1)) ||
        off + q->cluster_size > q->host_end) {
      free (buf);
      return qcow2_error (EINVAL, "%s: L2 table %" PRIu64 " at %#" PRIx64
                          " is unaligned, in the header or past the end "
                          "of the file", q->filename, i, off);
    }
  }
  free (buf);
  return 0;
}

enum cluster_type
qcow2_cluster_type (struct qcow2 *q, uint64_t entry)
{
  if (entry & OFLAG_COMPRESSED)
    return CT_COMPRESSED;
  if (!q->extended_l2 && (entry & OFLAG_ZERO))
    return (entry & L2E_OFFSET_MASK) ? CT_ZERO_ALLOC : CT_ZERO_PLAIN;
  return (entry & L2E_OFFSET_MASK) ? CT_NORMAL : CT_UNALLOCATED;
}

int
qcow2_host_range_ok (struct qcow2 *q, uint64_t offset, uint64_t len,
                     const char *what)
{
  if (offset < q->cluster_size || offset >= MAX_HOST_OFFSET ||
      len > MAX_HOST_OFFSET - offset || offset >= q->host_end)
    return qcow2_error (EIO, "%s: %s at host offset %#" PRIx64
                        " is in the header or past the end of the file "
                        "(image corrupt)", q->filename, what, offset);
  return 0;
}

int
qcow2_check_l2_entry (struct qcow2 *q, uint64_t e, uint64_t bitmap,
                      uint64_t guest_offset)
{
  switch (qcow2_cluster_type (q, e)) {
  case CT_COMPRESSED:
    if (q->extended_l2 && bitmap != 0)
      return qcow2_error (EIO, "%s: compressed cluster at guest offset %#"
                          PRIx64 " has a subcluster bitmap (image corrupt)",
                          q->filename, guest_offset);
    if (e & OFLAG_COPIED)
      return qcow2_error (EIO, "%s: compressed cluster at guest offset %#"
                          PRIx64 " has the COPIED flag (image corrupt)",
                          q->filename, guest_offset);
    return qcow2_host_range_ok (q, e & ((UINT64_C (1) << q->csize_shift) - 1),
                                1, "compressed cluster");
  case CT_NORMAL:
  case CT_ZERO_ALLOC:
    if ((e & L2E_STD_RESERVED_MASK) ||
        ((e & L2E_OFFSET_MASK) & (q->cluster_size - 1)))
      return qcow2_error (EIO, "%s: L2 entry %#" PRIx64 " for guest offset %#"
                          PRIx64 " has reserved bits set or is unaligned "
                          "(image corrupt)", q->filename, e, guest_offset);
    if (qcow2_host_range_ok (q, e & L2E_OFFSET_MASK, q->cluster_size,
                             "data cluster") == -1)
      return -1;
    break;
  case CT_ZERO_PLAIN:
  case CT_UNALLOCATED:
    if (e & L2E_STD_RESERVED_MASK || (e & OFLAG_COPIED))
      return qcow2_error (EIO, "%s: L2 entry %#" PRIx64 " for guest offset %#"
                          PRIx64 " has reserved bits set (image corrupt)",
                          q->filename, e, guest_offset);
    break;
  }
  if (q->version < 3 && (e & OFLAG_ZERO))
    return qcow2_error (EIO, "%s: zero flag in a version 2 image at guest "
                        "offset %#" PRIx64 " (image corrupt)",
                        q->filename, guest_offset);
  if (q->extended_l2) {
    if (e & OFLAG_ZERO)
      return qcow2_error (EIO, "%s: zero flag set with extended L2 entries "
                          "(image corrupt)", q->filename);
    if ((bitmap & 0xffffffff) & (bitmap >> 32))
      return qcow2_error (EIO, "%s: subcluster both allocated and zero at "
                          "guest offset %#" PRIx64 " (image corrupt)",
                          q->filename, guest_offset);
    if ((e & L2E_OFFSET_MASK) == 0 && (bitmap & 0xffffffff))
      return qcow2_error (EIO, "%s: allocated subclusters without a host "
                          "cluster at guest offset %#" PRIx64
                          " (image corrupt)", q->filename, guest_offset);
  }
  return 0;
}

static uint64_t
l1_index (struct qcow2 *q, uint64_t guest_offset)
{
  return (guest_offset >> q->cluster_bits) / q->l2_entries;
}

static uint64_t
l2_index (struct qcow2 *q, uint64_t guest_offset)
{
  return (guest_offset >> q->cluster_bits) % q->l2_entries;
}

int
qcow2_get_l2_entry (struct qcow2 *q, uint64_t guest_offset,
                    uint64_t *entry, uint64_t *bitmap)
{
  uint64_t i1 = l1_index (q, guest_offset), l2off;
  uint8_t *t, *p;

  *entry = *bitmap = 0;
  if (i1 >= q->l1_size)
    return 0;
  l2off = q->l1[i1] & L1E_OFFSET_MASK;
  if (l2off == 0)
    return 0;
  t = mcache_get (q, &q->l2_cache, l2off, true);
  if (t == NULL)
    return -1;
  p = t + l2_index (q, guest_offset) * q->l2_entry_size;
  *entry = load_be64 (p);
  if (q->extended_l2)
    *bitmap = load_be64 (p + 8);
  return qcow2_check_l2_entry (q, *entry, *bitmap, guest_offset);
}

/* Makes the L2 table for GUEST_OFFSET exclusively ours (allocating or
 * copying it) and returns its offset.
 */
static int64_t
writable_l2 (struct qcow2 *q, uint64_t guest_offset)
{
  uint64_t i1 = l1_index (q, guest_offset);
  uint64_t old = q->l1[i1], oldoff = old & L1E_OFFSET_MASK;
  int64_t n;
  uint8_t *t;

  if (i1 >= q->l1_size)
    return qcow2_error (EIO, "%s: guest offset %#" PRIx64 " beyond L1",
                        q->filename, guest_offset);
  if (oldoff && (old & OFLAG_COPIED))
    return oldoff;
  if (q->test_fail_new_l2 && --q->test_fail_new_l2 == 0)
    return qcow2_error (EIO, "%s: new L2 table failed on purpose "
                        "(NBDCBT_QCOW2_TEST_FAIL_NEW_L2)", q->filename);
  n = qcow2_alloc_clusters (q, 1);
  if (n == -1)
    return -1;
  if (oldoff) {
    /* Shared with a snapshot: copy it. */
    uint8_t *copy = malloc (q->cluster_size);
    if (copy == NULL) {
      qcow2_error (errno, "malloc: %m");
      goto fail;
    }
    t = mcache_get (q, &q->l2_cache, oldoff, true);
    if (t == NULL) {
      free (copy);
      goto fail;
    }
    memcpy (copy, t, q->cluster_size);
    t = mcache_get (q, &q->l2_cache, n, false);
    if (t == NULL) {
      free (copy);
      goto fail;
    }
    memcpy (t, copy, q->cluster_size);
    free (copy);
    if (qcow2_free_later (q, oldoff, 1) == -1)
      goto fail;
  }
  else {
    t = mcache_get (q, &q->l2_cache, n, false);
    if (t == NULL)
      goto fail;
  }
  mcache_mark_dirty (&q->l2_cache, t);
  q->l1[i1] = n | OFLAG_COPIED;
  q->l1_dirty = true;
  return n;

 fail:
  /* Nothing points to the new table: forget any copy of it in the cache
   * and give its cluster back.
   */
  mcache_drop (&q->l2_cache, n);
  qcow2_update_refcount (q, n, 1, -1);
  return -1;
}

int
qcow2_set_l2_entry (struct qcow2 *q, uint64_t guest_offset, uint64_t entry,
                    uint64_t bitmap)
{
  int64_t l2off = writable_l2 (q, guest_offset);
  uint8_t *t, *p;

  if (l2off == -1)
    return -1;
  t = mcache_get (q, &q->l2_cache, l2off, true);
  if (t == NULL)
    return -1;
  p = t + l2_index (q, guest_offset) * q->l2_entry_size;
  store_be64 (p, entry);
  if (q->extended_l2)
    store_be64 (p + 8, bitmap);
  mcache_mark_dirty (&q->l2_cache, t);
  return 0;
}

int
qcow2_set_l2_run (struct qcow2 *q, uint64_t guest_offset, uint64_t nb,
                  uint64_t host, uint64_t entry_flags, uint64_t bitmap,
                  uint64_t *done)
{
  *done = 0;
  while (nb > 0) {
    uint64_t i = l2_index (q, guest_offset), n = q->l2_entries - i, j;
    int64_t l2off;
    uint8_t *t;

    if (n > nb)
      n = nb;
    l2off = writable_l2 (q, guest_offset);
    if (l2off == -1)
      return -1;
    t = mcache_get (q, &q->l2_cache, l2off, true);
    if (t == NULL)
      return -1;
    for (j = 0; j < n; j++) {
      uint8_t *p = t + (i + j) * q->l2_entry_size;
      store_be64 (p, (host + (j << q->cluster_bits)) | entry_flags);
      if (q->extended_l2)
        store_be64 (p + 8, bitmap);
    }
    mcache_mark_dirty (&q->l2_cache, t);
    guest_offset += n << q->cluster_bits;
    host += n << q->cluster_bits;
    nb -= n;
    *done += n;
  }
  return 0;
}
