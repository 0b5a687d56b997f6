/* A hierarchical dirty bitmap over a byte range (the idea of QEMU's
 * HBitmap): one bit per granule of GRANULARITY bytes, with summary levels
 * above it so that searches for the next dirty or clean granule take
 * logarithmic time even for 1 TiB at 512-byte granularity.
 *
 * Offsets and lengths are in bytes of the disk.  A range marks (or clears)
 * every granule it touches, partial granules too; the last granule may be
 * shorter than GRANULARITY when SIZE is not a multiple of it.
 *
 * All functions are thread-safe: each bitmap carries its own lock.
 */
#ifndef NBDCBT_HBITMAP_H
#define NBDCBT_HBITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hbitmap;

/* GRANULARITY: power of two, 512 B .. 2 GiB.  NULL with errno on error. */
extern struct hbitmap *hbitmap_new (uint64_t size, uint64_t granularity);
extern void hbitmap_free (struct hbitmap *hb);
extern struct hbitmap *hbitmap_copy (const struct hbitmap *hb);

extern uint64_t hbitmap_size (const struct hbitmap *hb);
extern uint64_t hbitmap_granularity (const struct hbitmap *hb);
/* Number of granules (bits). */
extern uint64_t hbitmap_nbits (const struct hbitmap *hb);

/* Mark / clear every granule [offset, offset+len) touches.  Ranges past
 * the end are clipped.
 */
extern void hbitmap_set (struct hbitmap *hb, uint64_t offset, uint64_t len);
extern void hbitmap_reset (struct hbitmap *hb, uint64_t offset, uint64_t len);
extern void hbitmap_set_all (struct hbitmap *hb);
extern void hbitmap_reset_all (struct hbitmap *hb);
extern bool hbitmap_get (const struct hbitmap *hb, uint64_t offset);

/* Dirty bytes, exact: dirty granules times the granularity, the last
 * granule counted only up to SIZE (as QEMU's bdrv_get_dirty_count reports
 * for the bitmaps it serves).
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
 * (clipped to [offset, end) and to MAX_LEN) if there is one.
 */
extern bool hbitmap_next_dirty_area (const struct hbitmap *hb,
                                     uint64_t offset, uint64_t end,
                                     uint64_t max_len, uint64_t *area_start,
                                     uint64_t *area_len);

/* dst |= src.  Same size and granularity, else -1 with errno EINVAL. */
extern int hbitmap_merge (struct hbitmap *dst, const struct hbitmap *src);

/* Grow or shrink to NEW_SIZE bytes.  Bits past a shrink are gone; new
 * space is clean.  -1 with errno on allocation failure (bitmap unchanged).
 */
extern int hbitmap_resize (struct hbitmap *hb, uint64_t new_size);

/* Serialization in the qcow2 on-disk order: bit n of the bitmap is bit
 * (n & 7) of byte n >> 3 (LSB first).  START and COUNT are in bytes of the
 * disk; START must be a multiple of granularity * 8 (one serialized byte),
 * COUNT too unless START + COUNT reaches the end.  Tail bits past the last
 * granule serialize as 0.
 */
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
 * bitmap: SHA-256 over the lowest level as ceil(nbits/64) 64-bit
 * little-endian words, as 64 lowercase hex digits plus NUL.
 */
extern int hbitmap_sha256 (const struct hbitmap *hb, char out[65]);

/* Bytes of memory the bitmap uses (for the 1.1 x nbits/8 budget). */
extern size_t hbitmap_memory_usage (const struct hbitmap *hb);

#endif /* NBDCBT_HBITMAP_H */
