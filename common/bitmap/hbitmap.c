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

/* Hierarchical dirty bitmap.
 *
 * Layout.  Level 0 is the bitmap itself: one bit per granule, packed LSB
 * first into 64-bit words.  Two summary hierarchies sit above it, each
 * level one bit per 64-bit word of the level below:
 *
 *   any[k+1] bit i  ==  (any[k] word i != 0)          "something dirty"
 *   full[k+1] bit i ==  (full[k] word i == all ones)   "everything dirty"
 *
 * with any[0] == full[0] == the level-0 array.  A search for a dirty bit
 * climbs the "any" levels until a word has a set bit at or after the
 * position, then descends following the lowest set bit: at most two
 * passes over about log64(nbits) levels.  A search for a clean bit does
 * the same on the "full" levels looking for clear bits.  The summaries
 * cost 2/63 of level 0 (about 3.2%).
 *
 * Bits of level 0 past NBITS (padding in the last word) are always 0, so
 * the last word is never "full" unless NBITS fills it; summary bits for
 * words that do not exist are 0 too.  Searches therefore may land on
 * padding, which is past END and reported as "none".
 *
 * Level 0 has at least one word even for an empty bitmap, because QEMU's
 * x-debug-block-dirty-bitmap-sha256 hashes at least one word.
 *
 * Memory.  A large level 0 (LEVEL0_MAPPED bytes or more: a 1 TiB disk at
 * 64 KiB granularity has 2 MiB) is an anonymous mapping of whole 2 MiB
 * huge pages (MADV_HUGEPAGE), so that nothing is faulted in or zeroed
 * before it is written, and a write faults in 2 MiB at once instead of
 * one 4 KiB page: opening a crashed 1 TiB image marks zones all over
 * eight bitmaps, and in a VM every 4 KiB page fault costs tens of
 * microseconds.  The summary levels are one block.  The bitmap code
 * never reads or writes words it does not have to: a copy or a clear
 * visits the nonzero words only, and deserializing into a clean range
 * writes the nonzero words only.
 */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "bitmap-rules.h"
#include "byte-order.h"
#include "hbitmap.h"
#include "huge-pages.h"
#include "rounding.h"

#define MAX_LEVELS 12           /* 2^64 bits need 11 levels */
#define NONE UINT64_MAX
#define LEVEL0_MAPPED (UINT64_C (1) << 20)

struct hbitmap {
  pthread_mutex_t lock;
  uint64_t size;                /* bytes */
  uint64_t nbits;               /* granules */
  unsigned shift;               /* log2 (granularity) */
  unsigned nlevels;             /* level 0 .. nlevels-1; top has one word */
  uint64_t count;               /* set bits at level 0 */
  uint64_t nwords[MAX_LEVELS];  /* words per level (same in both) */
  uint64_t *any[MAX_LEVELS];    /* any[0] is the bitmap */
  uint64_t *full[MAX_LEVELS];   /* full[0] == any[0] */
  size_t mapped;                /* bytes mapped for level 0, 0: malloc'd */
};

/* Reads take the lock too: the structure is logically const but the lock
 * is not.
 */
static inline void
lock_hb (const struct hbitmap *hb)
{
  pthread_mutex_lock ((pthread_mutex_t *) &hb->lock);
}

static inline void
unlock_hb (const struct hbitmap *hb)
{
  pthread_mutex_unlock ((pthread_mutex_t *) &hb->lock);
}

/* Mask of bits [lo, hi] within one word, 0 <= lo <= hi <= 63. */
static inline uint64_t
word_mask (unsigned lo, unsigned hi)
{
  return (UINT64_MAX << lo) & (UINT64_MAX >> (63 - hi));
}

/* Words per level for NBITS bits.  Returns the number of levels. */
static unsigned
compute_geometry (uint64_t nbits, uint64_t nwords[MAX_LEVELS])
{
  unsigned n = 0;
  uint64_t w = DIV_ROUND_UP (nbits, 64);

  if (w == 0)
    w = 1;
  nwords[n++] = w;
  while (w > 1) {
    w = DIV_ROUND_UP (w, 64);
    nwords[n++] = w;
  }
  return n;
}

/* Zeroed memory for a level 0 of NWORDS words; *MAPPED is the length of
 * the mapping (0 when it came from calloc).  NULL with errno ENOMEM.
 */
static uint64_t *
alloc_level0 (uint64_t nwords, size_t *mapped)
{
  uint64_t bytes = nwords * sizeof (uint64_t);

  *mapped = 0;
  if (bytes < LEVEL0_MAPPED)
    return calloc (nwords, sizeof (uint64_t));
  if ((size_t) bytes != bytes) {
    errno = ENOMEM;
    return NULL;
  }
  return huge_pages_alloc (bytes, mapped);
}

static void
free_level0 (uint64_t *words, size_t mapped)
{
  if (mapped)
    huge_pages_free (words, mapped);
  else
    free (words);
}

/* The summary levels of both hierarchies are one block: any[1] is its
 * start.
 */
static void
free_summaries (uint64_t *any[MAX_LEVELS], uint64_t *full[MAX_LEVELS],
                unsigned nlevels)
{
  unsigned k;

  if (nlevels > 1)
    free (any[1]);
  for (k = 1; k < nlevels; ++k)
    any[k] = full[k] = NULL;
}

/* Allocate zeroed summary levels 1..nlevels-1. */
static int
alloc_summaries (uint64_t *any[MAX_LEVELS], uint64_t *full[MAX_LEVELS],
                 const uint64_t nwords[MAX_LEVELS], unsigned nlevels)
{
  uint64_t total = 0;
  uint64_t *block;
  unsigned k;

  if (nlevels < 2)
    return 0;
  for (k = 1; k < nlevels; ++k)
    total += 2 * nwords[k];
  block = calloc (total, sizeof (uint64_t));
  if (block == NULL) {
    errno = ENOMEM;
    return -1;
  }
  for (k = 1; k < nlevels; ++k) {
    any[k] = block;
    full[k] = block + nwords[k];
    block += 2 * nwords[k];
  }
  return 0;
}

/* Recompute summary bits of both hierarchies for level-0 words [WA, WB]. */
static void
refresh_summaries (struct hbitmap *hb, uint64_t wa, uint64_t wb)
{
  unsigned k;
  uint64_t i;

  for (k = 0; k + 1 < hb->nlevels; ++k) {
    const uint64_t *lower_any = hb->any[k], *lower_full = hb->full[k];

    /* One summary word (64 words below) at a time. */
    for (i = wa; i <= wb; ) {
      uint64_t g = i >> 6;
      uint64_t last = (g << 6) + 63 < wb ? (g << 6) + 63 : wb;
      uint64_t mask = word_mask (i & 63, last & 63);
      uint64_t a = 0, f = 0;

      for (; i <= last; ++i) {
        a |= (uint64_t) (lower_any[i] != 0) << (i & 63);
        f |= (uint64_t) (lower_full[i] == UINT64_MAX) << (i & 63);
      }
      hb->any[k + 1][g] = (hb->any[k + 1][g] & ~mask) | a;
      hb->full[k + 1][g] = (hb->full[k + 1][g] & ~mask) | f;
    }
    wa >>= 6;
    wb >>= 6;
  }
}

/* Set (VALUE) or clear bits [FIRST, LAST] of ARR.  Returns whether any
 * word changed; adds the number of flipped bits to *FLIPPED if not NULL.
 */
static bool
write_range (uint64_t *arr, uint64_t first, uint64_t last, bool value,
             uint64_t *flipped)
{
  uint64_t wa = first >> 6, wb = last >> 6, i;
  uint64_t nflipped = 0;
  bool changed = false;

  for (i = wa; i <= wb; ++i) {
    unsigned lo = i == wa ? first & 63 : 0;
    unsigned hi = i == wb ? last & 63 : 63;
    uint64_t mask = word_mask (lo, hi);
    uint64_t old = arr[i];
    uint64_t new = value ? old | mask : old & ~mask;

    if (new != old) {
      arr[i] = new;
      changed = true;
      if (flipped)
        nflipped += __builtin_popcountll (old ^ new);
    }
  }
  if (flipped)
    *flipped += nflipped;
  return changed;
}

/* After bits of level-0 words [WA, WB] were all written with VALUE,
 * update the levels above in one hierarchy (FULL_SUMMARY says which).
 * Each level's range shrinks 64 times; we stop as soon as a level does not
 * change.
 *
 * When the summary bit follows the written value directly (setting bits
 * makes a word nonzero; clearing bits makes it not full) every touched
 * word gets the new summary bit.  Otherwise only words wholly inside the
 * range are known to have flipped, and the two edge words are checked.
 */
static void
propagate (struct hbitmap *hb, bool full_summary,
           uint64_t wa, uint64_t wb, bool value)
{
  uint64_t **lv = full_summary ? hb->full : hb->any;
  const uint64_t match = full_summary ? UINT64_MAX : 0;
  const bool direct = full_summary != value;
  unsigned k;

  for (k = 0; k + 1 < hb->nlevels; ++k) {
    uint64_t lo = wa, hi = wb;

    if (!direct) {
      /* any && !value: summary bit becomes 0 for words now 0.
       * full && value: summary bit becomes 1 for words now full.
       */
      bool lo_flips = lv[k][wa] == match;
      bool hi_flips = lv[k][wb] == match;

      if (wa == wb) {
        if (!lo_flips)
          return;
      }
      else {
        lo += !lo_flips;
        hi -= !hi_flips;
        if (lo > hi)
          return;
      }
    }
    if (!write_range (lv[k + 1], lo, hi, value, NULL))
      return;
    wa = lo >> 6;
    wb = hi >> 6;
  }
}

/* Write VALUE to level-0 bits [FIRST, LAST] and keep count and summaries
 * exact.  Lock held.
 */
static void
write_bits (struct hbitmap *hb, uint64_t first, uint64_t last, bool value)
{
  uint64_t flipped = 0;

  /* Fast path for the common small write inside one word: touch a
   * summary level only when the word's summary bit really changes.
   */
  if ((first >> 6) == (last >> 6)) {
    uint64_t wi = first >> 6;
    uint64_t mask = word_mask (first & 63, last & 63);
    uint64_t old = hb->any[0][wi];
    uint64_t new = value ? old | mask : old & ~mask;

    if (new == old)
      return;
    hb->any[0][wi] = new;
    if (value) {
      hb->count += __builtin_popcountll (new ^ old);
      if (old == 0)
        propagate (hb, false, wi, wi, true);
      if (new == UINT64_MAX)
        propagate (hb, true, wi, wi, true);
    }
    else {
      hb->count -= __builtin_popcountll (new ^ old);
      if (new == 0)
        propagate (hb, false, wi, wi, false);
      if (old == UINT64_MAX)
        propagate (hb, true, wi, wi, false);
    }
    return;
  }

  if (!write_range (hb->any[0], first, last, value, &flipped))
    return;
  if (value)
    hb->count += flipped;
  else
    hb->count -= flipped;
  propagate (hb, false, first >> 6, last >> 6, value);
  propagate (hb, true, first >> 6, last >> 6, value);
}

/* First bit of level BASE in [P, E) that is set (DIRTY) or clear (!DIRTY)
 * in that level's hierarchy, or NONE.  At level 0 that is a dirty or
 * clean granule; at level 1 of the "any" hierarchy, a nonzero level-0
 * word.  Lock held.
 */
static uint64_t
find_bit_at (const struct hbitmap *hb, bool dirty, unsigned base,
             uint64_t p, uint64_t e)
{
  uint64_t *const *lv = dirty ? hb->any : hb->full;
  const uint64_t flip = dirty ? 0 : UINT64_MAX;
  unsigned k = base;
  uint64_t pos = p;

  if (p >= e || base >= hb->nlevels)
    return NONE;

  /* Climb until a word has a candidate at or after POS. */
  for (;;) {
    uint64_t wi = pos >> 6;
    uint64_t w;

    if (wi >= hb->nwords[k])
      return NONE;
    w = (lv[k][wi] ^ flip) & (UINT64_MAX << (pos & 63));
    if (w) {
      pos = (wi << 6) | __builtin_ctzll (w);
      break;
    }
    if (k + 1 == hb->nlevels)
      return NONE;
    /* Next word of level K is bit WI+1 of level K+1. */
    pos = wi + 1;
    ++k;
    if ((pos << (6 * (k - base))) >= e)
      return NONE;
  }

  /* Descend along the lowest candidate. */
  while (k > base) {
    uint64_t w;

    --k;
    if (pos >= hb->nwords[k])
      return NONE;              /* padding of a "full" summary */
    w = lv[k][pos] ^ flip;
    if (w == 0)                 /* cannot happen: summaries are exact */
      abort ();
    pos = (pos << 6) | __builtin_ctzll (w);
  }
  return pos < e ? pos : NONE;
}

/* First level-0 bit in [P, E) that is set (DIRTY) or clear (!DIRTY), or
 * NONE.  Lock held.
 */
static inline uint64_t
find_bit (const struct hbitmap *hb, bool dirty, uint64_t p, uint64_t e)
{
  return find_bit_at (hb, dirty, 0, p, e);
}

struct hbitmap *
hbitmap_new (uint64_t size, uint64_t granularity)
{
  struct hbitmap *hb;
  int err;

  if (!bitmap_granularity_valid (granularity) || size > INT64_MAX) {
    errno = EINVAL;
    return NULL;
  }

  hb = calloc (1, sizeof *hb);
  if (hb == NULL)
    return NULL;
  hb->size = size;
  hb->shift = __builtin_ctzll (granularity);
  hb->nbits = DIV_ROUND_UP (size, granularity);
  hb->nlevels = compute_geometry (hb->nbits, hb->nwords);
  hb->any[0] = hb->full[0] = alloc_level0 (hb->nwords[0], &hb->mapped);
  if (hb->any[0] == NULL) {
    free (hb);
    errno = ENOMEM;
    return NULL;
  }
  if (alloc_summaries (hb->any, hb->full, hb->nwords, hb->nlevels) == -1) {
    free_level0 (hb->any[0], hb->mapped);
    free (hb);
    errno = ENOMEM;
    return NULL;
  }
  err = pthread_mutex_init (&hb->lock, NULL);
  if (err) {
    hbitmap_free (hb);
    errno = err;
    return NULL;
  }
  return hb;
}

void
hbitmap_free (struct hbitmap *hb)
{
  if (hb == NULL)
    return;
  free_summaries (hb->any, hb->full, hb->nlevels);
  free_level0 (hb->any[0], hb->mapped);
  pthread_mutex_destroy (&hb->lock);
  free (hb);
}

/* More than a quarter of the bits set, or a level 0 too small to be
 * worth skipping words in: go through level 0 linearly.  Lock held.
 */
static bool
is_dense (const struct hbitmap *hb)
{
  return hb->count > hb->nwords[0] * 16 || hb->nlevels < 2;
}

/* FN (OPAQUE, HB, I) for every nonzero level-0 word I, in order, found
 * through the level-1 summary so that clean stretches are not read.
 * Lock held.
 */
static void
for_each_dirty_word (const struct hbitmap *hb,
                     void (*fn) (void *opaque, const struct hbitmap *hb,
                                 uint64_t wi),
                     void *opaque)
{
  uint64_t wi = 0;

  while (wi < hb->nwords[0]
         && (wi = find_bit_at (hb, true, 1, wi, hb->nwords[0])) != NONE) {
    fn (opaque, hb, wi);
    ++wi;
  }
}

static void
copy_word (void *opaque, const struct hbitmap *src, uint64_t wi)
{
  struct hbitmap *dst = opaque;

  dst->any[0][wi] = src->any[0][wi];
}

static void
clear_word (void *opaque, const struct hbitmap *hb, uint64_t wi)
{
  hb->any[0][wi] = 0;
}

struct hbitmap *
hbitmap_copy (const struct hbitmap *src)
{
  struct hbitmap *hb;
  unsigned k;

  lock_hb (src);
  hb = hbitmap_new (src->size, UINT64_C (1) << src->shift);
  if (hb != NULL && src->count > 0) {
    if (is_dense (src))
      memcpy (hb->any[0], src->any[0], src->nwords[0] * sizeof (uint64_t));
    else
      for_each_dirty_word (src, copy_word, hb);
    for (k = 1; k < src->nlevels; ++k) {
      memcpy (hb->any[k], src->any[k], src->nwords[k] * sizeof (uint64_t));
      memcpy (hb->full[k], src->full[k], src->nwords[k] * sizeof (uint64_t));
    }
    hb->count = src->count;
  }
  unlock_hb (src);
  return hb;
}

uint64_t
hbitmap_size (const struct hbitmap *hb)
{
  uint64_t r;

  lock_hb (hb);
  r = hb->size;
  unlock_hb (hb);
  return r;
}

uint64_t
hbitmap_granularity (const struct hbitmap *hb)
{
  return UINT64_C (1) << hb->shift; /* never changes */
}

uint64_t
hbitmap_nbits (const struct hbitmap *hb)
{
  uint64_t r;

  lock_hb (hb);
  r = hb->nbits;
  unlock_hb (hb);
  return r;
}

/* Granules touched by [offset, offset+len) clipped to the bitmap: false if
 * none.  Lock held.
 */
static bool
byte_range_to_bits (const struct hbitmap *hb, uint64_t offset, uint64_t len,
                    uint64_t *first, uint64_t *last)
{
  uint64_t end;

  if (len == 0 || offset >= hb->size)
    return false;
  end = len > hb->size - offset ? hb->size : offset + len;
  *first = offset >> hb->shift;
  *last = (end - 1) >> hb->shift;
  return true;
}

/* The one call that takes no lock (see hbitmap.h): a hint, and the
 * caller excludes hbitmap_resize and hbitmap_free.
 */
void
hbitmap_prefetch (const struct hbitmap *hb, uint64_t offset)
{
  uint64_t bit = offset >> hb->shift;

  if (bit < hb->nbits)
    __builtin_prefetch (&hb->any[0][bit >> 6], 1);
}

/* No lock-free "already dirty" pre-check here, on purpose.  Skipping the
 * lock when a relaxed read finds every bit already set would need (1)
 * level 0 never freed under the reader (hbitmap_resize reallocates it;
 * the dirty filter excludes that with its set's lock, but this library
 * promises every other call is safe against every other) and (2) atomic stores
 * in every writer of level 0 (reset_all's memset, the deserializer and
 * merge write plainly: a data race by C11's rules).  Ordering against a
 * concurrent reset would be fine: a read that sees the bits set stands
 * for a locked set just before the reset, which no caller can tell
 * apart.  It is not worth (1) and (2): profiles of 4 KiB random writes
 * through the dirty filter with four bitmaps (3 GiB in tmpfs) put the
 * locks of hbitmap_set at about 1% of the server's CPU, and write_bits
 * at 2-3%, nearly all of it the load of a level-0 word that misses the
 * cache (which hbitmap_prefetch overlaps), a cost the lock does not add.
 */
void
hbitmap_set (struct hbitmap *hb, uint64_t offset, uint64_t len)
{
  uint64_t first, last;

  lock_hb (hb);
  if (byte_range_to_bits (hb, offset, len, &first, &last))
    write_bits (hb, first, last, true);
  unlock_hb (hb);
}

void
hbitmap_reset (struct hbitmap *hb, uint64_t offset, uint64_t len)
{
  uint64_t first, last;

  lock_hb (hb);
  if (byte_range_to_bits (hb, offset, len, &first, &last))
    write_bits (hb, first, last, false);
  unlock_hb (hb);
}

void
hbitmap_set_all (struct hbitmap *hb)
{
  lock_hb (hb);
  if (hb->nbits > 0)
    write_bits (hb, 0, hb->nbits - 1, true);
  unlock_hb (hb);
}

void
hbitmap_reset_all (struct hbitmap *hb)
{
  unsigned k;

  lock_hb (hb);
  /* Summaries are exact: with no bit set every level is clear already. */
  if (hb->count > 0) {
    if (is_dense (hb))
      memset (hb->any[0], 0, hb->nwords[0] * sizeof (uint64_t));
    else
      for_each_dirty_word (hb, clear_word, NULL);
    for (k = 1; k < hb->nlevels; ++k) {
      memset (hb->any[k], 0, hb->nwords[k] * sizeof (uint64_t));
      memset (hb->full[k], 0, hb->nwords[k] * sizeof (uint64_t));
    }
    hb->count = 0;
  }
  unlock_hb (hb);
}

bool
hbitmap_get (const struct hbitmap *hb, uint64_t offset)
{
  bool r = false;

  lock_hb (hb);
  if (offset < hb->size) {
    uint64_t bit = offset >> hb->shift;
    r = (hb->any[0][bit >> 6] >> (bit & 63)) & 1;
  }
  unlock_hb (hb);
  return r;
}

uint64_t
hbitmap_count (const struct hbitmap *hb)
{
  uint64_t r;

  lock_hb (hb);
  r = hb->count << hb->shift;
  unlock_hb (hb);
  return r;
}

uint64_t
hbitmap_count_bits (const struct hbitmap *hb)
{
  uint64_t r;

  lock_hb (hb);
  r = hb->count;
  unlock_hb (hb);
  return r;
}

/* Shared by next_dirty and next_clean.  Lock held. */
static int64_t
next_locked (const struct hbitmap *hb, bool dirty, uint64_t offset,
             uint64_t len)
{
  uint64_t first, last, bit, r;

  if (!byte_range_to_bits (hb, offset, len, &first, &last))
    return -1;
  bit = find_bit (hb, dirty, first, last + 1);
  if (bit == NONE)
    return -1;
  r = bit << hb->shift;
  return r < offset ? (int64_t) offset : (int64_t) r;
}

int64_t
hbitmap_next_dirty (const struct hbitmap *hb, uint64_t offset, uint64_t len)
{
  int64_t r;

  lock_hb (hb);
  r = next_locked (hb, true, offset, len);
  unlock_hb (hb);
  return r;
}

int64_t
hbitmap_next_clean (const struct hbitmap *hb, uint64_t offset, uint64_t len)
{
  int64_t r;

  lock_hb (hb);
  r = next_locked (hb, false, offset, len);
  unlock_hb (hb);
  return r;
}

bool
hbitmap_next_dirty_area (const struct hbitmap *hb,
                         uint64_t offset, uint64_t end,
                         uint64_t max_len, uint64_t *area_start,
                         uint64_t *area_len)
{
  int64_t start, clean;
  bool r = false;

  lock_hb (hb);
  if (end > hb->size)
    end = hb->size;
  if (offset >= end)
    goto out;
  start = next_locked (hb, true, offset, end - offset);
  if (start == -1)
    goto out;
  if (max_len > 0 && max_len < end - start)
    end = start + max_len;
  clean = next_locked (hb, false, start, end - start);
  if (clean != -1)
    end = clean;
  *area_start = start;
  *area_len = end - start;
  r = true;
 out:
  unlock_hb (hb);
  return r;
}

/* hbitmap_walk_dirty (hbitmap.h): areas passed to FN in batches of
 * WALK_BATCH per lock hold.
 *
 * The walk goes by level-1 words: each says which of 64 level-0 words
 * hold dirty bits, and those words, and the ones of the next few level-1
 * words, are prefetched before any is read, so that a sparse bitmap
 * (20,000 scattered granules over 1 TiB: one cache miss per area, in a
 * 2 MiB level 0) pays its misses in parallel rather than one after the
 * other.  Runs inside a word are cut out with bit operations; a run that
 * reaches the end of its word is followed with the "full" hierarchy, so
 * a long dirty area costs log64 steps, not one per word.
 */
#define WALK_BATCH 1024

/* How many level-1 words ahead the walk asks for level-0 words.  With
 * 20,000 granules over 1 TiB a 4 GiB request covers 16 level-1 words,
 * about ten level-0 words each; a server thread that slept between two
 * requests finds none of them in cache.  A cold walk of the whole map
 * (bench-hbitmap walk_map_..._cold) takes 0.63 ms without prefetches,
 * 0.52 with one level-1 word ahead and 0.42 with four; eight or sixteen
 * do no better, and a warm walk pays about 0.05 ms for them.
 */
#define PREFETCH_GROUPS 4

/* Level-0 words with dirty bits among the 64 that level-1 word G covers:
 * bit i for word 64 G + i.  Lock held.
 */
static inline uint64_t
dirty_words (const struct hbitmap *hb, uint64_t g)
{
  return hb->nlevels > 1 ? hb->any[1][g] : g == 0;
}

/* Start loading the level-0 words WORDS says level-1 word G covers.
 * A macro, not a function: GCC finds a function that only prefetches
 * free of side effects ("const") and drops every call to it.
 */
#define prefetch_words(hb, g, words)                                    \
  do {                                                                  \
    uint64_t pw_ = (words);                                             \
    for (; pw_; pw_ &= pw_ - 1)                                         \
      __builtin_prefetch (&(hb)->any[0][((g) << 6)                      \
                                        | __builtin_ctzll (pw_)], 0, 3); \
  } while (0)

int
hbitmap_walk_dirty (const struct hbitmap *hb, uint64_t offset, uint64_t end,
                    hbitmap_area_fn *fn, void *opaque)
{
  uint64_t p, last, e;          /* bits [P, LAST] are left to walk */
  uint64_t ahead = NONE;        /* last level-1 word prefetched for */
  unsigned n = 0;
  int r = 0;

  lock_hb (hb);
 restart:
  e = end < hb->size ? end : hb->size;
  if (offset >= e)
    goto out;
  p = offset >> hb->shift;
  last = (e - 1) >> hb->shift;

  while (p <= last) {
    uint64_t wlast = last >> 6, w, g, words, m;

    /* The next level-0 word with a dirty bit, and its level-1 word. */
    w = hb->nlevels > 1 ? find_bit_at (hb, true, 1, p >> 6, wlast + 1)
      : p >> 6 == 0 ? 0 : NONE;
    if (w == NONE)
      break;
    if (w != p >> 6)
      p = w << 6;
    g = w >> 6;
    words = dirty_words (hb, g) & (UINT64_MAX << (w & 63));
    if (g == wlast >> 6 && (wlast & 63) != 63)
      words &= word_mask (0, wlast & 63);
    /* This level-1 word's level-0 words, unless an earlier round asked
     * for them already, and those of the next PREFETCH_GROUPS, to arrive
     * while this one's are cut into runs.
     */
    if (ahead == NONE || ahead < g) {
      prefetch_words (hb, g, words);
      ahead = g;
    }
    while (hb->nlevels > 1 && ahead < wlast >> 6
           && ahead < g + PREFETCH_GROUPS) {
      ahead++;
      prefetch_words (hb, ahead, dirty_words (hb, ahead));
    }

    for (m = words; m; m &= m - 1) {
      uint64_t v, rs, re, start, stop;
      unsigned lo, hi;

      w = (g << 6) | __builtin_ctzll (m);
      v = hb->any[0][w];
      if (w == p >> 6)
        v &= UINT64_MAX << (p & 63);
      if (w == wlast)
        v &= word_mask (0, last & 63);
      while (v) {
        uint64_t clean;

        lo = __builtin_ctzll (v);
        clean = ~v & (UINT64_MAX << lo);
        hi = clean ? __builtin_ctzll (clean) : 64;
        rs = (w << 6) | lo;
        if (hi < 64)
          re = (w << 6) | hi;
        else {
          /* The run reaches the end of the word: find where it ends. */
          re = find_bit (hb, false, (w + 1) << 6, last + 1);
          if (re == NONE)
            re = last + 1;
        }
        start = rs << hb->shift;
        if (start < offset)
          start = offset;
        stop = re > last ? e : re << hb->shift;
        r = fn (opaque, start, stop - start);
        if (r != 0)
          goto out;
        offset = stop;
        if (++n % WALK_BATCH == 0) {
          unlock_hb (hb);
          lock_hb (hb);
          goto restart;
        }
        if (hi == 64) {
          /* Go on after the run, which may have left this word. */
          p = re;
          goto next;
        }
        v &= UINT64_MAX << hi;
      }
    }
    p = (g + 1) << 12;
  next:;
  }
 out:
  unlock_hb (hb);
  return r;
}

/* OR SRC's level-0 word WI into DST.  DST locked. */
static void
merge_word (struct hbitmap *dst, uint64_t wi, uint64_t v)
{
  uint64_t old = dst->any[0][wi];
  uint64_t new = old | v;

  if (new == old)
    return;
  dst->any[0][wi] = new;
  dst->count += __builtin_popcountll (old ^ new);
  if (old == 0)
    propagate (dst, false, wi, wi, true);
  if (new == UINT64_MAX)
    propagate (dst, true, wi, wi, true);
}

int
hbitmap_merge_any (struct hbitmap *dst, const struct hbitmap *src)
{
  uint64_t offset = 0, end = hbitmap_size (src), start, len;

  if (hbitmap_granularity (dst) == hbitmap_granularity (src))
    return hbitmap_merge (dst, src);
  while (offset < end
         && hbitmap_next_dirty_area (src, offset, end, end - offset,
                                     &start, &len)) {
    hbitmap_set (dst, start, len);
    offset = start + len;
  }
  return 0;
}

int
hbitmap_merge (struct hbitmap *dst, const struct hbitmap *src)
{
  const struct hbitmap *first, *second;
  uint64_t i;
  int r = 0;

  if (dst == src)
    return 0;
  /* Lock in address order so that a->b and b->a merges cannot deadlock. */
  if ((uintptr_t) dst < (uintptr_t) src)
    first = dst, second = src;
  else
    first = src, second = dst;
  lock_hb (first);
  lock_hb (second);

  if (dst->size != src->size || dst->shift != src->shift) {
    errno = EINVAL;
    r = -1;
    goto out;
  }

  if (src->count > src->nwords[0] * 4) {
    /* Dense: one linear pass, then rebuild the summaries. */
    uint64_t count = 0;

    for (i = 0; i < dst->nwords[0]; ++i) {
      dst->any[0][i] |= src->any[0][i];
      count += __builtin_popcountll (dst->any[0][i]);
    }
    dst->count = count;
    refresh_summaries (dst, 0, dst->nwords[0] - 1);
  }
  else {
    /* Sparse: visit only SRC's nonzero words. */
    uint64_t bit = 0;

    while ((bit = find_bit (src, true, bit, src->nbits)) != NONE) {
      uint64_t wi = bit >> 6;

      merge_word (dst, wi, src->any[0][wi]);
      bit = (wi + 1) << 6;
    }
  }

 out:
  unlock_hb (second);
  unlock_hb (first);
  return r;
}

int
hbitmap_resize (struct hbitmap *hb, uint64_t new_size)
{
  uint64_t nwords[MAX_LEVELS];
  uint64_t *any[MAX_LEVELS] = { NULL }, *full[MAX_LEVELS] = { NULL };
  uint64_t nbits, removed = 0, i;
  unsigned nlevels, k;
  int r = -1;

  if (new_size > INT64_MAX) {
    errno = EINVAL;
    return -1;
  }

  lock_hb (hb);
  nbits = DIV_ROUND_UP (new_size, UINT64_C (1) << hb->shift);
  if (nbits == hb->nbits) {
    hb->size = new_size;
    r = 0;
    goto out;
  }
  nlevels = compute_geometry (nbits, nwords);
  if (alloc_summaries (any, full, nwords, nlevels) == -1)
    goto out;

  /* Count the bits a shrink drops before they go. */
  if (nbits < hb->nbits) {
    for (i = nbits >> 6; i < hb->nwords[0]; ++i) {
      uint64_t w = hb->any[0][i];

      if (i == nbits >> 6 && (nbits & 63))
        w &= ~word_mask (0, (nbits & 63) - 1);
      removed += __builtin_popcountll (w);
    }
  }

  if (nwords[0] != hb->nwords[0]) {
    size_t mapped;
    uint64_t *p = alloc_level0 (nwords[0], &mapped);

    if (p == NULL) {
      free_summaries (any, full, nlevels);
      errno = ENOMEM;
      goto out;
    }
    memcpy (p, hb->any[0], (nwords[0] < hb->nwords[0] ? nwords[0]
                            : hb->nwords[0]) * sizeof (uint64_t));
    free_level0 (hb->any[0], hb->mapped);
    hb->any[0] = hb->full[0] = p;
    hb->mapped = mapped;
  }
  /* Clear the padding past the new end (a shrink inside the last word). */
  if (nbits & 63)
    hb->any[0][nbits >> 6] &= word_mask (0, (nbits & 63) - 1);
  else if (nbits == 0)
    hb->any[0][0] = 0;

  free_summaries (hb->any, hb->full, hb->nlevels);
  for (k = 1; k < nlevels; ++k) {
    hb->any[k] = any[k];
    hb->full[k] = full[k];
  }
  memcpy (hb->nwords, nwords, sizeof nwords);
  hb->nlevels = nlevels;
  hb->nbits = nbits;
  hb->size = new_size;
  hb->count -= removed;
  refresh_summaries (hb, 0, nwords[0] - 1);
  r = 0;
 out:
  unlock_hb (hb);
  return r;
}

/* Serialization. */

uint64_t
hbitmap_serialization_align (const struct hbitmap *hb)
{
  return UINT64_C (8) << hb->shift;
}

/* Granules [*SB, *EB) of the part [start, start+count).  False if empty. */
static bool
part_bits (const struct hbitmap *hb, uint64_t start, uint64_t count,
           uint64_t *sb, uint64_t *eb)
{
  uint64_t first, last;

  if (!byte_range_to_bits (hb, start, count, &first, &last))
    return false;
  *sb = first;
  *eb = last + 1;
  return true;
}

/* N <= 64 bits of level 0 starting at bit P (past the end reads 0). */
static uint64_t
load_bits (const struct hbitmap *hb, uint64_t p, unsigned n)
{
  uint64_t wi = p >> 6;
  unsigned off = p & 63;
  uint64_t v = hb->any[0][wi] >> off;

  if (off && wi + 1 < hb->nwords[0])
    v |= hb->any[0][wi + 1] << (64 - off);
  if (n < 64)
    v &= (UINT64_C (1) << n) - 1;
  return v;
}

/* Replace N <= 64 bits of level 0 starting at bit P by V's low bits,
 * counting the change.  Summaries are refreshed by the caller.
 */
static void
store_bits (struct hbitmap *hb, uint64_t p, unsigned n, uint64_t v)
{
  uint64_t wi = p >> 6;
  unsigned off = p & 63;
  uint64_t mask = n < 64 ? (UINT64_C (1) << n) - 1 : UINT64_MAX;
  uint64_t old, new;

  v &= mask;
  old = hb->any[0][wi];
  new = (old & ~(mask << off)) | (v << off);
  hb->any[0][wi] = new;
  hb->count += __builtin_popcountll (new);
  hb->count -= __builtin_popcountll (old);
  if (off && off + n > 64) {
    unsigned rest = off + n - 64;
    uint64_t m2 = (UINT64_C (1) << rest) - 1;

    old = hb->any[0][wi + 1];
    new = (old & ~m2) | (v >> (64 - off));
    hb->any[0][wi + 1] = new;
    hb->count += __builtin_popcountll (new);
    hb->count -= __builtin_popcountll (old);
  }
}

uint64_t
hbitmap_serialization_size (const struct hbitmap *hb,
                            uint64_t start, uint64_t count)
{
  uint64_t sb, eb, r = 0;

  lock_hb (hb);
  if (part_bits (hb, start, count, &sb, &eb))
    r = DIV_ROUND_UP (eb - sb, 8);
  unlock_hb (hb);
  return r;
}

void
hbitmap_serialize_part (const struct hbitmap *hb, uint8_t *buf,
                        uint64_t start, uint64_t count)
{
  uint64_t sb, eb, p;

  lock_hb (hb);
  if (!part_bits (hb, start, count, &sb, &eb))
    goto out;
  for (p = sb; eb - p >= 64; p += 64, buf += 8)
    store_le64 (buf, load_bits (hb, p, 64));
  if (p < eb) {
    unsigned n = eb - p;
    uint8_t tmp[8];

    store_le64 (tmp, load_bits (hb, p, n));
    memcpy (buf, tmp, (n + 7) / 8);
  }
 out:
  unlock_hb (hb);
}

/* Deserialize into granules [SB, EB) that are all clean, SB on a word
 * boundary: only the nonzero words are written (and their summaries
 * updated), so that a sparse bitmap loaded into a new one touches no
 * memory for its clean stretches.  Lock held.
 */
static void
deserialize_into_clean (struct hbitmap *hb, const uint8_t *buf,
                        uint64_t sb, uint64_t eb)
{
  uint64_t p, v;

  for (p = sb; eb - p >= 64; p += 64, buf += 8) {
    v = load_le64 (buf);
    if (v)
      merge_word (hb, p >> 6, v);
  }
  if (p < eb) {
    unsigned n = eb - p;
    uint8_t tmp[8] = { 0 };

    memcpy (tmp, buf, (n + 7) / 8);
    v = load_le64 (tmp) & (UINT64_MAX >> (64 - n));
    if (v)
      merge_word (hb, p >> 6, v);
  }
}

void
hbitmap_deserialize_part (struct hbitmap *hb, const uint8_t *buf,
                          uint64_t start, uint64_t count)
{
  uint64_t sb, eb, p;

  lock_hb (hb);
  if (!part_bits (hb, start, count, &sb, &eb))
    goto out;
  if ((sb & 63) == 0 && find_bit (hb, true, sb, eb) == NONE) {
    deserialize_into_clean (hb, buf, sb, eb);
    goto out;
  }
  for (p = sb; eb - p >= 64; p += 64, buf += 8)
    store_bits (hb, p, 64, load_le64 (buf));
  if (p < eb) {
    unsigned n = eb - p;
    uint8_t tmp[8] = { 0 };

    memcpy (tmp, buf, (n + 7) / 8);
    store_bits (hb, p, n, load_le64 (tmp));
  }
  refresh_summaries (hb, sb >> 6, (eb - 1) >> 6);
 out:
  unlock_hb (hb);
}

bool
hbitmap_is_zero_part (const struct hbitmap *hb, uint64_t start,
                      uint64_t count)
{
  return hbitmap_next_dirty (hb, start, count) == -1;
}

int
hbitmap_sha256 (const struct hbitmap *hb, char out[65])
{
  unsigned char digest[32];
  int err, i;

  lock_hb (hb);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  err = gnutls_hash_fast (GNUTLS_DIG_SHA256, hb->any[0],
                          hb->nwords[0] * sizeof (uint64_t), digest);
#else
  {
    gnutls_hash_hd_t h;
    uint64_t tmp[512];
    size_t w, n;

    err = gnutls_hash_init (&h, GNUTLS_DIG_SHA256);
    for (w = 0; err == 0 && w < hb->nwords[0]; w += n) {
      size_t j;

      n = hb->nwords[0] - w < 512 ? hb->nwords[0] - w : 512;
      for (j = 0; j < n; ++j)
        tmp[j] = htole64 (hb->any[0][w + j]);
      err = gnutls_hash (h, tmp, n * sizeof (uint64_t));
    }
    if (err == 0)
      gnutls_hash_deinit (h, digest);
  }
#endif
  unlock_hb (hb);
  if (err < 0) {
    errno = EIO;
    return -1;
  }
  for (i = 0; i < 32; ++i)
    snprintf (&out[2 * i], 3, "%02x", digest[i]);
  return 0;
}

size_t
hbitmap_memory_usage (const struct hbitmap *hb)
{
  size_t r = sizeof *hb;
  unsigned k;

  lock_hb (hb);
  r += hb->nwords[0] * sizeof (uint64_t);
  for (k = 1; k < hb->nlevels; ++k)
    r += 2 * hb->nwords[k] * sizeof (uint64_t);
  unlock_hb (hb);
  return r;
}
