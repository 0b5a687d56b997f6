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

/* The bitmaps extension: directory parsing with QEMU's checks, loading a
 * bitmap's table and data, marking bitmaps in use in place, and storing a
 * new set (new tables and directory, header switch, then freeing the old
 * clusters), as block/qcow2-bitmap.c does.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap-store.h"
#include "byte-order.h"
#include "cleanup.h"
#include "hbitmap.h"
#include "qcow2-internal.h"
#include "rounding.h"

#define BME_IN_USE 1u
#define BME_AUTO 2u
#define BME_RESERVED_FLAGS 0xfffffffcu
#define BME_MAX_TABLE_SIZE 0x8000000
#define BME_MAX_PHYS_SIZE 0x20000000
#define BME_TABLE_OFFSET_MASK UINT64_C (0x00fffffffffffe00)
#define BME_TABLE_RESERVED_MASK UINT64_C (0xff000000000001fe)
#define BME_TABLE_ALL_ONES 1

static uint64_t
entry_size (size_t name_len)
{
  return (24 + name_len + 7) & ~UINT64_C (7);
}

/* Table entries QEMU requires for a bitmap of granularity G. */
static uint64_t
table_size_for (struct qcow2 *q, uint64_t g)
{
  uint64_t bits = (q->size + g - 1) / g;
  uint64_t bytes = (bits + 7) / 8;
  return (bytes + q->cluster_size - 1) / q->cluster_size;
}

void
qcow2_bitmaps_free (struct qcow2 *q)
{
  size_t i;

  for (i = 0; i < q->nr_bms; i++)
    free (q->bms[i].name);
  free (q->bms);
  free (q->bms_open_flags);
  free (q->bms_index);
  q->bms = NULL;
  q->bms_open_flags = NULL;
  q->bms_index = NULL;
  q->nr_bms = 0;
}

static int
cmp_range (const void *a, const void *b)
{
  const uint64_t *x = a, *y = b;
  return x[0] < y[0] ? -1 : x[0] > y[0];
}

static uint64_t *read_table (struct qcow2 *q, const struct qcow2_bm *b);

/* Bitmap names sorted, with their index in the directory: duplicate
 * checks and lookups in O(n log n) (an image may hold 65535 bitmaps).
 */
struct name_index {
  const char *name;
  size_t i;
};

static int
cmp_name_index (const void *a, const void *b)
{
  const struct name_index *x = a, *y = b;
  return strcmp (x->name, y->name);
}

static struct name_index *
index_names (const struct qcow2_bm *bms, size_t n)
{
  struct name_index *idx = malloc ((n ? n : 1) * sizeof *idx);
  size_t i;

  if (idx == NULL)
    return qcow2_error_null (errno, "malloc: %m");
  for (i = 0; i < n; i++) {
    idx[i].name = bms[i].name;
    idx[i].i = i;
  }
  qsort (idx, n, sizeof *idx, cmp_name_index);
  return idx;
}

/* The directory index of NAME, or -1. */
static ssize_t
lookup_name (const struct name_index *idx, size_t n, const char *name)
{
  struct name_index key = { .name = name };
  const struct name_index *r = bsearch (&key, idx, n, sizeof *idx,
                                        cmp_name_index);
  return r ? (ssize_t) r->i : -1;
}

int
qcow2_bitmaps_load_directory (struct qcow2 *q)
{
  uint64_t dsize = q->bitmap_directory_size, pos = 0;
  CLEANUP_FREE uint8_t *dir = malloc (dsize ? dsize : 1);
  CLEANUP_FREE uint64_t *ranges = NULL;
  uint32_t i, j;

  if (dir == NULL)
    return qcow2_error (errno, "malloc: %m");
  if (qcow2_file_pread (q, dir, dsize, q->bitmap_directory_offset) == -1)
    return -1;
  q->bms = calloc (q->nb_bitmaps, sizeof *q->bms);
  q->bms_open_flags = calloc (q->nb_bitmaps, sizeof (uint32_t));
  ranges = calloc (q->nb_bitmaps + 1, 2 * sizeof (uint64_t));
  if (q->bms == NULL || q->bms_open_flags == NULL || ranges == NULL)
    return qcow2_error (errno, "calloc: %m");

  for (i = 0; i < q->nb_bitmaps; i++) {
    struct qcow2_bm *b = &q->bms[i];
    uint16_t name_size;
    uint32_t extra;
    uint64_t esize;

    if (dsize - pos < 24)
      return qcow2_error (EINVAL, "%s: broken bitmap directory (entry %"
                          PRIu32 " past its end)", q->filename, i);
    b->table_offset = load_be64 (dir + pos);
    b->table_size = load_be32 (dir + pos + 8);
    b->flags = load_be32 (dir + pos + 12);
    b->type = dir[pos + 16];
    b->granularity_bits = dir[pos + 17];
    name_size = load_be16 (dir + pos + 18);
    extra = load_be32 (dir + pos + 20);
    esize = (24 + (uint64_t) name_size + extra + 7) & ~UINT64_C (7);
    if (esize > dsize - pos)
      return qcow2_error (EINVAL, "%s: broken bitmap directory (entry %"
                          PRIu32 " runs past its end)", q->filename, i);
    if (extra != 0)
      return qcow2_error (ENOTSUP, "%s: bitmap extra data is not supported",
                          q->filename);
    if (name_size == 0 || name_size > BITMAP_NAME_MAX)
      return qcow2_error (EINVAL, "%s: bitmap %" PRIu32 " has an invalid "
                          "name size %u", q->filename, i, name_size);
    b->name = strndup ((const char *) dir + pos + 24, name_size);
    if (b->name == NULL)
      return qcow2_error (errno, "strndup: %m");
    q->nr_bms = i + 1;
    q->bms_open_flags[i] = b->flags;
    if (strlen (b->name) != name_size)
      return qcow2_error (EINVAL, "%s: bitmap %" PRIu32 " name contains "
                          "a NUL byte", q->filename, i);
    if (b->table_size == 0 || b->table_size > BME_MAX_TABLE_SIZE ||
        (uint64_t) b->table_size * q->cluster_size > BME_MAX_PHYS_SIZE ||
        (b->flags & BME_RESERVED_FLAGS) || b->type != 1 ||
        b->granularity_bits > 63 ||
        !bitmap_granularity_valid (UINT64_C (1) << b->granularity_bits) ||
        b->table_offset == 0 ||
        (b->table_offset & (q->cluster_size - 1)) ||
        b->table_offset < q->cluster_size ||
        b->table_offset >= MAX_HOST_OFFSET ||
        b->table_offset + (uint64_t) b->table_size * 8 > q->host_end ||
        (!(b->flags & BME_IN_USE) &&
         q->size > ((uint64_t) b->table_size * q->cluster_size * 8)
                   << b->granularity_bits))
      return qcow2_error (EINVAL, "%s: bitmap '%s' doesn't satisfy the "
                          "constraints", q->filename, b->name);
    /* QEMU loads every consistent bitmap at open and fails the open
     * when the table does not have exactly the size the image needs
     * (load_bitmap_data): checked here, before anything is written.
     */
    if (!(b->flags & BME_IN_USE) &&
        b->table_size != table_size_for (q, UINT64_C (1) <<
                                         b->granularity_bits)) {
      if (!(q->open_flags & QCOW2_OPEN_CHECK))
        return qcow2_error (EINVAL, "%s: bitmap '%s' is damaged: its table "
                            "has %" PRIu32 " entries but the image size "
                            "needs %" PRIu64, q->filename, b->name,
                            b->table_size,
                            table_size_for (q, UINT64_C (1) <<
                                            b->granularity_bits));
      b->bad_table_size = true;
    }
    ranges[2 * i] = b->table_offset;
    ranges[2 * i + 1] = b->table_offset + (uint64_t) b->table_size * 8;
    pos += esize;
  }
  if (pos != dsize)
    return qcow2_error (EINVAL, "%s: broken bitmap directory (size %" PRIu64
                        " but entries fill %" PRIu64 " bytes)",
                        q->filename, dsize, pos);
  {
    CLEANUP_FREE struct name_index *idx = index_names (q->bms, q->nr_bms);

    if (idx == NULL)
      return -1;
    for (j = 1; j < q->nr_bms; j++)
      if (strcmp (idx[j - 1].name, idx[j].name) == 0)
        return qcow2_error (EINVAL, "%s: duplicate bitmap name '%s'",
                            q->filename, idx[j].name);
  }
  /* Tables must not overlap each other or the directory. */
  ranges[2 * i] = q->bitmap_directory_offset;
  ranges[2 * i + 1] = q->bitmap_directory_offset + dsize;
  qsort (ranges, q->nb_bitmaps + 1, 2 * sizeof (uint64_t), cmp_range);
  for (i = 1; i <= q->nb_bitmaps; i++)
    if (ranges[2 * i] < ranges[2 * i - 1])
      return qcow2_error (EINVAL, "%s: bitmap tables overlap each other or "
                          "the bitmap directory", q->filename);

  /* A writable open allocates clusters, and a table entry pointing past
   * the end of the file would soon point into new guest data, which a
   * later store or remove would then free or overwrite.  So the tables
   * are validated now (QEMU loads every consistent bitmap at a writable
   * open and fails on such entries too); bitmaps in use are never loaded.
   */
  if (!q->readonly)
    for (i = 0; i < q->nb_bitmaps; i++)
      if (!(q->bms[i].flags & BME_IN_USE) && !q->bms[i].bad_table_size) {
        uint64_t *t = read_table (q, &q->bms[i]);

        if (t == NULL)
          return -1;
        free (t);
      }
  return 0;
}

int
qcow2_bitmap_list (struct qcow2 *q, struct qcow2_bitmap_info **list,
                   size_t *n)
{
  size_t i;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  *n = 0;
  *list = calloc (q->nr_bms ? q->nr_bms : 1, sizeof **list);
  if (*list == NULL)
    return qcow2_error (errno, "calloc: %m");
  for (i = 0; i < q->nr_bms; i++) {
    (*list)[i].name = strdup (q->bms[i].name);
    if ((*list)[i].name == NULL) {
      qcow2_bitmap_list_free (*list, i);
      return qcow2_error (errno, "strdup: %m");
    }
    (*list)[i].granularity = UINT64_C (1) << q->bms[i].granularity_bits;
    (*list)[i].flags = q->bms_open_flags[i];
  }
  *n = q->nr_bms;
  return 0;
}

void
qcow2_bitmap_list_free (struct qcow2_bitmap_info *list, size_t n)
{
  size_t i;

  if (list == NULL)
    return;
  for (i = 0; i < n; i++)
    free (list[i].name);
  free (list);
}

static struct qcow2_bm *
find (struct qcow2 *q, const char *name)
{
  size_t i;
  ssize_t r;

  /* A few bitmaps: a scan.  Many (up to 65535): a sorted index, or
   * loading each of them would take quadratic time.
   */
  if (q->nr_bms < 32 ||
      (q->bms_index == NULL &&
       (q->bms_index = index_names (q->bms, q->nr_bms)) == NULL)) {
    for (i = 0; i < q->nr_bms; i++)
      if (strcmp (q->bms[i].name, name) == 0)
        return &q->bms[i];
    return NULL;
  }
  r = lookup_name (q->bms_index, q->nr_bms, name);
  return r >= 0 ? &q->bms[r] : NULL;
}

/* Reads and validates a bitmap table (host order). */
static uint64_t *
read_table (struct qcow2 *q, const struct qcow2_bm *b)
{
  uint64_t *t = malloc ((uint64_t) b->table_size * 8);
  uint32_t i;

  if (t == NULL)
    return qcow2_error_null (errno, "malloc: %m");
  if (qcow2_file_pread (q, t, (uint64_t) b->table_size * 8,
                        b->table_offset) == -1) {
    free (t);
    return NULL;
  }
  for (i = 0; i < b->table_size; i++) {
    uint64_t e = be64toh (t[i]), off = e & BME_TABLE_OFFSET_MASK;
    t[i] = e;
    if ((e & BME_TABLE_RESERVED_MASK) ||
        (off && (e & BME_TABLE_ALL_ONES)) ||
        (off && (off < q->cluster_size || off + q->cluster_size > q->host_end ||
                 (off & (q->cluster_size - 1))))) {
      free (t);
      return qcow2_error_null (EINVAL, "%s: bitmap '%s' table entry %" PRIu32
                               " is invalid (%#" PRIx64 ")",
                               q->filename, b->name, i, e);
    }
  }
  return t;
}

#define LOAD_BATCH (1024 * 1024)

static bool
is_zero (const uint8_t *p, size_t len)
{
  /* len is a cluster size: a multiple of 512. */
  return p[0] == 0 && memcmp (p, p + 1, len - 1) == 0;
}

struct hbitmap *
qcow2_bitmap_load (struct qcow2 *q, const char *name)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  struct qcow2_bm *b = find (q, name);
  uint64_t g, chunk, i, batch;
  CLEANUP_FREE uint64_t *t = NULL;
  CLEANUP_FREE uint8_t *buf = NULL;
  struct hbitmap *hb;

  if (b == NULL)
    return qcow2_error_null (ENOENT, "%s: no bitmap named '%s'",
                             q->filename, name);
  bool recover = (q->bms_open_flags[b - q->bms] & BME_IN_USE)
    && qcow2_bitmap_recoverable (q, name);

  if ((q->bms_open_flags[b - q->bms] & BME_IN_USE) && !q->bitmaps_ours
      && !recover)
    return qcow2_error_null (EBUSY, "%s: bitmap '%s' is inconsistent and "
                             "cannot be used (in use flag set); remove it",
                             q->filename, name);
  g = UINT64_C (1) << b->granularity_bits;
  if (b->table_size != table_size_for (q, g))
    return qcow2_error_null (EINVAL, "%s: bitmap '%s' table size %" PRIu32
                             " does not match the image size",
                             q->filename, name, b->table_size);
  t = read_table (q, b);
  if (t == NULL)
    return NULL;
  hb = hbitmap_new (q->size, g);
  if (hb == NULL)
    return qcow2_error_null (errno, "hbitmap_new: %m");
  chunk = q->cluster_size * 8 * g;
  /* Data clusters that follow each other on disk (as QEMU and we write
   * them) are read together, up to LOAD_BATCH bytes; all-zero clusters
   * are not deserialized (the new bitmap is clear already).
   */
  batch = LOAD_BATCH > q->cluster_size ? LOAD_BATCH / q->cluster_size : 1;
  /* No bigger than the bitmap: an image with thousands of small bitmaps
   * would otherwise map and unmap LOAD_BATCH bytes for each one.
   */
  if (batch > b->table_size)
    batch = b->table_size ? b->table_size : 1;
  buf = malloc (batch * q->cluster_size);
  if (buf == NULL) {
    hbitmap_free (hb);
    return qcow2_error_null (errno, "malloc: %m");
  }
  for (i = 0; i < b->table_size; ) {
    uint64_t off = t[i] & BME_TABLE_OFFSET_MASK, start = i * chunk, count;
    uint64_t k, nc = 1;

    if (start >= q->size)
      break;
    if (off == 0) {
      if (t[i] & BME_TABLE_ALL_ONES)
        hbitmap_set (hb, start, q->size - start < chunk ? q->size - start
                     : chunk);
      i++;
      continue;
    }
    while (nc < batch && i + nc < b->table_size &&
           (t[i + nc] & BME_TABLE_OFFSET_MASK) == off + nc * q->cluster_size &&
           (i + nc) * chunk < q->size)
      nc++;
    if (qcow2_file_pread (q, buf, nc * q->cluster_size, off) == -1) {
      hbitmap_free (hb);
      return NULL;
    }
    for (k = 0; k < nc; k++, i++) {
      const uint8_t *c = buf + k * q->cluster_size;

      start = i * chunk;
      count = q->size - start < chunk ? q->size - start : chunk;
      if (!is_zero (c, q->cluster_size))
        hbitmap_deserialize_part (hb, c, start, count);
    }
  }
  if (recover)
    /* In use at open, with a valid intent record: the stored data plus
     * every zone the record marks (docs/persistence.md).
     */
    qcow2_intent_apply_locked (q, hb);
  return hb;
}

/* Directory bytes for the current in-memory entries. */
static uint8_t *
build_directory (struct qcow2 *q, struct qcow2_bm *bms, size_t n,
                 uint64_t *size)
{
  uint64_t s = 0, pos = 0;
  uint8_t *dir;
  size_t i;

  for (i = 0; i < n; i++)
    s += entry_size (strlen (bms[i].name));
  dir = calloc (1, s ? s : 1);
  if (dir == NULL)
    return qcow2_error_null (errno, "calloc: %m");
  for (i = 0; i < n; i++) {
    size_t len = strlen (bms[i].name);
    store_be64 (dir + pos, bms[i].table_offset);
    store_be32 (dir + pos + 8, bms[i].table_size);
    store_be32 (dir + pos + 12, bms[i].flags);
    dir[pos + 16] = 1;
    dir[pos + 17] = bms[i].granularity_bits;
    store_be16 (dir + pos + 18, len);
    store_be32 (dir + pos + 20, 0);
    memcpy (dir + pos + 24, bms[i].name, len);
    pos += entry_size (len);
  }
  *size = s;
  (void) q;
  return dir;
}

int
qcow2_bitmaps_mark_in_use (struct qcow2 *q)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  CLEANUP_FREE uint8_t *dir = NULL;
  uint64_t size;
  size_t i;

  if (q->readonly)
    return qcow2_error (EROFS, "%s: cannot mark bitmaps in use on a "
                        "read-only image", q->filename);
  if (q->nr_bms == 0 || q->bitmaps_ours) {
    q->bitmaps_ours = true;
    return 0;
  }
  for (i = 0; i < q->nr_bms; i++)
    q->bms[i].flags |= BME_IN_USE;
  dir = build_directory (q, q->bms, q->nr_bms, &size);
  if (dir == NULL)
    return -1;
  /* As QEMU: autoclear bit off, directory in place, header, bit on. */
  q->autoclear &= ~AUTOCLEAR_BITMAPS;
  if (qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1 ||
      qcow2_file_pwrite (q, dir, size, q->bitmap_directory_offset) == -1 ||
      qcow2_file_sync (q) == -1)
    goto err;
  q->autoclear |= AUTOCLEAR_BITMAPS;
  if (qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1)
    goto err;
  q->bitmaps_ours = true;
  return 0;
 err:
  q->write_error = true;
  return -1;
}

/* Frees a bitmap's table and data clusters (no longer referenced). */
static int
free_bitmap_clusters (struct qcow2 *q, const struct qcow2_bm *b)
{
  CLEANUP_FREE uint64_t *t = read_table (q, b);
  uint32_t i;

  if (t == NULL)
    return -1;
  for (i = 0; i < b->table_size; i++)
    if ((t[i] & BME_TABLE_OFFSET_MASK) &&
        qcow2_update_refcount (q, t[i] & BME_TABLE_OFFSET_MASK, 1, -1) == -1)
      return -1;
  return qcow2_update_refcount (q, b->table_offset,
                                ((uint64_t) b->table_size * 8 +
                                 q->cluster_size - 1) >> q->cluster_bits, -1);
}

/* Writes one bitmap's data and table to new clusters. */
static int
write_bitmap (struct qcow2 *q, const struct hbitmap *hb, struct qcow2_bm *b)
{
  uint64_t g = hbitmap_granularity (hb), chunk = q->cluster_size * 8 * g;
  uint64_t tbytes, i;
  CLEANUP_FREE uint8_t *buf = malloc (q->cluster_size);
  CLEANUP_FREE uint8_t *tbl = NULL;
  int64_t toff;

  b->table_size = table_size_for (q, g);
  tbytes = (uint64_t) b->table_size * 8;
  tbl = calloc (1, (tbytes + q->cluster_size - 1) & ~(q->cluster_size - 1));
  if (buf == NULL || tbl == NULL)
    return qcow2_error (errno, "malloc: %m");
  for (i = 0; i < b->table_size; i++) {
    uint64_t start = i * chunk, count;
    int64_t off;
    if (start >= q->size)
      break;
    count = q->size - start < chunk ? q->size - start : chunk;
    if (hbitmap_is_zero_part (hb, start, count))
      continue;
    memset (buf, 0, q->cluster_size);
    hbitmap_serialize_part (hb, buf, start, count);
    off = qcow2_alloc_clusters (q, 1);
    if (off == -1 || qcow2_file_pwrite (q, buf, q->cluster_size, off) == -1)
      return -1;
    store_be64 (tbl + i * 8, off);
  }
  toff = qcow2_alloc_clusters (q, (tbytes + q->cluster_size - 1)
                               >> q->cluster_bits);
  if (toff == -1 ||
      qcow2_file_pwrite (q, tbl, (tbytes + q->cluster_size - 1)
                         & ~(q->cluster_size - 1), toff) == -1)
    return -1;
  b->table_offset = toff;
  return 0;
}

static int
check_name (struct qcow2 *q, const char *name)
{
  const char *msg = bitmap_name_error (name);

  if (msg)
    return qcow2_error (EINVAL, "%s: %s", q->filename, msg);
  return 0;
}

int
qcow2_bitmaps_supported (struct qcow2 *q)
{
  /* Without autoclear bits, an older program that opened the image could
   * not tell that the bitmaps no longer match the data.
   */
  if (q->version < 3)
    return qcow2_error (ENOTSUP, "%s: Cannot store dirty bitmaps in qcow2 "
                        "v2 files", q->filename);
  return 0;
}

static int
check_granularity (struct qcow2 *q, uint64_t g)
{
  const char *msg = bitmap_granularity_error (g);
  uint64_t bytes;

  if (msg)
    return qcow2_error (EINVAL, "%s: %s", q->filename, msg);
  bytes = DIV_ROUND_UP (DIV_ROUND_UP (q->size, g), 8);
  if (bytes > BME_MAX_PHYS_SIZE ||
      bytes > (uint64_t) BME_MAX_TABLE_SIZE * q->cluster_size)
    return qcow2_error (EFBIG, "%s: Too much space will be occupied by the "
                        "bitmap. Use larger granularity", q->filename);
  return 0;
}

/* One store, cut at the joints of QEMU's
 * qcow2_store_persistent_dirty_bitmaps: the request is checked against
 * the directory on disk (store_validate), the new bitmaps are written to
 * new clusters (store_write_bitmaps), then the new directory
 * (store_write_directory); the header is switched to it
 * (store_switch_header) and only then are the replaced clusters freed
 * (store_free_old).  Until the switch the image on disk is the old one: a
 * failure before it leaks new clusters and changes nothing else.
 */
struct store_job {
  /* The request. */
  const struct bitmap_store_entry *set;
  size_t n;
  const char *const *keep;
  size_t nkeep;

  /* The old directory: its names sorted, and for each old bitmap which
   * entry (of SET, then of KEEP) takes its place, or SIZE_MAX.
   */
  struct name_index *old_index;
  size_t *slot;

  /* The new directory: its entries, and where its bytes were written. */
  struct qcow2_bm *bms;
  size_t nr_bms;
  uint64_t dir_offset;
  uint64_t dir_size;
};

static void
store_job_free (struct store_job *job)
{
  size_t i;

  if (job->bms)
    for (i = 0; i < job->nr_bms; i++)
      free (job->bms[i].name);
  free (job->bms);
  free (job->old_index);
  free (job->slot);
}

/* The directory index of old bitmap NAME, or -1. */
static ssize_t
store_old_index (struct qcow2 *q, const struct store_job *job,
                 const char *name)
{
  return lookup_name (job->old_index, q->nr_bms, name);
}

/* Checks the request against QEMU's constraints and the directory on
 * disk, and maps every old bitmap to the entry that replaces or keeps it.
 * Nothing is written.
 */
static int
store_validate (struct qcow2 *q, struct store_job *job)
{
  size_t nold = q->nr_bms, n = job->n, i, j;
  const char *msg;

  if (q->readonly)
    return qcow2_error (EROFS, "%s: image is read-only", q->filename);
  if (q->write_error)
    return qcow2_error (EIO, "%s: an earlier metadata write failed",
                        q->filename);
  if (n + job->nkeep > 0 && qcow2_bitmaps_supported (q) == -1)
    return -1;
  if ((msg = bitmap_count_error (n + job->nkeep)) != NULL)
    return qcow2_error (EINVAL, "%s: %s (%d)", q->filename, msg,
                        BITMAP_COUNT_MAX);
  job->old_index = index_names (q->bms, nold);
  job->slot = malloc ((nold ? nold : 1) * sizeof *job->slot);
  if (job->old_index == NULL || job->slot == NULL)
    return qcow2_error (errno, "malloc: %m");
  for (i = 0; i < nold; i++)
    job->slot[i] = SIZE_MAX;
  for (i = 0; i < job->nkeep; i++) {
    ssize_t o = store_old_index (q, job, job->keep[i]);
    if (o == -1)
      return qcow2_error (ENOENT, "%s: no bitmap named '%s' to keep",
                          q->filename, job->keep[i]);
    if (job->slot[o] != SIZE_MAX)
      return qcow2_error (EINVAL, "%s: bitmap '%s' kept twice",
                          q->filename, job->keep[i]);
    job->slot[o] = n + i;
  }
  for (i = 0; i < n; i++) {
    ssize_t o = store_old_index (q, job, job->set[i].name);
    if (o >= 0 && job->slot[o] != SIZE_MAX)
      return qcow2_error (EINVAL, job->slot[o] >= n
                          ? "%s: bitmap '%s' both stored and kept"
                          : "%s: duplicate bitmap name '%s'",
                          q->filename, job->set[i].name);
    if (o >= 0)
      job->slot[o] = i;
  }
  for (i = 0; i < n; i++) {
    const struct bitmap_store_entry *e = &job->set[i];

    if (check_name (q, e->name) == -1 ||
        check_granularity (q, hbitmap_granularity (e->bitmap)) == -1)
      return -1;
    if (hbitmap_size (e->bitmap) != q->size)
      return qcow2_error (EINVAL, "%s: bitmap '%s' size does not match the "
                          "image", q->filename, e->name);
    /* New names (not on disk) among themselves; usually a few. */
    if (store_old_index (q, job, e->name) == -1)
      for (j = 0; j < i; j++)
        if (strcmp (e->name, job->set[j].name) == 0)
          return qcow2_error (EINVAL, "%s: duplicate bitmap name '%s'",
                              q->filename, e->name);
  }
  return 0;
}

/* The new directory's entries in QEMU's order (bitmaps already on disk
 * keep their places, new ones go at the end); each bitmap of the set is
 * written to new data clusters and a new table, kept ones are copied.
 */
static int
store_write_bitmaps (struct qcow2 *q, struct store_job *job)
{
  size_t nold = q->nr_bms, total = job->n + job->nkeep, k = 0, i;
  CLEANUP_FREE size_t *order = calloc (total + 1, sizeof *order);

  job->bms = calloc (total + 1, sizeof *job->bms);
  if (job->bms == NULL || order == NULL)
    return qcow2_error (errno, "calloc: %m");
  for (i = 0; i < nold; i++)
    if (job->slot[i] != SIZE_MAX)
      order[k++] = job->slot[i];
  for (i = 0; i < job->n; i++)
    if (store_old_index (q, job, job->set[i].name) == -1)
      order[k++] = i;

  for (k = 0; k < total; k++) {
    struct qcow2_bm *b = &job->bms[k];
    size_t x = order[k];

    if (x < job->n) {
      const struct bitmap_store_entry *e = &job->set[x];

      b->name = strdup (e->name);
      if (b->name == NULL)
        return qcow2_error (errno, "strdup: %m");
      job->nr_bms++;
      b->type = 1;
      b->granularity_bits = __builtin_ctzll (hbitmap_granularity (e->bitmap));
      b->flags = (e->recording ? BME_AUTO : 0) | (e->in_use ? BME_IN_USE : 0);
      if (write_bitmap (q, e->bitmap, b) == -1)
        return -1;
    }
    else {
      const struct qcow2_bm *o =
        &q->bms[store_old_index (q, job, job->keep[x - job->n])];

      *b = *o;
      b->name = strdup (o->name);
      if (b->name == NULL)
        return qcow2_error (errno, "strdup: %m");
      job->nr_bms++;
    }
  }
  return 0;
}

/* The new directory, written to new clusters (none for an empty one). */
static int
store_write_directory (struct qcow2 *q, struct store_job *job)
{
  CLEANUP_FREE uint8_t *dir = build_directory (q, job->bms, job->nr_bms,
                                               &job->dir_size);
  int64_t off;

  if (dir == NULL)
    return -1;
  if (job->dir_size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE)
    return qcow2_error (EINVAL, "%s: bitmap directory too large",
                        q->filename);
  job->dir_offset = 0;
  if (job->nr_bms == 0) {
    job->dir_size = 0;
    return 0;
  }
  off = qcow2_alloc_clusters (q, (job->dir_size + q->cluster_size - 1)
                              >> q->cluster_bits);
  if (off == -1 || qcow2_file_pwrite (q, dir, job->dir_size, off) == -1)
    return -1;
  job->dir_offset = off;
  return 0;
}

/* The commit point: once the new clusters and their refcounts are on
 * disk, the header's bitmaps extension is pointed at the new directory
 * (and dropped, with its autoclear bit, when the directory is empty).  A
 * failed header write leaves the image's state unknown: no more writes.
 */
static int
store_switch_header (struct qcow2 *q, const struct store_job *job)
{
  if (qcow2_writeback (q) == -1 || qcow2_file_sync (q) == -1)
    return -1;
  q->has_bitmaps_ext = job->nr_bms > 0;
  q->nb_bitmaps = job->nr_bms;
  q->bitmap_directory_size = job->dir_size;
  q->bitmap_directory_offset = job->dir_offset;
  if (job->nr_bms)
    q->autoclear |= AUTOCLEAR_BITMAPS;
  else
    q->autoclear &= ~AUTOCLEAR_BITMAPS;
  if (qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1) {
    q->write_error = true;
    return -1;
  }
  return 0;
}

/* After the switch: the handle takes the new directory, and the old
 * directory and every bitmap not kept lose their clusters.  A failure
 * here leaks clusters (qemu-img check repairs that) and stops writes.
 */
static int
store_free_old (struct qcow2 *q, struct store_job *job,
                uint64_t old_dir_offset, uint64_t old_dir_size)
{
  struct qcow2_bm *old = q->bms;
  uint32_t *old_flags = q->bms_open_flags;
  size_t nold = q->nr_bms, i;

  free (q->bms_index);
  q->bms_index = NULL;
  q->bms = job->bms;
  q->nr_bms = job->nr_bms;
  job->bms = NULL;
  job->nr_bms = 0;
  q->bms_open_flags = calloc (q->nr_bms + 1, sizeof (uint32_t));
  if (q->bms_open_flags == NULL) {
    q->bms_open_flags = old_flags;
    old_flags = NULL;
  }
  for (i = 0; i < q->nr_bms; i++)
    q->bms_open_flags[i] = q->bms[i].flags;

  for (i = 0; i < nold; i++) {
    bool kept = job->slot[i] != SIZE_MAX && job->slot[i] >= job->n;
    if (!kept && free_bitmap_clusters (q, &old[i]) == -1)
      q->write_error = true;
  }
  if (old_dir_size &&
      qcow2_update_refcount (q, old_dir_offset,
                             (old_dir_size + q->cluster_size - 1)
                             >> q->cluster_bits, -1) == -1)
    q->write_error = true;
  for (i = 0; i < nold; i++)
    free (old[i].name);
  free (old);
  free (old_flags);
  if (qcow2_writeback (q) == -1 || qcow2_file_sync (q) == -1)
    return -1;
  return q->write_error ? qcow2_error (EIO, "%s: freeing old bitmap "
                                       "clusters failed", q->filename) : 0;
}

static int
store_locked (struct qcow2 *q, const struct bitmap_store_entry *set,
              size_t n, const char *const *keep, size_t nkeep)
{
  struct store_job job = {
    .set = set, .n = n, .keep = keep, .nkeep = nkeep,
  };
  uint64_t old_dir_offset = q->bitmap_directory_offset;
  uint64_t old_dir_size = q->has_bitmaps_ext ? q->bitmap_directory_size : 0;
  int r = -1;

  if (store_validate (q, &job) == 0 &&
      store_write_bitmaps (q, &job) == 0 &&
      store_write_directory (q, &job) == 0 &&
      store_switch_header (q, &job) == 0)
    r = store_free_old (q, &job, old_dir_offset, old_dir_size);
  store_job_free (&job);
  return r;
}

int
qcow2_bitmaps_store (struct qcow2 *q,
                     const struct bitmap_store_entry *set, size_t n,
                     const char *const *keep, size_t nkeep)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  return store_locked (q, set, n, keep, nkeep);
}

/* Entries of every current bitmap except SKIP, to keep as they are. */
static const char **
keep_all_but (struct qcow2 *q, const char *skip, size_t *n)
{
  const char **k = calloc (q->nr_bms + 1, sizeof *k);
  size_t i;

  *n = 0;
  if (k == NULL)
    return qcow2_error_null (errno, "calloc: %m");
  for (i = 0; i < q->nr_bms; i++)
    if (skip == NULL || strcmp (q->bms[i].name, skip) != 0)
      k[(*n)++] = q->bms[i].name;
  return k;
}

int
qcow2_bitmap_add (struct qcow2 *q, const char *name, uint64_t granularity,
                  bool recording)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  struct bitmap_store_entry e = { .name = name, .recording = recording };
  CLEANUP_FREE const char **keep = NULL;
  struct hbitmap *hb;
  size_t nkeep;
  int r;

  if (check_name (q, name) == -1 || check_granularity (q, granularity) == -1)
    return -1;
  /* Only a new name: one already stored (by QEMU, which allows it) stays
   * usable.
   */
  if (!bitmap_name_is_utf8 (name))
    return qcow2_error (EINVAL, "%s: " BITMAP_NAME_NOT_UTF8, q->filename);
  if (find (q, name))
    return qcow2_error (EEXIST, "%s: bitmap '%s' already exists",
                        q->filename, name);
  if (qcow2_bitmaps_supported (q) == -1)
    return -1;
  keep = keep_all_but (q, NULL, &nkeep);
  if (keep == NULL)
    return -1;
  hb = hbitmap_new (q->size, granularity);
  if (hb == NULL)
    return qcow2_error (errno, "hbitmap_new: %m");
  e.bitmap = hb;
  r = store_locked (q, &e, 1, keep, nkeep);
  hbitmap_free (hb);
  return r;
}

int
qcow2_bitmap_remove (struct qcow2 *q, const char *name)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  CLEANUP_FREE const char **keep = NULL;
  size_t nkeep;

  if (find (q, name) == NULL)
    return qcow2_error (ENOENT, "%s: no bitmap named '%s'", q->filename,
                        name);
  keep = keep_all_but (q, name, &nkeep);
  if (keep == NULL)
    return -1;
  return store_locked (q, NULL, 0, keep, nkeep);
}

/* For check: calls FN on the directory, every table and data cluster. */
int
qcow2_bitmaps_account (struct qcow2 *q,
                       int (*fn) (void *opaque, uint64_t offset,
                                  uint64_t len, const char *what),
                       int (*bad_table) (void *opaque, const char *name,
                                         uint32_t size, uint64_t expected),
                       void *opaque)
{
  size_t i;
  uint32_t j;

  if (!q->has_bitmaps_ext)
    return 0;
  if (fn (opaque, q->bitmap_directory_offset, q->bitmap_directory_size,
          "bitmap directory") == -1)
    return -1;
  for (i = 0; i < q->nr_bms; i++) {
    CLEANUP_FREE uint64_t *t = NULL;

    if (q->bms[i].bad_table_size && bad_table &&
        bad_table (opaque, q->bms[i].name, q->bms[i].table_size,
                   table_size_for (q, UINT64_C (1) <<
                                   q->bms[i].granularity_bits)) == -1)
      return -1;
    t = read_table (q, &q->bms[i]);
    if (t == NULL)
      return -1;
    if (fn (opaque, q->bms[i].table_offset,
            (uint64_t) q->bms[i].table_size * 8, "bitmap table") == -1)
      return -1;
    for (j = 0; j < q->bms[i].table_size; j++)
      if ((t[j] & BME_TABLE_OFFSET_MASK) &&
          fn (opaque, t[j] & BME_TABLE_OFFSET_MASK, q->cluster_size,
              "bitmap data") == -1)
        return -1;
  }
  return 0;
}
