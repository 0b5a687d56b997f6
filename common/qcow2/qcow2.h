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

/* The qcow2 format library: one reader and writer of qcow2 images for the
 * qcow2 plugin, nbdcbt-img and nbdcbt-backup.  Images are read and written
 * as qemu-img 7.2 does (docs/interop/qcow2.txt), including the bitmaps
 * extension.
 *
 * Errors: functions returning int give 0 on success and -1 on failure with
 * errno set and a human-readable message available from
 * qcow2_last_error() (thread-local, valid until the next call in the same
 * thread).  Functions returning pointers give NULL on failure, likewise.
 *
 * Thread safety: one struct qcow2 may be used from many threads at once;
 * data I/O to different clusters proceeds in parallel, metadata updates
 * are serialized internally.
 */
#ifndef NBDCBT_QCOW2_H
#define NBDCBT_QCOW2_H

#include <stdbool.h>
#include <stdint.h>

struct qcow2;
struct hbitmap;
struct bitmap_store_entry;

extern const char *qcow2_last_error (void);

/* Is FD / PATH a qcow2 image (magic check only)? */
extern bool qcow2_probe_fd (int fd);

/* --- Creating --------------------------------------------------------- */

struct qcow2_create_opts {
  uint64_t size;            /* virtual size in bytes (may be 0 with backing) */
  uint32_t cluster_size;    /* default 65536 */
  int version;              /* 2 or 3, default 3 */
  int refcount_bits;        /* default 16 */
  bool lazy_refcounts;
  bool extended_l2;
  int compression_type;     /* 0 zlib (default), 1 zstd */
  const char *backing_file; /* NULL for none; stored as given */
  const char *backing_format; /* "qcow2", "raw" or NULL (probe) */
};
/* Creates (truncates) PATH.  With a backing file and size 0, the size is
 * the backing file's.
 */
extern int qcow2_create (const char *path,
                         const struct qcow2_create_opts *opts);

/* --- Opening ---------------------------------------------------------- */

#define QCOW2_OPEN_RDONLY (1 << 0)
#define QCOW2_OPEN_NO_BACKING (1 << 1) /* do not open the backing chain */
/* Do not load or mark bitmaps (offline tools that manage them directly).
 * Note: qcow2_open never marks bitmaps in use by itself (call
 * qcow2_bitmaps_mark_in_use); the bitmap directory is always parsed and
 * validated, so this flag currently changes nothing.
 */
#define QCOW2_OPEN_NO_BITMAP_IN_USE (1 << 2)
/* Locking: every open takes QEMU's image locks (OFD locks on bytes 100+
 * and 200+ of the file, as block/file-posix.c), so that QEMU and qemu-img
 * refuse an image we write and we refuse one they write.  A read-only
 * open with FORCE_SHARE (qemu-img -U) lets others write meanwhile.
 * Backing files are locked as read-only opens.  An image in use elsewhere
 * fails to open with errno EAGAIN.
 */
#define QCOW2_OPEN_FORCE_SHARE (1 << 3)
/* For checking: bitmap entries with a wrong table size are left for
 * qcow2_check to report instead of failing the open (read-only only).
 */
#define QCOW2_OPEN_CHECK (1 << 4)

/* A writable open clears unknown autoclear bits, drops an inconsistent
 * bitmaps extension (as QEMU), and rebuilds the refcounts of an image
 * with the dirty bit set.  Images marked corrupt open read-only only.
 */
extern struct qcow2 *qcow2_open (const char *path, int flags);
/* Flushes and closes; the image (and its backing chain) is freed even on
 * error.
 */
extern int qcow2_close (struct qcow2 *q);

struct qcow2_info {
  int version;
  uint64_t size;
  uint32_t cluster_size;
  int refcount_bits;
  bool lazy_refcounts;
  bool extended_l2;
  bool dirty;       /* incompatible bit 0 set at open */
  bool corrupt;
  int compression_type;
  const char *backing_file;   /* as stored, or NULL */
  const char *backing_format; /* or NULL */
  uint64_t nb_bitmaps;
};
extern void qcow2_get_info (struct qcow2 *q, struct qcow2_info *info);
extern uint64_t qcow2_get_size (struct qcow2 *q);
/* The backing image (opened with the same flags), or NULL. */
extern struct qcow2 *qcow2_backing (struct qcow2 *q);

/* --- Data ------------------------------------------------------------- */

/* Reads from the image, its backing chain or zeroes. */
extern int qcow2_pread (struct qcow2 *q, void *buf, uint64_t count,
                        uint64_t offset);
#define QCOW2_WRITE_FUA (1 << 0)
extern int qcow2_pwrite (struct qcow2 *q, const void *buf, uint64_t count,
                         uint64_t offset, int flags);
/* Reads as zero afterwards.  MAY_UNMAP lets whole clusters lose their
 * allocation (zero flag without an offset); otherwise they stay
 * allocated and read as zero.
 */
#define QCOW2_ZERO_MAY_UNMAP (1 << 1)
extern int qcow2_zero (struct qcow2 *q, uint64_t count, uint64_t offset,
                       int flags);
/* Discard whole clusters within the range (the rest is left alone).  With
 * a backing file discarded clusters read as zero (v3 zero flag), as QEMU
 * does for discard on an image with a backing file.
 */
extern int qcow2_discard (struct qcow2 *q, uint64_t count, uint64_t offset,
                          int flags);
extern int qcow2_flush (struct qcow2 *q);

/* How many allocating writes (runs of new clusters) this handle made,
 * and the most whose data was being written at the same time.
 */
extern void qcow2_alloc_stats (struct qcow2 *q, uint64_t *runs,
                               unsigned *max_parallel);

/* Block status at OFFSET for at most COUNT bytes: *pnum bytes from OFFSET
 * share the same status.  *status is a mix of QCOW2_STATUS_*; *depth is 0
 * for unallocated in the whole chain, 1 for this image, 2 for its backing
 * file, ...
 */
#define QCOW2_STATUS_DATA (1 << 0)  /* reads from a host cluster */
#define QCOW2_STATUS_ZERO (1 << 1)  /* reads as zeroes */
#define QCOW2_STATUS_ALLOCATED (1 << 2) /* decided at this layer */
extern int qcow2_block_status (struct qcow2 *q, uint64_t offset,
                               uint64_t count, uint64_t *pnum, int *status,
                               int *depth);

/* Grow (or shrink, if no data lies past the new end) the virtual size. */
extern int qcow2_resize (struct qcow2 *q, uint64_t new_size);

/* --- Persistent bitmaps (the bitmaps extension) ------------------------ */

#define QCOW2_BME_IN_USE (1 << 0)
#define QCOW2_BME_AUTO (1 << 1)

struct qcow2_bitmap_info {
  char *name;
  uint64_t granularity;
  uint32_t flags; /* QCOW2_BME_* as on disk when the image was opened */
};
/* The bitmaps in the directory.  Caller frees with
 * qcow2_bitmap_list_free.
 */
extern int qcow2_bitmap_list (struct qcow2 *q, struct qcow2_bitmap_info **list,
                              size_t *n);
extern void qcow2_bitmap_list_free (struct qcow2_bitmap_info *list, size_t n);

/* Load NAME's data into a new hbitmap sized to the image.  Fails for an
 * in_use (inconsistent) bitmap unless it is ours (marked by
 * qcow2_bitmaps_mark_in_use on this handle).
 */
extern struct hbitmap *qcow2_bitmap_load (struct qcow2 *q, const char *name);

/* Set in_use on every bitmap on disk, as QEMU does on a read-write open
 * (autoclear bit cleared, directory rewritten in place, bit set again).
 */
extern int qcow2_bitmaps_mark_in_use (struct qcow2 *q);

/* Can this image hold persistent bitmaps?  0 if so; -1 with errno
 * ENOTSUP and QEMU's message for a qcow2 v2 image, which has no
 * autoclear bits to tell whether another program changed the data.
 */
extern int qcow2_bitmaps_supported (struct qcow2 *q);

/* Replace the whole set of persistent bitmaps: each entry of SET (see
 * bitmap-store.h: name, data, recording stored as AUTO, in_use kept set
 * for a bitmap still recording) is written (data clusters, table, new
 * directory), then the header switched and the old clusters freed, as
 * qcow2_store_persistent_dirty_bitmaps.  Bitmaps on disk that are not in
 * the set and not listed in KEEP are removed.  Entries in KEEP (for
 * example inconsistent bitmaps) are copied from the old directory as they
 * are.
 */
extern int qcow2_bitmaps_store (struct qcow2 *q,
                                const struct bitmap_store_entry *set,
                                size_t n, const char *const *keep,
                                size_t nkeep);

/* Offline edits (nbdcbt-img bitmap), each one a complete store:
 * QEMU's constraints apply (name 1..1023 bytes, granularity 512..2^31,
 * at most 65535 bitmaps, v3 only).
 */
extern int qcow2_bitmap_add (struct qcow2 *q, const char *name,
                             uint64_t granularity, bool recording);
extern int qcow2_bitmap_remove (struct qcow2 *q, const char *name);

/* --- nbdcbt's intent record (docs/persistence.md) --------------------- */

/* Is NAME, in use on disk at open, covered by a valid intent record?
 * Then qcow2_bitmap_load returns its stored data plus every zone the
 * record marks; otherwise it is inconsistent.
 */
extern bool qcow2_bitmap_recoverable (struct qcow2 *q, const char *name);
/* The record now (malloc'd copy of the zone bitmap, LSB first). */
extern int qcow2_intent_get (struct qcow2 *q, uint8_t **bits, size_t *nbytes,
                             uint64_t *zone_size);
/* Start a record driven by the caller: zones of ZONE_SIZE or larger (the
 * smallest power-of-two multiple whose record fits in cluster 0), holding
 * every zone the previous valid record marked; written and synced.
 * *BITS (malloc'd), *NBYTES and *ZONE_RET describe it.
 */
extern int qcow2_intent_start (struct qcow2 *q, uint64_t zone_size,
                               uint8_t **bits, size_t *nbytes,
                               uint64_t *zone_ret);
/* Write bytes [OFFSET, OFFSET+LEN) of the zone bitmap and sync (the
 * intent record's backend).
 */
extern int qcow2_intent_persist (struct qcow2 *q, const uint8_t *bits,
                                 size_t offset, size_t len);

/* --- Checking --------------------------------------------------------- */

struct qcow2_check_result {
  uint64_t corruptions;
  uint64_t leaks;
  uint64_t leaks_fixed;
  uint64_t corruptions_fixed;
  uint64_t allocated_clusters;
  uint64_t image_end_offset;
};
#define QCOW2_CHECK_REPAIR_LEAKS (1 << 0)
/* Also raise refcounts that are too low (as after a crash with lazy
 * refcounts); qcow2_open does this itself for a writable open of an image
 * with the dirty bit set.
 */
#define QCOW2_CHECK_REPAIR_ALL (1 << 1)
/* Rebuilds refcounts from L1/L2, bitmaps and header structures and
 * compares.  Messages for each problem go to the MSG callback if not NULL.
 */
extern int qcow2_check (struct qcow2 *q, int flags,
                        struct qcow2_check_result *result,
                        void (*msg) (void *opaque, const char *text),
                        void *opaque);

#endif /* NBDCBT_QCOW2_H */
