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

/* The bitmap model of an export: every named dirty bitmap of one export
 * in a thread-safe set, with QEMU's rules and error messages
 * (block/dirty-bitmap.c, block/monitor/bitmap-qmp-cmds.c).
 *
 * A bitmap has a name and a granularity (bitmap-rules.h), and the states QEMU's query-block shows: recording
 * (enabled), persistent (kept in a store across restarts), busy (owned by
 * a job or a point-in-time export; frozen), inconsistent (loaded from a
 * store that did not close cleanly: it may only be removed), and
 * readonly (loaded from a read-only store).
 *
 * Jobs use successors: dirty_bitmaps_create_successor freezes a bitmap (it
 * becomes disabled and busy) and starts an anonymous child with the same
 * granularity that records the writes made meanwhile.  When the job ends,
 * either abdicate (the successor takes the name: the bitmap now holds only
 * the writes made during the job) or reclaim (the successor is ORed back
 * into the parent, which recovers its recording state).
 *
 * Errors: functions returning int give 0 or -1 with errno set and, when
 * ERRP is not NULL, *ERRP set to a malloc'd message (QEMU's wording) the
 * caller frees.  Nothing is changed on error.
 *
 * Locking: one read-write lock guards the set's structure; the data of
 * each bitmap is guarded by its hbitmap's own lock.  dirty_bitmaps_mark takes
 * the set's read lock and touches only the bitmaps that record.
 */
#ifndef NBDCBT_DIRTY_BITMAP_H
#define NBDCBT_DIRTY_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hbitmap;
struct dirty_bitmaps;

/* Replace *ERRP (when ERRP is not NULL) by a new message, in the
 * convention of this file; for the layers that add their own errors to
 * the model's (the dirty filter's control service and store).
 */
extern void dirty_bitmap_error (char **errp, const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 2, 3)));

/* A new empty set for an export of SIZE bytes. */
extern struct dirty_bitmaps *dirty_bitmaps_new (uint64_t size);
/* Frees every bitmap (successors too). */
extern void dirty_bitmaps_free (struct dirty_bitmaps *set);
extern uint64_t dirty_bitmaps_size (struct dirty_bitmaps *set);

/* Options for dirty_bitmaps_add. */
struct dirty_bitmap_opts {
  uint64_t granularity;  /* 0 = BITMAP_GRANULARITY_DEFAULT */
  bool disabled;         /* created not recording */
  bool persistent;
  bool inconsistent;     /* loaded from a store with in_use set */
  bool readonly;         /* loaded from a read-only store */
};

/* Add a bitmap.  With DATA (not NULL) the set takes ownership of it (it
 * must match the set's size and OPTS' granularity, 0 meaning "DATA's");
 * without, a new clean one is allocated.  Errors: the rules of
 * bitmap-rules.h (name, granularity, count), "Bitmap already exists:
 * NAME".  On error DATA is not taken.
 */
extern int dirty_bitmaps_add (struct dirty_bitmaps *set, const char *name,
                           const struct dirty_bitmap_opts *opts,
                           struct hbitmap *data, char **errp);
/* Remove NAME (refused while busy or readonly; inconsistent ones can be
 * removed).  Returns whether it was persistent in *WAS_PERSISTENT (may be
 * NULL) so the caller can drop it from the store.
 */
extern int dirty_bitmaps_remove (struct dirty_bitmaps *set, const char *name,
                              bool *was_persistent, char **errp);
extern int dirty_bitmaps_clear (struct dirty_bitmaps *set, const char *name,
                             char **errp);
extern int dirty_bitmaps_enable (struct dirty_bitmaps *set, const char *name,
                              char **errp);
extern int dirty_bitmaps_disable (struct dirty_bitmaps *set, const char *name,
                               char **errp);
/* TARGET |= every SOURCE.  Sources must exist, be consistent, and have
 * the set's size; granularities may differ (each dirty granule of a
 * source marks every target granule it touches).
 */
extern int dirty_bitmaps_merge (struct dirty_bitmaps *set, const char *target,
                             const char *const *sources, size_t nsources,
                             char **errp);
/* Change the persistent flag (a store decides what "persistent" may
 * mean; the model only records it).
 */
extern int dirty_bitmaps_set_persistent (struct dirty_bitmaps *set,
                                      const char *name, bool persistent,
                                      char **errp);

/* Successors (jobs).  create: NAME must be consistent, not busy, not
 * readonly and without a successor; it becomes busy and disabled, and a
 * successor inherits its recording state.  abdicate (job succeeded): the
 * successor takes the name, persistence and state, the frozen data is
 * dropped.  reclaim (job failed): the successor's bits are ORed into the
 * parent, which takes the successor's recording state and is no longer
 * busy.
 */
extern int dirty_bitmaps_create_successor (struct dirty_bitmaps *set,
                                        const char *name, char **errp);
extern int dirty_bitmaps_abdicate (struct dirty_bitmaps *set, const char *name,
                                char **errp);
/* Abdicate, keeping KEEP's bits (of the set's size, any granularity)
 * dirty: QEMU's bitmap-mode=always after a failure, KEEP being what the
 * job did not copy.  They are merged into the successor before it takes
 * the name; on error nothing changed.
 */
extern int dirty_bitmaps_abdicate_keeping (struct dirty_bitmaps *set,
                                           const char *name,
                                           const struct hbitmap *keep,
                                           char **errp);
extern int dirty_bitmaps_reclaim (struct dirty_bitmaps *set, const char *name,
                               char **errp);
/* Busy without a successor (a read-only export of the bitmap, say). */
extern int dirty_bitmaps_set_busy (struct dirty_bitmaps *set, const char *name,
                                bool busy, char **errp);

/* The write path: mark every granule [offset, offset+len) touches in
 * every recording bitmap and successor.  No allocation; the set's read
 * lock and one hbitmap lock per recording bitmap.
 */
extern void dirty_bitmaps_mark (struct dirty_bitmaps *set, uint64_t offset,
                             uint64_t len);
/* Number of bitmaps dirty_bitmaps_mark writes to (0 = writes are free). */
extern size_t dirty_bitmaps_recording_count (struct dirty_bitmaps *set);

/* Resize every bitmap (successors too).  When MARK_GROWTH and the size
 * grows, the new area is marked in every recording bitmap: it is new data
 * a backup has not seen.  On error nothing changes.
 */
extern int dirty_bitmaps_resize (struct dirty_bitmaps *set, uint64_t new_size,
                              bool mark_growth, char **errp);

/* A snapshot of one bitmap's state (query-block's BlockDirtyInfo). */
struct dirty_bitmap_info {
  char *name;
  uint64_t granularity;
  uint64_t count;        /* dirty bytes */
  bool recording;
  bool busy;
  bool persistent;
  bool inconsistent;
  bool readonly;
  bool has_successor;
};
/* All bitmaps in creation order.  Caller frees with
 * dirty_bitmap_info_free.
 */
extern int dirty_bitmaps_list (struct dirty_bitmaps *set,
                            struct dirty_bitmap_info **list, size_t *n);
extern int dirty_bitmaps_query (struct dirty_bitmaps *set, const char *name,
                             struct dirty_bitmap_info *info, char **errp);
extern void dirty_bitmap_info_free (struct dirty_bitmap_info *list,
                                    size_t n);

/* Reading a bitmap's data (block status, backup, store).  dirty_bitmaps_get
 * returns a reference to NAME that keeps its data alive even if the bitmap
 * is removed or abdicated meanwhile; release it with dirty_bitmap_put.
 * NULL with *ERRP if NAME is missing or inconsistent.  The hbitmap's own
 * lock makes each call on it atomic; it keeps changing while it records.
 */
struct dirty_bitmap;
extern struct dirty_bitmap *dirty_bitmaps_get (struct dirty_bitmaps *set,
                                            const char *name, char **errp);
extern struct hbitmap *dirty_bitmap_data (struct dirty_bitmap *bm);

/* What a store must keep of NAME, as a new bitmap: its data ORed with its
 * successor's (a frozen bitmap of a running job: after a crash the job
 * failed, and reclaim would merge them).  NULL with errno (ENOENT,
 * ENOMEM).
 */
extern struct hbitmap *dirty_bitmaps_persistent_copy (struct dirty_bitmaps *set,
                                                      const char *name);
extern void dirty_bitmap_put (struct dirty_bitmap *bm);

/* Does a consistent bitmap called NAME exist? */
extern bool dirty_bitmaps_exists (struct dirty_bitmaps *set, const char *name);

#endif /* NBDCBT_DIRTY_BITMAP_H */
