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

/* The intent record: a coarse, durable map of the zones of a disk that
 * may have been written since the fine bitmaps were last stored (the
 * write-intent bitmap of Linux md, the era bitmap of dm-era).
 *
 * The disk is cut into zones of ZONE_SIZE bytes (a power of two, default
 * INTENT_DEFAULT_ZONE_SIZE).  Protocol, for whoever owns the fine bitmaps:
 *
 *   write path:  mark the fine bitmaps, then intent_mark (), then issue
 *                the write.  intent_mark returns only when every zone of
 *                the range is durably marked in the record: the first
 *                write into a zone that is clean in the record costs one
 *                durable update (the backend's write + sync); a write into
 *                a marked zone costs two atomic loads (no lock, no write to
 *                a shared cache line once the zone was touched since the
 *                last store).
 *   store:       intent_store_begin (), then snapshot and durably store
 *                the fine bitmaps, then intent_store_end (): zones nobody
 *                wrote since intent_store_begin are cleared in the record
 *                (one durable update).
 *   recovery:    stored fine bitmap | every zone marked in the record
 *                (intent_apply) is a superset of every write since the
 *                fine bitmap was last cleared.
 *
 * Why the order "fine mark, then intent_mark": a write whose fine mark
 * came after the store's snapshot touches its zone after
 * intent_store_begin, so intent_store_end keeps that zone.  The fast path
 * (set "touched", then read "durable") and intent_store_end (clear
 * "durable", then read "touched") are the two halves of Dekker's
 * handshake: either the writer sees the zone no longer durable and takes
 * the slow path, which waits for the store and marks the zone again, or
 * the store sees the zone touched and keeps it.
 *
 * Where the record lives is the backend's business (a sidecar file, a
 * qcow2 header extension): it persists a byte range of the zone bitmap
 * (bit z = byte z/8, bit z%8, LSB first, as the qcow2 bitmaps) and makes
 * it durable.
 */
#ifndef NBDCBT_INTENT_H
#define NBDCBT_INTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hbitmap;

#define INTENT_DEFAULT_ZONE_SIZE (UINT64_C (64) << 20)   /* 64 MiB */
#define INTENT_MIN_ZONE_SIZE (UINT64_C (64) << 10)       /* 64 KiB */
#define INTENT_MAX_ZONE_SIZE (UINT64_C (1) << 40)        /* 1 TiB */

struct intent_backend {
  void *opaque;
  /* Write bytes [OFFSET, OFFSET+LEN) of the zone bitmap (BITS points at
   * byte OFFSET) and make them durable before returning.  0 or -1 with
   * errno set.
   */
  int (*persist) (void *opaque, const uint8_t *bits, size_t offset,
                  size_t len);
};

struct intent;

/* Zones of ZONE_SIZE over DISK_SIZE bytes: the size of the zone bitmap. */
extern uint64_t intent_nzones (uint64_t disk_size, uint64_t zone_size);
extern size_t intent_bitmap_bytes (uint64_t disk_size, uint64_t zone_size);

/* Is ZONE_SIZE acceptable (power of two in [MIN, MAX])? */
extern bool intent_zone_size_valid (uint64_t zone_size);

/* A record over DISK_SIZE bytes.  ON_DISK is the zone bitmap as the
 * backend holds it now (intent_bitmap_bytes long), or NULL if it is all
 * clear.  Zones marked there count as durable.  NULL with errno on error.
 */
extern struct intent *intent_new (uint64_t disk_size, uint64_t zone_size,
                                  const uint8_t *on_disk,
                                  const struct intent_backend *backend);
extern void intent_free (struct intent *r);

extern uint64_t intent_zone_size (const struct intent *r);

/* Before a write of [OFFSET, OFFSET+LEN): see above.  0, or -1 with errno
 * if the record could not be made durable (the write must then fail).
 */
extern int intent_mark (struct intent *r, uint64_t offset, uint64_t len);

extern void intent_store_begin (struct intent *r);
/* After the fine bitmaps snapshotted since intent_store_begin are
 * durable.  0 or -1 with errno (the record keeps more zones than needed:
 * harmless).
 */
extern int intent_store_end (struct intent *r);

/* The disk grew or shrank (no writes in flight).  New zones are clean. */
extern int intent_resize (struct intent *r, uint64_t new_disk_size);

/* Statistics: durable updates issued (mark slow path and store_end), and
 * zones marked now.
 */
extern uint64_t intent_syncs (const struct intent *r);
extern uint64_t intent_marked_zones (const struct intent *r);

/* Recovery: set every granule of HB that lies in a zone marked in BITS
 * (a zone bitmap of ZONE_SIZE zones, NBYTES long).  Returns the number of
 * marked zones.
 */
extern uint64_t intent_apply (const uint8_t *bits, size_t nbytes,
                              uint64_t zone_size, struct hbitmap *hb);

#endif /* NBDCBT_INTENT_H */
