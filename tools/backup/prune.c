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

/* nbdcbt-backup prune: keep at most N restore points by merging the
 * oldest backups of a chain into a new full backup.
 *
 * Merging backups 0..k is what 'qemu-img commit' does to a backing
 * chain: the clusters of the incrementals are written into the full
 * image and the overlay above them (backup k+1) is rebased onto it.
 * Done in place this is not crash-safe (a half-committed full backup
 * serves neither the old points nor the new one), so the merged full
 * backup is a new file, and the manifest is the commit point:
 *
 *   1. The image as of backup k is written to .backup-full-K.qcow2.part
 *      with its checksum list, both fsync'd and renamed to full-K.qcow2
 *      and full-K.sums (K = the index of backup k).  Nothing references
 *      them yet: a crash leaves the chain as it was.
 *   2. The manifest is replaced (atomically, the directory fsync'd, which
 *      makes step 1's renames durable too) by one that still lists
 *      every backup and records the new file as "prune-pending".
 *   3. Backup k+1 is rebased onto full-K.qcow2: its file is replaced,
 *      atomically, by a copy whose header names full-K.qcow2 as its
 *      backing file (rebase.c).  Either name gives backup k+1 the same
 *      data, and verify, restore and backups accept both while the
 *      prune is pending.
 *   4. The manifest is replaced by the pruned one: full-K.qcow2 (full,
 *      index K, the times of backup k) followed by backups k+1...
 *   5. The files of backups 0..k are deleted.
 *
 * At every moment between these steps the manifest describes a chain
 * that verifies and restores every point it lists.  The next prune
 * finishes a pending one (steps 3-5) before anything else, or undoes it
 * if the new file does not verify, and removes the files that an
 * interrupted run left unreferenced.
 *
 * For tests, NBDCBT_BACKUP_TEST_CRASH=STEP makes the process kill
 * itself with SIGKILL at that step (written, pending, rebased, pruned),
 * so that every window between the steps is exercised by a real crash.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "cleanup.h"
#include "layer.h"
#include "qcow2.h"
#include "store.h"

/* Largest write into the merged file: a multiple of any cluster size,
 * and at most a checksum record's length (sums.c).
 */
#define CHUNK (4 * 1024 * 1024)

static void
crash_point (const char *step)
{
  const char *want = getenv ("NBDCBT_BACKUP_TEST_CRASH");

  if (want && strcmp (want, step) == 0)
    kill (getpid (), SIGKILL);
}

/* The new full backup being written: in a directory through the qcow2
 * library into DIR/.backup-full-K.qcow2.part (what store_cleanup removes
 * after a crash), renamed when complete; in an object store streamed
 * into an upload (sink-qcow2-stream.c), invisible until committed.
 */
struct merge_target {
  struct store *st;
  const char *file, *sums_file;
  struct sink *sink;
  uint64_t size;                /* of the qcow2 image: QCOW2_SIZE */
  uint64_t file_size;
  struct store_upload *upload;  /* streamed */
  char *part, *sums_part;       /* directory */
};

static int
target_open (struct merge_target *t)
{
  const char *dir = store_dir (t->st);

  if (dir == NULL) {
    t->upload = store_upload_begin (t->st, t->file, STREAM_HEAD_SIZE);
    if (t->upload == NULL)
      return -1;
    store_upload_expect (t->upload, t->size + t->size / 4096 + (1 << 20));
    t->sink = sink_qcow2_stream (t->upload, t->size, NULL, &t->file_size);
    return t->sink ? 0 : -1;
  }

  struct qcow2_create_opts copts = { .size = t->size };
  struct qcow2 *q;

  if (asprintf (&t->part, "%s/.backup-%s.part", dir, t->file) == -1 ||
      asprintf (&t->sums_part, "%s/.backup-%s.part", dir,
                t->sums_file) == -1) {
    error_errno ("asprintf");
    return -1;
  }
  if (qcow2_create (t->part, &copts) == -1 ||
      (q = qcow2_open (t->part, QCOW2_OPEN_NO_BITMAP_IN_USE)) == NULL) {
    error ("prune: %s: %s", t->part, qcow2_last_error ());
    return -1;
  }
  t->sink = sink_qcow2_wrap (q);
  if (t->sink == NULL) {
    qcow2_close (q);
    return -1;
  }
  return 0;
}

/* The image complete, its checksum list written: both visible under
 * their names (durable with the manifest that names them: its store_put
 * syncs the directory; nothing needs them before).
 */
static int
target_finish (struct merge_target *t, const struct sum_params *params,
               const sum_list *sums, char sums_hex[65])
{
  CLEANUP_FREE char *final = NULL, *sums_final = NULL;
  CLEANUP_FREE char *text = NULL;
  size_t len;
  int r;

  r = t->sink->ops->close (t->sink);
  t->sink = NULL;
  if (r == -1)
    return -1;
  if (t->upload) {
    struct store_upload *u = t->upload;

    t->upload = NULL;
    if (sums_format (params, sums, &text, &len, sums_hex) == -1) {
      store_upload_abort (u);
      return -1;
    }
    if (store_upload_commit (u) == -1)
      return -1;
    return store_put (t->st, t->sums_file, text, len);
  }

  if ((final = dir_file (store_dir (t->st), t->file)) == NULL ||
      (sums_final = dir_file (store_dir (t->st), t->sums_file)) == NULL ||
      sums_save (t->sums_part, params, sums, sums_hex) == -1 ||
      seal_file (t->part, &t->file_size) == -1 ||
      seal_file (t->sums_part, NULL) == -1)
    return -1;
  if (rename (t->part, final) == -1) {
    error_errno ("rename %s to %s", t->part, final);
    return -1;
  }
  if (rename (t->sums_part, sums_final) == -1) {
    error_errno ("rename %s to %s", t->sums_part, sums_final);
    return -1;
  }
  return 0;
}

/* Whatever happened: nothing half-written stays visible. */
static void
target_close (struct merge_target *t)
{
  if (t->sink)
    t->sink->ops->close (t->sink);
  if (t->upload)
    store_upload_abort (t->upload);
  if (t->part) {
    unlink (t->part);
    unlink (t->sums_part);
  }
  free (t->part);
  free (t->sums_part);
}

/* full-K.EXT; in an object store full-K-ID.EXT (ID: the chain id's
 * first 8 digits), as the backups there are named: the objects of older
 * chains stay in the same prefix (chain.c), so names must not repeat
 * across chains.
 */
static char *
merged_name (struct store *st, const struct manifest *m, int64_t index,
             const char *ext)
{
  char *s;
  int r;

  if (store_dir (st))
    r = asprintf (&s, "full-%04" PRIi64 ".%s", index, ext);
  else
    r = asprintf (&s, "full-%04" PRIi64 "-%.8s.%s", index, m->chain_id, ext);
  if (r == -1) {
    error_errno ("asprintf");
    return NULL;
  }
  return s;
}

/* Step 1: write the image as of the backup at POS into a new full
 * backup, durable under its final name, described by *OUT.
 */
static int
write_merged (struct store *st, const struct manifest *m, size_t pos,
              struct backup_entry *out)
{
  const struct backup_entry *b = &m->backups.ptr[pos];
  CLEANUP_FREE char *file = NULL, *sums_file = NULL, *top = NULL;
  CLEANUP_FREE char *buf = NULL;
  struct merge_target t = { .st = st, .size = QCOW2_SIZE (m->virtual_size) };
  struct layer *in = NULL;
  struct sum_params params;
  struct summer *summer = NULL;
  sum_list sums = empty_vector;
  char sums_hex[65];
  uint64_t offset, data_bytes = 0;
  int ret = -1;

  if ((file = merged_name (st, m, b->index, "qcow2")) == NULL ||
      (sums_file = merged_name (st, m, b->index, "sums")) == NULL ||
      (top = store_object_path (st, b->file)) == NULL ||
      /* Room for the padding up to QCOW2_SIZE after the disk's end. */
      (buf = malloc (CHUNK + 512)) == NULL) {
    error_errno ("malloc");
    return -1;
  }
  t.file = file;
  t.sums_file = sums_file;

  in = layer_open (st, b->file, 0);
  if (in == NULL) {
    error ("prune: %s: %s", top, layer_last_error ());
    goto out;
  }
  if (target_open (&t) == -1 ||
      sum_params_new (&params, m->virtual_size) == -1 ||
      (summer = summer_new (&params)) == NULL)
    goto out;

  progress_start ("merging", m->virtual_size);
  for (offset = 0; offset < m->virtual_size; ) {
    uint64_t pnum, count = m->virtual_size - offset, pos2, end;
    int status, depth;

    if (count > (UINT64_C (1) << 30))
      count = UINT64_C (1) << 30;
    if (layer_block_status (in, offset, count, &pnum, &status, &depth) == -1) {
      error ("prune: %s: block status at %" PRIu64 ": %s", top, offset,
             layer_last_error ());
      goto out;
    }
    if (pnum == 0 || pnum > count) {
      error ("prune: %s: bad block status at %" PRIu64, top, offset);
      goto out;
    }
    end = offset + pnum;
    /* Zeroes and holes stay unallocated: a new image reads as zero. */
    if (!(status & QCOW2_STATUS_ZERO) && depth > 0 &&
        (status & QCOW2_STATUS_DATA)) {
      for (pos2 = offset; pos2 < end; ) {
        /* Pieces end on CHUNK boundaries, so on cluster boundaries (the
         * layers' clusters are 64K: the streamed image needs whole ones).
         */
        uint64_t len = (pos2 / CHUNK + 1) * CHUNK - pos2, wlen;
        struct sum_record r = { .offset = pos2, .kind = SUM_DATA };

        if (len > end - pos2)
          len = end - pos2;
        if (layer_pread (in, buf, len, pos2) == -1) {
          error ("prune: %s: read at %" PRIu64 ": %s", top, pos2,
                 layer_last_error ());
          goto out;
        }
        if (!is_zero (buf, len)) {
          /* The image's last bytes after the disk's end are zeroes. */
          wlen = len;
          if (pos2 + len == m->virtual_size) {
            wlen = t.size - pos2;
            memset (buf + len, 0, wlen - len);
          }
          if (t.sink->ops->pwrite (t.sink, buf, wlen, pos2) == -1)
            goto out;
          r.length = len;
          summer_sum (summer, pos2, buf, len, r.digest);
          if (sum_list_append (&sums, r) == -1) {
            error_errno ("malloc");
            goto out;
          }
          data_bytes += len;
        }
        pos2 += len;
        progress_update (pos2);
      }
    }
    offset = end;
    progress_update (offset);
  }
  progress_end ();

  if (target_finish (&t, &params, &sums, sums_hex) == -1)
    goto out;

  *out = (struct backup_entry) {
    .index = b->index,
    .full = true,
    .file = strdup (file),
    .started = strdup (b->started),
    .finished = strdup (b->finished),
    .data_bytes = data_bytes,
    .file_size = t.file_size,
    .sums_file = strdup (sums_file),
    .sums_sha256 = strdup (sums_hex),
  };
  if (!out->file || !out->started || !out->finished || !out->sums_file ||
      !out->sums_sha256) {
    error_errno ("strdup");
    backup_entry_free (out);
    goto out;
  }
  ret = 0;

 out:
  progress_end ();
  if (ret == -1)
    target_close (&t);
  else {
    free (t.part);
    free (t.sums_part);
  }
  if (in)
    layer_close (in);
  summer_free (summer);
  free (sums.ptr);
  return ret;
}

/* Delete NAME if not NULL; one already gone is fine. */
static void
remove_file (struct store *st, const char *name)
{
  if (name)
    store_delete (st, name);
}

/* Steps 3-5, for the prune pending in M: rebase the backup after the
 * merged ones, switch the manifest, delete the merged files.
 */
static int
finish_merge (struct store *st, struct manifest *m)
{
  ssize_t pos = manifest_find (m, m->merge->index);
  backup_list old = m->backups, kept = empty_vector;
  size_t i;

  if (pos == -1) {
    error ("prune: %s: the pending prune does not fit the chain",
           store_location (st));
    return -1;
  }
  if ((size_t) pos + 1 < old.len &&
      layer_set_backing (st, old.ptr[pos + 1].file, old.ptr[pos].file,
                    m->merge->file) == -1)
    return -1;
  crash_point ("rebased");

  /* The new list: the merged full backup, then the newer backups. */
  if (backup_list_reserve (&kept, old.len - pos) == -1) {
    error_errno ("malloc");
    return -1;
  }
  kept.ptr[kept.len++] = *m->merge;
  for (i = pos + 1; i < old.len; ++i)
    kept.ptr[kept.len++] = old.ptr[i];
  if (kept.len > 1) {
    char *backing = strdup (m->merge->file);
    if (backing == NULL) {
      error_errno ("strdup");
      free (kept.ptr);
      return -1;
    }
    /* The entry's strings now belong to KEPT. */
    old.ptr[pos + 1].backing = NULL;
    free (kept.ptr[1].backing);
    kept.ptr[1].backing = backing;
  }
  free (m->merge);
  m->merge = NULL;
  m->backups = kept;
  if (manifest_save (st, m) == -1) {
    /* The pending manifest stays on disk; the next prune finishes. */
    for (i = 0; i <= (size_t) pos; ++i)
      backup_entry_free (&old.ptr[i]);
    free (old.ptr);
    return -1;
  }
  crash_point ("pruned");

  /* Step 5.  Not synced: a file that comes back after a power loss is
   * unreferenced, and the next prune deletes it.
   */
  for (i = 0; i <= (size_t) pos; ++i) {
    remove_file (st, old.ptr[i].file);
    remove_file (st, old.ptr[i].sums_file);
    backup_entry_free (&old.ptr[i]);
  }
  free (old.ptr);
  return 0;
}

/* A pending prune whose new full backup is damaged: rebase the backup
 * after the merged ones back, and forget the prune.
 */
static int
undo_merge (struct store *st, struct manifest *m)
{
  ssize_t pos = manifest_find (m, m->merge->index);
  struct backup_entry *f = m->merge;

  if (pos != -1 && (size_t) pos + 1 < m->backups.len &&
      layer_set_backing (st, m->backups.ptr[pos + 1].file, f->file,
                    m->backups.ptr[pos].file) == -1)
    return -1;
  m->merge = NULL;
  if (manifest_save (st, m) == -1) {
    m->merge = f;
    return -1;
  }
  remove_file (st, f->file);
  remove_file (st, f->sums_file);
  backup_entry_free (f);
  free (f);
  return 0;
}

static bool
referenced (const struct manifest *m, const char *name)
{
  size_t i;

  for (i = 0; i < m->backups.len; ++i)
    if (strcmp (m->backups.ptr[i].file, name) == 0 ||
        (m->backups.ptr[i].sums_file &&
         strcmp (m->backups.ptr[i].sums_file, name) == 0))
      return true;
  return m->merge && (strcmp (m->merge->file, name) == 0 ||
                      strcmp (m->merge->sums_file, name) == 0);
}

/* Is NAME a layer or checksum list of the chain M: backup-N.qcow2,
 * backup-N.sums, full-N.qcow2, full-N.sums, in an object store with
 * "-ID" (the chain id's first 8 digits) before the extension?  Another
 * chain's objects (kept beside it in an object store) are not.
 */
static bool
chain_file_name (struct store *st, const struct manifest *m,
                 const char *name)
{
  const char *p = name;

  if (strncmp (p, "backup-", 7) == 0)
    p += 7;
  else if (strncmp (p, "full-", 5) == 0)
    p += 5;
  else
    return false;
  if (*p < '0' || *p > '9')
    return false;
  while (*p >= '0' && *p <= '9')
    p++;
  if (store_dir (st) == NULL) {
    if (*p != '-' || strlen (m->chain_id) < 8 ||
        strncmp (p + 1, m->chain_id, 8) != 0)
      return false;
    p += 9;
  }
  return strcmp (p, ".qcow2") == 0 || strcmp (p, ".sums") == 0;
}

/* The files an interrupted prune (or backup) left that the manifest does
 * not reference (we hold the lock).
 */
static void
remove_unreferenced (struct store *st, const struct manifest *m)
{
  name_list names = empty_vector;
  size_t i;

  if (store_list (st, &names) == -1)
    return;
  for (i = 0; i < names.len; ++i) {
    if (!chain_file_name (st, m, names.ptr[i]) ||
        referenced (m, names.ptr[i]))
      continue;
    if (store_delete (st, names.ptr[i]) == 0)
      info ("removed %s/%s, left by an interrupted run", store_location (st),
            names.ptr[i]);
  }
  name_list_free (&names);
}

/* Open and lock the chain at LOCATION, and load its manifest. */
static struct store *
open_chain (const char *location, struct manifest *m)
{
  struct store *st;
  struct stat sb;
  int r;

  if (!store_is_url (location)) {
    if (stat (location, &sb) == -1) {
      error ("prune: %s: %s", location, strerror (errno));
      return NULL;
    }
    if (!S_ISDIR (sb.st_mode)) {
      error ("prune: %s is not a directory", location);
      return NULL;
    }
  }
  st = store_open (location, false);
  if (st == NULL)
    return NULL;
  r = manifest_load (st, m);
  if (r == 1) {
    error ("prune: %s holds no backup chain (no %s)", location,
           MANIFEST_NAME);
    goto fail;
  }
  if (r == -1 && store_unreachable (st)) {
    error ("prune: %s: it cannot be read, as said above; nothing was "
           "changed", location);
    goto fail;
  }
  if (r == -1) {
    error ("prune: %s: the manifest is damaged; nothing was changed",
           location);
    goto fail;
  }
  /* Locked only now, so that refusing a location creates nothing in
   * it; loaded again under the lock.
   */
  manifest_free (m);
  if (store_lock (st) == -1)
    goto fail;
  r = manifest_load (st, m);
  if (r != 0) {
    if (r == 1)
      error ("prune: %s: the chain went away", location);
    goto fail;
  }
  if (store_cleanup (st) == -1)
    goto fail;
  return st;

 fail:
  store_close (st);
  return NULL;
}

int
do_prune (const char *dir, int64_t keep)
{
  struct manifest m = { 0 };
  struct backup_entry merged = { 0 };
  struct store *st;
  size_t pos, i;
  int ret = -1;

  st = open_chain (dir, &m);
  if (st == NULL)
    return -1;

  /* First an interrupted prune: finished if its file is sound, else
   * undone.
   */
  if (m.merge) {
    if (verify_backup (st, &m, m.merge, NULL, NULL) == 0) {
      info ("finishing the interrupted prune into %s", m.merge->file);
      if (finish_merge (st, &m) == -1)
        goto out;
    }
    else {
      error ("prune: the full backup %s of an interrupted prune is "
             "damaged; undoing that prune", m.merge->file);
      if (undo_merge (st, &m) == -1)
        goto out;
    }
  }
  if (verify_chain (st, &m) > 0) {
    error ("prune: %s: the chain does not verify; nothing was pruned "
           "(see '" PROG " verify')", dir);
    goto out;
  }
  /* Only a sound chain is tidied: a damaged one is left as found. */
  remove_unreferenced (st, &m);
  if (m.backups.len <= (size_t) keep) {
    info ("%s: %zu restore point%s, at most %" PRIi64 " to keep: "
          "nothing to prune", dir, m.backups.len,
          m.backups.len == 1 ? "" : "s", keep);
    ret = 0;
    goto out;
  }
  pos = m.backups.len - keep;
  info ("merging backups %" PRIi64 " to %" PRIi64 " into a new full backup",
        m.backups.ptr[0].index, m.backups.ptr[pos].index);

  if (write_merged (st, &m, pos, &merged) == -1)
    goto out;
  crash_point ("written");
  m.merge = malloc (sizeof *m.merge);
  if (m.merge == NULL) {
    error_errno ("malloc");
    backup_entry_free (&merged);
    goto out;
  }
  *m.merge = merged;
  if (manifest_save (st, &m) == -1)
    goto out;
  crash_point ("pending");
  if (finish_merge (st, &m) == -1)
    goto out;

  info ("%s: %zu restore point%s remain%s:", dir, m.backups.len,
        m.backups.len == 1 ? "" : "s", m.backups.len == 1 ? "s" : "");
  for (i = 0; i < m.backups.len; ++i)
    info ("  backup %" PRIi64 " (%s, finished %s) %s", m.backups.ptr[i].index,
          i == 0 ? "full" : "incremental", m.backups.ptr[i].finished,
          m.backups.ptr[i].file);
  ret = 0;

 out:
  manifest_free (&m);
  store_close (st);
  return ret;
}
