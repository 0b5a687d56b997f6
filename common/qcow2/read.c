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

/* The read path: normal, zero, compressed (zlib and zstd) and extended-L2
 * clusters, the backing chain, and block status with allocation depth.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "cleanup.h"
#include "qcow2-internal.h"

/* How subcluster SC of a cluster reads. */
enum sc_kind { SC_BACKING, SC_ZERO, SC_DATA };

static enum sc_kind
sc_kind (struct qcow2 *q, uint64_t e, uint64_t bitmap, unsigned sc)
{
  switch (qcow2_cluster_type (q, e)) {
  case CT_COMPRESSED:
    return SC_DATA;
  case CT_ZERO_PLAIN:
  case CT_ZERO_ALLOC:
    return SC_ZERO;
  case CT_NORMAL:
  case CT_UNALLOCATED:
    if (!q->extended_l2)
      return (e & L2E_OFFSET_MASK) ? SC_DATA : SC_BACKING;
    if (bitmap & (UINT64_C (1) << sc))
      return SC_DATA;
    if (bitmap & (UINT64_C (1) << (sc + 32)))
      return SC_ZERO;
    return SC_BACKING;
  }
  return SC_BACKING;
}

int
qcow2_read_compressed (struct qcow2 *q, uint64_t e, uint8_t *out)
{
  uint64_t off = e & ((UINT64_C (1) << q->csize_shift) - 1);
  uint64_t nsec = ((e >> q->csize_shift) & q->csize_mask) + 1;
  uint64_t csize = nsec * 512 - (off & 511);
  CLEANUP_FREE uint8_t *in = malloc (csize);

  if (in == NULL)
    return qcow2_error (errno, "malloc: %m");
  if (qcow2_file_pread (q, in, csize, off) == -1)
    return -1;

  if (q->compression_type == 0) {
    z_stream strm = { 0 };
    int r;

    if (inflateInit2 (&strm, -12) != Z_OK)
      return qcow2_error (ENOMEM, "inflateInit2 failed");
    strm.next_in = in;
    strm.avail_in = csize;
    strm.next_out = out;
    strm.avail_out = q->cluster_size;
    r = inflate (&strm, Z_FINISH);
    inflateEnd (&strm);
    if ((r != Z_STREAM_END && r != Z_BUF_ERROR) || strm.avail_out != 0)
      return qcow2_error (EIO, "%s: cannot decompress (deflate) the "
                          "compressed cluster at host offset %#" PRIx64,
                          q->filename, off);
  }
  else {
    ZSTD_DCtx *dctx = ZSTD_createDCtx ();
    ZSTD_inBuffer ib = { .src = in, .size = csize, .pos = 0 };
    ZSTD_outBuffer ob = { .dst = out, .size = q->cluster_size, .pos = 0 };

    if (dctx == NULL)
      return qcow2_error (ENOMEM, "ZSTD_createDCtx failed");
    while (ob.pos < ob.size) {
      size_t r = ZSTD_decompressStream (dctx, &ob, &ib);
      if (ZSTD_isError (r)) {
        ZSTD_freeDCtx (dctx);
        return qcow2_error (EIO, "%s: cannot decompress (zstd) the compressed "
                            "cluster at host offset %#" PRIx64 ": %s",
                            q->filename, off, ZSTD_getErrorName (r));
      }
      if (r == 0 || ib.pos == ib.size)
        break;
    }
    ZSTD_freeDCtx (dctx);
    if (ob.pos != ob.size)
      return qcow2_error (EIO, "%s: compressed cluster at host offset %#"
                          PRIx64 " is truncated", q->filename, off);
  }
  return 0;
}

int
qcow2_read_backing (struct qcow2 *q, void *buf, uint64_t count,
                    uint64_t offset)
{
  uint64_t bsize, n;

  if (q->backing == NULL) {
    memset (buf, 0, count);
    return 0;
  }
  bsize = qcow2_get_size (q->backing);
  n = offset >= bsize ? 0 : bsize - offset < count ? bsize - offset : count;
  if (n && qcow2_pread (q->backing, buf, n, offset) == -1)
    return -1;
  memset ((char *) buf + n, 0, count - n);
  return 0;
}

/* Reads COUNT bytes at GUEST_OFFSET, all inside one cluster described by
 * E and BITMAP.
 */
int
qcow2_read_cluster_part (struct qcow2 *q, uint64_t e, uint64_t bitmap,
                         uint64_t guest_offset, uint8_t *buf, uint64_t count)
{
  uint64_t in_cluster = guest_offset & (q->cluster_size - 1);

  if (qcow2_cluster_type (q, e) == CT_COMPRESSED) {
    CLEANUP_FREE uint8_t *c = malloc (q->cluster_size);
    if (c == NULL)
      return qcow2_error (errno, "malloc: %m");
    if (qcow2_read_compressed (q, e, c) == -1)
      return -1;
    memcpy (buf, c + in_cluster, count);
    return 0;
  }
  while (count > 0) {
    unsigned sc = in_cluster / q->subcluster_size;
    enum sc_kind k = sc_kind (q, e, bitmap, sc);
    uint64_t n = (sc + 1) * q->subcluster_size - in_cluster;

    /* Merge following subclusters of the same kind. */
    while (n < count && sc + 1 < 32 && q->extended_l2 &&
           sc_kind (q, e, bitmap, sc + 1) == k) {
      sc++;
      n += q->subcluster_size;
    }
    if (n > count)
      n = count;
    switch (k) {
    case SC_DATA:
      if (qcow2_file_pread (q, buf, n,
                            (e & L2E_OFFSET_MASK) + in_cluster) == -1)
        return -1;
      break;
    case SC_ZERO:
      memset (buf, 0, n);
      break;
    case SC_BACKING:
      if (qcow2_read_backing (q, buf, n, guest_offset) == -1)
        return -1;
      break;
    }
    buf += n;
    count -= n;
    guest_offset += n;
    in_cluster += n;
  }
  return 0;
}

static int
raw_pread (struct qcow2 *q, void *buf, uint64_t count, uint64_t offset)
{
  return qcow2_file_pread (q, buf, count, offset);
}

int
qcow2_pread (struct qcow2 *q, void *buf, uint64_t count, uint64_t offset)
{
  uint8_t *p = buf;

  if (offset > q->size || count > q->size - offset)
    return qcow2_error (EINVAL, "%s: read of %" PRIu64 " bytes at %" PRIu64
                        " is beyond the end of the image (%" PRIu64 ")",
                        q->filename, count, offset, q->size);
  if (q->is_raw)
    return raw_pread (q, buf, count, offset);

  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&q->io_lock);
  while (count > 0) {
    uint64_t in_cluster = offset & (q->cluster_size - 1);
    uint64_t n = q->cluster_size - in_cluster;
    uint64_t e, bitmap;
    int r;

    if (n > count)
      n = count;
    pthread_mutex_lock (&q->lock);
    r = qcow2_get_l2_entry (q, offset, &e, &bitmap);
    pthread_mutex_unlock (&q->lock);
    if (r == -1)
      return -1;

    /* Contiguous plain data clusters go in one read. */
    if (!q->extended_l2 && qcow2_cluster_type (q, e) == CT_NORMAL) {
      uint64_t host = (e & L2E_OFFSET_MASK) + in_cluster;
      while (n < count) {
        uint64_t e2, b2, m = count - n;
        if (m > q->cluster_size)
          m = q->cluster_size;
        pthread_mutex_lock (&q->lock);
        r = qcow2_get_l2_entry (q, offset + n, &e2, &b2);
        pthread_mutex_unlock (&q->lock);
        if (r == -1)
          return -1;
        if (qcow2_cluster_type (q, e2) != CT_NORMAL ||
            (e2 & L2E_OFFSET_MASK) != host + n)
          break;
        n += m;
      }
      if (qcow2_file_pread (q, p, n, host) == -1)
        return -1;
    }
    else if (qcow2_read_cluster_part (q, e, bitmap, offset, p, n) == -1)
      return -1;
    p += n;
    offset += n;
    count -= n;
  }
  return 0;
}

/* Status of the (sub)cluster at OFFSET in this layer only. */
static int
layer_status (struct qcow2 *q, uint64_t offset, uint64_t count,
              uint64_t *pnum, enum sc_kind *kind)
{
  uint64_t done = 0;
  bool first = true;

  while (done < count) {
    uint64_t e, bitmap, o = offset + done;
    uint64_t in_cluster = o & (q->cluster_size - 1);
    enum sc_kind k;
    uint64_t n;

    if (qcow2_get_l2_entry (q, o, &e, &bitmap) == -1)
      return -1;
    k = sc_kind (q, e, bitmap, in_cluster / q->subcluster_size);
    if (first)
      *kind = k;
    else if (k != *kind)
      break;
    first = false;
    n = q->subcluster_size - (o & (q->subcluster_size - 1));
    done += n;
  }
  *pnum = done < count ? done : count;
  return 0;
}

int
qcow2_block_status (struct qcow2 *q, uint64_t offset, uint64_t count,
                    uint64_t *pnum, int *status, int *depth)
{
  enum sc_kind kind;
  uint64_t n, bsize;
  int r;

  if (offset >= q->size || count == 0)
    return qcow2_error (EINVAL, "%s: block status at %" PRIu64
                        " is beyond the end of the image", q->filename,
                        offset);
  if (count > q->size - offset)
    count = q->size - offset;
  if (q->is_raw) {
    *pnum = count;
    *status = QCOW2_STATUS_DATA | QCOW2_STATUS_ALLOCATED;
    *depth = 1;
    return 0;
  }
  pthread_mutex_lock (&q->lock);
  r = layer_status (q, offset, count, &n, &kind);
  pthread_mutex_unlock (&q->lock);
  if (r == -1)
    return -1;
  *pnum = n;
  switch (kind) {
  case SC_DATA:
    *status = QCOW2_STATUS_DATA | QCOW2_STATUS_ALLOCATED;
    *depth = 1;
    return 0;
  case SC_ZERO:
    *status = QCOW2_STATUS_ZERO | QCOW2_STATUS_ALLOCATED;
    *depth = 1;
    return 0;
  case SC_BACKING:
    break;
  }
  bsize = q->backing ? qcow2_get_size (q->backing) : 0;
  if (offset >= bsize) {
    *status = QCOW2_STATUS_ZERO;
    *depth = 0;
    return 0;
  }
  if (n > bsize - offset)
    n = bsize - offset;
  if (qcow2_block_status (q->backing, offset, n, pnum, status, depth) == -1)
    return -1;
  *status &= ~QCOW2_STATUS_ALLOCATED;
  if (*depth > 0)
    (*depth)++;
  return 0;
}
