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

/* nbdcbt-backup: shared declarations between the parts of the program. */
#ifndef NBDCBT_BACKUP_H
#define NBDCBT_BACKUP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <sys/types.h>

#include <libnbd.h>

#include "vector.h"

#define PROG "nbdcbt-backup"

/* --- Options (main.c) ------------------------------------------------- */

struct options {
  const char *output;         /* -o */
  const char *bitmap;         /* --bitmap */
  const char *out_format;     /* -O for restore: "raw" or "qcow2" */
  int64_t until;              /* --until, -1 = last */
  bool progress;              /* -p */
  bool quiet;                 /* -q */
  int connections;            /* --connections, 0 = default */
  int requests;               /* --requests (in flight per connection) */
  uint32_t request_size;      /* --request-size */
  const char *disk_id;        /* --disk-id, or NULL */
  int tls;                    /* --tls as LIBNBD_TLS_*, -1 = the URI's */
  const char *tls_certificates; /* --tls-certificates DIR */
  const char *tls_psk_file;   /* --tls-psk FILE */
  const char *tls_username;   /* --tls-username USER */
  const char *control;        /* --control SOCKET, or NULL */
  const char **nodes;         /* --node (repeatable) */
  size_t nnodes;
};
extern struct options opts;

/* In a run over many disks, the disk a child process backs up: its
 * messages are prefixed with it.  NULL otherwise.
 */
extern const char *message_prefix;
/* Print "nbdcbt-backup: MSG" to stderr. */
extern void error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
/* Like error, with ": strerror(errno)" appended. */
extern void error_errno (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
/* An informational message, suppressed by -q. */
extern void info (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

/* --- Extents (extents.c) ---------------------------------------------- */

enum extent_kind {
  EXTENT_DATA,    /* copy from the source */
  EXTENT_ZERO,    /* record as zero (dirty zero or hole) */
  EXTENT_CLEAN,   /* unchanged since the last backup: skip */
};
struct extent {
  uint64_t offset;
  uint64_t length;
  enum extent_kind kind;
};
DEFINE_VECTOR_TYPE (extent_list, struct extent);

/* Build the work list of the export on H.  With BITMAP_CONTEXT (the
 * full "qemu:dirty-bitmap:NAME" string) the dirty extents are crossed
 * with base:allocation; without it everything is "dirty" (a full
 * backup).  Adjacent extents of the same kind are merged.  Returns 0, or
 * -1 after printing an error.
 */
extern int get_extents (struct nbd_handle *h, uint64_t size,
                        const char *bitmap_context, extent_list *out);

/* Pure crossing step, exposed for clarity: the kind of a range given
 * its dirty bit and its base:allocation flags.
 */
extern enum extent_kind classify (bool dirty, uint32_t alloc_flags);

/* --- Sinks: where the copy engine writes (sink-*.c) ------------------- */

struct sink;
struct sink_ops {
  const char *name;
  int (*pwrite) (struct sink *s, const void *buf, uint64_t count,
                 uint64_t offset);
  int (*zero) (struct sink *s, uint64_t count, uint64_t offset);
  int (*flush) (struct sink *s);
  /* Frees the sink even on error. */
  int (*close) (struct sink *s);
};
struct sink {
  const struct sink_ops *ops;
  /* True if a fresh sink already reads as zero everywhere, so that zero
   * extents of a full copy can be skipped.
   */
  bool reads_zero;
};

/* Each of these prints its own error and returns NULL on failure. */
struct qcow2;
extern struct sink *sink_qcow2_wrap (struct qcow2 *q);
extern struct sink *sink_raw_create (const char *path, uint64_t size);
extern struct sink *sink_nbd_open (const char *uri, uint64_t size);
/* A qcow2 file of virtual SIZE (backed by BACKING_FILE, a qcow2 object
 * of the same store, or NULL) streamed into the upload U, whose head
 * must be 64 KiB (sink-qcow2-stream.c).  The close writes the tables
 * and the head and puts the file's size in *FILE_SIZE; the caller then
 * commits or aborts U.
 */
struct store_upload;
extern struct sink *sink_qcow2_stream (struct store_upload *u, uint64_t size,
                                       const char *backing_file,
                                       uint64_t *file_size);
#define STREAM_HEAD_SIZE (64 * 1024)

/* --- Copy engine (copy.c) --------------------------------------------- */

/* What a backup stored, one record per write into the target: the
 * checksum list that verify and restore check the file's contents with.
 */
enum sum_kind {
  SUM_NONE,                   /* not written (yet): not in a list */
  SUM_DATA,
  SUM_ZERO,
};
#define SUM_SIZE 32             /* the largest digest */
struct sum_record {
  uint64_t offset;
  uint64_t length;
  enum sum_kind kind;
  unsigned char digest[SUM_SIZE]; /* of the guest data, for SUM_DATA */
};
DEFINE_VECTOR_TYPE (sum_list, struct sum_record);

/* How the data is summed (checksum.c). */
enum sum_algorithm {
  SUM_SHA256,                 /* SHA-256 of the data */
  SUM_UMAC128,                /* UMAC-128 (RFC 4418) under KEY, nonce the
                               * data's offset */
  SUM_CRC32C4,                /* CRC-32C of each quarter of the data */
};
#define SUM_KEY_SIZE 16
struct sum_params {
  enum sum_algorithm algorithm;
  unsigned char key[SUM_KEY_SIZE];
  /* The disk's size, which a list of version 2 records beside the
   * manifest's "virtual-size" (a version 1 list: has_disk_size false).
   */
  bool has_disk_size;
  uint64_t disk_size;
};

struct copy_stats {
  uint64_t data_bytes;        /* written as data */
  uint64_t zero_bytes;        /* recorded as zero */
  /* If not NULL, an empty list that gets a record per write, sorted by
   * offset.  Data blocks that read as zero and are skipped (a fresh full
   * image) get no record.
   */
  sum_list *sums;
  const struct sum_params *sum_params;
};

/* Copy the DATA extents of LIST from URI (several connections if the
 * server allows it, FIRST is the already connected handle which the
 * engine may use and does not close) into SINK, and record the ZERO
 * extents as zero.  If SKIP_ZERO_DATA, data blocks read as all zero are
 * not written (a fresh full image); otherwise they are recorded as zero.
 * With ALIGN (a power of two, the target's cluster size, or 0), DATA
 * extents are widened to whole ALIGN blocks so that the target never
 * merges a partial block with older contents.
 */
extern int copy_extents (const char *uri, struct nbd_handle *first,
                         const extent_list *list, struct sink *sink,
                         bool skip_zero_data, uint32_t align,
                         struct copy_stats *stats);

/* --- Early writeback (writeback.c) ------------------------------------ */

/* A helper thread that keeps starting writeback of PATH's dirty pages
 * while the copy runs, so that the final fsync has little left to do.
 * Never fails the backup: without it only the fsync takes longer.
 */
struct writeback;
extern struct writeback *writeback_start (const char *path);
extern void writeback_stop (struct writeback *wb);

/* --- Progress (progress.c) -------------------------------------------- */

extern void progress_start (const char *what, uint64_t total);
extern void progress_update (uint64_t done);
extern void progress_end (void);

/* --- Manifest (manifest.c) -------------------------------------------- */

struct backup_entry {
  int64_t index;
  char *file;                 /* relative to the directory */
  char *backing;              /* previous file, or NULL for the full one */
  bool full;
  char *started;              /* ISO 8601 UTC */
  char *finished;
  uint64_t data_bytes;
  uint64_t zero_bytes;
  uint64_t file_size;
  /* Either the SHA-256 (hex) of the whole file (older chains), or the
   * name of the checksum list of its contents (relative to the
   * directory) and the SHA-256 of that list.
   */
  char *sha256;
  char *sums_file;
  char *sums_sha256;
};
DEFINE_VECTOR_TYPE (backup_list, struct backup_entry);

/* The chain's identity: what an incremental must match.  The virtual
 * size is the export's true size in bytes; the qcow2 files are that
 * rounded up to a multiple of 512 (QCOW2_SIZE), which QEMU needs.
 */
struct manifest {
  char *chain_id;             /* random UUID */
  uint64_t virtual_size;
  char *export_name;
  char *export_description;   /* NBD_INFO_DESCRIPTION, or NULL if none */
  bool description_known;     /* false for manifests older than the field */
  char *disk_id;              /* --disk-id of the full backup, or NULL */
  char *bitmap;               /* or NULL */
  backup_list backups;
  /* An interrupted prune (prune.c): the full backup of the points up to
   * MERGE->index, written and durable but not yet in BACKUPS.  The
   * backup after that index may name MERGE->file as its backing file
   * instead of the previous entry's.  NULL when no prune is pending.
   */
  struct backup_entry *merge;
};

/* QEMU reads a qcow2 image's size rounded down to 512 bytes, so the
 * files are made a little larger than an odd-sized disk; the tail reads
 * as zero.
 */
#define QCOW2_SIZE(size) (((size) + 511) & ~UINT64_C (511))

#define MANIFEST_NAME "manifest.json"

struct store;                   /* store.h */

/* Reads the chain's manifest.json.  Returns 1 if it does not exist, 0
 * when loaded, -1 after printing an error (damaged).
 */
extern int manifest_load (struct store *st, struct manifest *m);
/* Replaces it atomically and durably (store_put). */
extern int manifest_save (struct store *st, const struct manifest *m);
/* The same under another name (an archived chain's manifest). */
extern int manifest_save_as (struct store *st, const char *name,
                             const struct manifest *m);
extern void manifest_free (struct manifest *m);
extern void backup_entry_free (struct backup_entry *b);
/* The position in M's list of the backup of index INDEX, or -1. */
extern ssize_t manifest_find (const struct manifest *m, int64_t index);
extern char *new_uuid (void);
extern char *now_iso8601 (void);

/* --- Checksums (checksum.c) ------------------------------------------- */

/* SHA-256 of the whole file at FD as lowercase hex into HEX[65]. */
extern int sha256_fd (int fd, char hex[65]);
/* SHA-256 of what READ_PIECE returns from offset 0 on, up to its first 0
 * (the end), as hex into HEX[65].  READ_PIECE returns the bytes it put
 * in BUF (at most LEN), or -1 after printing an error.
 */
typedef ssize_t sha256_read_fn (void *opaque, char *buf, size_t len,
                                uint64_t offset);
extern int sha256_pieces (sha256_read_fn *read_piece, void *opaque,
                          char hex[65]);
/* SHA-256 of BUF into DIGEST. */
extern void sum_data (const void *buf, size_t len,
                      unsigned char digest[SUM_SIZE]);
/* Lowercase hex of the first LEN bytes of DIGEST (LEN <= 32). */
extern void hex_bytes (const unsigned char *digest, size_t len, char *hex);
#define hex_digest(digest, hex) hex_bytes ((digest), SUM_SIZE, (hex))

/* The algorithm for a new backup: CRC-32C by quarters where the CPU
 * computes CRC-32C (SSE 4.2), else UMAC-128 with a random key where
 * gnutls offers it (not in FIPS mode), else SHA-256.
 */
extern int sum_params_new (struct sum_params *p, uint64_t disk_size);
extern const char *sum_algorithm_name (enum sum_algorithm a);
extern size_t sum_size (enum sum_algorithm a);
/* One per thread. */
struct summer;
extern struct summer *summer_new (const struct sum_params *p);
extern void summer_sum (struct summer *s, uint64_t offset, const void *buf,
                        size_t len, unsigned char digest[SUM_SIZE]);
extern void summer_free (struct summer *s);
extern bool is_zero (const void *buf, size_t len);

/* --- Checksum lists (sums.c) ------------------------------------------ */

/* Write LIST to PATH (the caller fsyncs it) and the SHA-256 of the
 * file into HEX.
 */
/* The same text in memory (*TEXT malloc'd). */
extern int sums_format (const struct sum_params *p, const sum_list *list,
                        char **text, size_t *size, char hex[65]);
extern int sums_save (const char *path, const struct sum_params *p,
                      const sum_list *list, char hex[65]);
/* Check the backup file of B in the chain ST against its manifest entry: for a
 * checksum list, read every record's range through the qcow2 library
 * and compare (DISK_SIZE is the chain's virtual size: the file's
 * padding beyond it must read as zero); for an older entry, the SHA-256
 * of the whole file.  Prints each problem prefixed with WHAT and returns
 * how many.
 */
extern int check_contents (const char *what, struct store *st,
                           const struct backup_entry *b, uint64_t disk_size);

/* --- The source export (source.c) ------------------------------------ */

/* A connection to URI asking for base:allocation and, if not NULL,
 * BITMAP_CONTEXT, with the full export info.  NULL after printing an
 * error.
 */
/* --- Connections (connect.c) ------------------------------------------ */

/* "off", "on", "require" as LIBNBD_TLS_*, -1 for anything else. */
extern int parse_tls_mode (const char *arg);
/* nbd_connect_uri with the --tls* options, tls-username= in the URI and
 * local files allowed in it.  On error prints "WHAT: reason", -1.
 */
extern int connect_uri_tls (struct nbd_handle *h, const char *uri,
                            const char *what);

extern struct nbd_handle *connect_source (const char *uri,
                                          const char *bitmap_context);
/* "qemu:dirty-bitmap:BITMAP" into *CONTEXT (malloc'd), or NULL without
 * BITMAP.  -1 after printing an error.
 */
extern int bitmap_context_name (const char *bitmap, char **context);

/* --- Backup sessions on a running server (session.c) ----------------- */

/* The sessions begun through the control socket at PATH: one per node
 * (several: one grouped transaction), each ended exactly once.
 */
struct control;
struct sessions {
  struct control *c;
  size_t n;
  char **ids;
  char **exports;
  uint64_t ended_mask;
};
/* Begin a session of each of the N NODES (with BITMAP frozen, if not
 * NULL; FULL: the view keeps every granule).  NULL after printing an
 * error.
 */
extern struct sessions *control_sessions_begin (const char *path,
                                                const char *const *nodes,
                                                size_t n, const char *bitmap,
                                                bool full);
/* backup-end of session I.  -1 after printing an error. */
extern int control_session_end (struct sessions *ss, size_t i, bool success);
/* End the sessions not ended yet with SUCCESS, and close. */
extern void control_sessions_end (struct sessions *ss, bool success);
/* URI with its export name replaced (malloc'd; NULL after an error). */
extern char *uri_with_export (const char *uri, const char *export);

/* --- Is the chain a usable base (chain-check.c) ---------------------- */

/* What the server tells about the disk, compared with the chain's
 * record of it before an incremental is added.
 */
struct disk_identity {
  const char *export_name;
  const char *description;      /* NULL if the server sent none */
  uint64_t size;
};

/* Is the chain M in ST usable as the base of an incremental of the
 * export on H?  Returns 0, or -1 with the reason in *WHY (malloc'd).  On
 * success the dirty work list is in *LIST.
 */
extern int check_chain (struct store *st, const struct manifest *m,
                        struct nbd_handle *h, const struct disk_identity *id,
                        const char *bitmap_context, extent_list *list,
                        char **why);

/* The backing file backup I of M may have besides its manifest's: after
 * an interrupted prune, the prune's full backup (NULL otherwise).
 */
extern const char *backing_after_merge (const struct manifest *m, size_t i);
/* A layer backed by FILE in FORMAT is backed as the manifest says: by
 * nothing when EXPECT is NULL, else by the qcow2 EXPECT (or ALSO).
 */
extern bool backing_matches (const char *file, const char *format,
                             const char *expect, const char *also);
/* Do backups 0..UPTO of M name, in their qcow2 headers, the backing
 * files the manifest says (a layer reads through those names, not the
 * manifest's)?  Returns 0, or -1 with the reason in *WHY (malloc'd).
 */
extern int check_backing_names (struct store *st, const struct manifest *m,
                                size_t upto, char **why);

/* --- Operations ------------------------------------------------------- */

enum backup_mode { MODE_FULL, MODE_INC, MODE_AUTO };
extern int do_backup (enum backup_mode mode, const char *uri);   /* chain.c */
/* What the last backup of this process published (chain.c), for the
 * summary of a run over many disks.
 */
struct backup_outcome {
  bool published;
  bool full;
  int64_t index;
  uint64_t data_bytes;
};
extern struct backup_outcome backup_outcome;

/* Many disks in one run (many.c): each of the N disks ("[NAME=]URI")
 * into its own chain OUTPUT/NAME, at most JOBS at once, with a summary.
 * CONTROLS and NODES are "NAME=SOCKET" and "NAME=NODE" options.
 */
extern int do_many_backups (enum backup_mode mode, char *const *disks,
                            size_t n, const char *const *controls,
                            size_t ncontrols, int jobs);
extern int do_verify (const char *dir);                          /* verify.c */
extern int do_restore (const char *dir);                         /* restore.c */
/* restore -O qcow2 into a directory: a new chain there holding point N
 * of the chain SRC as its full backup, read through Q (restore-chain.c).
 */
struct layer;
extern bool restore_target_is_dir (const char *target);
extern int restore_into_chain (const struct manifest *src, int64_t n,
                               struct layer *q, const char *dir);
extern int do_list (const char *dir);                            /* list.c */
extern int do_copy_raw (const char *uri);                      /* copy-raw.c */
extern int do_print_extents (const char *uri);            /* print-extents.c */

/* Helpers of chain.c: DIR/NAME, malloc'd (NULL after an error). */
extern char *dir_file (const char *dir, const char *name);
/* fsync PATH and get its size (if SIZE is not NULL). */
extern int seal_file (const char *path, uint64_t *size);

/* Change the backing file name in the header of the qcow2 layer NAME
 * of the chain ST from OLD_NAME to NEW_NAME, replacing the layer
 * atomically and durably (rebase.c).  Succeeds if it already names
 * NEW_NAME.
 */
extern int layer_set_backing (struct store *st, const char *name,
                              const char *old_name, const char *new_name);

/* --- Retention (prune.c) ---------------------------------------------- */

/* Merge the oldest backups of the chain at LOCATION into a new full backup so
 * that at most KEEP points remain.
 */
extern int do_prune (const char *location, int64_t keep);
/* The check of one backup of a chain, as verify does it (verify.c):
 * EXPECT_BACKING is the backing file its header must name (NULL for a
 * full backup), ALSO_BACKING another name accepted (or NULL).  Returns
 * the number of problems, printed.
 */
extern int verify_backup (struct store *st, const struct manifest *m,
                          const struct backup_entry *b,
                          const char *expect_backing,
                          const char *also_backing);
/* verify_backup of every backup of M, and of a pending prune's full
 * backup.  Returns the number of problems.
 */
extern int verify_chain (struct store *st, const struct manifest *m);

#endif /* NBDCBT_BACKUP_H */
