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

/* A hierarchical dirty bitmap over a byte range (the idea of QEMU's
 * HBitmap): one bit per granule of GRANULARITY bytes, with summary levels
 * above it so that searches for the next dirty or clean granule take
 * logarithmic time even for 1 TiB at 512-byte granularity.
 *
 * Offsets and lengths are in bytes of the disk.  A range marks (or clears)
 * every granule it touches, partial granules too; the last granule may be
 * shorter than GRANULARITY when SIZE is not a multiple of it.
 *
 * All functions are thread-safe: each bitmap carries its own lock (a
 * mutex), so each call is atomic; a sequence of calls is not.
 */
#ifndef NBDCBT_HBITMAP_H
#define NBDCBT_HBITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hbitmap;

/* GRANULARITY: as bitmap-rules.h allows (a power of two, 512 B ..
 * 2 GiB); SIZE at most INT64_MAX.
 * NULL with errno EINVAL (bad argument) or ENOMEM.
 */
extern struct hbitmap *hbitmap_new (uint64_t size, uint64_t granularity);
/* NULL is accepted.  No other thread may use HB any more. */
extern void hbitmap_free (struct hbitmap *hb);
/* An independent copy (same size, granularity and bits); NULL with errno
 * ENOMEM.
 */
extern struct hbitmap *hbitmap_copy (const struct hbitmap *hb);

extern uint64_t hbitmap_size (const struct hbitmap *hb);
extern uint64_t hbitmap_granularity (const struct hbitmap *hb);
/* Number of granules (bits). */
extern uint64_t hbitmap_nbits (const struct hbitmap *hb);

/* Mark / clear every granule [offset, offset+len) touches.  Ranges past
 * the end are clipped.
 */
extern void hbitmap_set (struct hbitmap *hb, uint64_t offset, uint64_t len);
/* A hint before hbitmap_set: start loading the level-0 word that holds
 * OFFSET's granule, so that the loads of several bitmaps overlap instead
 * of waiting one after another.  It reads HB's geometry without the
 * lock: the caller must exclude hbitmap_resize and hbitmap_free (the
 * dirty filter holds its set's lock).
 */
extern void hbitmap_prefetch (const struct hbitmap *hb, uint64_t offset);
extern void hbitmap_reset (struct hbitmap *hb, uint64_t offset, uint64_t len);
extern void hbitmap_set_all (struct hbitmap *hb);
extern void hbitmap_reset_all (struct hbitmap *hb);
extern bool hbitmap_get (const struct hbitmap *hb, uint64_t offset);

/* Dirty bytes: dirty granules times the granularity, exact.  Like QEMU's
 * hbitmap_count / bdrv_get_dirty_count (and the "count" of query-block),
 * a dirty last granule counts as a FULL granule even when SIZE ends inside
 * it, so the result can exceed SIZE by less than one granule.
 */
extern uint64_t hbitmap_count (const struct hbitmap *hb);
/* Number of dirty granules. */
extern uint64_t hbitmap_count_bits (const struct hbitmap *hb);

/* First dirty (clean) byte offset in [offset, offset+len), rounded down to
 * its granule but never below OFFSET; -1 if none.
 */
extern int64_t hbitmap_next_dirty (const struct hbitmap *hb, uint64_t offset,
                                   uint64_t len);
extern int64_t hbitmap_next_clean (const struct hbitmap *hb, uint64_t offset,
                                   uint64_t len);
/* First dirty area in [offset, end): true and *area_start, *area_len
 * (clipped to [offset, end) and to MAX_LEN) if there is one.  MAX_LEN 0
 * means no limit.  END past the size is clipped to it.
 */
extern bool hbitmap_next_dirty_area (const struct hbitmap *hb,
                                     uint64_t offset, uint64_t end,
                                     uint64_t max_len, uint64_t *area_start,
                                     uint64_t *area_len);

/* Every dirty area of [offset, end) in order, as hbitmap_next_dirty_area
 * would return them one by one (clipped to [offset, end) and the size),
 * passed to FN under one lock instead of one lock per area.  FN returning
 * nonzero stops the walk and is returned; otherwise 0.  FN must not call
 * back into HB.  The lock is dropped and retaken every 1024 areas so that
 * a long walk does not hold up writers; each area is still consistent.
 */
typedef int hbitmap_area_fn (void *opaque, uint64_t start, uint64_t len);
extern int hbitmap_walk_dirty (const struct hbitmap *hb, uint64_t offset,
                               uint64_t end, hbitmap_area_fn *fn,
                               void *opaque);

/* dst |= src.  Same size and granularity, else -1 with errno EINVAL
 * (dst unchanged).  Merging a bitmap into itself does nothing.
 */
extern int hbitmap_merge (struct hbitmap *dst, const struct hbitmap *src);
/* DST |= SRC where the granularities may differ: each dirty granule of SRC
 * marks every granule of DST it touches.  Same size.
 */
extern int hbitmap_merge_any (struct hbitmap *dst, const struct hbitmap *src);

/* Grow or shrink to NEW_SIZE bytes.  Bits past a shrink are gone (the
 * granule holding the new end keeps its bit); new space is clean.  -1 with
 * errno ENOMEM on allocation failure or EINVAL if NEW_SIZE > INT64_MAX
 * (bitmap unchanged).
 */
extern int hbitmap_resize (struct hbitmap *hb, uint64_t new_size);

/* Serialization in the qcow2 on-disk order: bit n of the bitmap is bit
 * (n & 7) of byte n >> 3 (LSB first).  START and COUNT are in bytes of the
 * disk; the part is the granules [START, START+COUNT) touches, clipped to
 * the end.  Byte 0 of the buffer holds the part's first granule in bit 0.
 * START should be a multiple of hbitmap_serialization_align (one
 * serialized byte) so that parts tile the on-disk bitmap, and COUNT too
 * unless START + COUNT reaches the end; other values work but then the
 * parts do not line up with the bytes of a whole serialization.  Tail bits
 * past the part serialize as 0 and are ignored when deserializing.
 *
 * Unlike QEMU, which serializes whole 64-bit words (8-byte multiples),
 * the size is ceil(granules / 8) bytes: a qcow2 writer zero-fills the rest
 * of the cluster anyway.
 */
extern uint64_t hbitmap_serialization_align (const struct hbitmap *hb);
extern uint64_t hbitmap_serialization_size (const struct hbitmap *hb,
                                            uint64_t start, uint64_t count);
extern void hbitmap_serialize_part (const struct hbitmap *hb, uint8_t *buf,
                                    uint64_t start, uint64_t count);
/* Replaces the bits in [start, start+count) by BUF's. */
extern void hbitmap_deserialize_part (struct hbitmap *hb, const uint8_t *buf,
                                      uint64_t start, uint64_t count);
/* Is the serialized part all zero (no dirty granule in it)? */
extern bool hbitmap_is_zero_part (const struct hbitmap *hb, uint64_t start,
                                  uint64_t count);

/* The digest QEMU's x-debug-block-dirty-bitmap-sha256 returns for the same
 * bitmap: SHA-256 over the lowest level as max(1, ceil(nbits/64)) 64-bit
 * little-endian words (QEMU hashes its whole lowest-level array, which has
 * at least one word; padding bits past nbits are 0), as 64 lowercase hex
 * digits plus NUL.  0, or -1 with errno if gnutls fails.
 */
extern int hbitmap_sha256 (const struct hbitmap *hb, char out[65]);

/* Bytes of memory the bitmap uses (for the 1.1 x nbits/8 budget): the
 * structure, level 0 and both summary hierarchies (about 3.2% of level 0).
 */
extern size_t hbitmap_memory_usage (const struct hbitmap *hb);

#endif /* NBDCBT_HBITMAP_H */
