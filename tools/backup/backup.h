/* nbdcbt-backup: shared declarations between the parts of the program. */
#ifndef NBDCBT_BACKUP_H
#define NBDCBT_BACKUP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

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
};
extern struct options opts;

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

/* --- Copy engine (copy.c) --------------------------------------------- */

struct copy_stats {
  uint64_t data_bytes;        /* written as data */
  uint64_t zero_bytes;        /* recorded as zero */
};

/* Copy the DATA extents of LIST from URI (several connections if the
 * server allows it, FIRST is the already connected handle which the
 * engine may use and does not close) into SINK, and record the ZERO
 * extents as zero.  If SKIP_ZERO_DATA, data blocks read as all zero are
 * not written (a fresh full image); otherwise they are recorded as zero.
 */
extern int copy_extents (const char *uri, struct nbd_handle *first,
                         const extent_list *list, struct sink *sink,
                         bool skip_zero_data, struct copy_stats *stats);

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
  char *sha256;               /* hex of the whole file */
};
DEFINE_VECTOR_TYPE (backup_list, struct backup_entry);

struct manifest {
  char *chain_id;             /* random UUID */
  uint64_t virtual_size;
  char *export_name;
  char *bitmap;               /* or NULL */
  backup_list backups;
};

#define MANIFEST_NAME "manifest.json"

/* Reads DIR/manifest.json.  Returns 1 if it does not exist, 0 when
 * loaded, -1 after printing an error (damaged).
 */
extern int manifest_load (const char *dir, struct manifest *m);
/* Writes atomically (temporary file, fsync, rename, fsync of DIR). */
extern int manifest_save (const char *dir, const struct manifest *m);
extern void manifest_free (struct manifest *m);
extern char *new_uuid (void);
extern char *now_iso8601 (void);

/* --- Checksums (checksum.c) ------------------------------------------- */

/* SHA-256 of the whole file at FD as lowercase hex into HEX[65]. */
extern int sha256_fd (int fd, char hex[65]);

/* --- Operations ------------------------------------------------------- */

enum backup_mode { MODE_FULL, MODE_INC, MODE_AUTO };
extern int do_backup (enum backup_mode mode, const char *uri);   /* chain.c */
extern int do_verify (const char *dir);                          /* verify.c */
extern int do_restore (const char *dir);                         /* restore.c */
extern int do_list (const char *dir);                            /* chain.c */
extern int do_copy_raw (const char *uri);                        /* chain.c */
extern int do_print_extents (const char *uri);                   /* chain.c */

/* Helper of chain.c: DIR/NAME, malloc'd (NULL after an error). */
extern char *dir_file (const char *dir, const char *name);

#endif /* NBDCBT_BACKUP_H */
