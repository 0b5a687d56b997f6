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

/* Microbenchmark of hbitmap (for scripts/bench; not a test).
 *
 * Prints one "name: value unit" line per measurement:
 *  - hbitmap_set of a 4 KiB range at random offsets on a 1 TiB bitmap at
 *    64 KiB and at 512 B granularity (the per-write cost);
 *  - a full next_dirty_area scan of a 1 TiB @ 64 KiB bitmap with 20,000
 *    scattered dirty granules, and with 40,000 dirty extents;
 *  - hbitmap_walk_dirty over the same 20,000 granules in 4 GiB - 1
 *    calls, as a server answers nbdinfo --map, with the cache warm and
 *    with 32 MiB read before each call (a server thread that slept
 *    between two requests finds the bitmap out of cache);
 *  - next_dirty/next_clean single lookups;
 *  - serialization and deserialization throughput.
 * Runs in a couple of seconds.
 */

#include <config.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hbitmap.h"

#define TIB (UINT64_C (1) << 40)

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t
rnd (void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static double
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static struct hbitmap *
new_or_die (uint64_t size, uint64_t gran)
{
  struct hbitmap *hb = hbitmap_new (size, gran);

  if (hb == NULL) {
    perror ("hbitmap_new");
    exit (EXIT_FAILURE);
  }
  return hb;
}

static void
bench_set (uint64_t gran, uint64_t span, const char *what)
{
  const int n = 2000000;
  struct hbitmap *hb = new_or_die (TIB, gran);
  uint64_t *offs = malloc (n * sizeof *offs);
  double t;
  int i;

  if (offs == NULL) {
    perror ("malloc");
    exit (EXIT_FAILURE);
  }
  for (i = 0; i < n; ++i)
    offs[i] = (rnd () % (span / 4096)) * 4096;
  /* Fault the bitmap's pages in so that we time the bitmap, not the
   * kernel's first-touch zeroing.
   */
  hbitmap_set_all (hb);
  hbitmap_reset_all (hb);

  t = now_ns ();
  for (i = 0; i < n; ++i)
    hbitmap_set (hb, offs[i], 4096);
  t = now_ns () - t;
  printf ("set_4k_random_%s_gran%" PRIu64 ": %.1f ns/op\n",
          what, gran, t / n);

  t = now_ns ();
  for (i = 0; i < n; ++i)
    hbitmap_reset (hb, offs[i], 4096);
  t = now_ns () - t;
  printf ("reset_4k_random_%s_gran%" PRIu64 ": %.1f ns/op\n",
          what, gran, t / n);
  free (offs);
  hbitmap_free (hb);
}

static void
bench_scan (uint64_t nextents, uint64_t extent_granules)
{
  const uint64_t gran = 65536;
  struct hbitmap *hb = new_or_die (TIB, gran);
  uint64_t nbits = TIB / gran, i, off, s, l, found = 0;
  int rep, reps = 20;
  double t;

  for (i = 0; i < nextents; ++i)
    hbitmap_set (hb, (rnd () % nbits) * gran, extent_granules * gran);

  t = now_ns ();
  for (rep = 0; rep < reps; ++rep) {
    found = 0;
    off = 0;
    while (hbitmap_next_dirty_area (hb, off, UINT64_MAX, 0, &s, &l)) {
      found++;
      off = s + l;
    }
  }
  t = (now_ns () - t) / reps;
  printf ("scan_next_dirty_area_1T_gran64k_%" PRIu64 "x%" PRIu64
          ": %.3f ms (%" PRIu64 " areas, %.1f ns/area)\n",
          nextents, extent_granules, t / 1e6, found, t / found);

  t = now_ns ();
  for (i = 0; i < 1000000; ++i)
    (void) hbitmap_next_dirty (hb, (rnd () % nbits) * gran, UINT64_MAX);
  t = now_ns () - t;
  printf ("next_dirty_random_1T_gran64k: %.1f ns/op\n", t / 1e6);
  hbitmap_free (hb);
}

static int
count_area (void *opaque, uint64_t start, uint64_t len)
{
  ++*(uint64_t *) opaque;
  return 0;
}

static void
bench_walk_map (void)
{
  const uint64_t gran = 65536, nbits = TIB / gran, step = UINT32_MAX;
  const size_t evict = 32 << 20;
  struct hbitmap *hb = new_or_die (TIB, gran);
  volatile unsigned char *junk = calloc (1, evict);
  double best[2] = { 1e300, 1e300 }, t;
  uint64_t areas = 0, off;
  int i, cold, round;

  if (junk == NULL) {
    perror ("calloc");
    exit (EXIT_FAILURE);
  }
  for (i = 0; i < 20000; ++i)
    hbitmap_set (hb, (rnd () % nbits) * gran, 4096);
  for (round = 0; round < 3; ++round)
    for (cold = 0; cold < 2; ++cold) {
      t = 0;
      areas = 0;
      for (off = 0; off < TIB; off += step) {
        double t0;
        size_t k;

        if (cold)
          for (k = 0; k < evict; k += 64)
            junk[k]++;
        t0 = now_ns ();
        hbitmap_walk_dirty (hb, off, off + step < TIB ? off + step : TIB,
                            count_area, &areas);
        t += now_ns () - t0;
      }
      if (t < best[cold])
        best[cold] = t;
    }
  printf ("walk_map_1T_gran64k_20000_warm: %.3f ms (%" PRIu64 " areas)\n",
          best[0] / 1e6, areas);
  printf ("walk_map_1T_gran64k_20000_cold: %.3f ms (%" PRIu64 " areas)\n",
          best[1] / 1e6, areas);
  free ((void *) junk);
  hbitmap_free (hb);
}

static void
bench_next_clean (void)
{
  struct hbitmap *hb = new_or_die (TIB, 512);
  const int n = 200000;
  double t;
  int i;

  /* Fully dirty but for one granule near the end: the worst case for a
   * linear scan.
   */
  hbitmap_set_all (hb);
  hbitmap_reset (hb, TIB - 4096, 512);
  t = now_ns ();
  for (i = 0; i < n; ++i)
    if (hbitmap_next_clean (hb, rnd () % (TIB / 2), UINT64_MAX)
        != (int64_t) (TIB - 4096))
      abort ();
  t = now_ns () - t;
  printf ("next_clean_1T_gran512_far: %.1f ns/op\n", t / n);
  hbitmap_free (hb);
}

static void
bench_serialize (void)
{
  const uint64_t gran = 512, size = UINT64_C (64) << 30;  /* 16 MiB bitmap */
  struct hbitmap *hb = new_or_die (size, gran);
  uint64_t bytes = hbitmap_serialization_size (hb, 0, size), i;
  uint8_t *buf = malloc (bytes);
  double t;
  int rep, reps = 10;

  if (buf == NULL) {
    perror ("malloc");
    exit (EXIT_FAILURE);
  }
  for (i = 0; i < 100000; ++i)
    hbitmap_set (hb, rnd () % size, 65536);

  t = now_ns ();
  for (rep = 0; rep < reps; ++rep)
    hbitmap_serialize_part (hb, buf, 0, size);
  t = (now_ns () - t) / reps;
  printf ("serialize: %.0f MiB/s\n", bytes / (t / 1e9) / 1048576);

  t = now_ns ();
  for (rep = 0; rep < reps; ++rep)
    hbitmap_deserialize_part (hb, buf, 0, size);
  t = (now_ns () - t) / reps;
  printf ("deserialize: %.0f MiB/s\n", bytes / (t / 1e9) / 1048576);
  free (buf);
  hbitmap_free (hb);
}

int
main (void)
{
  struct hbitmap *hb = new_or_die (TIB, 512);

  printf ("memory_1T_gran512: %zu bytes (%.4f x nbits/8)\n",
          hbitmap_memory_usage (hb),
          hbitmap_memory_usage (hb) / (double) (TIB / 512 / 8));
  hbitmap_free (hb);

  bench_set (65536, TIB, "1T");
  bench_set (512, TIB, "1T");
  bench_set (512, UINT64_C (1) << 30, "hot1G");
  bench_scan (20000, 1);
  bench_scan (40000, 4);
  bench_walk_map ();
  bench_next_clean ();
  bench_serialize ();
  return EXIT_SUCCESS;
}
