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

/* nbdcbt-backup verify: check the chain's structure and checksums.
 *
 * For each backup in the manifest: the file exists with the recorded
 * size, its contents match its checksum list (sums.c: the data read
 * back through the qcow2 library, and what the layer allocates), it is
 * a qcow2 image of the chain's virtual size, backed by the previous
 * file (format qcow2) or by nothing for the full one, and its metadata
 * pass a consistency check (refcounts vs L1/L2).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "cleanup.h"
#include "layer.h"
#include "store.h"

static const char *current_file;

static void
check_msg (void *opaque, const char *text)
{
  error ("verify: %s: %s", current_file, text);
}

int
verify_backup (struct store *st, const struct manifest *m,
               const struct backup_entry *b, const char *expect_backing,
               const char *also_backing)
{
  CLEANUP_FREE char *path = store_object_path (st, b->file);
  struct layer *q = NULL;
  const char *backing_file, *backing_format;
  uint64_t size, corruptions, leaks;
  int r, bad = 0;

  if (path == NULL)
    return 1;
  current_file = path;
  r = store_stat (st, b->file, &size);
  if (r == -1)
    return 1;
  if (r == 1) {
    error ("verify: backup %" PRIi64 ": %s: %s", b->index, path,
           strerror (ENOENT));
    return 1;
  }
  if (size != b->file_size) {
    error ("verify: %s: the file has %" PRIu64 " bytes, the manifest says %"
           PRIu64 " (truncated or damaged)", path, size, b->file_size);
    bad++;
  }
  bad += check_contents ("verify", st, b, m->virtual_size);

  q = layer_open (st, b->file, LAYER_NO_BACKING);
  if (q == NULL) {
    error ("verify: %s: not a valid qcow2 image: %s", path,
           layer_last_error ());
    return bad + 1;
  }
  size = layer_size (q);
  backing_file = layer_backing_file (q);
  backing_format = layer_backing_format (q);
  /* The disk's size rounded up to 512 bytes (older chains: exact). */
  if (size != QCOW2_SIZE (m->virtual_size) && size != m->virtual_size) {
    error ("verify: %s: virtual size %" PRIu64 ", expected %" PRIu64
           " (the chain's %" PRIu64 " rounded up to 512 bytes)", path,
           size, QCOW2_SIZE (m->virtual_size), m->virtual_size);
    bad++;
  }
  if (expect_backing == NULL && backing_file != NULL) {
    error ("verify: %s: the full backup has a backing file (%s)", path,
           backing_file);
    bad++;
  }
  if (expect_backing != NULL
      && !backing_matches (backing_file, backing_format, expect_backing,
                           also_backing)) {
    error ("verify: %s: the backing file is %s (%s), expected %s%s%s (qcow2)",
           path, backing_file ? backing_file : "none",
           backing_format ? backing_format : "no format", expect_backing,
           also_backing ? " or " : "", also_backing ? also_backing : "");
    bad++;
  }
  if (layer_check (q, &corruptions, &leaks, check_msg, NULL) == -1) {
    if (errno == ENOTSUP)       /* the library cannot check this image */
      info ("%s: metadata check skipped: %s", path, layer_last_error ());
    else {
      error ("verify: %s: check failed: %s", path, layer_last_error ());
      bad++;
    }
  }
  else if (corruptions > 0) {
    error ("verify: %s: %" PRIu64 " corruptions in the qcow2 metadata",
           path, corruptions);
    bad++;
  }
  else if (leaks > 0)
    info ("%s: %" PRIu64 " leaked clusters (harmless)", path, leaks);
  layer_close (q);

  if (bad == 0)
    info ("backup %" PRIi64 " %s: ok", b->index, b->file);
  return bad;
}

int
verify_chain (struct store *st, const struct manifest *m)
{
  size_t i;
  int bad = 0;

  /* An interrupted prune: its full backup is checked as well, and the
   * backup after the merged ones may already be backed by it (the same
   * data as the backup it replaces).
   */
  if (m->merge) {
    info ("a prune was interrupted; its full backup %s (backup %" PRIi64
          ") is checked too", m->merge->file, m->merge->index);
    bad += verify_backup (st, m, m->merge, NULL, NULL);
  }
  for (i = 0; i < m->backups.len; ++i) {
    const struct backup_entry *b = &m->backups.ptr[i];

    bad += verify_backup (st, m, b, b->backing, backing_after_merge (m, i));
  }
  return bad;
}

int
do_verify (const char *location)
{
  struct store *st = store_open (location, false);
  struct manifest m;
  int r, bad;

  if (st == NULL)
    return -1;
  r = manifest_load (st, &m);
  if (r == -1) {
    if (store_unreachable (st))
      error ("verify: %s: FAILED (it cannot be read, as said above)",
             location);
    else
      error ("verify: %s: FAILED (the manifest is damaged or cannot be "
             "read)", location);
    store_close (st);
    return -1;
  }
  if (r == 1) {
    error ("verify: %s holds no backup chain (no %s)", location,
           MANIFEST_NAME);
    store_close (st);
    return -1;
  }
  bad = verify_chain (st, &m);
  if (bad) {
    error ("verify: %s: FAILED, %d problem%s found", location, bad,
           bad == 1 ? "" : "s");
    manifest_free (&m);
    store_close (st);
    return -1;
  }
  info ("chain %s: %zu backup%s verified", m.chain_id, m.backups.len,
        m.backups.len == 1 ? "" : "s");
  manifest_free (&m);
  store_close (st);
  return 0;
}
