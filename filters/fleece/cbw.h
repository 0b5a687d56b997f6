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

/* The copy-before-write engine behind the fleece filter: point-in-time
 * views of a disk that keeps being written.
 *
 * A disk (struct cbw_disk) has any number of sessions.  A session is the
 * disk as it was at the instant it began.  While it is open, the first
 * write (or zero, or trim) into a granule the session still needs copies
 * the granule's old data into the session's store, a sparse temporary
 * file, before the write goes on; the view reads a granule from the store
 * once it was copied there and from the disk otherwise.
 *
 * Each session tracks its granules (of its own granularity) in one of
 * these states:
 *   NEEDED  the view still needs it, the disk holds the old data: a write
 *           copies it first;
 *   COPIED  the store holds the old data;
 *   OPEN    not needed (clean in the session's frozen bitmap, or already
 *           read by the client), but the disk still holds the old data:
 *           readable, a write will not copy it;
 *   GONE    not needed and written since (or read and dropped from the
 *           store): a read fails with EIO rather than answer wrong data.
 * A session with a dirty mask (an incremental: its frozen bitmap) starts
 * with the dirty granules NEEDED and the others OPEN; a full one starts
 * with every granule NEEDED.  With release_on_read, a granule the client
 * has read whole is no longer needed (NEEDED becomes OPEN; COPIED is
 * punched out of the store and becomes GONE), so a backup that reads
 * everything once makes later writes free and keeps the store small.
 *
 * Concurrency.  Writers hold the disk's gate shared from before
 * cbw_before_write until their own write to the disk has completed;
 * cbw_quiesce takes it exclusively, so sessions begin and end between
 * writes, never during one (this is what makes a session, and the bitmap
 * frozen with it, one instant).  Under the disk's mutex, in-flight ranges
 * order the rest: a view read that goes to the disk registers its range,
 * and writers overlapping it wait; a copy registers the granules it
 * copies, and both writers and view reads overlapping it wait.  The
 * mutex is never held across I/O.
 *
 * A store error (no space, say) or a failed read of the old data breaks
 * the session, never the guest write: the view then fails every read and
 * cbw_session_failed says why.
 */
#ifndef NBDCBT_CBW_H
#define NBDCBT_CBW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hbitmap;
struct cbw_disk;
struct cbw_session;

/* Reads COUNT bytes at OFFSET of the disk below; 0, or -1 with *ERR. */
typedef int cbw_read_fn (void *opaque, void *buf, uint32_t count,
                         uint64_t offset, int *err);

/* SIZE may be 0 if it is not known yet: sessions can begin only once
 * cbw_disk_set_size has set it (once; -1 if it differs from before).
 */
extern struct cbw_disk *cbw_disk_new (uint64_t size);
extern int cbw_disk_set_size (struct cbw_disk *d, uint64_t size);
/* Every session must have been detached and released. */
extern void cbw_disk_free (struct cbw_disk *d);
extern uint64_t cbw_disk_size (struct cbw_disk *d);
/* Sessions attached now. */
extern size_t cbw_disk_sessions (struct cbw_disk *d);

/* Around every write, zero and trim: enter, cbw_before_write, the write
 * itself, leave.
 */
extern void cbw_write_enter (struct cbw_disk *d);
extern void cbw_write_leave (struct cbw_disk *d);
/* Copy what the sessions still need of [offset, offset+count) into their
 * stores, reading the old data with READ.  Returns once the write may
 * proceed.  Never fails: a copy that cannot be made breaks its session.
 */
extern void cbw_before_write (struct cbw_disk *d, uint64_t offset,
                              uint64_t count, cbw_read_fn *read,
                              void *opaque);

/* Wait for the writes in flight to finish and hold new ones back, so
 * that sessions can be added and detached at one instant (of several
 * disks at once: quiesce them all, then change them, then resume).  A
 * thread may quiesce a disk it holds again (nested); each quiesce needs
 * its resume.
 */
extern void cbw_quiesce (struct cbw_disk *d);
extern void cbw_resume (struct cbw_disk *d);

struct cbw_session_opts {
  const char *dir;         /* where the store is made (it is unlinked) */
  uint64_t granularity;    /* power of two >= 512; 0 = DIRTY's, or 64K */
  uint64_t min_granularity; /* with GRANULARITY 0: at least this */
  const struct hbitmap *dirty; /* NULL = the whole disk is needed */
  bool need_all;           /* every granule needed even with DIRTY (a full
                            * backup that freezes a bitmap): DIRTY is then
                            * only the mask the view reports */
  bool release_on_read;
};

/* A new session, attached.  The disk must be quiesced.  NULL with *ERRP
 * (malloc'd) and errno on error.  The caller holds one reference.
 */
extern struct cbw_session *cbw_session_new (struct cbw_disk *d,
                                            const struct cbw_session_opts *o,
                                            char **errp);
/* Stop copying into S (the disk must be quiesced).  Its view fails every
 * read from now on (ESHUTDOWN).
 */
extern void cbw_session_detach (struct cbw_session *s);
extern void cbw_session_ref (struct cbw_session *s);
/* The last reference closes (and so deletes) the store. */
extern void cbw_session_unref (struct cbw_session *s);

/* Read the view: the disk as it was when S began.  DELTA: the delta
 * view, which reads granules clean in the session's dirty mask only if
 * the session needs them all (need_all), as their data at the instant;
 * otherwise EIO.  -1 with *ERR (EIO for a granule that is GONE or not
 * kept, or a broken session, ESHUTDOWN after detach, or READ's error).
 */
extern int cbw_session_read (struct cbw_session *s, void *buf,
                             uint32_t count, uint64_t offset, bool delta,
                             cbw_read_fn *read, void *opaque, int *err);

/* Where the view's data of [offset, offset+count) is, in runs: FN gets
 * each run with its kind and whether it is dirty in the mask (always
 * true without a mask).  FN returning nonzero stops the walk and is
 * returned.
 */
enum cbw_where { CBW_DISK, CBW_STORE, CBW_GONE };
typedef int cbw_map_fn (void *opaque, uint64_t offset, uint64_t len,
                        enum cbw_where where, bool dirty);
extern int cbw_session_map (struct cbw_session *s, uint64_t offset,
                            uint64_t count, cbw_map_fn *fn, void *opaque);

/* Hold [offset, offset+count) of the disk still for S's view: wait for
 * copies in progress there, then make writes there wait until
 * cbw_session_unhold.  For answers that must see the disk as the view
 * does across several steps (base:allocation from the disk below for
 * the runs cbw_session_map says are on the disk).  NULL with *ERR
 * (ESHUTDOWN after detach, EIO for a broken session, ENOMEM).
 */
struct cbw_hold;
extern struct cbw_hold *cbw_session_hold (struct cbw_session *s,
                                          uint64_t offset, uint64_t count,
                                          int *err);
extern void cbw_session_unhold (struct cbw_hold *h);

struct cbw_session_stats {
  uint64_t granularity;
  uint64_t needed;         /* bytes still needed (NEEDED) */
  uint64_t copied;         /* bytes copied into the store so far */
  uint64_t store_bytes;    /* bytes the store occupies now */
};
extern void cbw_session_stats (struct cbw_session *s,
                               struct cbw_session_stats *st);
/* What S's client has not copied: the granules S needed at its instant
 * (its dirty mask, or every granule) that no read of the view returned
 * whole, as a new bitmap covering the disk; with MASK (of the disk's
 * size), only MASK's dirty parts of them, at MASK's granularity.  For a
 * failed backup whose bitmap is synced anyway (QEMU's bitmap-mode=always):
 * the caller marks these dirty again.  Call it once S is detached (no
 * read can complete any more).  *BYTES (may be NULL): its dirty bytes.
 * NULL with errno on error.  Freed with cbw_unread_free.
 */
extern struct hbitmap *cbw_session_unread (struct cbw_session *s,
                                           const struct hbitmap *mask,
                                           uint64_t *bytes);
extern void cbw_unread_free (struct hbitmap *hb);
/* NULL while the session is sound, else why it broke (valid until the
 * session is freed).
 */
extern const char *cbw_session_failed (struct cbw_session *s);

#endif /* NBDCBT_CBW_H */
