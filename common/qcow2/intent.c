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

/* nbdcbt's intent record in a qcow2 image (docs/persistence.md).
 *
 * Header extension EXT_INTENT in cluster 0, valid only while autoclear
 * bit AUTOCLEAR_INTENT is set (QEMU clears autoclear bits it does not know
 * at every read-write open, which is how an image QEMU changed is told
 * apart).  Data: u32 version (1), u32 N, u64 zone size, u64 image size,
 * N u64 FNV-1a hashes of the names of bitmaps the record does NOT cover
 * (inconsistent when it started: they stay inconsistent), then the zone
 * bitmap (LSB first).
 *
 * States of a handle: no usable record; a valid record found at open that
 * nobody drives ("untracked": the first data write through this handle
 * invalidates it, since nothing records that write); a record driven by
 * the dirty filter ("tracked", after qcow2_intent_start).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "cleanup.h"
#include "hbitmap.h"
#include "qcow2-internal.h"

#define INTENT_VERSION 1
#define INTENT_HDR 24
#define ZONE_MIN (UINT64_C (64) << 10)
#define ZONE_MAX (UINT64_C (1) << 40)

static uint64_t
zone_bytes (uint64_t size, uint64_t zone)
{
  uint64_t n = size / zone + (size % zone != 0);
  return n / 8 + (n % 8 != 0);
}

static uint64_t
name_hash (const char *name)
{
  uint64_t h = UINT64_C (0xcbf29ce484222325);

  for (; *name; name++)
    h = (h ^ (unsigned char) *name) * UINT64_C (0x100000001b3);
  return h;
}

static struct qcow2_ext *
find_ext (struct qcow2 *q)
{
  size_t i;

  for (i = 0; i < q->nr_exts; i++)
    if (q->exts[i].magic == EXT_INTENT)
      return &q->exts[i];
  return NULL;
}

/* Is the extension a valid record for this image?  Fills the zone size. */
static bool
ext_valid (struct qcow2 *q, const struct qcow2_ext *e, uint64_t *zone)
{
  uint64_t z;

  if (e == NULL || !(q->autoclear & AUTOCLEAR_INTENT) || q->version < 3
      || e->len < INTENT_HDR || load_be32 (e->data) != INTENT_VERSION)
    return false;
  z = load_be64 (e->data + 8);
  if (z < ZONE_MIN || z > ZONE_MAX || (z & (z - 1))
      || load_be64 (e->data + 16) != q->size
      || load_be32 (e->data + 4) > 65535
      || e->len != INTENT_HDR + 8 * (uint64_t) load_be32 (e->data + 4)
                   + zone_bytes (q->size, z))
    return false;
  *zone = z;
  return true;
}

static size_t
bits_offset (const struct qcow2_ext *e)
{
  return INTENT_HDR + 8 * (size_t) load_be32 (e->data + 4);
}

static bool
excluded (const struct qcow2_ext *e, uint64_t h)
{
  uint32_t i, n = load_be32 (e->data + 4);

  for (i = 0; i < n; i++)
    if (load_be64 (e->data + INTENT_HDR + 8 * i) == h)
      return true;
  return false;
}

/* At open (header and bitmap directory read).  Bitmaps in use on disk
 * that the record does not cover are inconsistent, and stay so in any
 * record this handle starts.  LOCK not needed: no other user yet.
 */
void
qcow2_intent_open (struct qcow2 *q)
{
  struct qcow2_ext *e = find_ext (q);
  uint64_t zone;
  size_t i;

  q->intent_state = ext_valid (q, e, &zone)
    ? QCOW2_INTENT_UNTRACKED : QCOW2_INTENT_NONE;
  q->intent_at_open = q->intent_state == QCOW2_INTENT_UNTRACKED;
  q->intent_nexcl = 0;
  for (i = 0; i < q->nr_bms; i++) {
    uint64_t h = name_hash (q->bms[i].name);
    uint64_t *n;

    if (!(q->bms_open_flags[i] & QCOW2_BME_IN_USE))
      continue;
    if (q->intent_at_open && !excluded (e, h))
      continue;
    n = realloc (q->intent_excl, (q->intent_nexcl + 1) * sizeof *n);
    if (n == NULL) {
      /* An in-use bitmap left off this list would count as recoverable
       * when the record does not cover it: give the record up, and every
       * in-use bitmap is inconsistent, as QEMU would see it.
       */
      q->intent_at_open = false;
      break;
    }
    q->intent_excl = n;
    q->intent_excl[q->intent_nexcl++] = h;
  }
}

bool
qcow2_bitmap_recoverable (struct qcow2 *q, const char *name)
{
  uint64_t h = name_hash (name);
  size_t i;

  if (!q->intent_at_open)
    return false;
  for (i = 0; i < q->intent_nexcl; i++)
    if (q->intent_excl[i] == h)
      return false;
  return true;
}

int
qcow2_intent_get (struct qcow2 *q, uint8_t **bits, size_t *nbytes,
                  uint64_t *zone_size)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  struct qcow2_ext *e = find_ext (q);
  uint64_t zone;

  if (!ext_valid (q, e, &zone))
    return qcow2_error (ENOENT, "%s: no valid intent record", q->filename);
  *nbytes = e->len - bits_offset (e);
  *bits = malloc (*nbytes + 1);
  if (*bits == NULL)
    return qcow2_error (errno, "malloc: %m");
  memcpy (*bits, e->data + bits_offset (e), *nbytes);
  *zone_size = zone;
  return 0;
}

/* Zones of a recovered bitmap: HB |= every zone marked at open. */
void
qcow2_intent_apply_locked (struct qcow2 *q, struct hbitmap *hb)
{
  struct qcow2_ext *e = find_ext (q);
  uint64_t zone, z;

  if (!ext_valid (q, e, &zone))
    return;
  for (z = 0; z < (uint64_t) (e->len - bits_offset (e)) * 8; z++)
    if (e->data[bits_offset (e) + z / 8] & (1u << (z % 8))) {
      if (z * zone >= q->size)
        break;
      hbitmap_set (hb, z * zone, zone);
    }
}

int
qcow2_intent_start (struct qcow2 *q, uint64_t zone_size, uint8_t **bits_ret,
                    size_t *nbytes_ret, uint64_t *zone_ret)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  struct qcow2_ext *e = find_ext (q);
  CLEANUP_FREE uint8_t *old = NULL;
  uint64_t old_zone = 0, z, nb;
  size_t old_len = 0, i;
  uint8_t *data;

  if (q->readonly)
    return qcow2_error (EROFS, "%s: read-only", q->filename);
  if (q->version < 3)
    return qcow2_error (ENOTSUP, "%s: a qcow2 v2 image has no autoclear "
                        "bits for an intent record", q->filename);
  if (ext_valid (q, e, &old_zone)) {
    old_len = e->len - bits_offset (e);
    old = malloc (old_len + 1);
    if (old == NULL)
      return qcow2_error (errno, "malloc: %m");
    memcpy (old, e->data + bits_offset (e), old_len);
  }
  if (e == NULL) {
    struct qcow2_ext *n = realloc (q->exts, (q->nr_exts + 1) * sizeof *n);
    if (n == NULL)
      return qcow2_error (errno, "realloc: %m");
    q->exts = n;
    e = &q->exts[q->nr_exts++];
    memset (e, 0, sizeof *e);
    e->magic = EXT_INTENT;
  }

  /* The smallest zone size from ZONE_SIZE up whose record fits. */
  for (z = zone_size; z <= ZONE_MAX; z *= 2) {
    uint64_t y;

    size_t hdr = INTENT_HDR + 8 * q->intent_nexcl;

    nb = zone_bytes (q->size, z);
    data = calloc (hdr + nb + 1, 1);
    if (data == NULL)
      return qcow2_error (errno, "calloc: %m");
    store_be32 (data, INTENT_VERSION);
    store_be32 (data + 4, q->intent_nexcl);
    store_be64 (data + 8, z);
    store_be64 (data + 16, q->size);
    for (i = 0; i < q->intent_nexcl; i++)
      store_be64 (data + INTENT_HDR + 8 * i, q->intent_excl[i]);
    /* Carry over the old record's zones. */
    for (i = 0; i < old_len * 8; i++)
      if (old[i / 8] & (1u << (i % 8))) {
        uint64_t a = i * old_zone, b = a + old_zone;
        if (a >= q->size)
          break;
        if (b > q->size)
          b = q->size;
        for (y = a / z; y * z < b; y++)
          data[hdr + y / 8] |= 1u << (y % 8);
      }
    free (e->data);
    e->data = data;
    e->len = hdr + nb;
    q->autoclear |= AUTOCLEAR_INTENT;
    if (qcow2_write_header (q) == 0)
      break;
    if (errno != ENOSPC)
      goto err;
  }
  if (z > ZONE_MAX) {
    qcow2_error (ENOSPC, "%s: no room in the header cluster for an intent "
                 "record", q->filename);
    goto err;
  }
  if (qcow2_file_sync (q) == -1)
    goto err;
  *bits_ret = malloc (nb + 1);
  if (*bits_ret == NULL)
    return qcow2_error (errno, "malloc: %m");
  memcpy (*bits_ret, e->data + bits_offset (e), nb);
  *nbytes_ret = nb;
  *zone_ret = z;
  __atomic_store_n (&q->intent_state, QCOW2_INTENT_TRACKED, __ATOMIC_RELEASE);
  return 0;

 err:
  {
    int err = errno;
    /* Nothing valid on disk for us: forget the record. */
    q->autoclear &= ~AUTOCLEAR_INTENT;
    e = find_ext (q);
    if (e) {
      free (e->data);
      *e = q->exts[--q->nr_exts];
    }
    q->intent_state = QCOW2_INTENT_NONE;
    errno = err;
  }
  return -1;
}

int
qcow2_intent_persist (struct qcow2 *q, const uint8_t *bits, size_t offset,
                      size_t len)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  struct qcow2_ext *e = find_ext (q);

  if (e == NULL || q->intent_state != QCOW2_INTENT_TRACKED
      || bits_offset (e) + offset + len > e->len)
    return qcow2_error (EINVAL, "%s: no intent record to update",
                        q->filename);
  memcpy (e->data + bits_offset (e) + offset, bits, len);
  if (qcow2_file_pwrite_durable (q, bits, len,
                                 e->offset + bits_offset (e) + offset) == -1) {
    q->write_error = true;
    return -1;
  }
  return 0;
}

/* A write that nobody records: the record no longer covers the image. */
int
qcow2_intent_before_write (struct qcow2 *q)
{
  if (__atomic_load_n (&q->intent_state, __ATOMIC_ACQUIRE)
      != QCOW2_INTENT_UNTRACKED)
    return 0;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&q->lock);
  if (q->intent_state != QCOW2_INTENT_UNTRACKED)
    return 0;
  q->autoclear &= ~AUTOCLEAR_INTENT;
  if (qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1) {
    q->write_error = true;
    return -1;
  }
  __atomic_store_n (&q->intent_state, QCOW2_INTENT_NONE, __ATOMIC_RELEASE);
  return 0;
}
