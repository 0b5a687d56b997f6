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

/* nbdcbt-backup: a sink that streams a qcow2 file front to back into a
 * store upload (store.h), for object stores where a file cannot be
 * written in place.
 *
 * The file is a standard qcow2 v3 image (64 KiB clusters, 16-bit
 * refcounts), laid out so that everything is known when it is written:
 *
 *   cluster 0        the header, backing file name and format: the
 *                    upload's head, given last (store_upload_set_head)
 *   data clusters    in the order the copy delivers them
 *   L2 tables        only those that map something
 *   L1 table
 *   refcount table, refcount blocks (every cluster of the file: 1)
 *
 * qcow2 puts no table at a fixed place except the header, so QEMU reads
 * it as any other image.  Data writes must cover whole clusters (the
 * copy engine aligns them; the disk's last cluster may be short and is
 * padded with zeroes); zero writes set the v3 zero flag of whole
 * clusters.  The memory kept is the L2 tables being built: 8 bytes per
 * cluster of the regions written (1/8192 of the data).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "byte-order.h"
#include "cleanup.h"
#include "store.h"

#define CLUSTER_BITS 16
#define CLUSTER ((uint64_t) 1 << CLUSTER_BITS)
#define L2_ENTRIES (CLUSTER / 8)
#define REFCOUNT_ORDER 4        /* 16 bits */
#define REFS_PER_BLOCK (CLUSTER * 8 / (1 << REFCOUNT_ORDER))
#define QCOW_OFLAG_COPIED (UINT64_C (1) << 63)
#define QCOW_OFLAG_ZERO UINT64_C (1)

struct stream_sink {
  struct sink s;
  /* Writers take turns in the order they arrive (a ticket lock): with a
   * plain mutex a copy thread could lose the race for many rounds while
   * an upload slot is awaited, and its blocks would land far from their
   * neighbours in the file, which makes reading it back in disk order
   * jump around.
   */
  pthread_mutex_t lock;
  pthread_cond_t turn;
  uint64_t next_ticket, serving;
  struct store_upload *u;
  uint64_t size;                /* virtual */
  char *backing_file;           /* or NULL */
  uint64_t *file_size;          /* set at close */
  uint64_t l1_size;
  uint64_t **l2;                /* [l1_size], host-endian, NULL: none */
  char *pad;                    /* one zeroed cluster */
  bool failed;
};

/* The L2 entry of guest cluster C (the table made if missing). */
static uint64_t *
entry (struct stream_sink *ss, uint64_t c)
{
  uint64_t i = c / L2_ENTRIES;

  if (ss->l2[i] == NULL) {
    ss->l2[i] = calloc (L2_ENTRIES, sizeof (uint64_t));
    if (ss->l2[i] == NULL) {
      error_errno ("calloc");
      return NULL;
    }
  }
  return &ss->l2[i][c % L2_ENTRIES];
}

static int
append (struct stream_sink *ss, const void *buf, uint64_t len)
{
  if (store_upload_append (ss->u, buf, len) == -1) {
    ss->failed = true;
    return -1;
  }
  return 0;
}

static void
take_turn (struct stream_sink *ss)
{
  uint64_t t;

  pthread_mutex_lock (&ss->lock);
  t = ss->next_ticket++;
  while (t != ss->serving)
    pthread_cond_wait (&ss->turn, &ss->lock);
}

static void
end_turn (struct stream_sink *ss)
{
  ss->serving++;
  pthread_cond_broadcast (&ss->turn);
  pthread_mutex_unlock (&ss->lock);
}

/* Does [OFFSET, OFFSET+COUNT) cover whole clusters of the image, the
 * last one possibly only up to the disk's end (the image's size is the
 * disk's rounded up to 512 bytes, so the disk may end before it)?
 */
static bool
whole_clusters (const struct stream_sink *ss, uint64_t count,
                uint64_t offset)
{
  uint64_t end = offset + count;

  if (count == 0 || offset % CLUSTER != 0 || end > ss->size || end < offset)
    return false;
  return end % CLUSTER == 0 || (end - 1) / CLUSTER == (ss->size - 1) / CLUSTER;
}

static int
st_pwrite (struct sink *s, const void *buf, uint64_t count, uint64_t offset)
{
  struct stream_sink *ss = (struct stream_sink *) s;
  uint64_t c, n, i;
  int r = -1;

  if (!whole_clusters (ss, count, offset)) {
    error ("internal error: a streamed qcow2 write must cover whole "
           "clusters (%" PRIu64 " bytes at %" PRIu64 ")", count, offset);
    return -1;
  }
  c = offset / CLUSTER;
  n = (count + CLUSTER - 1) / CLUSTER;
  take_turn (ss);
  if (ss->failed)
    goto out;
  for (i = 0; i < n; ++i) {
    uint64_t *e = entry (ss, c + i);
    if (e == NULL)
      goto out;
    if (*e != 0) {
      error ("internal error: cluster %" PRIu64 " of the streamed qcow2 "
             "written twice", c + i);
      goto out;
    }
    *e = (store_upload_size (ss->u) + i * CLUSTER) | QCOW_OFLAG_COPIED;
  }
  if (append (ss, buf, count) == -1)
    goto out;
  if (count % CLUSTER && append (ss, ss->pad, CLUSTER - count % CLUSTER) == -1)
    goto out;
  r = 0;
 out:
  end_turn (ss);
  return r;
}

static int
st_zero (struct sink *s, uint64_t count, uint64_t offset)
{
  struct stream_sink *ss = (struct stream_sink *) s;
  uint64_t c, end, i;
  int r = -1;

  if (!whole_clusters (ss, count, offset)) {
    error ("internal error: a streamed qcow2 zero must cover whole "
           "clusters (%" PRIu64 " bytes at %" PRIu64 ")", count, offset);
    return -1;
  }
  c = offset / CLUSTER;
  end = (offset + count + CLUSTER - 1) / CLUSTER;
  take_turn (ss);
  for (i = c; i < end; ++i) {
    uint64_t *e = entry (ss, i);
    if (e == NULL)
      goto out;
    if (*e == 0)
      *e = QCOW_OFLAG_ZERO;
  }
  r = 0;
 out:
  end_turn (ss);
  return r;
}

static int
st_flush (struct sink *s)
{
  return 0;                     /* durability comes with the commit */
}

/* Append LEN bytes of table data (host-endian uint64_t converted to big
 * endian) padded to whole clusters.
 */
static int
append_table (struct stream_sink *ss, const uint64_t *t, uint64_t n)
{
  uint64_t buf[L2_ENTRIES];
  uint64_t i = 0;

  while (i < n) {
    uint64_t k, m = n - i < L2_ENTRIES ? n - i : L2_ENTRIES;
    memset (buf, 0, sizeof buf);
    for (k = 0; k < m; ++k)
      store_be64 (&buf[k], t[i + k]);
    if (append (ss, buf, sizeof buf) == -1)
      return -1;
    i += m;
  }
  return 0;
}

static uint64_t
div_up (uint64_t a, uint64_t b)
{
  return (a + b - 1) / b;
}

/* The tables after the data, then the header. */
static int
finish (struct stream_sink *ss)
{
  CLEANUP_FREE uint64_t *l1 = calloc (ss->l1_size ? ss->l1_size : 1, 8);
  CLEANUP_FREE uint64_t *reftable = NULL;
  CLEANUP_FREE char *header = calloc (1, CLUSTER);
  uint16_t *block = NULL;
  uint64_t i, pos, l1_offset, l1_clusters, n0, t, r, total, rt_offset;
  size_t off;
  int ret = -1;

  if (l1 == NULL || header == NULL) {
    error_errno ("calloc");
    return -1;
  }
  /* L2 tables. */
  for (i = 0; i < ss->l1_size; ++i) {
    if (ss->l2[i] == NULL)
      continue;
    l1[i] = store_upload_size (ss->u) | QCOW_OFLAG_COPIED;
    if (append_table (ss, ss->l2[i], L2_ENTRIES) == -1)
      return -1;
  }
  /* L1 table. */
  l1_offset = store_upload_size (ss->u);
  l1_clusters = div_up (ss->l1_size * 8, CLUSTER);
  if (append_table (ss, l1, ss->l1_size) == -1)
    return -1;
  if (ss->l1_size == 0 && append (ss, ss->pad, CLUSTER) == -1)
    return -1;
  if (l1_clusters == 0)
    l1_clusters = 1;

  /* Refcounts: the table and its blocks count themselves. */
  n0 = store_upload_size (ss->u) / CLUSTER;
  t = 1;
  r = 1;
  for (;;) {
    uint64_t r2 = div_up (n0 + t + r, REFS_PER_BLOCK);
    uint64_t t2 = div_up (r2 * 8, CLUSTER);
    if (r2 == r && t2 == t)
      break;
    r = r2;
    t = t2;
  }
  total = n0 + t + r;
  rt_offset = n0 * CLUSTER;
  reftable = calloc (t * L2_ENTRIES, 8);
  block = malloc (CLUSTER);
  if (reftable == NULL || block == NULL) {
    error_errno ("malloc");
    goto out;
  }
  for (i = 0; i < r; ++i)
    reftable[i] = (n0 + t + i) * CLUSTER;
  if (append_table (ss, reftable, t * L2_ENTRIES) == -1)
    goto out;
  for (i = 0; i < r; ++i) {
    uint64_t k, first = i * REFS_PER_BLOCK;
    for (k = 0; k < REFS_PER_BLOCK; ++k)
      store_be16 (&block[k], first + k < total ? 1 : 0);
    if (append (ss, block, CLUSTER) == -1)
      goto out;
  }

  /* The header, with the backing file's name and format. */
  store_be32 (header + 0, 0x514649fb);      /* QFI\xfb */
  store_be32 (header + 4, 3);
  store_be32 (header + 20, CLUSTER_BITS);
  store_be64 (header + 24, ss->size);
  store_be32 (header + 36, ss->l1_size);
  store_be64 (header + 40, l1_offset);
  store_be64 (header + 48, rt_offset);
  store_be32 (header + 56, t);
  store_be32 (header + 96, REFCOUNT_ORDER);
  store_be32 (header + 100, 112);           /* header length */
  off = 112;
  if (ss->backing_file) {
    size_t len = strlen (ss->backing_file);

    store_be32 (header + off, 0xe2792aca);  /* backing file format */
    store_be32 (header + off + 4, 5);
    memcpy (header + off + 8, "qcow2", 5);
    off += 16;
    off += 8;                               /* end of extensions: 0, 0 */
    if (off + len > 1024) {
      error ("backing file name too long: %s", ss->backing_file);
      goto out;
    }
    memcpy (header + off, ss->backing_file, len);
    store_be64 (header + 8, off);
    store_be32 (header + 16, len);
  }
  pos = store_upload_size (ss->u);
  if (pos != total * CLUSTER) {
    error ("internal error: streamed qcow2 is %" PRIu64 " bytes, expected %"
           PRIu64, pos, total * CLUSTER);
    goto out;
  }
  if (store_upload_set_head (ss->u, header) == -1)
    goto out;
  *ss->file_size = pos;
  ret = 0;
 out:
  free (block);
  return ret;
}

static int
st_close (struct sink *s)
{
  struct stream_sink *ss = (struct stream_sink *) s;
  uint64_t i;
  int r = ss->failed ? -1 : finish (ss);

  for (i = 0; i < ss->l1_size; ++i)
    free (ss->l2[i]);
  free (ss->l2);
  free (ss->pad);
  free (ss->backing_file);
  pthread_cond_destroy (&ss->turn);
  pthread_mutex_destroy (&ss->lock);
  free (ss);
  return r;
}

static const struct sink_ops stream_ops = {
  .name = "qcow2-stream",
  .pwrite = st_pwrite,
  .zero = st_zero,
  .flush = st_flush,
  .close = st_close,
};

struct sink *
sink_qcow2_stream (struct store_upload *u, uint64_t size,
                   const char *backing_file, uint64_t *file_size)
{
  struct stream_sink *ss = calloc (1, sizeof *ss);

  if (ss == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  if (store_upload_size (u) != CLUSTER) {
    error ("internal error: the streamed qcow2's head must be one cluster");
    free (ss);
    return NULL;
  }
  ss->s.ops = &stream_ops;
  ss->s.reads_zero = true;
  pthread_mutex_init (&ss->lock, NULL);
  pthread_cond_init (&ss->turn, NULL);
  ss->u = u;
  ss->size = size;
  ss->file_size = file_size;
  ss->l1_size = div_up (div_up (size, CLUSTER), L2_ENTRIES);
  ss->l2 = calloc (ss->l1_size ? ss->l1_size : 1, sizeof *ss->l2);
  ss->pad = calloc (1, CLUSTER);
  ss->backing_file = backing_file ? strdup (backing_file) : NULL;
  if (ss->l2 == NULL || ss->pad == NULL ||
      (backing_file && ss->backing_file == NULL)) {
    error_errno ("calloc");
    free (ss->l2);
    free (ss->pad);
    free (ss->backing_file);
    free (ss);
    return NULL;
  }
  return &ss->s;
}
