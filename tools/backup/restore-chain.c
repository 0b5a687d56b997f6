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

/* nbdcbt-backup restore -O qcow2 -o DIR/: the restored point written as
 * a new chain in a local directory (one full backup with its checksum
 * list and manifest), for example to bring a point of an S3 chain home.
 * The layer is streamed through the directory store's upload
 * (sink-qcow2-stream.c), so the result is laid out as an S3 layer is.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backup.h"
#include "cleanup.h"
#include "layer.h"
#include "store.h"

#define CHUNK (1024 * 1024)     /* a multiple of the 64 KiB clusters */

/* Is TARGET meant as a directory (an existing one, or a name ending
 * in '/')?
 */
bool
restore_target_is_dir (const char *target)
{
  struct stat st;
  size_t len = strlen (target);

  return (len > 0 && target[len - 1] == '/') ||
    (stat (target, &st) == 0 && S_ISDIR (st.st_mode));
}

static int
new_manifest (const struct manifest *src, struct manifest *m)
{
  memset (m, 0, sizeof *m);
  m->chain_id = new_uuid ();
  m->virtual_size = src->virtual_size;
  m->export_name = strdup (src->export_name ? src->export_name : "");
  m->export_description = src->export_description
    ? strdup (src->export_description) : NULL;
  m->description_known = src->description_known;
  m->disk_id = src->disk_id ? strdup (src->disk_id) : NULL;
  m->bitmap = src->bitmap ? strdup (src->bitmap) : NULL;
  if (!m->chain_id || !m->export_name ||
      (src->export_description && !m->export_description) ||
      (src->disk_id && !m->disk_id) || (src->bitmap && !m->bitmap)) {
    error ("out of memory");
    return -1;
  }
  return 0;
}

int
restore_into_chain (const struct manifest *src, int64_t n, struct layer *q,
                    const char *dir)
{
  struct store *st = store_open (dir, true);
  struct manifest m = { 0 }, existing;
  struct store_upload *u = NULL;
  struct sink *sink = NULL;
  struct summer *summer = NULL;
  struct sum_params params;
  sum_list sums = empty_vector;
  CLEANUP_FREE char *buf = NULL, *text = NULL;
  char hex[65];
  uint64_t size = src->virtual_size, offset, data = 0, file_size = 0;
  size_t text_len;
  struct backup_entry e = { 0 };
  int r, ret = -1;

  if (st == NULL || store_lock (st) == -1 || store_cleanup (st) == -1)
    goto out;
  r = manifest_load (st, &existing);
  if (r == 0)
    manifest_free (&existing);
  if (r != 1) {
    if (r == 0)
      error ("restore: %s already holds a backup chain", dir);
    goto out;
  }
  if (sum_params_new (&params, size) == -1 || (summer = summer_new (&params)) == NULL)
    goto out;
  buf = malloc (CHUNK + 512);
  e.started = now_iso8601 ();
  if (buf == NULL || e.started == NULL) {
    error_errno ("malloc");
    goto out;
  }
  u = store_upload_begin (st, "backup-0000.qcow2", STREAM_HEAD_SIZE);
  if (u == NULL)
    goto out;
  sink = sink_qcow2_stream (u, QCOW2_SIZE (size), NULL, &file_size);
  if (sink == NULL)
    goto out;

  progress_start ("restoring", size);
  for (offset = 0; offset < size; offset += CHUNK) {
    uint64_t len = size - offset < CHUNK ? size - offset : CHUNK;
    uint64_t pnum, wlen = len;
    int status, depth;
    struct sum_record rec = { .offset = offset, .length = len,
                              .kind = SUM_DATA };

    /* Whole chunks that read as zero are left out: a full backup reads
     * as zero where it has nothing.
     */
    if (layer_block_status (q, offset, len, &pnum, &status, &depth) == -1) {
      error ("restore: block status at %" PRIu64 ": %s", offset,
             layer_last_error ());
      goto out;
    }
    if (pnum >= len && ((status & QCOW2_STATUS_ZERO) || depth == 0))
      continue;
    if (layer_pread (q, buf, len, offset) == -1) {
      error ("restore: read at %" PRIu64 ": %s", offset,
             layer_last_error ());
      goto out;
    }
    if (is_zero (buf, len))
      continue;
    /* The file's last cluster may pass the disk's end: zeroes there. */
    if (offset + len == size && QCOW2_SIZE (size) > size) {
      wlen = QCOW2_SIZE (size) - offset;
      memset (buf + len, 0, wlen - len);
    }
    summer_sum (summer, offset, buf, len, rec.digest);
    if (sink->ops->pwrite (sink, buf, wlen, offset) == -1 ||
        sum_list_append (&sums, rec) == -1)
      goto out;
    data += len;
    progress_update (offset + len);
  }
  progress_end ();
  r = sink->ops->close (sink);
  sink = NULL;
  if (r == -1)
    goto out;
  r = store_upload_commit (u);
  u = NULL;
  if (r == -1 ||
      sums_format (&params, &sums, &text, &text_len, hex) == -1 ||
      store_put (st, "backup-0000.sums", text, text_len) == -1)
    goto out;

  if (new_manifest (src, &m) == -1)
    goto out;
  e.index = 0;
  e.full = true;
  e.file = strdup ("backup-0000.qcow2");
  e.finished = now_iso8601 ();
  e.data_bytes = data;
  e.file_size = file_size;
  e.sums_file = strdup ("backup-0000.sums");
  e.sums_sha256 = strdup (hex);
  if (!e.file || !e.finished || !e.sums_file || !e.sums_sha256 ||
      backup_list_append (&m.backups, e) == -1) {
    error ("out of memory");
    goto out;
  }
  memset (&e, 0, sizeof e);     /* now owned by M */
  if (manifest_save (st, &m) == -1)
    goto out;
  info ("restored backup %" PRIi64 " of chain %s as a new chain %s in %s",
        n, src->chain_id, m.chain_id, dir);
  ret = 0;

 out:
  progress_end ();
  if (sink)
    sink->ops->close (sink);
  if (u)
    store_upload_abort (u);
  free (e.file);
  free (e.started);
  free (e.finished);
  free (e.sums_file);
  free (e.sums_sha256);
  free (sums.ptr);
  summer_free (summer);
  manifest_free (&m);
  store_close (st);
  return ret;
}
