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

/* The intent record (see intent.h for the protocol and why it is safe).
 *
 * Three zone bitmaps, as arrays of 64-bit words (bit z = word z/64,
 * bit z%64):
 *   touched  zones written since the last intent_store_begin (atomic);
 *   durable  zones known to be marked on disk: a writer that finds its
 *            zone here needs nothing else (atomic; a subset of ondisk);
 *   ondisk   what the backend holds (under LOCK).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hbitmap.h"
#include "intent.h"

struct intent {
  uint64_t disk_size;
  uint64_t zone_size;
  unsigned zone_shift;
  uint64_t nzones;
  size_t nwords;
  _Atomic uint64_t *touched;
  _Atomic uint64_t *durable;
  uint64_t *ondisk;
  uint8_t *buf;                 /* serialized ondisk, for the backend */
  size_t nbytes;
  struct intent_backend backend;
  pthread_mutex_t lock;         /* slow path and store_end */
  _Atomic uint64_t syncs;
};

uint64_t
intent_nzones (uint64_t disk_size, uint64_t zone_size)
{
  return disk_size / zone_size + (disk_size % zone_size != 0);
}

size_t
intent_bitmap_bytes (uint64_t disk_size, uint64_t zone_size)
{
  uint64_t n = intent_nzones (disk_size, zone_size);
  return n / 8 + (n % 8 != 0);
}

bool
intent_zone_size_valid (uint64_t zone_size)
{
  return zone_size >= INTENT_MIN_ZONE_SIZE
    && zone_size <= INTENT_MAX_ZONE_SIZE
    && (zone_size & (zone_size - 1)) == 0;
}

static int
alloc_words (struct intent *r, uint64_t nzones)
{
  size_t nwords = nzones / 64 + 1;

  r->touched = calloc (nwords, sizeof *r->touched);
  r->durable = calloc (nwords, sizeof *r->durable);
  r->ondisk = calloc (nwords, sizeof *r->ondisk);
  r->buf = calloc (nwords, 8);
  if (!r->touched || !r->durable || !r->ondisk || !r->buf)
    return -1;
  r->nwords = nwords;
  return 0;
}

static void
free_words (struct intent *r)
{
  free ((void *) r->touched);
  free ((void *) r->durable);
  free (r->ondisk);
  free (r->buf);
}

struct intent *
intent_new (uint64_t disk_size, uint64_t zone_size, const uint8_t *on_disk,
            const struct intent_backend *backend)
{
  struct intent *r;
  uint64_t z;

  if (!intent_zone_size_valid (zone_size) || backend == NULL
      || backend->persist == NULL) {
    errno = EINVAL;
    return NULL;
  }
  r = calloc (1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->disk_size = disk_size;
  r->zone_size = zone_size;
  r->zone_shift = __builtin_ctzll (zone_size);
  r->nzones = intent_nzones (disk_size, zone_size);
  r->nbytes = intent_bitmap_bytes (disk_size, zone_size);
  r->backend = *backend;
  pthread_mutex_init (&r->lock, NULL);
  if (alloc_words (r, r->nzones) == -1) {
    intent_free (r);
    errno = ENOMEM;
    return NULL;
  }
  if (on_disk) {
    for (z = 0; z < r->nzones; z++)
      if (on_disk[z / 8] & (1u << (z % 8))) {
        r->ondisk[z / 64] |= UINT64_C (1) << (z % 64);
        r->durable[z / 64] |= UINT64_C (1) << (z % 64);
      }
  }
  return r;
}

void
intent_free (struct intent *r)
{
  if (r == NULL)
    return;
  free_words (r);
  pthread_mutex_destroy (&r->lock);
  free (r);
}

uint64_t
intent_zone_size (const struct intent *r)
{
  return r->zone_size;
}

/* Serialize ondisk bytes [first, last] into buf and persist them.  LOCK
 * held.
 */
static int
persist_bytes (struct intent *r, size_t first, size_t last)
{
  size_t i;

  for (i = first; i <= last && i < r->nbytes; i++)
    r->buf[i] = r->ondisk[i / 8] >> (8 * (i % 8));
  if (first >= r->nbytes)
    return 0;
  if (last >= r->nbytes)
    last = r->nbytes - 1;
  atomic_fetch_add (&r->syncs, 1);
  return r->backend.persist (r->backend.opaque, r->buf + first, first,
                             last - first + 1);
}

/* The slow path: zones [z0, z1] are not all known durable. */
static int
mark_slow (struct intent *r, uint64_t z0, uint64_t z1)
{
  uint64_t z;
  bool need = false;
  int ret = 0;

  pthread_mutex_lock (&r->lock);
  for (z = z0; z <= z1; z++) {
    uint64_t bit = UINT64_C (1) << (z % 64);
    if (!(r->ondisk[z / 64] & bit)) {
      r->ondisk[z / 64] |= bit;
      need = true;
    }
  }
  if (need && persist_bytes (r, z0 / 8, z1 / 8) == -1) {
    int e = errno;
    /* The bits may or may not be on disk: keep them in ondisk (a later
     * persist writes them again) but do not call them durable.
     */
    ret = -1;
    errno = e;
  }
  else
    for (z = z0; z <= z1; z++)
      atomic_fetch_or (&r->durable[z / 64], UINT64_C (1) << (z % 64));
  pthread_mutex_unlock (&r->lock);
  return ret;
}

int
intent_mark (struct intent *r, uint64_t offset, uint64_t len)
{
  uint64_t z0, z1, z;
  bool all_durable = true;

  if (len == 0 || offset >= r->disk_size)
    return 0;
  if (len > r->disk_size - offset)
    len = r->disk_size - offset;
  z0 = offset >> r->zone_shift;
  z1 = (offset + len - 1) >> r->zone_shift;
  for (z = z0; z <= z1; z++) {
    uint64_t bit = UINT64_C (1) << (z % 64);
    /* Sequentially consistent: the store to touched is ordered before
     * the load of durable (see intent.h).  The bit is set only if it is
     * not already: a zone's words are shared by every worker, and a
     * read-modify-write on each write would bounce their cache line
     * between the processors.  Seeing the bit set is as good as setting
     * it: a set bit this load can see (seq_cst, and after any
     * intent_store_begin that happens before this write's fine marks)
     * was set since that store began, by an operation that comes before
     * this load, and so before intent_store_end's read of touched
     * whenever this writer's read of durable comes before its clear.
     */
    if (!(atomic_load (&r->touched[z / 64]) & bit))
      atomic_fetch_or (&r->touched[z / 64], bit);
    if (!(atomic_load (&r->durable[z / 64]) & bit))
      all_durable = false;
  }
  if (all_durable)
    return 0;
  return mark_slow (r, z0, z1);
}

void
intent_store_begin (struct intent *r)
{
  size_t i;

  for (i = 0; i < r->nwords; i++)
    atomic_exchange (&r->touched[i], 0);
}

int
intent_store_end (struct intent *r)
{
  size_t i;
  bool changed = false;
  int ret = 0;

  pthread_mutex_lock (&r->lock);
  /* First take back "durable" for the zones nobody touched... */
  for (i = 0; i < r->nwords; i++)
    atomic_fetch_and (&r->durable[i], atomic_load (&r->touched[i]));
  atomic_thread_fence (memory_order_seq_cst);
  /* ...then keep on disk every zone touched by now.  A writer that
   * touched its zone after this read saw it not durable and waits for
   * LOCK in mark_slow.
   */
  for (i = 0; i < r->nwords; i++) {
    uint64_t keep = r->ondisk[i] & atomic_load (&r->touched[i]);
    if (keep != r->ondisk[i]) {
      r->ondisk[i] = keep;
      changed = true;
    }
  }
  if (changed && r->nbytes > 0)
    ret = persist_bytes (r, 0, r->nbytes - 1);
  if (ret == 0)
    for (i = 0; i < r->nwords; i++)
      atomic_fetch_or (&r->durable[i], r->ondisk[i]);
  pthread_mutex_unlock (&r->lock);
  return ret;
}

int
intent_resize (struct intent *r, uint64_t new_disk_size)
{
  struct intent n = *r;
  uint64_t nzones = intent_nzones (new_disk_size, r->zone_size);
  size_t i, keep;

  pthread_mutex_lock (&r->lock);
  if (alloc_words (&n, nzones) == -1) {
    free_words (&n);
    pthread_mutex_unlock (&r->lock);
    errno = ENOMEM;
    return -1;
  }
  keep = n.nwords < r->nwords ? n.nwords : r->nwords;
  for (i = 0; i < keep; i++) {
    n.touched[i] = atomic_load (&r->touched[i]);
    n.durable[i] = atomic_load (&r->durable[i]);
    n.ondisk[i] = r->ondisk[i];
  }
  /* Bits of zones past the new end go. */
  if (nzones % 64 && nzones / 64 < n.nwords) {
    uint64_t m = (UINT64_C (1) << (nzones % 64)) - 1;
    n.touched[nzones / 64] &= m;
    n.durable[nzones / 64] &= m;
    n.ondisk[nzones / 64] &= m;
  }
  free_words (r);
  r->touched = n.touched;
  r->durable = n.durable;
  r->ondisk = n.ondisk;
  r->buf = n.buf;
  r->nwords = n.nwords;
  r->nzones = nzones;
  r->disk_size = new_disk_size;
  r->nbytes = intent_bitmap_bytes (new_disk_size, r->zone_size);
  pthread_mutex_unlock (&r->lock);
  return 0;
}

uint64_t
intent_syncs (const struct intent *r)
{
  return atomic_load (&((struct intent *) r)->syncs);
}

uint64_t
intent_marked_zones (const struct intent *r)
{
  uint64_t n = 0;
  size_t i;

  pthread_mutex_lock (&((struct intent *) r)->lock);
  for (i = 0; i < r->nwords; i++)
    n += __builtin_popcountll (r->ondisk[i]);
  pthread_mutex_unlock (&((struct intent *) r)->lock);
  return n;
}

uint64_t
intent_apply (const uint8_t *bits, size_t nbytes, uint64_t zone_size,
              struct hbitmap *hb)
{
  uint64_t z, n = 0, size = hbitmap_size (hb);

  for (z = 0; z < (uint64_t) nbytes * 8; z++) {
    if (!(bits[z / 8] & (1u << (z % 8))))
      continue;
    if (z * zone_size >= size)
      break;
    hbitmap_set (hb, z * zone_size, zone_size);
    n++;
  }
  return n;
}
