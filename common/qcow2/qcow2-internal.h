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

/* Internals of the qcow2 library shared between its source files. */
#ifndef NBDCBT_QCOW2_INTERNAL_H
#define NBDCBT_QCOW2_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>

#include "bitmap-rules.h"
#include "qcow2.h"

#define QCOW2_MAGIC 0x514649fb

#define INCOMPAT_DIRTY (UINT64_C (1) << 0)
#define INCOMPAT_CORRUPT (UINT64_C (1) << 1)
#define INCOMPAT_DATA_FILE (UINT64_C (1) << 2)
#define INCOMPAT_COMPRESSION (UINT64_C (1) << 3)
#define INCOMPAT_EXTL2 (UINT64_C (1) << 4)
#define INCOMPAT_MASK UINT64_C (0x1f)
#define COMPAT_LAZY_REFCOUNTS (UINT64_C (1) << 0)
#define AUTOCLEAR_BITMAPS (UINT64_C (1) << 0)
#define AUTOCLEAR_DATA_FILE_RAW (UINT64_C (1) << 1)
/* nbdcbt's intent record is valid (docs/persistence.md); QEMU clears it. */
#define AUTOCLEAR_INTENT (UINT64_C (1) << 56)
#define AUTOCLEAR_MASK (UINT64_C (0x3) | AUTOCLEAR_INTENT)

#define EXT_END 0x00000000
#define EXT_BACKING_FORMAT 0xe2792aca
#define EXT_FEATURE_TABLE 0x6803f857
#define EXT_BITMAPS 0x23852875
#define EXT_CRYPTO 0x0537be77
#define EXT_DATA_FILE 0x44415441
#define EXT_INTENT 0x4e424349           /* "NBCI": nbdcbt's intent record */

#define OFLAG_COPIED (UINT64_C (1) << 63)
#define OFLAG_COMPRESSED (UINT64_C (1) << 62)
#define OFLAG_ZERO 1ULL
#define L1E_OFFSET_MASK UINT64_C (0x00fffffffffffe00)
#define L1E_RESERVED_MASK UINT64_C (0x7f000000000001ff)
#define L2E_OFFSET_MASK UINT64_C (0x00fffffffffffe00)
#define L2E_STD_RESERVED_MASK UINT64_C (0x3f000000000001fe)
#define REFT_OFFSET_MASK UINT64_C (0xfffffffffffffe00)
#define REFT_RESERVED_MASK UINT64_C (0x1ff)

#define MAX_HOST_OFFSET (UINT64_C (1) << 56)
#define MAX_L1_BYTES (32 * 1024 * 1024)
#define MAX_REFTABLE_BYTES (8 * 1024 * 1024)
#define MAX_BACKING_FILE_SIZE 1023
/* The bitmaps extension: at most BITMAP_COUNT_MAX entries of at most
 * 1 KiB each (QEMU's QCOW2_MAX_BITMAP_DIRECTORY_SIZE).
 */
#define QCOW2_MAX_BITMAP_DIRECTORY_SIZE (1024 * BITMAP_COUNT_MAX)
#define MAX_BACKING_DEPTH 64
#define MIN_CLUSTER_BITS 9
#define MAX_CLUSTER_BITS 21

/* A fixed-size write-back cache of one-cluster metadata tables (L2 tables
 * or refcount blocks), looked up by host offset.
 */
struct mcache_entry {
  uint64_t offset;              /* 0 = empty slot */
  uint8_t *data;
  bool dirty;
  uint64_t last_used;
};
struct mcache {
  size_t n;
  struct mcache_entry *e;
  uint64_t tick;
  bool is_l2;
};

struct name_index;

/* A run of guest clusters [START, END) (bytes) whose allocating write is
 * in flight: its host clusters are counted and its data is being written
 * with the metadata lock released; the L2 entries still show the old
 * descriptors.  Other writers, zeroes and discards of these clusters
 * wait until it ends (see write.c).
 */
struct alloc_inflight {
  uint64_t start, end;
  struct alloc_inflight *next;
};

struct qcow2_ext {
  uint32_t magic;
  uint32_t len;
  uint8_t *data;
  uint64_t offset;              /* of DATA in cluster 0, as last read/written */
};

enum { QCOW2_INTENT_NONE, QCOW2_INTENT_UNTRACKED, QCOW2_INTENT_TRACKED };

struct qcow2_bm {
  uint64_t table_offset;
  uint32_t table_size;
  uint32_t flags;
  uint8_t type;
  uint8_t granularity_bits;
  char *name;
  bool bad_table_size;          /* left for check (QCOW2_OPEN_CHECK) */
};

/* One descriptor of a guest cluster, as the L2 table says. */
enum cluster_type {
  CT_UNALLOCATED,               /* read from backing (or zero) */
  CT_ZERO_PLAIN,                /* zero flag, no host cluster */
  CT_ZERO_ALLOC,                /* zero flag, host cluster kept */
  CT_NORMAL,
  CT_COMPRESSED,
};

struct qcow2 {
  char *filename;
  char *dirname;                /* for relative backing names */
  int fd;
  int open_flags;
  bool readonly;
  bool is_raw;                  /* a raw backing file: fd + size only */
  uint64_t file_size;           /* of a raw file */

  pthread_mutex_t lock;         /* metadata */
  /* Data I/O to clusters found outside the metadata lock holds this for
   * reading; freeing clusters for reuse holds it for writing.
   */
  pthread_rwlock_t io_lock;

  /* Header. */
  uint32_t version;
  uint64_t backing_file_offset;
  uint32_t backing_file_size;
  uint32_t cluster_bits;
  uint64_t cluster_size;
  uint64_t size;
  uint32_t crypt_method;
  uint32_t l1_size;
  uint64_t l1_table_offset;
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  uint64_t incompat, compat, autoclear;
  uint32_t refcount_order;
  uint32_t header_length;
  uint8_t compression_type;
  uint8_t *unknown_fields;      /* bytes 112..header_length */
  size_t unknown_fields_len;
  struct qcow2_ext *exts;       /* preserved (unknown + feature table) */
  size_t nr_exts;
  char *backing_file;
  char *backing_format;
  bool has_bitmaps_ext;
  uint32_t nb_bitmaps;
  uint64_t bitmap_directory_size;
  uint64_t bitmap_directory_offset;
  bool dirty_at_open, corrupt_at_open;

  /* Derived. */
  bool extended_l2;
  unsigned l2_entry_size;       /* 8 or 16 */
  uint64_t l2_entries;
  uint64_t subcluster_size;
  unsigned refcount_bits;
  uint64_t rb_entries;
  uint64_t csize_shift, csize_mask;

  uint64_t *l1;                 /* host order */
  bool l1_dirty;
  uint64_t *reftable;           /* host order */
  uint64_t reftable_entries;

  struct mcache l2_cache;
  struct mcache rb_cache;
  uint64_t *pending_free;       /* host offsets freed after L2 write-back */
  size_t nr_pending_free, cap_pending_free;
  uint64_t free_hint;           /* no free cluster below this index */
  uint64_t host_end;            /* bytes: end of file or of allocations */
  /* Bytes: every free cluster at or after this offset reads as zero
   * (never written since the file ended before it); each allocation
   * moves it to host_end.
   */
  uint64_t zero_from;
  struct alloc_inflight *inflight; /* under LOCK */
  pthread_cond_t inflight_done; /* broadcast (with LOCK) when one ends */
  unsigned nr_inflight, max_inflight; /* statistics, under LOCK */
  /* Tests only: microseconds an allocating write sleeps with the lock
   * released (NBDCBT_QCOW2_TEST_ALLOC_DELAY_US), to widen races.
   */
  unsigned test_alloc_delay_us;
  /* Tests only: the Nth new L2 table (counted from the open) fails with
   * EIO (NBDCBT_QCOW2_TEST_FAIL_NEW_L2=N), to reach the error paths of
   * a write that points a run of clusters at new L2 tables.
   */
  unsigned test_fail_new_l2;
  uint64_t alloc_runs;
  bool write_error;             /* metadata state uncertain: stop writes */

  struct qcow2 *backing;

  /* Bitmaps. */
  struct qcow2_bm *bms;
  size_t nr_bms;
  uint32_t *bms_open_flags;     /* flags as on disk at open */
  bool bitmaps_ours;            /* in_use set by this handle */
  int intent_state;             /* QCOW2_INTENT_* (intent.c) */
  bool intent_at_open;          /* a valid record was found at open */
  uint64_t *intent_excl;        /* name hashes of bitmaps inconsistent at */
  size_t intent_nexcl;          /* open: never covered by our record */
  struct name_index *bms_index; /* sorted names of bms, built lazily */
};

/* intent.c */
extern void qcow2_intent_open (struct qcow2 *q);
/* HB |= the zones of the record (LOCK held). */
extern void qcow2_intent_apply_locked (struct qcow2 *q, struct hbitmap *hb);
/* Before a data write: invalidates a record nobody drives. */
extern int qcow2_intent_before_write (struct qcow2 *q);

/* error.c */
extern int qcow2_error (int errnum, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));
extern void *qcow2_error_null (int errnum, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));

/* header.c */
extern int qcow2_parse_header (struct qcow2 *q, const uint8_t *buf,
                               size_t len, uint64_t file_size);
extern int qcow2_write_header (struct qcow2 *q);
extern void qcow2_free_header (struct qcow2 *q);

/* io.c: pread/pwrite of the image file with error messages. */
extern int qcow2_file_pread (struct qcow2 *q, void *buf, size_t count,
                             uint64_t offset);
extern int qcow2_file_pwrite (struct qcow2 *q, const void *buf, size_t count,
                              uint64_t offset);
extern int qcow2_file_pwrite_durable (struct qcow2 *q, const void *buf,
                                      size_t count, uint64_t offset);
extern int qcow2_file_sync (struct qcow2 *q);
extern uint64_t qcow2_file_end (struct qcow2 *q);

/* cache.c */
extern int mcache_init (struct mcache *c, size_t n, bool is_l2);
extern void mcache_free (struct mcache *c);
extern uint8_t *mcache_get (struct qcow2 *q, struct mcache *c,
                            uint64_t offset, bool read_it);
extern void mcache_mark_dirty (struct mcache *c, const uint8_t *data);
extern void mcache_drop (struct mcache *c, uint64_t offset);
extern int qcow2_writeback (struct qcow2 *q);
extern int qcow2_flush_locked (struct qcow2 *q);

/* refcount.c */
extern int qcow2_load_reftable (struct qcow2 *q);
extern int qcow2_get_refcount (struct qcow2 *q, uint64_t cluster_index,
                               uint64_t *ref);
extern int qcow2_update_refcount (struct qcow2 *q, uint64_t offset,
                                  uint64_t nb_clusters, int64_t delta);
extern int64_t qcow2_alloc_clusters (struct qcow2 *q, uint64_t nb_clusters);
/* The same; *FRESH says whether the clusters were never written (past
 * zero_from), so they read as zero without writing them.
 */
extern int64_t qcow2_alloc_fresh_clusters (struct qcow2 *q,
                                           uint64_t nb_clusters, bool *fresh);
extern int qcow2_free_later (struct qcow2 *q, uint64_t offset,
                             uint64_t nb_clusters);
extern int qcow2_free_any (struct qcow2 *q, uint64_t entry);
extern int qcow2_apply_pending_frees (struct qcow2 *q);
extern uint64_t rb_get (const uint8_t *block, unsigned bits, uint64_t i);
extern void rb_set (uint8_t *block, unsigned bits, uint64_t i, uint64_t v);

/* cluster.c */
extern int qcow2_load_l1 (struct qcow2 *q);
extern int qcow2_get_l2_entry (struct qcow2 *q, uint64_t guest_offset,
                               uint64_t *entry, uint64_t *bitmap);
extern int qcow2_set_l2_entry (struct qcow2 *q, uint64_t guest_offset,
                               uint64_t entry, uint64_t bitmap);
/* NB clusters from GUEST_OFFSET (cluster aligned) point to NB contiguous
 * host clusters from HOST with ENTRY_FLAGS and BITMAP; one table lookup
 * and one dirty mark per L2 table.  *DONE gets how many of them point to
 * their new cluster, also when it fails partway (an L2 table that cannot
 * be read or allocated).
 */
extern int qcow2_set_l2_run (struct qcow2 *q, uint64_t guest_offset,
                             uint64_t nb, uint64_t host, uint64_t entry_flags,
                             uint64_t bitmap, uint64_t *done);
extern int qcow2_check_l2_entry (struct qcow2 *q, uint64_t entry,
                                 uint64_t bitmap, uint64_t guest_offset);
extern enum cluster_type qcow2_cluster_type (struct qcow2 *q, uint64_t entry);
extern int qcow2_host_range_ok (struct qcow2 *q, uint64_t offset,
                                uint64_t len, const char *what);

/* read.c */
extern int qcow2_read_compressed (struct qcow2 *q, uint64_t entry,
                                  uint8_t *out);
extern int qcow2_read_cluster_part (struct qcow2 *q, uint64_t entry,
                                    uint64_t bitmap, uint64_t guest_offset,
                                    uint8_t *buf, uint64_t count);
extern int qcow2_read_backing (struct qcow2 *q, void *buf, uint64_t count,
                               uint64_t offset);

/* lock.c: QEMU's image locks on Q->fd. */
extern int qcow2_lock_file (struct qcow2 *q, bool writable, bool force_share);

/* bitmaps.c */
extern int qcow2_bitmaps_load_directory (struct qcow2 *q);
extern void qcow2_bitmaps_free (struct qcow2 *q);
extern int qcow2_bitmaps_account (struct qcow2 *q,
                                  int (*fn) (void *opaque, uint64_t offset,
                                             uint64_t len, const char *what),
                                  int (*bad_table) (void *opaque,
                                                    const char *name,
                                                    uint32_t size,
                                                    uint64_t expected),
                                  void *opaque);

#endif /* NBDCBT_QCOW2_INTERNAL_H */
