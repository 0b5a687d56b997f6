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

/* Randomized test of hbitmap against a naive model: one bool per granule.
 *
 * Thousands of random set/reset/merge/resize/copy/serialize/deserialize
 * operations on small and odd sizes (size not a multiple of granularity,
 * not a multiple of 64 granules), every query compared with the model;
 * a few rounds on bitmaps whose level 0 is large enough to be mapped in
 * huge pages (1 MiB and more), resized across that threshold.
 * The seed is printed; rerun with HBITMAP_SEED=N to reproduce.
 */

#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbitmap.h"

struct model {
  uint64_t size, gran, nbits;
  bool *bit;
};

static uint64_t rng_state;
static unsigned long checks;

/* xorshift64*: deterministic across platforms. */
static uint64_t
rnd (void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C (0x2545F4914F6CDD1D);
}

static uint64_t
rnd_below (uint64_t n)
{
  return n ? rnd () % n : 0;
}

#define FAIL(fmt, ...)                                                  \
  do {                                                                  \
    fprintf (stderr, "FAIL line %d: " fmt "\n", __LINE__, __VA_ARGS__); \
    exit (EXIT_FAILURE);                                                \
  } while (0)

static void
model_init (struct model *m, uint64_t size, uint64_t gran)
{
  m->size = size;
  m->gran = gran;
  m->nbits = (size + gran - 1) / gran;
  m->bit = calloc (m->nbits + 1, 1);
  if (m->bit == NULL) {
    perror ("calloc");
    exit (EXIT_FAILURE);
  }
}

static void
model_write (struct model *m, uint64_t off, uint64_t len, bool v)
{
  uint64_t end, b;

  if (len == 0 || off >= m->size)
    return;
  end = len > m->size - off ? m->size : off + len;
  for (b = off / m->gran; b <= (end - 1) / m->gran; ++b)
    m->bit[b] = v;
}

static void
model_resize (struct model *m, uint64_t size)
{
  uint64_t nbits = (size + m->gran - 1) / m->gran;
  bool *p = calloc (nbits + 1, 1);

  if (p == NULL) {
    perror ("calloc");
    exit (EXIT_FAILURE);
  }
  memcpy (p, m->bit, nbits < m->nbits ? nbits : m->nbits);
  free (m->bit);
  m->bit = p;
  m->nbits = nbits;
  m->size = size;
}

static int64_t
model_next (const struct model *m, bool dirty, uint64_t off, uint64_t len)
{
  uint64_t end, b;

  if (len == 0 || off >= m->size)
    return -1;
  end = len > m->size - off ? m->size : off + len;
  for (b = off / m->gran; b <= (end - 1) / m->gran; ++b)
    if (m->bit[b] == dirty)
      return b * m->gran < off ? (int64_t) off : (int64_t) (b * m->gran);
  return -1;
}

static bool
model_area (const struct model *m, uint64_t off, uint64_t end,
            uint64_t max_len, uint64_t *s, uint64_t *l)
{
  int64_t start, clean;

  if (end > m->size)
    end = m->size;
  if (off >= end)
    return false;
  start = model_next (m, true, off, end - off);
  if (start < 0)
    return false;
  if (max_len && max_len < end - start)
    end = start + max_len;
  clean = model_next (m, false, start, end - start);
  if (clean >= 0)
    end = clean;
  *s = start;
  *l = end - start;
  return true;
}

static uint64_t
model_count_bits (const struct model *m)
{
  uint64_t b, n = 0;

  for (b = 0; b < m->nbits; ++b)
    n += m->bit[b];
  return n;
}

/* A random byte offset, biased towards edges: granule and word
 * boundaries, the end, past the end.
 */
static uint64_t
rnd_offset (const struct model *m)
{
  switch (rnd_below (6)) {
  case 0: return rnd_below (m->size + 1);
  case 1: return rnd_below (m->nbits + 2) * m->gran;
  case 2: return rnd_below (m->nbits / 64 + 2) * 64 * m->gran
      + rnd_below (3) * m->gran - (m->size > 0 ? 1 : 0) * rnd_below (2);
  case 3: return m->size - rnd_below (m->size < 3 ? m->size + 1 : 3);
  case 4: return m->size + rnd_below (2 * m->gran);
  default: return rnd_below (m->size + m->gran);
  }
}

static uint64_t
rnd_len (const struct model *m)
{
  switch (rnd_below (8)) {
  case 0: return 0;
  case 1: return 1 + rnd_below (m->gran);
  case 2: return UINT64_MAX - rnd_below (2);
  case 3: return rnd_below (200) * m->gran;
  case 4: return rnd_below (m->size + 1);
  default: return 1 + rnd_below (64 * 4 * m->gran);
  }
}

struct walk_check {
  const struct model *m;
  uint64_t off, end;            /* the model's next area starts at OFF */
  unsigned n, stop_after;       /* stop (return 7) after STOP_AFTER areas */
};

/* Each area the walk reports must be the model's next_dirty_area. */
static int
walk_area (void *opaque, uint64_t start, uint64_t len)
{
  struct walk_check *w = opaque;
  uint64_t s = 0, l = 0;

  if (!model_area (w->m, w->off, w->end, 0, &s, &l) || s != start
      || l != len)
    FAIL ("walk_dirty area %u from %" PRIu64 ": %" PRIu64 "+%" PRIu64
          " want %" PRIu64 "+%" PRIu64, w->n, w->off, start, len, s, l);
  w->off = start + len;
  if (++w->n == w->stop_after)
    return 7;
  return 0;
}

/* hbitmap_walk_dirty over [OFF, END) reports exactly the areas that
 * repeated next_dirty_area calls find, and stops when told to.
 */
static void
check_walk (struct hbitmap *hb, const struct model *m, uint64_t off,
            uint64_t end)
{
  struct walk_check w = { .m = m, .off = off, .end = end };
  uint64_t s, l;
  int r;

  w.stop_after = rnd_below (3) == 0 ? 1 + rnd_below (4) : 0;
  r = hbitmap_walk_dirty (hb, off, end, walk_area, &w);
  if (r == 7) {
    if (w.n != w.stop_after)
      FAIL ("walk_dirty stopped after %u areas, not %u", w.n, w.stop_after);
  }
  else if (r != 0)
    FAIL ("walk_dirty returned %d", r);
  else if (model_area (m, w.off, end, 0, &s, &l))
    FAIL ("walk_dirty (%" PRIu64 ", %" PRIu64 ") missed %" PRIu64 "+%"
          PRIu64, off, end, s, l);
  checks += w.n + 1;
}

static void
check_queries (struct hbitmap *hb, const struct model *m, int nq)
{
  int i;
  uint64_t cb = model_count_bits (m);

  if (hbitmap_size (hb) != m->size || hbitmap_nbits (hb) != m->nbits)
    FAIL ("size %" PRIu64 " nbits %" PRIu64 " want %" PRIu64 " %" PRIu64,
          hbitmap_size (hb), hbitmap_nbits (hb), m->size, m->nbits);
  if (hbitmap_count_bits (hb) != cb)
    FAIL ("count_bits %" PRIu64 " want %" PRIu64, hbitmap_count_bits (hb), cb);
  if (hbitmap_count (hb) != cb * m->gran)
    FAIL ("count %" PRIu64 " want %" PRIu64, hbitmap_count (hb),
          cb * m->gran);

  for (i = 0; i < nq; ++i) {
    uint64_t off = rnd_offset (m), len = rnd_len (m);
    uint64_t end, max_len, s1 = 0, l1 = 0, s2 = 0, l2 = 0;
    bool g, a1, a2;
    int64_t r1, r2;

    g = off < m->size && m->bit[off / m->gran];
    if (hbitmap_get (hb, off) != g)
      FAIL ("get %" PRIu64 " = %d", off, !g);

    r1 = hbitmap_next_dirty (hb, off, len);
    r2 = model_next (m, true, off, len);
    if (r1 != r2)
      FAIL ("next_dirty (%" PRIu64 ", %" PRIu64 ") = %" PRId64
            " want %" PRId64, off, len, r1, r2);

    r1 = hbitmap_next_clean (hb, off, len);
    r2 = model_next (m, false, off, len);
    if (r1 != r2)
      FAIL ("next_clean (%" PRIu64 ", %" PRIu64 ") = %" PRId64
            " want %" PRId64, off, len, r1, r2);

    end = rnd_below (4) == 0 ? UINT64_MAX : off + rnd_len (m) % (m->size + 1);
    if (end < off)
      end = UINT64_MAX;
    max_len = rnd_below (3) == 0 ? 0 : rnd_len (m);
    a1 = hbitmap_next_dirty_area (hb, off, end, max_len, &s1, &l1);
    a2 = model_area (m, off, end, max_len, &s2, &l2);
    if (a1 != a2 || (a1 && (s1 != s2 || l1 != l2)))
      FAIL ("next_dirty_area (%" PRIu64 ", %" PRIu64 ", %" PRIu64
            ") = %d %" PRIu64 "+%" PRIu64 " want %d %" PRIu64 "+%" PRIu64,
            off, end, max_len, a1, s1, l1, a2, s2, l2);

    check_walk (hb, m, off, end);

    if (hbitmap_is_zero_part (hb, off, len) != (model_next (m, true, off, len) < 0))
      FAIL ("is_zero_part (%" PRIu64 ", %" PRIu64 ")", off, len);
    checks += 6;
  }
}

/* Walk the whole bitmap with next_dirty_area and compare every bit. */
static void
check_full (struct hbitmap *hb, const struct model *m)
{
  uint64_t off = 0, s, l, b;
  bool *seen = calloc (m->nbits + 1, 1);

  if (seen == NULL) {
    perror ("calloc");
    exit (EXIT_FAILURE);
  }
  while (hbitmap_next_dirty_area (hb, off, UINT64_MAX, 0, &s, &l)) {
    if (s < off || l == 0)
      FAIL ("area %" PRIu64 "+%" PRIu64 " from %" PRIu64, s, l, off);
    for (b = s / m->gran; b <= (s + l - 1) / m->gran; ++b)
      seen[b] = true;
    off = s + l;
  }
  for (b = 0; b < m->nbits; ++b)
    if (seen[b] != m->bit[b] || hbitmap_get (hb, b * m->gran) != m->bit[b])
      FAIL ("bit %" PRIu64 " is %d want %d", b, seen[b], m->bit[b]);
  free (seen);
  check_walk (hb, m, 0, UINT64_MAX);
  checks += m->nbits;
}

static void
check_serialization (struct hbitmap *hb, struct model *m)
{
  uint64_t align = hbitmap_serialization_align (hb);
  uint64_t start, count, sb, nb, n, i;
  uint8_t *buf;
  bool aligned = rnd_below (4) != 0;

  if (align != 8 * m->gran)
    FAIL ("serialization_align %" PRIu64, align);
  if (aligned) {
    /* Half of them on a word of level 0 (64 granules): a part
     * deserialized into a clean range there takes the sparse path.
     */
    start = rnd_below (2) ? rnd_below (m->nbits / 8 + 2) * align
      : rnd_below (m->nbits / 64 + 2) * 8 * align;
    count = rnd_below (4) == 0 ? UINT64_MAX : rnd_below (m->nbits / 8 + 2) * align;
  }
  else {
    start = rnd_offset (m);
    count = rnd_len (m);
  }
  n = hbitmap_serialization_size (hb, start, count);
  if (count == 0 || start >= m->size) {
    if (n != 0)
      FAIL ("serialization_size (%" PRIu64 ", %" PRIu64 ") = %" PRIu64,
            start, count, n);
    return;
  }
  sb = start / m->gran;
  {
    uint64_t end = count > m->size - start ? m->size : start + count;
    nb = (end - 1) / m->gran + 1 - sb;
  }
  if (n != (nb + 7) / 8)
    FAIL ("serialization_size (%" PRIu64 ", %" PRIu64 ") = %" PRIu64
          " want %" PRIu64, start, count, n, (nb + 7) / 8);
  buf = malloc (n + 1);
  if (buf == NULL) {
    perror ("malloc");
    exit (EXIT_FAILURE);
  }
  memset (buf, 0xa5, n + 1);
  hbitmap_serialize_part (hb, buf, start, count);
  if (buf[n] != 0xa5)
    FAIL ("serialize_part overran at %" PRIu64, n);
  for (i = 0; i < n * 8; ++i) {
    bool want = i < nb && m->bit[sb + i];
    if (((buf[i >> 3] >> (i & 7)) & 1) != want)
      FAIL ("serialized bit %" PRIu64 " of part at %" PRIu64, i, start);
  }

  /* Replace the part by random bits (sometimes all 0 or all 1). */
  for (i = 0; i < n; ++i) {
    switch (rnd_below (8)) {
    case 0: buf[i] = 0; break;
    case 1: buf[i] = 0xff; break;
    default: buf[i] = rnd ();
    }
  }
  hbitmap_deserialize_part (hb, buf, start, count);
  for (i = 0; i < nb; ++i)
    m->bit[sb + i] = (buf[i >> 3] >> (i & 7)) & 1;
  free (buf);
}

static void
random_fill (struct hbitmap *hb, struct model *m, int n)
{
  int i;

  for (i = 0; i < n; ++i) {
    uint64_t off = rnd_offset (m), len = rnd_len (m);
    bool v = rnd_below (3) != 0;

    if (v)
      hbitmap_set (hb, off, len);
    else
      hbitmap_reset (hb, off, len);
    model_write (m, off, len, v);
  }
}

static uint64_t
rnd_size (uint64_t gran, uint64_t max_bits, uint64_t min_bits)
{
  uint64_t bits;

  switch (rnd_below (5)) {
  case 0: bits = rnd_below (3); break;
  case 1: bits = 64 * (1 + rnd_below (max_bits / 64)); break;
  default: bits = rnd_below (max_bits);
  }
  if (bits < min_bits)
    bits = min_bits + rnd_below (max_bits - min_bits);
  /* Often not a multiple of the granularity. */
  if (bits > 0 && rnd_below (2))
    return (bits - 1) * gran + 1 + rnd_below (gran - 1);
  return bits * gran;
}

static void
run_round (int round, uint64_t max_bits, uint64_t min_bits, int nops)
{
  uint64_t gran = UINT64_C (512) << rnd_below (12);  /* 512 .. 1M */
  uint64_t size = rnd_size (gran, max_bits, min_bits);
  struct hbitmap *hb = hbitmap_new (size, gran);
  struct model m;
  int op;

  if (hb == NULL)
    FAIL ("hbitmap_new (%" PRIu64 ", %" PRIu64 "): %m", size, gran);
  model_init (&m, size, gran);
  if (hbitmap_granularity (hb) != gran)
    FAIL ("granularity %" PRIu64, hbitmap_granularity (hb));

  for (op = 0; op < nops; ++op) {
    unsigned kind = rnd_below (100);

    if (kind < 50)
      random_fill (hb, &m, 1);
    else if (kind < 52) {
      hbitmap_set_all (hb);
      model_write (&m, 0, UINT64_MAX, true);
    }
    else if (kind < 54) {
      hbitmap_reset_all (hb);
      model_write (&m, 0, UINT64_MAX, false);
    }
    else if (kind < 62) {
      /* Merge a random bitmap of the same geometry. */
      struct hbitmap *src = hbitmap_new (m.size, gran);
      struct model ms;
      uint64_t b;

      if (src == NULL)
        FAIL ("hbitmap_new: %m%s", "");
      model_init (&ms, m.size, gran);
      random_fill (src, &ms, rnd_below (20));
      if (rnd_below (4) == 0) {
        hbitmap_set_all (src);
        model_write (&ms, 0, UINT64_MAX, true);
        hbitmap_reset (src, rnd_offset (&ms), rnd_len (&ms));
        hbitmap_reset_all (src);
        model_write (&ms, 0, UINT64_MAX, false);
        random_fill (src, &ms, 200);
      }
      if (hbitmap_merge (hb, src) != 0)
        FAIL ("merge: %m%s", "");
      for (b = 0; b < m.nbits; ++b)
        m.bit[b] |= ms.bit[b];
      hbitmap_free (src);
      free (ms.bit);
    }
    else if (kind < 70) {
      uint64_t ns;

      switch (rnd_below (4)) {
      case 0: ns = rnd_size (gran, max_bits, 0); break;
      case 1: ns = m.size + rnd_below (3 * gran) - (m.size >= gran ? gran : 0); break;
      case 2: ns = (m.nbits / 64 + rnd_below (3)) * 64 * gran - rnd_below (2); break;
      default: ns = rnd_below (m.size + 1);
      }
      if (ns > INT64_MAX)
        ns = 0;
      if (hbitmap_resize (hb, ns) != 0)
        FAIL ("resize (%" PRIu64 "): %m", ns);
      model_resize (&m, ns);
    }
    else if (kind < 80)
      check_serialization (hb, &m);
    else if (kind < 84) {
      struct hbitmap *c = hbitmap_copy (hb);
      char d1[65], d2[65];

      if (c == NULL)
        FAIL ("copy: %m%s", "");
      if (hbitmap_sha256 (hb, d1) != 0 || hbitmap_sha256 (c, d2) != 0
          || strcmp (d1, d2) != 0)
        FAIL ("copy digest differs %s", d1);
      /* Continue on the copy; the original must be independent. */
      hbitmap_set_all (hb);
      hbitmap_free (hb);
      hb = c;
    }
    else if (kind < 86) {
      /* The digest is a function of the bits only. */
      struct hbitmap *h2 = hbitmap_new (m.size, gran);
      char d1[65], d2[65];
      uint64_t b;

      if (h2 == NULL)
        FAIL ("hbitmap_new: %m%s", "");
      for (b = 0; b < m.nbits; ++b)
        if (m.bit[b])
          hbitmap_set (h2, b * gran, 1);
      if (hbitmap_sha256 (hb, d1) != 0 || hbitmap_sha256 (h2, d2) != 0
          || strcmp (d1, d2) != 0)
        FAIL ("digest %s want %s", d1, d2);
      hbitmap_free (h2);
    }
    else
      check_full (hb, &m);

    check_queries (hb, &m, 8);
  }
  check_full (hb, &m);

  {
    size_t mem = hbitmap_memory_usage (hb);
    if (m.nbits >= 100000 && mem > 1.1 * (double) m.nbits / 8)
      FAIL ("memory %zu for %" PRIu64 " bits", mem, m.nbits);
  }
  (void) round;
  hbitmap_free (hb);
  free (m.bit);
}

int
main (void)
{
  const char *s = getenv ("HBITMAP_SEED");
  uint64_t seed = s ? strtoull (s, NULL, 0) : UINT64_C (20240601);
  int round;

  printf ("test-hbitmap-model: seed %" PRIu64
          " (HBITMAP_SEED=%" PRIu64 " to reproduce)\n", seed, seed);
  fflush (stdout);
  rng_state = seed ? seed : 1;

  /* Many small bitmaps (1-2 summary levels), ... */
  for (round = 0; round < 300; ++round)
    run_round (round, 3000, 0, 40);
  /* ... some with three levels and more ... */
  for (round = 0; round < 20; ++round)
    run_round (round, 300000, 0, 25);
  /* ... and a few with a mapped level 0 (2^23 bits and more). */
  for (round = 0; round < 4; ++round)
    run_round (round, UINT64_C (1) << 25, UINT64_C (1) << 23, 12);

  printf ("test-hbitmap-model: %lu checks passed\n", checks);
  return EXIT_SUCCESS;
}
