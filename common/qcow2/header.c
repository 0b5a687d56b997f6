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

/* The qcow2 header and its extensions: parsing with validation of every
 * field, and rewriting cluster 0 as QEMU does (unknown header fields and
 * unknown extensions preserved).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "qcow2-internal.h"

static int
add_ext (struct qcow2 *q, uint32_t magic, const uint8_t *data, uint32_t len)
{
  struct qcow2_ext *n = realloc (q->exts, (q->nr_exts + 1) * sizeof *n);
  if (n == NULL)
    return qcow2_error (errno, "realloc: %m");
  q->exts = n;
  n[q->nr_exts].magic = magic;
  n[q->nr_exts].len = len;
  n[q->nr_exts].data = malloc (len ? len : 1);
  if (n[q->nr_exts].data == NULL)
    return qcow2_error (errno, "malloc: %m");
  memcpy (n[q->nr_exts].data, data, len);
  q->nr_exts++;
  return 0;
}

/* A table at OFFSET of LEN bytes must be cluster aligned, lie after the
 * header cluster and inside the file.
 */
static int
check_table (struct qcow2 *q, uint64_t offset, uint64_t len,
             uint64_t file_size, const char *what)
{
  if (offset & (q->cluster_size - 1))
    return qcow2_error (EINVAL, "%s: %s offset %#" PRIx64
                        " is not cluster aligned", q->filename, what, offset);
  if (offset < q->cluster_size)
    return qcow2_error (EINVAL, "%s: %s at %#" PRIx64
                        " overlaps the header", q->filename, what, offset);
  if (offset >= MAX_HOST_OFFSET || len > MAX_HOST_OFFSET - offset ||
      offset + len > file_size)
    return qcow2_error (EINVAL, "%s: %s at %#" PRIx64 " (%" PRIu64
                        " bytes) lies past the end of the file",
                        q->filename, what, offset, len);
  return 0;
}

int
qcow2_parse_header (struct qcow2 *q, const uint8_t *buf, size_t len,
                    uint64_t file_size)
{
  uint64_t ext_end, off;

  if (len < 72 || load_be32 (buf) != QCOW2_MAGIC)
    return qcow2_error (EINVAL, "%s: not a qcow2 image (bad magic)",
                        q->filename);
  q->version = load_be32 (buf + 4);
  if (q->version != 2 && q->version != 3)
    return qcow2_error (ENOTSUP, "%s: unsupported qcow2 version %" PRIu32,
                        q->filename, q->version);
  q->backing_file_offset = load_be64 (buf + 8);
  q->backing_file_size = load_be32 (buf + 16);
  q->cluster_bits = load_be32 (buf + 20);
  q->size = load_be64 (buf + 24);
  q->crypt_method = load_be32 (buf + 32);
  q->l1_size = load_be32 (buf + 36);
  q->l1_table_offset = load_be64 (buf + 40);
  q->refcount_table_offset = load_be64 (buf + 48);
  q->refcount_table_clusters = load_be32 (buf + 56);
  q->nb_snapshots = load_be32 (buf + 60);
  q->snapshots_offset = load_be64 (buf + 64);

  if (q->cluster_bits < MIN_CLUSTER_BITS || q->cluster_bits > MAX_CLUSTER_BITS)
    return qcow2_error (EINVAL, "%s: unsupported cluster size: 2^%" PRIu32,
                        q->filename, q->cluster_bits);
  q->cluster_size = UINT64_C (1) << q->cluster_bits;

  if (q->version == 2) {
    q->incompat = q->compat = q->autoclear = 0;
    q->refcount_order = 4;
    q->header_length = 72;
    q->compression_type = 0;
  }
  else {
    if (len < 104)
      return qcow2_error (EINVAL, "%s: truncated qcow2 v3 header",
                          q->filename);
    q->incompat = load_be64 (buf + 72);
    q->compat = load_be64 (buf + 80);
    q->autoclear = load_be64 (buf + 88);
    q->refcount_order = load_be32 (buf + 96);
    q->header_length = load_be32 (buf + 100);
    if (q->header_length < 104 || q->header_length % 8 != 0 ||
        q->header_length > q->cluster_size || q->header_length > len)
      return qcow2_error (EINVAL, "%s: invalid header_length %" PRIu32,
                          q->filename, q->header_length);
    q->compression_type = q->header_length > 104 ? buf[104] : 0;
    if (q->header_length > 112) {
      q->unknown_fields_len = q->header_length - 112;
      q->unknown_fields = malloc (q->unknown_fields_len);
      if (q->unknown_fields == NULL)
        return qcow2_error (errno, "malloc: %m");
      memcpy (q->unknown_fields, buf + 112, q->unknown_fields_len);
    }
  }

  if (q->incompat & ~INCOMPAT_MASK)
    return qcow2_error (ENOTSUP, "%s: unsupported qcow2 feature(s): "
                        "incompatible feature bits %#" PRIx64,
                        q->filename, q->incompat & ~INCOMPAT_MASK);
  if (q->incompat & INCOMPAT_DATA_FILE)
    return qcow2_error (ENOTSUP, "%s: images with an external data file "
                        "are not supported", q->filename);
  if (q->crypt_method != 0)
    return qcow2_error (ENOTSUP, "%s: encrypted images are not supported "
                        "(crypt_method %" PRIu32 ")",
                        q->filename, q->crypt_method);
  if (q->refcount_order > 6)
    return qcow2_error (EINVAL, "%s: refcount_order %" PRIu32
                        " is larger than 6", q->filename, q->refcount_order);
  if (q->compression_type > 1)
    return qcow2_error (ENOTSUP, "%s: unknown compression type %u",
                        q->filename, q->compression_type);
  if ((q->compression_type != 0) != !!(q->incompat & INCOMPAT_COMPRESSION))
    return qcow2_error (EINVAL, "%s: compression type %u does not match "
                        "incompatible bit 3", q->filename,
                        q->compression_type);

  q->extended_l2 = !!(q->incompat & INCOMPAT_EXTL2);
  if (q->extended_l2 && q->cluster_bits < 14)
    return qcow2_error (EINVAL, "%s: extended L2 needs a cluster size of "
                        "at least 16 KiB", q->filename);
  q->l2_entry_size = q->extended_l2 ? 16 : 8;
  q->l2_entries = q->cluster_size / q->l2_entry_size;
  q->subcluster_size = q->extended_l2 ? q->cluster_size / 32 : q->cluster_size;
  q->refcount_bits = 1u << q->refcount_order;
  q->rb_entries = q->cluster_size * 8 / q->refcount_bits;
  q->csize_shift = 62 - (q->cluster_bits - 8);
  q->csize_mask = (UINT64_C (1) << (q->cluster_bits - 8)) - 1;
  q->dirty_at_open = !!(q->incompat & INCOMPAT_DIRTY);
  q->corrupt_at_open = !!(q->incompat & INCOMPAT_CORRUPT);

  /* Virtual size and L1. */
  if (q->size > (UINT64_C (1) << 62))
    return qcow2_error (EINVAL, "%s: virtual size %" PRIu64 " is too large",
                        q->filename, q->size);
  if ((uint64_t) q->l1_size * 8 > MAX_L1_BYTES)
    return qcow2_error (EFBIG, "%s: active L1 table too large (%" PRIu32
                        " entries)", q->filename, q->l1_size);
  {
    uint64_t per_l1 = q->l2_entries * q->cluster_size;
    uint64_t needed = (q->size + per_l1 - 1) / per_l1;
    if (needed > q->l1_size)
      return qcow2_error (EINVAL, "%s: L1 table is too small for the "
                          "virtual size", q->filename);
  }
  if (q->l1_size > 0 &&
      check_table (q, q->l1_table_offset, (uint64_t) q->l1_size * 8,
                   file_size, "L1 table") == -1)
    return -1;

  /* Refcount table. */
  if (q->refcount_table_clusters == 0)
    return qcow2_error (EINVAL, "%s: image does not contain a reference "
                        "count table", q->filename);
  if ((uint64_t) q->refcount_table_clusters * q->cluster_size >
      MAX_REFTABLE_BYTES)
    return qcow2_error (EFBIG, "%s: reference count table too large",
                        q->filename);
  if (check_table (q, q->refcount_table_offset,
                   (uint64_t) q->refcount_table_clusters * q->cluster_size,
                   file_size, "reference count table") == -1)
    return -1;

  /* Snapshots. */
  if (q->nb_snapshots > 65536)
    return qcow2_error (EINVAL, "%s: too many snapshots", q->filename);
  if (q->nb_snapshots > 0 &&
      check_table (q, q->snapshots_offset, 40 * (uint64_t) q->nb_snapshots,
                   file_size, "snapshot table") == -1)
    return -1;

  /* Backing file name (inside the header cluster). */
  if (q->backing_file_offset) {
    if (q->backing_file_size > MAX_BACKING_FILE_SIZE ||
        q->backing_file_size == 0)
      return qcow2_error (EINVAL, "%s: backing file name too long or empty",
                          q->filename);
    if (q->backing_file_offset < q->header_length ||
        q->backing_file_offset > q->cluster_size ||
        q->backing_file_offset + q->backing_file_size > q->cluster_size ||
        q->backing_file_offset + q->backing_file_size > len)
      return qcow2_error (EINVAL, "%s: backing file name lies outside the "
                          "header cluster", q->filename);
    q->backing_file = strndup ((const char *) buf + q->backing_file_offset,
                               q->backing_file_size);
    if (q->backing_file == NULL)
      return qcow2_error (errno, "strndup: %m");
    if (strlen (q->backing_file) != q->backing_file_size)
      return qcow2_error (EINVAL, "%s: backing file name contains a NUL byte",
                          q->filename);
  }

  /* Extensions. */
  ext_end = q->backing_file_offset ? q->backing_file_offset : q->cluster_size;
  if (ext_end > len)
    ext_end = len;
  off = q->header_length;
  for (;;) {
    uint32_t magic, elen;
    const uint8_t *data;

    if (off + 8 > ext_end)
      return qcow2_error (EINVAL, "%s: header extensions run past the "
                          "header cluster (missing end marker)", q->filename);
    magic = load_be32 (buf + off);
    elen = load_be32 (buf + off + 4);
    off += 8;
    if (magic == EXT_END)
      break;
    if (elen > ext_end - off)
      return qcow2_error (EINVAL, "%s: header extension %#" PRIx32
                          " length %" PRIu32 " too large",
                          q->filename, magic, elen);
    data = buf + off;
    switch (magic) {
    case EXT_BACKING_FORMAT:
      if (elen > 1023 || elen == 0)
        return qcow2_error (EINVAL, "%s: backing format extension length "
                            "%" PRIu32 " invalid", q->filename, elen);
      free (q->backing_format);
      q->backing_format = strndup ((const char *) data, elen);
      if (q->backing_format == NULL)
        return qcow2_error (errno, "strndup: %m");
      break;
    case EXT_BITMAPS:
      if (elen != 24)
        return qcow2_error (EINVAL, "%s: bitmaps extension: invalid "
                            "extension length %" PRIu32, q->filename, elen);
      if (q->has_bitmaps_ext)
        return qcow2_error (EINVAL, "%s: duplicate bitmaps extension",
                            q->filename);
      q->has_bitmaps_ext = true;
      q->nb_bitmaps = load_be32 (data);
      q->bitmap_directory_size = load_be64 (data + 8);
      q->bitmap_directory_offset = load_be64 (data + 16);
      if (!(q->autoclear & AUTOCLEAR_BITMAPS) || q->version < 3)
        break;              /* inconsistent: ignored, see qcow2_open */
      if (load_be32 (data + 4) != 0)
        return qcow2_error (EINVAL, "%s: bitmaps extension: reserved field "
                            "is not zero", q->filename);
      if (q->nb_bitmaps == 0 || q->nb_bitmaps > BITMAP_COUNT_MAX)
        return qcow2_error (EINVAL, "%s: bitmaps extension: invalid number "
                            "of bitmaps %" PRIu32, q->filename,
                            q->nb_bitmaps);
      if (q->bitmap_directory_size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE ||
          q->bitmap_directory_size < 24 * (uint64_t) q->nb_bitmaps)
        return qcow2_error (EINVAL, "%s: bitmaps extension: invalid bitmap "
                            "directory size %" PRIu64, q->filename,
                            q->bitmap_directory_size);
      if (check_table (q, q->bitmap_directory_offset,
                       q->bitmap_directory_size, file_size,
                       "bitmap directory") == -1)
        return -1;
      break;
    default:
      /* Feature name table, crypto and unknown extensions: kept as they
       * are and written back.
       */
      if (add_ext (q, magic, data, elen) == -1)
        return -1;
      q->exts[q->nr_exts - 1].offset = off;
    }
    off += (elen + 7) & ~UINT64_C (7);
  }
  return 0;
}

static void
put_ext (uint8_t *buf, uint64_t *off, uint32_t magic, const void *data,
         uint32_t len)
{
  store_be32 (buf + *off, magic);
  store_be32 (buf + *off + 4, len);
  memcpy (buf + *off + 8, data, len);
  *off += 8 + ((len + 7) & ~UINT64_C (7));
}

/* Rewrites the whole header cluster from the in-memory state. */
int
qcow2_write_header (struct qcow2 *q)
{
  uint64_t cs = q->cluster_size, off, need;
  uint8_t *buf;
  size_t i;
  int r;

  /* Space check first: nothing is written if it does not fit. */
  need = q->version >= 3 ? 112 + q->unknown_fields_len : 72;
  if (q->backing_format)
    need += 8 + ((strlen (q->backing_format) + 7) & ~7);
  if (q->has_bitmaps_ext && q->nb_bitmaps > 0)
    need += 8 + 24;
  for (i = 0; i < q->nr_exts; i++)
    need += 8 + ((q->exts[i].len + 7) & ~UINT64_C (7));
  need += 8;
  if (q->backing_file)
    need += strlen (q->backing_file);
  if (need > cs)
    return qcow2_error (ENOSPC, "%s: header, extensions and backing file "
                        "name do not fit in the first cluster", q->filename);

  buf = calloc (1, cs);
  if (buf == NULL)
    return qcow2_error (errno, "calloc: %m");
  store_be32 (buf, QCOW2_MAGIC);
  store_be32 (buf + 4, q->version);
  store_be32 (buf + 20, q->cluster_bits);
  store_be64 (buf + 24, q->size);
  store_be32 (buf + 32, q->crypt_method);
  store_be32 (buf + 36, q->l1_size);
  store_be64 (buf + 40, q->l1_table_offset);
  store_be64 (buf + 48, q->refcount_table_offset);
  store_be32 (buf + 56, q->refcount_table_clusters);
  store_be32 (buf + 60, q->nb_snapshots);
  store_be64 (buf + 64, q->snapshots_offset);
  if (q->version >= 3) {
    q->header_length = 112 + q->unknown_fields_len;
    store_be64 (buf + 72, q->incompat);
    store_be64 (buf + 80, q->compat);
    store_be64 (buf + 88, q->autoclear);
    store_be32 (buf + 96, q->refcount_order);
    store_be32 (buf + 100, q->header_length);
    buf[104] = q->compression_type;
    if (q->unknown_fields_len)
      memcpy (buf + 112, q->unknown_fields, q->unknown_fields_len);
    off = q->header_length;
  }
  else
    off = 72;

  if (q->backing_format)
    put_ext (buf, &off, EXT_BACKING_FORMAT, q->backing_format,
             strlen (q->backing_format));
  for (i = 0; i < q->nr_exts; i++)
    if (q->exts[i].magic == EXT_FEATURE_TABLE ||
        q->exts[i].magic == EXT_CRYPTO) {
      q->exts[i].offset = off + 8;
      put_ext (buf, &off, q->exts[i].magic, q->exts[i].data, q->exts[i].len);
    }
  if (q->has_bitmaps_ext && q->nb_bitmaps > 0) {
    uint8_t bm[24] = { 0 };
    store_be32 (bm, q->nb_bitmaps);
    store_be64 (bm + 8, q->bitmap_directory_size);
    store_be64 (bm + 16, q->bitmap_directory_offset);
    put_ext (buf, &off, EXT_BITMAPS, bm, 24);
  }
  for (i = 0; i < q->nr_exts; i++)
    if (q->exts[i].magic != EXT_FEATURE_TABLE &&
        q->exts[i].magic != EXT_CRYPTO) {
      q->exts[i].offset = off + 8;
      put_ext (buf, &off, q->exts[i].magic, q->exts[i].data, q->exts[i].len);
    }
  off += 8;                     /* end marker: zeroes */
  if (q->backing_file) {
    q->backing_file_offset = off;
    q->backing_file_size = strlen (q->backing_file);
    memcpy (buf + off, q->backing_file, q->backing_file_size);
  }
  else {
    q->backing_file_offset = 0;
    q->backing_file_size = 0;
  }
  store_be64 (buf + 8, q->backing_file_offset);
  store_be32 (buf + 16, q->backing_file_size);

  r = qcow2_file_pwrite (q, buf, cs, 0);
  free (buf);
  return r;
}

void
qcow2_free_header (struct qcow2 *q)
{
  size_t i;

  for (i = 0; i < q->nr_exts; i++)
    free (q->exts[i].data);
  free (q->exts);
  q->exts = NULL;
  q->nr_exts = 0;
  free (q->unknown_fields);
  q->unknown_fields = NULL;
  free (q->backing_file);
  q->backing_file = NULL;
  free (q->backing_format);
  q->backing_format = NULL;
}
