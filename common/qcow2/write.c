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

/* The write path: in-place writes to clusters we own, allocating writes
 * (contiguous runs, copy-on-write of partial clusters from the old
 * contents or the backing file), write-zeroes and discard.
 *
 * Order for crash safety: the refcount of a new cluster is counted (in the
 * refcount cache, written before any L2 table), the data is written, and
 * only then does the L2 entry point to it.  The data of an allocating
 * write goes to disk without the metadata lock (alloc_write), so writes
 * to different clusters and L2 tables proceed in parallel.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "qcow2-internal.h"

#define MAX_RUN_BYTES (32 * 1024 * 1024)

static int
check_writable (struct qcow2 *q, uint64_t count, uint64_t offset)
{
  if (q->readonly || q->is_raw)
    return qcow2_error (EROFS, "%s: image is opened read-only", q->filename);
  if (q->write_error)
    return qcow2_error (EIO, "%s: an earlier metadata write failed; "
                        "refusing further writes", q->filename);
  if (offset > q->size || count > q->size - offset)
    return qcow2_error (EINVAL, "%s: write of %" PRIu64 " bytes at %" PRIu64
                        " is beyond the end of the image (%" PRIu64 ")",
                        q->filename, count, offset, q->size);
  return qcow2_intent_before_write (q);
}

static uint64_t
all_alloc (void)
{
  return UINT64_C (0xffffffff);
}

/* Does the cluster need a new host cluster before it can be written? */
static bool
needs_alloc (struct qcow2 *q, uint64_t e, uint64_t bitmap)
{
  if (qcow2_cluster_type (q, e) != CT_NORMAL || !(e & OFLAG_COPIED))
    return true;
  return q->extended_l2 && (bitmap & 0xffffffff) != all_alloc ();
}

/* Fills CLUSTER (one cluster at guest offset GUEST) with its current
 * contents.
 */
static int
read_old (struct qcow2 *q, uint64_t e, uint64_t bitmap, uint64_t guest,
          uint8_t *cluster)
{
  uint64_t n = q->cluster_size;

  if (guest + n > q->size)
    n = q->size - guest;
  memset (cluster + n, 0, q->cluster_size - n);
  return qcow2_read_cluster_part (q, e, bitmap, guest, cluster, n);
}

/* Is an allocation in flight for any guest cluster in [START, END)? */
static bool
inflight_overlaps (struct qcow2 *q, uint64_t start, uint64_t end)
{
  const struct alloc_inflight *a;

  for (a = q->inflight; a; a = a->next)
    if (a->start < end && start < a->end)
      return true;
  return false;
}

/* Waits (LOCK held; released while waiting) until no allocation in
 * flight touches the cluster at GUEST.
 */
static void
wait_inflight (struct qcow2 *q, uint64_t guest)
{
  uint64_t start = guest & ~(q->cluster_size - 1);

  while (inflight_overlaps (q, start, start + q->cluster_size))
    pthread_cond_wait (&q->inflight_done, &q->lock);
}

static void
end_inflight (struct qcow2 *q, struct alloc_inflight *me)
{
  struct alloc_inflight **pp;

  for (pp = &q->inflight; *pp; pp = &(*pp)->next)
    if (*pp == me) {
      *pp = me->next;
      break;
    }
  q->nr_inflight--;
  pthread_cond_broadcast (&q->inflight_done);
}

/* Does a cluster described by E and BITMAP read as zero everywhere? */
static bool
reads_as_zero (struct qcow2 *q, uint64_t e, uint64_t bitmap)
{
  switch (qcow2_cluster_type (q, e)) {
  case CT_ZERO_PLAIN:
    return true;
  case CT_UNALLOCATED:
    /* Extended L2: subclusters are zero (flag) or from the backing. */
    return q->backing == NULL && (bitmap & 0xffffffff) == 0;
  default:
    return false;
  }
}

/* The data of an allocating write into NB new host clusters at HOST for
 * the guest clusters from START: whole clusters straight from the
 * caller's buffer, head and tail partial clusters merged with the old
 * contents (OLDE, OLDB) -- unless the new clusters were never written
 * and the old contents read as zero, when only the caller's bytes go
 * in.  Runs without the metadata lock.
 */
static int
write_new_clusters (struct qcow2 *q, const uint8_t *buf, uint64_t offset,
                    uint64_t end, uint64_t start, int64_t host, bool fresh,
                    const uint64_t *olde, const uint64_t *oldb)
{
  uint64_t cs = q->cluster_size, pos = offset;

  while (pos < end) {
    uint64_t ci = (pos - start) / cs;
    uint64_t cstart = start + ci * cs;
    uint64_t in = pos - cstart;
    uint64_t n = cs - in;
    if (n > end - pos)
      n = end - pos;
    if (in == 0 && n == cs) {
      uint64_t m = (end - pos) & ~(cs - 1);
      if (qcow2_file_pwrite (q, buf + (pos - offset), m,
                             host + (pos - start)) == -1)
        return -1;
      pos += m;
      continue;
    }
    if (fresh && reads_as_zero (q, olde[ci], oldb[ci])) {
      if (qcow2_file_pwrite (q, buf + (pos - offset), n,
                             host + (pos - start)) == -1)
        return -1;
    }
    else {
      CLEANUP_FREE uint8_t *c = malloc (cs);
      if (c == NULL)
        return qcow2_error (errno, "malloc: %m");
      if (read_old (q, olde[ci], oldb[ci], cstart, c) == -1)
        return -1;
      memcpy (c + in, buf + (pos - offset), n);
      if (qcow2_file_pwrite (q, c, cs, host + ci * cs) == -1)
        return -1;
    }
    pos += n;
  }
  return 0;
}

/* Allocating write of COUNT bytes at OFFSET: *DONE gets how many bytes
 * were written (a run of clusters that all need allocation).  Called with
 * the metadata lock held, which it releases while the data is written:
 * the run is reserved (counted, and marked in flight so that nobody else
 * writes, zeroes or discards those guest clusters) first, and the L2
 * entries point to the new clusters only after the data is written, so
 * the documented order (refcounts, data, L2, L1) holds and writers of
 * other clusters and other L2 tables go on meanwhile.
 */
static int
alloc_write (struct qcow2 *q, const uint8_t *buf, uint64_t count,
             uint64_t offset, uint64_t *done)
{
  uint64_t cs = q->cluster_size;
  uint64_t start = offset & ~(cs - 1);
  uint64_t end = offset + count, nb = 0, pointed, i;
  CLEANUP_FREE uint64_t *olde = NULL;
  CLEANUP_FREE uint64_t *oldb = NULL;
  struct alloc_inflight me;
  int64_t host;
  bool fresh;
  int r;

  /* How many consecutive clusters need allocation?  At most half a
   * refcount block's worth, so that a run always fits between the
   * refcount blocks that new ranges start with.
   */
  uint64_t max_nb = MAX_RUN_BYTES / cs;
  if (max_nb > q->rb_entries / 2)
    max_nb = q->rb_entries / 2;
  while (start + nb * cs < end && nb < max_nb) {
    uint64_t e, b;
    if (nb > 0 && inflight_overlaps (q, start + nb * cs,
                                     start + (nb + 1) * cs))
      break;
    if (qcow2_get_l2_entry (q, start + nb * cs, &e, &b) == -1)
      return -1;
    if (nb > 0 && !needs_alloc (q, e, b))
      break;
    nb++;
  }
  if (end > start + nb * cs)
    end = start + nb * cs;
  olde = calloc (nb, 8);
  oldb = calloc (nb, 8);
  if (olde == NULL || oldb == NULL)
    return qcow2_error (errno, "calloc: %m");
  for (i = 0; i < nb; i++)
    if (qcow2_get_l2_entry (q, start + i * cs, &olde[i], &oldb[i]) == -1)
      return -1;

  host = qcow2_alloc_fresh_clusters (q, nb, &fresh);
  if (host == -1)
    return -1;
  me.start = start;
  me.end = start + nb * cs;
  me.next = q->inflight;
  q->inflight = &me;
  q->alloc_runs++;
  if (++q->nr_inflight > q->max_inflight)
    q->max_inflight = q->nr_inflight;

  pthread_mutex_unlock (&q->lock);
  if (q->test_alloc_delay_us)
    usleep (q->test_alloc_delay_us);
  r = write_new_clusters (q, buf, offset, end, start, host, fresh,
                          olde, oldb);
  pthread_mutex_lock (&q->lock);

  if (r == -1) {
    /* Nothing points to the new clusters: give them back. */
    qcow2_update_refcount (q, host, nb, -1);
    end_inflight (q, &me);
    return -1;
  }
  r = qcow2_set_l2_run (q, start, nb, host, OFLAG_COPIED,
                        q->extended_l2 ? all_alloc () : 0, &pointed);
  /* What the entries now pointed elsewhere held is free.  If an L2 table
   * failed partway, the clusters after those entries were never pointed
   * to: give them back, so that a failed write leaks nothing.
   */
  for (i = 0; i < pointed; i++)
    if (qcow2_free_any (q, olde[i]) == -1)
      r = -1;
  if (pointed < nb)
    qcow2_update_refcount (q, host + pointed * cs, nb - pointed, -1);
  end_inflight (q, &me);
  if (r == -1)
    return -1;
  *done = end - offset;
  return 0;
}

void
qcow2_alloc_stats (struct qcow2 *q, uint64_t *runs, unsigned *max_parallel)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  *runs = q->alloc_runs;
  *max_parallel = q->max_inflight;
}

int
qcow2_pwrite (struct qcow2 *q, const void *buf, uint64_t count,
              uint64_t offset, int flags)
{
  const uint8_t *p = buf;

  if (check_writable (q, count, offset) == -1)
    return -1;
  {
    ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&q->io_lock);
    while (count > 0) {
      uint64_t in_cluster = offset & (q->cluster_size - 1);
      uint64_t n = q->cluster_size - in_cluster;
      uint64_t e, bitmap, host;

      if (n > count)
        n = count;
      pthread_mutex_lock (&q->lock);
      wait_inflight (q, offset);
      if (qcow2_get_l2_entry (q, offset, &e, &bitmap) == -1) {
        pthread_mutex_unlock (&q->lock);
        return -1;
      }
      if (needs_alloc (q, e, bitmap)) {
        int r = alloc_write (q, p, count, offset, &n);
        pthread_mutex_unlock (&q->lock);
        if (r == -1)
          return -1;
      }
      else {
        /* Our own cluster: the data goes in without the metadata lock.
         * Extend over following clusters that are contiguous on the host.
         */
        host = (e & L2E_OFFSET_MASK) + in_cluster;
        while (n < count && n < MAX_RUN_BYTES) {
          uint64_t e2, b2, m = count - n;
          if (m > q->cluster_size)
            m = q->cluster_size;
          if (qcow2_get_l2_entry (q, offset + n, &e2, &b2) == -1) {
            pthread_mutex_unlock (&q->lock);
            return -1;
          }
          if (needs_alloc (q, e2, b2) || (e2 & L2E_OFFSET_MASK) != host + n)
            break;
          n += m;
        }
        pthread_mutex_unlock (&q->lock);
        if (qcow2_file_pwrite (q, p, n, host) == -1)
          return -1;
      }
      p += n;
      offset += n;
      count -= n;
    }
  }
  if (flags & QCOW2_WRITE_FUA)
    return qcow2_flush (q);
  return 0;
}

static int
write_zero_bytes (struct qcow2 *q, uint64_t count, uint64_t offset)
{
  CLEANUP_FREE uint8_t *z = NULL;
  uint64_t chunk = count < MAX_RUN_BYTES ? count : MAX_RUN_BYTES;

  z = calloc (1, chunk ? chunk : 1);
  if (z == NULL)
    return qcow2_error (errno, "calloc: %m");
  while (count > 0) {
    uint64_t n = count < chunk ? count : chunk;
    if (qcow2_pwrite (q, z, n, offset, 0) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

/* New descriptor for a whole cluster made to read as zero (or discarded
 * when DISCARD).  Returns 1 if the change cannot be expressed in the L2
 * entry (v2 with data under it): the caller writes zero bytes instead.
 */
static int
zero_cluster (struct qcow2 *q, uint64_t guest, bool unmap, bool discard)
{
  uint64_t e, b, ne, nb = 0;
  enum cluster_type t;

  if (qcow2_get_l2_entry (q, guest, &e, &b) == -1)
    return -1;
  t = qcow2_cluster_type (q, e);
  if (q->version < 3) {
    /* No zero flag: unallocate when that reads as zero (or for discard,
     * which then shows the backing file), else write zeroes.
     */
    if (discard || (unmap && q->backing == NULL)) {
      if (t == CT_UNALLOCATED)
        return 0;
      ne = 0;
    }
    else if (q->backing == NULL && t == CT_UNALLOCATED)
      return 0;
    else
      return 1;
  }
  else if (q->extended_l2) {
    bool keep = !unmap && !discard && t == CT_NORMAL && (e & OFLAG_COPIED);
    if (discard && q->backing == NULL)
      ne = 0, nb = 0;
    else {
      ne = keep ? e : 0;
      nb = UINT64_C (0xffffffff00000000);
    }
    if (ne == e && nb == b)
      return 0;
    if (qcow2_set_l2_entry (q, guest, ne, nb) == -1)
      return -1;
    return keep ? 0 : qcow2_free_any (q, e);
  }
  else {
    bool keep = !unmap && !discard &&
      (t == CT_NORMAL || t == CT_ZERO_ALLOC) && (e & OFLAG_COPIED);
    if (discard && q->backing == NULL)
      ne = 0;
    else if (keep)
      ne = (e & ~OFLAG_ZERO) | OFLAG_ZERO;
    else
      ne = OFLAG_ZERO;
    if (ne == e)
      return 0;
    if (!keep && q->backing == NULL && !discard &&
        (t == CT_UNALLOCATED || t == CT_ZERO_PLAIN))
      return 0;                 /* already reads as zero */
    if (qcow2_set_l2_entry (q, guest, ne, 0) == -1)
      return -1;
    return keep ? 0 : qcow2_free_any (q, e);
  }
  if (qcow2_set_l2_entry (q, guest, ne, 0) == -1)
    return -1;
  return qcow2_free_any (q, e);
}

static int
zero_or_discard (struct qcow2 *q, uint64_t count, uint64_t offset,
                 bool unmap, bool discard)
{
  uint64_t cs = q->cluster_size;
  uint64_t first = (offset + cs - 1) & ~(cs - 1);
  uint64_t last = (offset + count) & ~(cs - 1);
  uint64_t g;

  /* The last cluster of an image whose size is not a multiple of the
   * cluster size counts as whole when the range reaches the end.
   */
  if (offset + count == q->size)
    last = (q->size + cs - 1) & ~(cs - 1);
  if (first >= last) {
    return discard ? 0 : write_zero_bytes (q, count, offset);
  }
  if (!discard) {
    if (first > offset && write_zero_bytes (q, first - offset, offset) == -1)
      return -1;
    if (last < offset + count &&
        write_zero_bytes (q, offset + count - last, last) == -1)
      return -1;
  }
  for (g = first; g < last; g += cs) {
    int r;
    pthread_mutex_lock (&q->lock);
    wait_inflight (q, g);
    r = zero_cluster (q, g, unmap, discard);
    pthread_mutex_unlock (&q->lock);
    if (r == -1)
      return -1;
    if (r == 1) {
      uint64_t n = g + cs > q->size ? q->size - g : cs;
      if (write_zero_bytes (q, n, g) == -1)
        return -1;
    }
  }
  return 0;
}

int
qcow2_zero (struct qcow2 *q, uint64_t count, uint64_t offset, int flags)
{
  if (check_writable (q, count, offset) == -1)
    return -1;
  if (zero_or_discard (q, count, offset,
                       !!(flags & QCOW2_ZERO_MAY_UNMAP), false) == -1)
    return -1;
  if (flags & QCOW2_WRITE_FUA)
    return qcow2_flush (q);
  return 0;
}

int
qcow2_discard (struct qcow2 *q, uint64_t count, uint64_t offset, int flags)
{
  if (check_writable (q, count, offset) == -1)
    return -1;
  if (zero_or_discard (q, count, offset, true, true) == -1)
    return -1;
  if (flags & QCOW2_WRITE_FUA)
    return qcow2_flush (q);
  return 0;
}
