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

/* Concurrency test of hbitmap: 4 writer threads set random ranges in one
 * shared bitmap (and in a private bitmap each) while a reader thread walks
 * it with next_dirty_area and next_clean.  Afterwards the shared bitmap
 * must equal the union of the private ones, with an exact count.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbitmap.h"

#define NWRITERS 4
#define NOPS 200000
#define GRAN 4096
#define SIZE (UINT64_C (1) << 34)   /* 2^22 granules */

static struct hbitmap *shared;
static atomic_bool done;

struct writer {
  pthread_t thread;
  uint64_t seed;
  struct hbitmap *mine;
};

static uint64_t
rnd (uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void *
writer_main (void *arg)
{
  struct writer *w = arg;
  int i;

  for (i = 0; i < NOPS; ++i) {
    uint64_t off = rnd (&w->seed) % SIZE;
    /* Mostly small writes, some spanning many words. */
    uint64_t len = (i % 100 == 0) ? rnd (&w->seed) % (GRAN * 500)
      : 1 + rnd (&w->seed) % (4 * GRAN);

    hbitmap_set (shared, off, len);
    hbitmap_set (w->mine, off, len);
  }
  return NULL;
}

/* A walk under concurrent writes (which it lets in every 1024 areas)
 * still reports ascending, disjoint, non-empty areas.
 */
static int
walk_area (void *opaque, uint64_t s, uint64_t l)
{
  uint64_t *prev_end = opaque;

  if (s < *prev_end || l == 0 || s + l > SIZE) {
    fprintf (stderr, "FAIL: bad walk area %" PRIu64 "+%" PRIu64 "\n", s, l);
    exit (EXIT_FAILURE);
  }
  *prev_end = s + l;
  return 0;
}

static void *
reader_main (void *arg)
{
  uint64_t *scans = arg;

  while (!atomic_load (&done)) {
    uint64_t off = 0, s, l, prev_end = 0;

    if (*scans & 1) {
      if (hbitmap_walk_dirty (shared, 0, UINT64_MAX, walk_area,
                              &prev_end) != 0) {
        fprintf (stderr, "FAIL: walk_dirty did not finish\n");
        exit (EXIT_FAILURE);
      }
      ++*scans;
      continue;
    }
    while (hbitmap_next_dirty_area (shared, off, UINT64_MAX, 0, &s, &l)) {
      if (s < prev_end || l == 0 || s + l > SIZE) {
        fprintf (stderr, "FAIL: bad area %" PRIu64 "+%" PRIu64 "\n", s, l);
        exit (EXIT_FAILURE);
      }
      prev_end = off = s + l;
    }
    (void) hbitmap_next_clean (shared, 0, UINT64_MAX);
    (void) hbitmap_count (shared);
    ++*scans;
  }
  return NULL;
}

int
main (void)
{
  struct writer w[NWRITERS];
  struct hbitmap *uni;
  pthread_t reader;
  uint64_t scans = 0, s, l, off;
  char d1[65], d2[65];
  int i, err;

  shared = hbitmap_new (SIZE, GRAN);
  uni = hbitmap_new (SIZE, GRAN);
  if (shared == NULL || uni == NULL) {
    perror ("hbitmap_new");
    exit (EXIT_FAILURE);
  }
  for (i = 0; i < NWRITERS; ++i) {
    w[i].seed = 0x9e3779b97f4a7c15ULL * (i + 1);
    w[i].mine = hbitmap_new (SIZE, GRAN);
    if (w[i].mine == NULL) {
      perror ("hbitmap_new");
      exit (EXIT_FAILURE);
    }
  }
  err = pthread_create (&reader, NULL, reader_main, &scans);
  for (i = 0; err == 0 && i < NWRITERS; ++i)
    err = pthread_create (&w[i].thread, NULL, writer_main, &w[i]);
  if (err) {
    errno = err;
    perror ("pthread_create");
    exit (EXIT_FAILURE);
  }
  for (i = 0; i < NWRITERS; ++i)
    pthread_join (w[i].thread, NULL);
  atomic_store (&done, true);
  pthread_join (reader, NULL);

  for (i = 0; i < NWRITERS; ++i) {
    if (hbitmap_merge (uni, w[i].mine) == -1) {
      perror ("hbitmap_merge");
      exit (EXIT_FAILURE);
    }
    hbitmap_free (w[i].mine);
  }

  /* Same bits (digest), same count, same areas. */
  if (hbitmap_sha256 (shared, d1) == -1 || hbitmap_sha256 (uni, d2) == -1) {
    perror ("hbitmap_sha256");
    exit (EXIT_FAILURE);
  }
  if (strcmp (d1, d2) != 0
      || hbitmap_count (shared) != hbitmap_count (uni)) {
    fprintf (stderr, "FAIL: shared %s count %" PRIu64
             " != union %s count %" PRIu64 "\n",
             d1, hbitmap_count (shared), d2, hbitmap_count (uni));
    exit (EXIT_FAILURE);
  }
  for (off = 0;
       hbitmap_next_dirty_area (shared, off, UINT64_MAX, 0, &s, &l);
       off = s + l) {
    uint64_t s2, l2;

    if (!hbitmap_next_dirty_area (uni, off, UINT64_MAX, 0, &s2, &l2)
        || s2 != s || l2 != l) {
      fprintf (stderr, "FAIL: area %" PRIu64 "+%" PRIu64 "\n", s, l);
      exit (EXIT_FAILURE);
    }
  }
  printf ("test-hbitmap-threads: %d writers x %d sets, %" PRIu64
          " concurrent scans, count %" PRIu64 ": ok\n",
          NWRITERS, NOPS, scans, hbitmap_count (shared));
  hbitmap_free (shared);
  hbitmap_free (uni);
  return EXIT_SUCCESS;
}
