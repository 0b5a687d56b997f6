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

/* nbdcbt-backup: reading a qcow2 layer of an object store (layer.h)
 * with ranged reads, without a local copy.
 *
 * The header and the L1 table are read at open, the L2 tables when
 * first needed (and kept: 1/8192 of the data they map).  Data is read
 * through a window: a read that continues the previous ones fetches up
 * to WINDOW bytes ahead as PIECES ranged reads at once (store_pread_many
 * sends them in parallel), a random read fetches only what it needs.
 *
 * What the chain's writer produces is read (sink-qcow2-stream.c, and
 * images written by the qcow2 library or qemu-img): qcow2 v2/v3, any
 * cluster size, uncompressed, unencrypted, no external data file, no
 * extended L2 entries; anything else fails with ENOTSUP.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "byte-order.h"
#include "cleanup.h"
#include "layer.h"
#include "store.h"

#define OFFSET_MASK UINT64_C (0x00fffffffffffe00)
#define L2_COMPRESSED (UINT64_C (1) << 62)
#define L2_ZERO UINT64_C (1)
#define SEG (8 * 1024 * 1024)   /* cached piece of a file */
#define NSEGS 8                 /* the cache of a whole chain: 64 MiB */
#define AHEAD 4                 /* segments fetched at once */
#define NEAR (64 * 1024 * 1024) /* a read this close to the last streams */
#define MAX_CHAIN 1000

struct remote_qcow2 {
  struct store *st;
  char *name;
  uint64_t file_size;
  uint64_t size;                /* virtual */
  unsigned cluster_bits;
  uint64_t cluster;
  unsigned version;
  uint64_t l1_size;
  uint64_t *l1;
  uint64_t **l2;                /* [l1_size], loaded on demand */
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  unsigned refcount_order;
  char *backing_file, *backing_format;
  struct remote_qcow2 *backing;
  pthread_mutex_t lock;
  /* The segment cache, one for the whole chain (owned by its top layer),
   * so that the memory does not grow with the number of layers.  The
   * layers below the top are reached only through it, with its lock
   * held: that lock protects the cache.
   */
  struct seg_cache *cache;
  bool owns_cache;
  uint64_t last;                /* where the last read ended (+1) */
};

struct seg_cache {
  struct segment {
    char *buf;
    const struct remote_qcow2 *layer; /* whose file */
    uint64_t no;                /* host offset / SEG */
    uint64_t len;               /* 0: empty */
    uint64_t used;              /* for LRU */
  } segs[NSEGS];
  uint64_t clock;
};

/* What one guest cluster is in this layer. */
enum kind { K_UNALLOCATED, K_ZERO, K_DATA };

static int
fail (int err, const char *name, const char *what)
{
  layer_set_error ("%s: %s", name, what);
  errno = err;
  return -1;
}

static int
read_exact (struct remote_qcow2 *r, void *buf, size_t len, uint64_t off)
{
  if (off > r->file_size || len > r->file_size - off)
    return fail (EIO, r->name,
                 "a table or data cluster lies past the end of the file");
  if (store_pread (r->st, r->name, buf, len, off) == -1)
    return fail (EIO, r->name, "read failed (see above)");
  return 0;
}

void
remote_qcow2_close (struct remote_qcow2 *r)
{
  uint64_t i;

  if (r == NULL)
    return;
  remote_qcow2_close (r->backing);
  if (r->l2) {
    for (i = 0; i < r->l1_size; ++i)
      free (r->l2[i]);
    free (r->l2);
  }
  free (r->l1);
  if (r->owns_cache) {
    for (i = 0; i < NSEGS; ++i)
      free (r->cache->segs[i].buf);
    free (r->cache);
  }
  free (r->name);
  free (r->backing_file);
  free (r->backing_format);
  pthread_mutex_destroy (&r->lock);
  free (r);
}

static struct remote_qcow2 *
open_depth (struct store *st, const char *name, int flags, int depth,
            struct seg_cache *cache)
{
  struct remote_qcow2 *r = calloc (1, sizeof *r);
  CLEANUP_FREE unsigned char *h = NULL;
  uint64_t hlen, incompat, bf_off, i;
  uint32_t bf_len, header_length;
  int s;

  if (r == NULL) {
    layer_set_error ("%s", strerror (errno));
    return NULL;
  }
  pthread_mutex_init (&r->lock, NULL);
  r->st = st;
  r->cache = cache;
  if (cache == NULL) {
    r->cache = calloc (1, sizeof *r->cache);
    if (r->cache == NULL)
      goto oom;
    r->owns_cache = true;
  }
  r->name = strdup (name);
  if (r->name == NULL)
    goto oom;
  s = store_stat (st, name, &r->file_size);
  if (s != 0) {
    layer_set_error ("%s: %s", name, s == 1 ? "no such object"
                     : "cannot be read (see above)");
    errno = s == 1 ? ENOENT : EIO;
    goto err;
  }
  hlen = r->file_size < 65536 ? r->file_size : 65536;
  if (hlen < 72) {
    fail (EINVAL, name, "too short for a qcow2 image");
    goto err;
  }
  h = malloc (hlen);
  if (h == NULL)
    goto oom;
  if (read_exact (r, h, hlen, 0) == -1)
    goto err;
  if (load_be32 (h) != 0x514649fb) {
    fail (EINVAL, name, "not a qcow2 image (bad magic)");
    goto err;
  }
  r->version = load_be32 (h + 4);
  if (r->version != 2 && r->version != 3) {
    fail (ENOTSUP, name, "unsupported qcow2 version");
    goto err;
  }
  bf_off = load_be64 (h + 8);
  bf_len = load_be32 (h + 16);
  r->cluster_bits = load_be32 (h + 20);
  r->size = load_be64 (h + 24);
  if (r->cluster_bits < 9 || r->cluster_bits > 21) {
    fail (EINVAL, name, "bad cluster size");
    goto err;
  }
  r->cluster = UINT64_C (1) << r->cluster_bits;
  if (load_be32 (h + 32) != 0) {
    fail (ENOTSUP, name, "encrypted images are not supported");
    goto err;
  }
  r->l1_size = load_be32 (h + 36);
  r->refcount_table_offset = load_be64 (h + 48);
  r->refcount_table_clusters = load_be32 (h + 56);
  r->refcount_order = 4;
  header_length = 72;
  if (r->version == 3) {
    if (hlen < 104) {
      fail (EINVAL, name, "truncated header");
      goto err;
    }
    incompat = load_be64 (h + 72);
    if (incompat & 2) {
      fail (EINVAL, name, "the image is marked corrupt");
      goto err;
    }
    if (incompat & ~UINT64_C (1)) {
      fail (ENOTSUP, name, "unsupported incompatible features "
            "(external data file, compression type or extended L2)");
      goto err;
    }
    r->refcount_order = load_be32 (h + 96);
    header_length = load_be32 (h + 100);
    if (header_length < 104 || header_length > hlen) {
      fail (EINVAL, name, "bad header length");
      goto err;
    }
  }
  /* Header extensions: only the backing file's format matters here. */
  for (i = header_length; i + 8 <= hlen; ) {
    uint32_t type = load_be32 (h + i), len = load_be32 (h + i + 4);
    if (type == 0)
      break;
    if (i + 8 + len > hlen) {
      fail (EINVAL, name, "bad header extension");
      goto err;
    }
    if (type == 0xe2792aca &&
        (r->backing_format = strndup ((char *) h + i + 8, len)) == NULL)
      goto oom;
    i += 8 + ((len + 7) & ~7u);
  }
  if (bf_off) {
    if (bf_len == 0 || bf_len > 1023 || bf_off > hlen ||
        bf_len > hlen - bf_off) {
      fail (EINVAL, name, "bad backing file name");
      goto err;
    }
    r->backing_file = strndup ((char *) h + bf_off, bf_len);
    if (r->backing_file == NULL)
      goto oom;
  }

  /* L1 table: enough entries for the virtual size. */
  {
    uint64_t per_l1 = r->cluster / 8 * r->cluster;
    if (r->l1_size < (r->size + per_l1 - 1) / per_l1 ||
        r->l1_size > (UINT64_C (1) << 28)) {
      fail (EINVAL, name, "the L1 table is too small or huge");
      goto err;
    }
  }
  r->l1 = calloc (r->l1_size ? r->l1_size : 1, 8);
  r->l2 = calloc (r->l1_size ? r->l1_size : 1, sizeof *r->l2);
  if (r->l1 == NULL || r->l2 == NULL)
    goto oom;
  if (r->l1_size) {
    if (read_exact (r, r->l1, r->l1_size * 8, load_be64 (h + 40)) == -1)
      goto err;
    for (i = 0; i < r->l1_size; ++i)
      r->l1[i] = load_be64 (&r->l1[i]);
  }

  if (r->backing_file && !(flags & LAYER_NO_BACKING)) {
    if (depth >= MAX_CHAIN) {
      fail (ELOOP, name, "the backing chain is too long");
      goto err;
    }
    if (strchr (r->backing_file, '/')) {
      fail (EINVAL, name,
            "the backing file is not an object of the same chain");
      goto err;
    }
    r->backing = open_depth (st, r->backing_file, flags, depth + 1,
                             r->cache);
    if (r->backing == NULL)
      goto err;
  }
  return r;

 oom:
  layer_set_error ("%s", strerror (ENOMEM));
 err:
  remote_qcow2_close (r);
  return NULL;
}

struct remote_qcow2 *
remote_qcow2_open (struct store *st, const char *name, int flags)
{
  return open_depth (st, name, flags, 0, NULL);
}

uint64_t
remote_qcow2_size (struct remote_qcow2 *r)
{
  return r->size;
}

const char *
remote_qcow2_backing_file (struct remote_qcow2 *r)
{
  return r->backing_file;
}

const char *
remote_qcow2_backing_format (struct remote_qcow2 *r)
{
  return r->backing_format;
}

static uint64_t *
get_l2 (struct remote_qcow2 *r, uint64_t i)
{
  uint64_t n = r->cluster / 8, k, off;

  if (r->l2[i])
    return r->l2[i];
  off = r->l1[i] & OFFSET_MASK;
  if ((r->l2[i] = malloc (r->cluster)) == NULL) {
    layer_set_error ("%s", strerror (ENOMEM));
    return NULL;
  }
  if (read_exact (r, r->l2[i], r->cluster, off) == -1) {
    free (r->l2[i]);
    r->l2[i] = NULL;
    return NULL;
  }
  for (k = 0; k < n; ++k)
    r->l2[i][k] = load_be64 (&r->l2[i][k]);
  return r->l2[i];
}

/* The kind of guest cluster C and its host offset. */
static int
lookup (struct remote_qcow2 *r, uint64_t c, enum kind *kind, uint64_t *host)
{
  uint64_t per = r->cluster / 8, i = c / per, e, *l2;

  *host = 0;
  if (i >= r->l1_size || (r->l1[i] & OFFSET_MASK) == 0) {
    *kind = K_UNALLOCATED;
    return 0;
  }
  l2 = get_l2 (r, i);
  if (l2 == NULL)
    return -1;
  e = l2[c % per];
  if (e & L2_COMPRESSED)
    return fail (ENOTSUP, r->name,
                 "compressed clusters are not supported");
  if (r->version == 3 && (e & L2_ZERO))
    *kind = K_ZERO;
  else if (e & OFFSET_MASK) {
    *kind = K_DATA;
    *host = e & OFFSET_MASK;
  }
  else
    *kind = K_UNALLOCATED;
  return 0;
}

static int
bs_locked (struct remote_qcow2 *r, uint64_t offset, uint64_t count,
           uint64_t *pnum, int *status, int *depth)
{
  uint64_t end, pos, c, host;
  enum kind k0, k;

  if (offset >= r->size || count == 0) {
    *pnum = 0;
    *status = QCOW2_STATUS_ZERO;
    *depth = 0;
    return 0;
  }
  end = offset + count < r->size ? offset + count : r->size;
  c = offset >> r->cluster_bits;
  if (lookup (r, c, &k0, &host) == -1)
    return -1;
  pos = (c + 1) << r->cluster_bits;
  while (pos < end) {
    if (lookup (r, pos >> r->cluster_bits, &k, &host) == -1)
      return -1;
    if (k != k0)
      break;
    pos += r->cluster;
  }
  if (pos > end)
    pos = end;
  *pnum = pos - offset;
  switch (k0) {
  case K_DATA:
    *status = QCOW2_STATUS_DATA | QCOW2_STATUS_ALLOCATED;
    *depth = 1;
    return 0;
  case K_ZERO:
    *status = QCOW2_STATUS_ZERO | QCOW2_STATUS_ALLOCATED;
    *depth = 1;
    return 0;
  case K_UNALLOCATED:
    break;
  }
  if (r->backing && offset < r->backing->size) {
    uint64_t n = *pnum;
    if (offset + n > r->backing->size)
      n = r->backing->size - offset;
    pthread_mutex_lock (&r->backing->lock);
    if (bs_locked (r->backing, offset, n, pnum, status, depth) == -1) {
      pthread_mutex_unlock (&r->backing->lock);
      return -1;
    }
    pthread_mutex_unlock (&r->backing->lock);
    *status &= ~QCOW2_STATUS_ALLOCATED;
    if (*depth > 0)
      (*depth)++;
    return 0;
  }
  *status = QCOW2_STATUS_ZERO;
  *depth = 0;
  return 0;
}

int
remote_qcow2_block_status (struct remote_qcow2 *r, uint64_t offset,
                           uint64_t count, uint64_t *pnum, int *status,
                           int *depth)
{
  int ret;

  pthread_mutex_lock (&r->lock);
  ret = bs_locked (r, offset, count, pnum, status, depth);
  pthread_mutex_unlock (&r->lock);
  return ret;
}

static struct segment *
find_seg (struct remote_qcow2 *r, uint64_t no)
{
  size_t i;

  for (i = 0; i < NSEGS; ++i)
    if (r->cache->segs[i].len && r->cache->segs[i].layer == r &&
        r->cache->segs[i].no == no)
      return &r->cache->segs[i];
  return NULL;
}

/* Fetch segment NO and up to AHEAD - 1 following ones not cached, in
 * parallel, into the least recently used slots.
 */
static int
fetch_segs (struct remote_qcow2 *r, uint64_t no)
{
  void *bufs[AHEAD];
  size_t counts[AHEAD];
  uint64_t offs[AHEAD];
  struct segment *slots[AHEAD];
  size_t n = 0, i, k;

  for (k = 0; k < AHEAD && (no + k) * SEG < r->file_size; ++k) {
    struct segment *lru = NULL;

    if (k > 0 && find_seg (r, no + k))
      continue;
    for (i = 0; i < NSEGS; ++i) {
      struct segment *sg = &r->cache->segs[i];
      bool taken = false;
      size_t j;
      for (j = 0; j < n; ++j)
        taken |= slots[j] == sg;
      if (taken)
        continue;
      if (lru == NULL || sg->len == 0 ||
          (lru->len != 0 && sg->used < lru->used))
        lru = sg;
    }
    if (lru->buf == NULL && (lru->buf = malloc (SEG)) == NULL) {
      layer_set_error ("%s", strerror (ENOMEM));
      return -1;
    }
    lru->len = 0;
    slots[n] = lru;
    bufs[n] = lru->buf;
    offs[n] = (no + k) * SEG;
    counts[n] = r->file_size - offs[n] < SEG ? r->file_size - offs[n] : SEG;
    n++;
  }
  if (store_pread_many (r->st, r->name, n, bufs, counts, offs) == -1)
    return fail (EIO, r->name, "read failed (see above)");
  for (i = 0; i < n; ++i) {
    slots[i]->layer = r;
    slots[i]->no = offs[i] / SEG;
    slots[i]->len = counts[i];
    slots[i]->used = ++r->cache->clock;
  }
  return 0;
}

/* LEN bytes of the file at HOST, through the cache. */
static int
read_host (struct remote_qcow2 *r, char *buf, uint64_t len, uint64_t host)
{
  bool near = r->last != 0 && host + NEAR >= r->last &&
    host <= r->last + NEAR;

  if (host > r->file_size || len > r->file_size - host)
    return fail (EIO, r->name,
                 "a data cluster lies past the end of the file");
  while (len > 0) {
    uint64_t no = host / SEG, in = host % SEG;
    uint64_t n = SEG - in < len ? SEG - in : len;
    struct segment *sg = find_seg (r, no);

    if (sg == NULL && !near) {
      /* A random read: only what it needs, not cached. */
      if (read_exact (r, buf, len, host) == -1)
        return -1;
      r->last = host + len + 1;
      return 0;
    }
    if (sg == NULL) {
      if (fetch_segs (r, no) == -1)
        return -1;
      sg = find_seg (r, no);
    }
    if (sg == NULL || in + n > sg->len)
      return fail (EIO, r->name, "short read of a cached segment");
    memcpy (buf, sg->buf + in, n);
    sg->used = ++r->cache->clock;
    buf += n;
    host += n;
    len -= n;
  }
  r->last = host + 1;
  return 0;
}

static int
pread_locked (struct remote_qcow2 *r, char *buf, uint64_t count,
              uint64_t offset)
{
  while (count > 0) {
    uint64_t c = offset >> r->cluster_bits, in = offset & (r->cluster - 1);
    uint64_t n = r->cluster - in, host, run;
    enum kind k;

    if (n > count)
      n = count;
    if (offset >= r->size) {
      memset (buf, 0, count);
      return 0;
    }
    if (lookup (r, c, &k, &host) == -1)
      return -1;
    if (k == K_DATA) {
      /* Extend over clusters that follow on the host too. */
      run = n;
      while (run < count) {
        enum kind k2;
        uint64_t h2, m = count - run < r->cluster ? count - run : r->cluster;
        if (offset + run >= r->size ||
            lookup (r, (offset + run) >> r->cluster_bits, &k2, &h2) == -1 ||
            k2 != K_DATA || h2 != host + in + run)
          break;
        run += m;
      }
      if (read_host (r, buf, run, host + in) == -1)
        return -1;
      n = run;
    }
    else if (k == K_UNALLOCATED && r->backing && offset < r->backing->size) {
      uint64_t m = n;
      if (offset + m > r->backing->size)
        m = r->backing->size - offset;
      pthread_mutex_lock (&r->backing->lock);
      if (pread_locked (r->backing, buf, m, offset) == -1) {
        pthread_mutex_unlock (&r->backing->lock);
        return -1;
      }
      pthread_mutex_unlock (&r->backing->lock);
      memset (buf + m, 0, n - m);
    }
    else
      memset (buf, 0, n);
    buf += n;
    offset += n;
    count -= n;
  }
  return 0;
}

int
remote_qcow2_pread (struct remote_qcow2 *r, void *buf, uint64_t count,
                    uint64_t offset)
{
  int ret;

  pthread_mutex_lock (&r->lock);
  ret = pread_locked (r, buf, count, offset);
  pthread_mutex_unlock (&r->lock);
  return ret;
}

/* --- Check: refcounts against the references ------------------------- */

static void __attribute__ ((format (printf, 3, 4)))
report (void (*msg) (void *, const char *), void *opaque,
        const char *fs, ...)
{
  va_list args;
  char *s;

  if (msg == NULL)
    return;
  va_start (args, fs);
  if (vasprintf (&s, fs, args) != -1) {
    msg (opaque, s);
    free (s);
  }
  va_end (args);
}

int
remote_qcow2_check (struct remote_qcow2 *r, uint64_t *corruptions,
                    uint64_t *leaks,
                    void (*msg) (void *opaque, const char *text),
                    void *opaque)
{
  uint64_t nclusters = (r->file_size + r->cluster - 1) >> r->cluster_bits;
  uint64_t per_block = (r->cluster * 8) >> r->refcount_order;
  uint64_t rt_entries = (uint64_t) r->refcount_table_clusters * r->cluster / 8;
  CLEANUP_FREE uint32_t *refs = NULL;     /* references found */
  CLEANUP_FREE uint16_t *counts = NULL;   /* refcounts stored */
  CLEANUP_FREE uint64_t *rt = NULL;
  CLEANUP_FREE uint16_t *block = NULL;
  uint64_t i, k, bad = 0, leaked = 0, per_l2 = r->cluster / 8;
  int ret = -1;

  *corruptions = *leaks = 0;
  if (r->refcount_order != 4) {
    layer_set_error ("%s: refcounts of %u bits are not checked here",
                     r->name, 1u << r->refcount_order);
    errno = ENOTSUP;
    return -1;
  }
  refs = calloc (nclusters + 1, sizeof *refs);
  counts = calloc (nclusters + 1, sizeof *counts);
  rt = malloc (rt_entries * 8 + 8);
  block = malloc (r->cluster);
  if (!refs || !counts || !rt || !block) {
    layer_set_error ("%s", strerror (ENOMEM));
    return -1;
  }

#define REF(off, what)                                                  \
  do {                                                                  \
    uint64_t o_ = (off);                                                \
    if ((o_ & (r->cluster - 1)) || (o_ >> r->cluster_bits) >= nclusters) { \
      report (msg, opaque, "%s at %" PRIu64 " lies outside the file or " \
              "is not aligned", what, o_);                              \
      bad++;                                                            \
    }                                                                   \
    else                                                                \
      refs[o_ >> r->cluster_bits]++;                                    \
  } while (0)

  pthread_mutex_lock (&r->lock);
  refs[0]++;                                    /* the header */
  {
    unsigned char h[48];
    uint64_t l1_off;
    if (read_exact (r, h, sizeof h, 0) == -1)
      goto out;
    l1_off = load_be64 (h + 40);
    for (k = 0; k < (r->l1_size * 8 + r->cluster - 1) / r->cluster; ++k)
      REF (l1_off + k * r->cluster, "an L1 table cluster");
  }
  for (i = 0; i < r->l1_size; ++i) {
    uint64_t *l2;
    if ((r->l1[i] & OFFSET_MASK) == 0)
      continue;
    REF (r->l1[i] & OFFSET_MASK, "an L2 table");
    if ((r->l1[i] & OFFSET_MASK) >= r->file_size)
      continue;
    l2 = get_l2 (r, i);
    if (l2 == NULL)
      goto out;
    for (k = 0; k < per_l2; ++k) {
      uint64_t e = l2[k];
      if (e & L2_COMPRESSED) {
        report (msg, opaque, "compressed cluster (not supported)");
        bad++;
      }
      else if (e & OFFSET_MASK)
        REF (e & OFFSET_MASK, "a data cluster");
    }
  }
  for (k = 0; k < r->refcount_table_clusters; ++k)
    REF (r->refcount_table_offset + k * r->cluster, "the refcount table");
  if (read_exact (r, rt, rt_entries * 8, r->refcount_table_offset) == -1)
    goto out;
  for (i = 0; i < rt_entries; ++i) {
    uint64_t off = load_be64 (&rt[i]) & OFFSET_MASK;
    if (off == 0)
      continue;
    REF (off, "a refcount block");
    if (off >= r->file_size)
      continue;
    if (read_exact (r, block, r->cluster, off) == -1)
      goto out;
    for (k = 0; k < per_block && i * per_block + k < nclusters; ++k)
      counts[i * per_block + k] = load_be16 (&block[k]);
  }
#undef REF

  for (i = 0; i < nclusters; ++i) {
    if (counts[i] < refs[i]) {
      report (msg, opaque, "cluster %" PRIu64 ": refcount %u, but %u "
              "references", i, counts[i], refs[i]);
      bad++;
    }
    else if (counts[i] > refs[i])
      leaked++;
  }
  *corruptions = bad;
  *leaks = leaked;
  ret = 0;
 out:
  pthread_mutex_unlock (&r->lock);
  return ret;
}
