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

/* nbdcbt-backup full, inc, auto: taking a backup into a chain directory.
 *
 * A new backup is written as DIR/.backup-NNNN.qcow2.part, flushed and
 * fsync'd, its checksum list as DIR/.backup-NNNN.sums.part (fsync'd),
 * both renamed to DIR/backup-NNNN.{qcow2,sums}, and only then is the
 * manifest replaced (atomically, the directory fsync'd).  An
 * interrupted backup therefore leaves the chain as it was; the next run
 * removes the leftover parts.
 * A full backup into a directory that holds a chain moves the old chain
 * into DIR/chain-UUID/ (never deletes it).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "cleanup.h"
#include "qcow2.h"
#include "store.h"

char *
dir_file (const char *dir, const char *name)
{
  char *s;

  if (asprintf (&s, "%s/%s", dir, name) == -1) {
    error_errno ("asprintf");
    return NULL;
  }
  return s;
}

/* The part files being written, removed if we are interrupted. */
static char *volatile part_path;
static char *volatile sums_part_path;

/* Set once the manifest names the new backup: a signal held back
 * during the publishing (see do_backup) then arrives too late to undo it.
 */
static volatile sig_atomic_t published;

static void
interrupted (int sig)
{
  static const char msg[] =
    "\n" PROG ": interrupted; the chain is unchanged\n";
  static const char late_msg[] =
    "\n" PROG ": interrupted after the backup was complete\n";
  char *p = part_path, *s = sums_part_path;
  const char *text = published ? late_msg : msg;
  size_t len = published ? sizeof late_msg - 1 : sizeof msg - 1;

  if (p)
    unlink (p);
  if (s)
    unlink (s);
  if (write (STDERR_FILENO, text, len) == -1) {
    /* nothing to do */
  }
  _exit (EXIT_FAILURE);
}

static sigset_t publish_signals;

/* For an object store the signals go to a thread of their own, since
 * aborting the uploads takes HTTP requests, which a handler cannot
 * make.  Every other thread keeps them blocked.
 */
static bool signals_by_thread;

static void *
signal_thread (void *opaque)
{
  static const char msg[] =
    "\n" PROG ": interrupted; aborting the upload, the chain is unchanged\n";
  static const char late_msg[] =
    "\n" PROG ": interrupted after the backup was complete\n";
  int sig;

  if (sigwait (&publish_signals, &sig) != 0)
    return NULL;
  if (published) {
    if (write (STDERR_FILENO, late_msg, sizeof late_msg - 1) == -1) {
      /* nothing to do */
    }
  }
  else {
    if (write (STDERR_FILENO, msg, sizeof msg - 1) == -1) {
      /* nothing to do */
    }
    store_abort_all_uploads ();
  }
  _exit (EXIT_FAILURE);
}

static void
catch_signals_by_thread (void)
{
  pthread_t t;

  sigemptyset (&publish_signals);
  sigaddset (&publish_signals, SIGINT);
  sigaddset (&publish_signals, SIGTERM);
  sigaddset (&publish_signals, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &publish_signals, NULL);
  signal (SIGPIPE, SIG_IGN);
  if (pthread_create (&t, NULL, signal_thread, NULL) == 0)
    pthread_detach (t);
  signals_by_thread = true;
}

static void
catch_signals (void)
{
  struct sigaction sa = { .sa_handler = interrupted };

  sigemptyset (&publish_signals);
  sigaddset (&publish_signals, SIGINT);
  sigaddset (&publish_signals, SIGTERM);
  sigaddset (&publish_signals, SIGHUP);
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);
}

/* Move the chain of M out of the way into DIR/chain-UUID/: the backup
 * files first, the manifest last, so that an interruption leaves either
 * a chain with missing files (which nothing trusts) or none.
 */
static int
archive_chain (const char *dir, const struct manifest *m)
{
  CLEANUP_FREE char *sub = NULL, *sub_path = NULL;
  CLEANUP_FREE char *man = dir_file (dir, MANIFEST_NAME);
  CLEANUP_FREE char *man_to = NULL;
  size_t i;

  if (man == NULL || asprintf (&sub, "chain-%s", m->chain_id) == -1 ||
      (sub_path = dir_file (dir, sub)) == NULL ||
      (man_to = dir_file (sub_path, MANIFEST_NAME)) == NULL) {
    error_errno ("malloc");
    return -1;
  }
  if (mkdir (sub_path, 0755) == -1 && errno != EEXIST) {
    error_errno ("mkdir %s", sub_path);
    return -1;
  }
  /* The entries, and the full backup of a pending prune (which the
   * backup after it may already name as its backing file).
   */
  for (i = 0; i < 2 * (m->backups.len + (m->merge != NULL)); ++i) {
    const struct backup_entry *b = i / 2 < m->backups.len
      ? &m->backups.ptr[i / 2] : m->merge;
    const char *name = i % 2 ? b->sums_file : b->file;
    CLEANUP_FREE char *from = NULL, *to = NULL;

    if (name == NULL)
      continue;
    from = dir_file (dir, name);
    to = dir_file (sub_path, name);
    if (!from || !to)
      return -1;
    if (rename (from, to) == -1 && errno != ENOENT) {
      error_errno ("rename %s to %s", from, to);
      return -1;
    }
  }
  if (rename (man, man_to) == -1) {
    error_errno ("rename %s to %s", man, man_to);
    return -1;
  }
  info ("the previous chain %s was moved to %s", m->chain_id, sub_path);
  return 0;
}

struct backup_outcome backup_outcome;

/* With NBDCBT_BACKUP_DEBUG=1 in the environment, time each phase. */
static void
debug_time (const char *phase)
{
  static struct timespec last;
  struct timespec now;

  if (!getenv ("NBDCBT_BACKUP_DEBUG"))
    return;
  clock_gettime (CLOCK_MONOTONIC, &now);
  if (last.tv_sec)
    fprintf (stderr, PROG ": debug: %s: %.3f s\n", phase,
             (now.tv_sec - last.tv_sec) + (now.tv_nsec - last.tv_nsec) / 1e9);
  last = now;
}

/* fsync PATH and get its size (if SIZE is not NULL).  For the qcow2
 * file the library synced it on close and this finds nothing to do, but
 * the backup's durability does not depend on how the library closes.
 */
int
seal_file (const char *path, uint64_t *size)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1) {
    error_errno ("%s", path);
    return -1;
  }
  if (fsync (fd) == -1 || fstat (fd, &st) == -1) {
    error_errno ("%s: fsync", path);
    close (fd);
    return -1;
  }
  close (fd);
  if (size)
    *size = st.st_size;
  return 0;
}

/* One backup into the chain directory, in four phases around this
 * struct: backup_prepare (the directory, the source, full or
 * incremental, the work list, the new files' names), backup_copy (the
 * new layer and its checksum list under temporary names), backup_seal
 * (both durable) and backup_publish (the old chain aside for a full
 * backup, the files renamed, the manifest replaced).  Nothing in the
 * chain changes before backup_publish.
 */
struct backup_job {
  enum backup_mode mode;
  const char *uri;              /* the export */
  const char *dir;              /* the chain directory (-o) */
  /* The disk's name in the chain's identity: the node (--node) when
   * known, else the export's name.  A session's view is another export
   * of the same disk, so its own name must not enter the identity.
   */
  const char *disk_name;

  /* The chain in DIR (backup_open_dir). */
  struct store *st;
  struct manifest chain;
  bool have_chain;

  /* The source (backup_connect). */
  char *bitmap_context;         /* "qemu:dirty-bitmap:NAME", or NULL */
  struct nbd_handle *source;
  char *export_name;
  char *description;            /* NULL if the server sent none */
  uint64_t size;
  char *started;                /* ISO 8601, when connected */

  /* What to copy (backup_choose_base). */
  bool full;
  extent_list work;

  /* The new layer and its checksum list: names in DIR, and the paths
   * they are written under and published as (backup_name_files).
   * STREAMED: the layer is streamed into a store upload (an object
   * store, or a directory with NBDCBT_BACKUP_STREAMED=1) instead of
   * written in place through the qcow2 library; the checksum list then
   * waits in SUMS_TEXT until the publishing.
   */
  bool streamed;
  struct store_upload *upload;
  char *sums_text;
  size_t sums_len;
  char *new_chain_id;           /* a full backup's, made at naming */
  int64_t index;
  char *file, *part, *final;
  char *sums_file, *sums_part, *sums_final;

  /* What the copy wrote (backup_copy, backup_seal). */
  struct sum_params sum_params;
  sum_list sums;
  struct copy_stats stats;
  char sums_sha256[65];
  uint64_t file_size;
};

/* Create and lock the directory, clear what interrupted runs left, and
 * load the chain if there is one.
 */
static int
backup_open_dir (struct backup_job *job)
{
  int r;

  job->st = store_open (job->dir, true);
  if (job->st == NULL || store_lock (job->st) == -1)
    return -1;
  job->streamed = store_dir (job->st) == NULL ||
    getenv ("NBDCBT_BACKUP_STREAMED") != NULL;
  if (store_dir (job->st))
    catch_signals ();
  else if (!signals_by_thread)
    catch_signals_by_thread ();
  if (store_cleanup (job->st) == -1)
    return -1;

  r = manifest_load (job->st, &job->chain);
  if (r == -1 && store_unreachable (job->st))
    return -1;                  /* said why */
  if (r == -1) {
    error ("%s: the chain's manifest is damaged or cannot be read; run '"
           PROG " verify' "
           "and move the directory aside before starting a new chain",
           job->dir);
    return -1;
  }
  job->have_chain = r == 0;
  if (job->mode == MODE_INC && !job->have_chain) {
    error ("%s holds no backup chain: take a full backup first "
           "(or use --auto)", job->dir);
    return -1;
  }
  return 0;
}

/* Connect to the export (with the bitmap's context if --bitmap) and
 * read what identifies the disk.
 */
static int
backup_connect (struct backup_job *job)
{
  int64_t size;

  if (bitmap_context_name (opts.bitmap, &job->bitmap_context) == -1)
    return -1;
  job->source = connect_source (job->uri, job->bitmap_context);
  if (job->source == NULL)
    return -1;
  size = nbd_get_size (job->source);
  if (size == -1) {
    error ("%s: %s", job->uri, nbd_get_error ());
    return -1;
  }
  job->size = size;
  if (job->disk_name)
    job->export_name = strdup (job->disk_name);
  else
    job->export_name = nbd_get_export_name (job->source);
  if (job->export_name == NULL) {
    error ("%s: %s", job->uri, job->disk_name ? strerror (errno)
           : nbd_get_error ());
    return -1;
  }
  /* NULL when the server sent no description (not an error). */
  job->description = nbd_get_export_description (job->source);
  job->started = now_iso8601 ();
  debug_time ("connect");
  return 0;
}

/* Full or incremental, and the work list: an incremental needs a chain
 * that passes check_chain (with --auto, a full backup is taken instead).
 */
static int
backup_choose_base (struct backup_job *job)
{
  const struct disk_identity id = {
    .export_name = job->export_name,
    .description = job->description,
    .size = job->size,
  };
  CLEANUP_FREE char *why = NULL;

  job->full = job->mode == MODE_FULL || !job->have_chain;
  if (!job->full &&
      check_chain (job->st, &job->chain, job->source, &id,
                   job->bitmap_context, &job->work, &why) == -1) {
    if (job->mode != MODE_AUTO) {
      error ("cannot take an incremental backup into %s: %s%s", job->dir,
             why ? why : "the chain is unusable",
             "\n(take a full backup, or use --auto)");
      return -1;
    }
    info ("%s; taking a full backup", why ? why : "the chain is unusable");
    job->full = true;
  }
  if (job->full && job->mode == MODE_FULL && job->bitmap_context &&
      nbd_can_meta_context (job->source, job->bitmap_context) != 1) {
    error ("the server does not offer '%s': the bitmap is missing, "
           "inconsistent, or not exported", job->bitmap_context);
    return -1;
  }
  if (job->full) {
    job->work.len = 0;
    if (get_extents (job->source, job->size, NULL, &job->work) == -1)
      return -1;
  }
  debug_time (job->full ? "extents" : "extents+chain check");
  return 0;
}

/* backup-NNNN.qcow2 and backup-NNNN.sums, written as .NAME.part. */
static int
backup_name_files (struct backup_job *job)
{
  const char *dir = job->dir;

  job->index = job->full ? 0
    : job->chain.backups.ptr[job->chain.backups.len - 1].index + 1;
  if (job->full && (job->new_chain_id = new_uuid ()) == NULL)
    return -1;
  if (store_dir (job->st) == NULL) {
    /* Objects cannot be renamed: a new chain's names differ from the
     * old one's (the chain id's first 8 digits), so that the old chain
     * stays whole until the manifest switches.
     */
    const char *id = job->full ? job->new_chain_id : job->chain.chain_id;
    if (asprintf (&job->file, "backup-%04" PRIi64 "-%.8s.qcow2", job->index,
                  id) == -1 ||
        asprintf (&job->sums_file, "backup-%04" PRIi64 "-%.8s.sums",
                  job->index, id) == -1) {
      error_errno ("asprintf");
      return -1;
    }
    job->part = store_object_path (job->st, job->file);
    job->final = store_object_path (job->st, job->file);
    job->sums_part = store_object_path (job->st, job->sums_file);
    job->sums_final = store_object_path (job->st, job->sums_file);
    if (!job->part || !job->final || !job->sums_part || !job->sums_final)
      return -1;
    return 0;
  }
  if (asprintf (&job->file, "backup-%04" PRIi64 ".qcow2", job->index) == -1 ||
      asprintf (&job->part, "%s/.%s.part", dir, job->file) == -1 ||
      asprintf (&job->final, "%s/%s", dir, job->file) == -1 ||
      asprintf (&job->sums_file, "backup-%04" PRIi64 ".sums",
                job->index) == -1 ||
      asprintf (&job->sums_part, "%s/.%s.part", dir, job->sums_file) == -1 ||
      asprintf (&job->sums_final, "%s/%s", dir, job->sums_file) == -1) {
    error_errno ("asprintf");
    return -1;
  }
  return 0;
}

static int
backup_prepare (struct backup_job *job)
{
  if (backup_open_dir (job) == -1 ||
      backup_connect (job) == -1 ||
      backup_choose_base (job) == -1 ||
      backup_name_files (job) == -1)
    return -1;
  return 0;
}

/* The backing file of the new layer: the chain's last backup, or NULL
 * for a full backup.
 */
static const char *
backup_backing_file (const struct backup_job *job)
{
  if (job->full)
    return NULL;
  return job->chain.backups.ptr[job->chain.backups.len - 1].file;
}

/* Stream the new layer into an upload (invisible until the publishing
 * commits it) and keep its checksum list in memory.
 */
static int
backup_copy_streamed (struct backup_job *job)
{
  uint64_t size = QCOW2_SIZE (job->size);
  struct sink *sink;
  int r;

  /* Requests of whole clusters (both are powers of two). */
  if (opts.request_size < STREAM_HEAD_SIZE)
    opts.request_size = STREAM_HEAD_SIZE;
  if (sum_params_new (&job->sum_params, job->size) == -1)
    return -1;
  part_path = store_dir (job->st) ? job->part : NULL;
  job->upload = store_upload_begin (job->st, job->file, STREAM_HEAD_SIZE);
  if (job->upload == NULL)
    return -1;
  /* At most the disk plus its tables. */
  store_upload_expect (job->upload, size + size / 4096 + (1 << 20));
  sink = sink_qcow2_stream (job->upload, size, backup_backing_file (job),
                            &job->file_size);
  if (sink == NULL)
    return -1;
  debug_time ("create");

  job->stats = (struct copy_stats) {
    .sums = &job->sums, .sum_params = &job->sum_params,
  };
  r = copy_extents (job->uri, job->source, &job->work, sink, job->full,
                    STREAM_HEAD_SIZE, &job->stats);
  if (r == 0)
    debug_time ("copy");
  if (sink->ops->close (sink) == -1)
    r = -1;
  if (r == 0)
    r = sums_format (&job->sum_params, &job->sums, &job->sums_text,
                     &job->sums_len, job->sums_sha256);
  if (r == 0)
    debug_time ("close");
  return r;
}

/* Write the new layer (a qcow2 file backed by the chain's last backup)
 * and its checksum list under their temporary names.
 */
static int
backup_copy (struct backup_job *job)
{
  if (job->streamed)
    return backup_copy_streamed (job);

  struct qcow2_create_opts copts = {
    .size = QCOW2_SIZE (job->size),
    .backing_file = backup_backing_file (job),
    .backing_format = job->full ? NULL : "qcow2",
  };
  struct qcow2 *q;
  struct qcow2_info qi;
  struct sink *sink;
  struct writeback *wb;
  int r;

  part_path = job->part;
  if (qcow2_create (job->part, &copts) == -1) {
    error ("%s: %s", job->part, qcow2_last_error ());
    return -1;
  }
  q = qcow2_open (job->part, QCOW2_OPEN_NO_BITMAP_IN_USE);
  if (q == NULL) {
    error ("%s: %s", job->part, qcow2_last_error ());
    return -1;
  }
  qcow2_get_info (q, &qi);
  if (sum_params_new (&job->sum_params, job->size) == -1 ||
      (sink = sink_qcow2_wrap (q)) == NULL) {
    qcow2_close (q);
    return -1;
  }
  wb = writeback_start (job->part);
  debug_time ("create");

  job->stats = (struct copy_stats) {
    .sums = &job->sums, .sum_params = &job->sum_params,
  };
  r = copy_extents (job->uri, job->source, &job->work, sink, job->full,
                    qi.cluster_size, &job->stats);
  if (r == 0) {
    debug_time ("copy");
    sums_part_path = job->sums_part;
    r = sums_save (job->sums_part, &job->sum_params, &job->sums,
                   job->sums_sha256);
  }
  if (sink->ops->close (sink) == -1)
    r = -1;
  writeback_stop (wb);
  if (r == 0)
    debug_time ("close");
  return r;
}

/* Both files durable, and the layer's size for the manifest. */
static int
backup_seal (struct backup_job *job)
{
  if (job->streamed)
    return 0;                   /* durable when committed */
  if (seal_file (job->part, &job->file_size) == -1 ||
      seal_file (job->sums_part, NULL) == -1)
    return -1;
  debug_time ("fsync");
  return 0;
}

/* A full backup starts a new chain: its identity is this disk's. */
static int
backup_new_chain (struct backup_job *job)
{
  struct manifest *m = &job->chain;

  manifest_free (m);
  m->chain_id = job->new_chain_id;
  job->new_chain_id = NULL;
  m->virtual_size = job->size;
  m->export_name = strdup (job->export_name);
  m->export_description = job->description ? strdup (job->description)
    : NULL;
  m->description_known = true;
  m->disk_id = opts.disk_id ? strdup (opts.disk_id) : NULL;
  m->bitmap = opts.bitmap ? strdup (opts.bitmap) : NULL;
  if (!m->chain_id || !m->export_name || (opts.bitmap && !m->bitmap) ||
      (job->description && !m->export_description) ||
      (opts.disk_id && !m->disk_id)) {
    error ("out of memory");
    return -1;
  }
  return 0;
}

/* The manifest entry of the new layer, appended to the chain. */
static int
backup_append_entry (struct backup_job *job)
{
  const char *backing = backup_backing_file (job);
  struct backup_entry entry = {
    .index = job->index,
    .full = job->full,
    .file = strdup (job->file),
    .backing = backing ? strdup (backing) : NULL,
    .started = job->started,
    .finished = now_iso8601 (),
    .data_bytes = job->stats.data_bytes,
    .zero_bytes = job->stats.zero_bytes,
    .file_size = job->file_size,
    .sums_file = strdup (job->sums_file),
    .sums_sha256 = strdup (job->sums_sha256),
  };

  job->started = NULL;
  if (!entry.file || (backing && !entry.backing) || !entry.started ||
      !entry.finished || !entry.sums_file || !entry.sums_sha256 ||
      backup_list_append (&job->chain.backups, entry) == -1) {
    error_errno ("malloc");
    free (entry.file);
    free (entry.backing);
    free (entry.started);
    free (entry.finished);
    free (entry.sums_file);
    free (entry.sums_sha256);
    return -1;
  }
  return 0;
}

/* Publish: old chain aside (full), rename, manifest.  The signals that
 * would interrupt us wait until that is done (or has failed), so that
 * Ctrl-C cannot leave the old chain moved aside without the new one in
 * its place.  The backing file is named before the old chain goes.
 */
static int
backup_publish (struct backup_job *job)
{
  struct manifest *m = &job->chain;

  sigprocmask (SIG_BLOCK, &publish_signals, NULL);
  if (job->full && job->have_chain && store_dir (job->st) == NULL) {
    /* The old chain's objects stay (their names differ from the new
     * chain's); its manifest is kept beside them.
     */
    CLEANUP_FREE char *name = NULL;
    if (asprintf (&name, "chain-%s.%s", m->chain_id, MANIFEST_NAME) == -1) {
      error_errno ("asprintf");
      return -1;
    }
    if (manifest_save_as (job->st, name, m) == -1)
      return -1;
    info ("the previous chain %s is kept: its manifest is now %s",
          m->chain_id, name);
  }
  else if (job->full && job->have_chain &&
           archive_chain (job->dir, m) == -1)
    return -1;
  if (job->streamed) {
    struct store_upload *u = job->upload;

    job->upload = NULL;
    if (store_upload_commit (u) == -1)
      return -1;
    part_path = NULL;
    if (store_put (job->st, job->sums_file, job->sums_text,
                   job->sums_len) == -1)
      return -1;
  }
  else if (rename (job->part, job->final) == -1) {
    error_errno ("rename %s to %s", job->part, job->final);
    return -1;
  }
  else {
    part_path = NULL;
    if (rename (job->sums_part, job->sums_final) == -1) {
      error_errno ("rename %s to %s", job->sums_part, job->sums_final);
      return -1;
    }
    sums_part_path = NULL;
  }

  if (job->full) {
    if (backup_new_chain (job) == -1)
      return -1;
  }
  else if (m->bitmap == NULL && (m->bitmap = strdup (opts.bitmap)) == NULL) {
    error ("out of memory");
    return -1;
  }
  if (backup_append_entry (job) == -1 ||
      manifest_save (job->st, m) == -1)
    return -1;
  published = 1;
  backup_outcome = (struct backup_outcome) {
    .published = true, .full = job->full, .index = job->index,
    .data_bytes = job->stats.data_bytes,
  };

  info ("%s backup %s: %" PRIu64 " bytes of data, %" PRIu64
        " bytes of zeroes, file %" PRIu64 " bytes",
        job->full ? "full" : "incremental", job->final,
        job->stats.data_bytes, job->stats.zero_bytes, job->file_size);
  return 0;
}

/* Whatever the outcome: unpublished parts removed, the signals
 * delivered again, the source closed.
 */
static void
backup_job_end (struct backup_job *job)
{
  if (job->upload) {
    store_upload_abort (job->upload);
    job->upload = NULL;
    part_path = NULL;
  }
  if (part_path) {
    unlink (part_path);
    part_path = NULL;
  }
  if (sums_part_path) {
    unlink (sums_part_path);
    sums_part_path = NULL;
  }
  if (!signals_by_thread)
    sigprocmask (SIG_UNBLOCK, &publish_signals, NULL);
  if (job->source) {
    nbd_shutdown (job->source, 0);
    nbd_close (job->source);
  }
  free (job->bitmap_context);
  free (job->export_name);
  free (job->description);
  free (job->started);
  free (job->work.ptr);
  free (job->file);
  free (job->part);
  free (job->final);
  free (job->sums_file);
  free (job->sums_part);
  free (job->sums_final);
  free (job->sums.ptr);
  free (job->sums_text);
  free (job->new_chain_id);
  manifest_free (&job->chain);
  store_close (job->st);
}

static int
backup_one (enum backup_mode mode, const char *uri, const char *dir,
            const char *disk_name)
{
  struct backup_job job = {
    .mode = mode, .uri = uri, .dir = dir, .disk_name = disk_name,
  };
  int r = -1;

  if (backup_prepare (&job) == 0 &&
      backup_copy (&job) == 0 &&
      backup_seal (&job) == 0 &&
      backup_publish (&job) == 0)
    r = 0;
  backup_job_end (&job);
  return r;
}

/* --control: the backups of the nodes' sessions, each into its chain
 * (-o DIR for one node, DIR/NODE for several).  A session ends with
 * success only once its backup is published; every other way out ends
 * it with failure (this process dying included: the server ends the
 * sessions of a control connection that closes).
 */
static int
do_session_backups (enum backup_mode mode, const char *uri)
{
  struct sessions *ss;
  size_t i;
  int r = 0;

  if (opts.nnodes > 1 && !store_is_url (opts.output) &&
      mkdir (opts.output, 0755) == -1 && errno != EEXIST) {
    error_errno ("mkdir %s", opts.output);
    return -1;
  }
  /* An incremental reads only the dirty granules; a full backup (or one
   * that may become full) reads all of them.
   */
  ss = control_sessions_begin (opts.control, opts.nodes, opts.nnodes,
                               opts.bitmap, mode != MODE_INC);
  if (ss == NULL)
    return -1;
  for (i = 0; i < ss->n; i++) {
    CLEANUP_FREE char *u = uri_with_export (uri, ss->exports[i]);
    CLEANUP_FREE char *dir = NULL;

    if (opts.nnodes > 1)
      dir = dir_file (opts.output, opts.nodes[i]);
    if (u == NULL || (opts.nnodes > 1 && dir == NULL)) {
      r = -1;
      break;
    }
    if (opts.nnodes > 1)
      info ("node %s: backing up into %s", opts.nodes[i], dir);
    if (backup_one (mode, u, dir ? dir : opts.output, opts.nodes[i]) == -1) {
      r = -1;
      break;
    }
    /* Published: now, and only now, the session succeeded. */
    if (control_session_end (ss, i, true) == -1) {
      error ("node %s: the backup is complete, but the session could not "
             "be ended with success: the next incremental will copy more "
             "than needed", opts.nodes[i]);
      r = -1;
    }
  }
  control_sessions_end (ss, false);
  return r;
}

int
do_backup (enum backup_mode mode, const char *uri)
{
  if (opts.control)
    return do_session_backups (mode, uri);
  return backup_one (mode, uri, opts.output,
                     opts.nnodes ? opts.nodes[0] : NULL);
}
