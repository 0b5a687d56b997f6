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

/* qcow2_check: rebuild the refcounts from the header, L1/L2 tables,
 * snapshots, refcount structures and bitmaps, compare them with the
 * refcount blocks, and optionally free leaked clusters.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "cleanup.h"
#include "qcow2-internal.h"

struct ctx {
  struct qcow2 *q;
  uint32_t *ref;                /* computed refcounts */
  uint64_t nb;                  /* clusters in the array */
  struct qcow2_check_result *res;
  void (*msg) (void *opaque, const char *text);
  void *opaque;
};

static void
report (struct ctx *c, const char *fs, ...)
{
  char buf[512];
  va_list args;

  if (c->msg == NULL)
    return;
  va_start (args, fs);
  vsnprintf (buf, sizeof buf, fs, args);
  va_end (args);
  c->msg (c->opaque, buf);
}

/* Counts one reference to every cluster of [offset, offset+len). */
static int
account (void *opaque, uint64_t offset, uint64_t len, const char *what)
{
  struct ctx *c = opaque;
  uint64_t first, last, i;

  if (len == 0)
    return 0;
  first = offset >> c->q->cluster_bits;
  last = (offset + len - 1) >> c->q->cluster_bits;
  for (i = first; i <= last; i++) {
    if (i >= c->nb) {
      report (c, "ERROR: %s at %#" PRIx64 " is past the end of the image",
              what, offset);
      c->res->corruptions++;
      return 0;
    }
    if (c->ref[i] < UINT32_MAX)
      c->ref[i]++;
  }
  return 0;
}

/* A consistent bitmap whose table size does not fit the image (left
 * for us by a QCOW2_OPEN_CHECK open): QEMU cannot load it.
 */
static int
bad_bitmap_table (void *opaque, const char *name, uint32_t size,
                  uint64_t expected)
{
  struct ctx *c = opaque;

  report (c, "ERROR: bitmap '%s': its table has %" PRIu32 " entries but "
          "the image size needs %" PRIu64 " (QEMU cannot open the image)",
          name, size, expected);
  c->res->corruptions++;
  return 0;
}

/* One L1 table and everything under it. */
static int
walk_l1 (struct ctx *c, uint64_t l1_offset, uint32_t l1_size, bool active)
{
  struct qcow2 *q = c->q;
  CLEANUP_FREE uint8_t *l1 = malloc ((uint64_t) l1_size * 8 + 1);
  CLEANUP_FREE uint8_t *l2 = malloc (q->cluster_size);
  uint32_t i;
  uint64_t j;

  if (l1 == NULL || l2 == NULL)
    return qcow2_error (errno, "malloc: %m");
  account (c, l1_offset, (uint64_t) l1_size * 8, "L1 table");
  if (active) {
    for (i = 0; i < l1_size; i++)
      store_be64 (l1 + i * 8, q->l1[i]);
  }
  else if (qcow2_file_pread (q, l1, (uint64_t) l1_size * 8, l1_offset) == -1)
    return -1;
  for (i = 0; i < l1_size; i++) {
    uint64_t e = load_be64 (l1 + i * 8), off = e & L1E_OFFSET_MASK;
    if (off == 0)
      continue;
    if ((off & (q->cluster_size - 1)) || off < q->cluster_size ||
        (off >> q->cluster_bits) >= c->nb) {
      report (c, "ERROR: L2 table offset %#" PRIx64 " is invalid", off);
      c->res->corruptions++;
      continue;
    }
    account (c, off, q->cluster_size, "L2 table");
    if (active) {
      uint8_t *t = mcache_get (q, &q->l2_cache, off, true);
      if (t == NULL)
        return -1;
      memcpy (l2, t, q->cluster_size);
    }
    else if (qcow2_file_pread (q, l2, q->cluster_size, off) == -1)
      return -1;
    for (j = 0; j < q->l2_entries; j++) {
      uint64_t le = load_be64 (l2 + j * q->l2_entry_size);
      uint64_t bm = q->extended_l2 ? load_be64 (l2 + j * 16 + 8) : 0;
      uint64_t guest = ((uint64_t) i * q->l2_entries + j) << q->cluster_bits;
      if (qcow2_check_l2_entry (q, le, bm, guest) == -1) {
        report (c, "ERROR: %s", qcow2_last_error ());
        c->res->corruptions++;
        continue;
      }
      switch (qcow2_cluster_type (q, le)) {
      case CT_NORMAL:
      case CT_ZERO_ALLOC:
        account (c, le & L2E_OFFSET_MASK, q->cluster_size, "data cluster");
        break;
      case CT_COMPRESSED: {
        uint64_t coff = le & ((UINT64_C (1) << q->csize_shift) - 1);
        uint64_t nsec = ((le >> q->csize_shift) & q->csize_mask) + 1;
        uint64_t start = coff & ~UINT64_C (511);
        account (c, start, nsec * 512, "compressed cluster");
        break;
      }
      default:
        break;
      }
    }
  }
  return 0;
}

static int
walk_snapshots (struct ctx *c)
{
  struct qcow2 *q = c->q;
  uint64_t pos = q->snapshots_offset;
  uint32_t i;

  for (i = 0; i < q->nb_snapshots; i++) {
    uint8_t h[40];
    uint64_t l1off, esize;
    uint32_t l1size;

    if (qcow2_file_pread (q, h, 40, pos) == -1)
      return -1;
    l1off = load_be64 (h);
    l1size = load_be32 (h + 8);
    esize = 40 + load_be32 (h + 36) + load_be16 (h + 12) + load_be16 (h + 14);
    esize = (esize + 7) & ~UINT64_C (7);
    if ((uint64_t) l1size * 8 > MAX_L1_BYTES ||
        (l1off & (q->cluster_size - 1)) || l1off < q->cluster_size) {
      report (c, "ERROR: snapshot %" PRIu32 " has an invalid L1 table", i);
      c->res->corruptions++;
    }
    else if (walk_l1 (c, l1off, l1size, false) == -1)
      return -1;
    pos += esize;
  }
  account (c, q->snapshots_offset, pos - q->snapshots_offset,
           "snapshot table");
  return 0;
}

int
qcow2_check (struct qcow2 *q, int flags, struct qcow2_check_result *res,
             void (*msg) (void *opaque, const char *text), void *opaque)
{
  struct ctx c = { .q = q, .res = res, .msg = msg, .opaque = opaque };
  uint64_t i, covered, end = 0;
  bool repair = !!(flags & (QCOW2_CHECK_REPAIR_LEAKS |
                            QCOW2_CHECK_REPAIR_ALL));
  bool repair_all = !!(flags & QCOW2_CHECK_REPAIR_ALL);
  int r = -1;

  memset (res, 0, sizeof *res);
  if (q->is_raw)
    return qcow2_error (EINVAL, "%s: not a qcow2 image", q->filename);
  if (repair && q->readonly)
    return qcow2_error (EROFS, "%s: repairing needs a writable image",
                        q->filename);
  if (repair && qcow2_flush (q) == -1)
    return -1;

  pthread_rwlock_wrlock (&q->io_lock);
  pthread_mutex_lock (&q->lock);
  covered = q->reftable_entries * q->rb_entries;
  c.nb = q->host_end >> q->cluster_bits;
  {
    uint64_t fe = (qcow2_file_end (q) + q->cluster_size - 1)
      >> q->cluster_bits;
    if (fe > c.nb)
      c.nb = fe;
  }
  c.ref = calloc (c.nb + 1, sizeof *c.ref);
  if (c.ref == NULL) {
    qcow2_error (errno, "calloc: %m");
    goto out;
  }

  account (&c, 0, q->cluster_size, "header");
  if (walk_l1 (&c, q->l1_table_offset, q->l1_size, true) == -1)
    goto out;
  if (q->nb_snapshots && walk_snapshots (&c) == -1)
    goto out;
  account (&c, q->refcount_table_offset,
           (uint64_t) q->refcount_table_clusters * q->cluster_size,
           "refcount table");
  for (i = 0; i < q->reftable_entries; i++)
    if (q->reftable[i])
      account (&c, q->reftable[i] & REFT_OFFSET_MASK, q->cluster_size,
               "refcount block");
  if (qcow2_bitmaps_account (q, account, bad_bitmap_table, &c) == -1) {
    report (&c, "ERROR: bitmaps: %s", qcow2_last_error ());
    res->corruptions++;
  }

  for (i = 0; i < (c.nb > covered ? c.nb : covered); i++) {
    uint64_t disk = 0, want = i < c.nb ? c.ref[i] : 0;

    /* Skip whole ranges without a block and without references. */
    if (i % q->rb_entries == 0 && i / q->rb_entries < q->reftable_entries &&
        q->reftable[i / q->rb_entries] == 0) {
      uint64_t k, stop = i + q->rb_entries;
      bool any = false;
      for (k = i; k < stop && k < c.nb; k++)
        if (c.ref[k]) {
          report (&c, "ERROR: cluster %" PRIu64 " is used but has no "
                  "refcount block", k);
          res->corruptions++;
          any = true;
          end = k + 1;
        }
      (void) any;
      i = stop - 1;
      continue;
    }
    if (i >= covered) {
      if (want) {
        report (&c, "ERROR: cluster %" PRIu64 " is used but lies beyond "
                "the refcount table", i);
        res->corruptions++;
        end = i + 1;
      }
      continue;
    }
    if (qcow2_get_refcount (q, i, &disk) == -1)
      goto out;
    if (want)
      res->allocated_clusters++;
    if (want || disk)
      end = i + 1;
    if (disk < want) {
      report (&c, "ERROR cluster %" PRIu64 " refcount=%" PRIu64
              " reference=%" PRIu64, i, disk, want);
      res->corruptions++;
      if (repair_all) {
        if (qcow2_update_refcount (q, i << q->cluster_bits, 1,
                                   (int64_t) (want - disk)) == -1)
          goto out;
        res->corruptions_fixed++;
      }
    }
    else if (disk > want) {
      report (&c, "Leaked cluster %" PRIu64 " refcount=%" PRIu64
              " reference=%" PRIu64, i, disk, want);
      res->leaks++;
      if (repair) {
        /* With 64-bit refcounts the excess can pass INT64_MAX: lower
         * it in steps that a signed delta holds.
         */
        uint64_t excess = disk - want;

        while (excess > 0) {
          uint64_t step = excess < INT64_MAX ? excess : INT64_MAX;

          if (qcow2_update_refcount (q, i << q->cluster_bits, 1,
                                     -(int64_t) step) == -1)
            goto out;
          excess -= step;
        }
        res->leaks_fixed++;
      }
    }
  }
  res->image_end_offset = end << q->cluster_bits;
  if (repair && (res->leaks_fixed || res->corruptions_fixed) &&
      (qcow2_writeback (q) == -1 || qcow2_file_sync (q) == -1))
    goto out;
  r = 0;
 out:
  free (c.ref);
  pthread_mutex_unlock (&q->lock);
  pthread_rwlock_unlock (&q->io_lock);
  return r;
}
