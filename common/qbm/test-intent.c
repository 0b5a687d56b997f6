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

/* Tests of the intent record: syncs per zone, clearing after a store,
 * and the superset promise under concurrent writers and stores.
 */
#include <config.h>

#include <assert.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbitmap.h"
#include "intent.h"

#define ZONE (UINT64_C (1) << 16)
#define NZONES 200
#define DISK (ZONE * NZONES - 12345)   /* last zone partial */

/* The "disk": what the backend was asked to persist. */
static uint8_t disk[NZONES / 8 + 1];
static _Atomic unsigned persists;
static pthread_mutex_t disk_lock = PTHREAD_MUTEX_INITIALIZER;

static int
persist (void *opaque, const uint8_t *bits, size_t offset, size_t len)
{
  pthread_mutex_lock (&disk_lock);
  assert (offset + len <= sizeof disk);
  memcpy (disk + offset, bits, len);
  pthread_mutex_unlock (&disk_lock);
  persists++;
  return 0;
}

static const struct intent_backend backend = { .persist = persist };

static bool
disk_has (uint64_t z)
{
  bool r;
  pthread_mutex_lock (&disk_lock);
  r = disk[z / 8] & (1u << (z % 8));
  pthread_mutex_unlock (&disk_lock);
  return r;
}

static void
test_basic (void)
{
  struct intent *r;
  uint8_t init[sizeof disk] = { 0 };

  memset (disk, 0, sizeof disk);
  persists = 0;
  assert (intent_nzones (DISK, ZONE) == NZONES);
  r = intent_new (DISK, ZONE, NULL, &backend);
  assert (r);
  /* First write into a zone: one durable update; then none. */
  assert (intent_mark (r, 5 * ZONE + 100, 4096) == 0);
  assert (persists == 1 && disk_has (5));
  assert (intent_mark (r, 5 * ZONE, ZONE) == 0);
  assert (persists == 1);
  /* A range over three zones, one of them marked: one update. */
  assert (intent_mark (r, 4 * ZONE + 1, 2 * ZONE) == 0);
  assert (persists == 2 && disk_has (4) && disk_has (6));
  /* Past the end: clipped; zero length: nothing. */
  assert (intent_mark (r, DISK - 1, 1000) == 0);
  assert (disk_has (NZONES - 1));
  assert (intent_mark (r, DISK + 10, 10) == 0);
  assert (intent_mark (r, 0, 0) == 0);
  assert (!disk_has (0));
  assert (intent_marked_zones (r) == 4);

  /* Store: zone 5 written again after the store began stays. */
  intent_store_begin (r);
  assert (intent_mark (r, 5 * ZONE, 1) == 0);
  assert (intent_store_end (r) == 0);
  assert (disk_has (5) && !disk_has (4) && !disk_has (6)
          && !disk_has (NZONES - 1));
  assert (intent_marked_zones (r) == 1);
  /* Zone 4 is clean again: the next write into it syncs again. */
  {
    unsigned before = persists;
    assert (intent_mark (r, 4 * ZONE, 1) == 0);
    assert (persists == before + 1 && disk_has (4));
  }
  /* A second store with nothing new clears everything. */
  intent_store_begin (r);
  assert (intent_store_end (r) == 0);
  intent_store_begin (r);
  assert (intent_store_end (r) == 0);
  assert (intent_marked_zones (r) == 0);
  intent_free (r);

  /* A record loaded from disk: marked zones are durable already. */
  init[0] = 0x06;               /* zones 1 and 2 */
  persists = 0;
  r = intent_new (DISK, ZONE, init, &backend);
  assert (intent_mark (r, ZONE, 2 * ZONE) == 0);
  assert (persists == 0);
  assert (intent_mark (r, 0, 1) == 0);
  assert (persists == 1);
  intent_free (r);

  /* intent_apply. */
  {
    struct hbitmap *hb = hbitmap_new (DISK, 4096);
    uint8_t bits[sizeof disk] = { 0 };
    bits[0] = 0x01;
    bits[(NZONES - 1) / 8] |= 1u << ((NZONES - 1) % 8);
    assert (intent_apply (bits, sizeof bits, ZONE, hb) == 2);
    assert (hbitmap_count (hb) == ZONE + ((DISK - (NZONES - 1) * ZONE + 4095) / 4096 * 4096));
    hbitmap_free (hb);
  }
  assert (!intent_zone_size_valid (1000) && intent_zone_size_valid (ZONE));
}

/* Concurrency: writers mark a fine bitmap (granule = zone) then the
 * record; a storer snapshots the fine bitmap as "stored" and clears the
 * record.  At every check: every zone whose write had returned from
 * intent_mark is in the stored snapshot or on disk.
 */
static struct intent *rec;
static struct hbitmap *fine;
static _Atomic uint64_t completed[NZONES / 64 + 1];
static _Atomic bool stop;

static void *
writer (void *arg)
{
  unsigned seed = (uintptr_t) arg;

  while (!stop) {
    uint64_t z = rand_r (&seed) % NZONES;
    uint64_t off = z * ZONE + rand_r (&seed) % 1000;
    hbitmap_set (fine, off, 512);
    assert (intent_mark (rec, off, 512) == 0);
    atomic_fetch_or (&completed[z / 64], UINT64_C (1) << (z % 64));
  }
  return NULL;
}

static void
test_threads (void)
{
  pthread_t th[4];
  int i, round, checks = 0;

  memset (disk, 0, sizeof disk);
  rec = intent_new (DISK, ZONE, NULL, &backend);
  fine = hbitmap_new (DISK, ZONE);
  for (i = 0; i < 4; i++)
    pthread_create (&th[i], NULL, writer, (void *) (uintptr_t) (i + 1));
  for (round = 0; round < 2000; round++) {
    struct hbitmap *stored;
    uint64_t done[NZONES / 64 + 1], z;

    intent_store_begin (rec);
    stored = hbitmap_copy (fine);
    /* Backups clear the fine bitmap now and then: what was cleared is
     * what the "stored" copy no longer needs.  Model it by clearing
     * completed with it.
     */
    assert (intent_store_end (rec) == 0);
    for (i = 0; i < NZONES / 64 + 1; i++)
      done[i] = atomic_load (&completed[i]);
    for (z = 0; z < NZONES; z++)
      if (done[z / 64] & (UINT64_C (1) << (z % 64))) {
        if (!hbitmap_get (stored, z * ZONE) && !disk_has (z)) {
          fprintf (stderr, "round %d: zone %" PRIu64 " written but neither "
                   "stored nor in the record\n", round, z);
          abort ();
        }
        checks++;
      }
    hbitmap_free (stored);
  }
  stop = true;
  for (i = 0; i < 4; i++)
    pthread_join (th[i], NULL);
  printf ("threads: %d zone checks, %" PRIu64 " syncs\n", checks,
          intent_syncs (rec));
  intent_free (rec);
  hbitmap_free (fine);
}

int
main (void)
{
  test_basic ();
  test_threads ();
  printf ("test-intent: ok\n");
  return 0;
}
