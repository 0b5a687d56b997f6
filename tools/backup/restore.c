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

/* nbdcbt-backup restore: write the image as of backup N (0 = the full
 * one) to a raw or qcow2 file, or to an NBD export.
 */
#include <config.h>

#include <dirent.h>
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
#include "qcow2.h"
#include "store.h"

#define CHUNK (4 * 1024 * 1024)

static bool
is_uri (const char *s)
{
  return strncmp (s, "nbd://", 6) == 0 || strncmp (s, "nbds://", 7) == 0 ||
    strncmp (s, "nbd+unix://", 11) == 0 ||
    strncmp (s, "nbds+unix://", 12) == 0 ||
    strncmp (s, "nbd+vsock://", 12) == 0;
}

/* The path of a regular file in directory DIR that is the file T
 * stats as (under any name), or NULL.
 */
static char *
same_file_in_dir (const char *dir, const struct stat *t)
{
  DIR *d = opendir (dir);
  struct dirent *ent;
  char *found = NULL;

  if (d == NULL)
    return NULL;
  while (found == NULL && (ent = readdir (d)) != NULL) {
    struct stat f;

    if (fstatat (dirfd (d), ent->d_name, &f, 0) == 0 && S_ISREG (f.st_mode)
        && f.st_dev == t->st_dev && f.st_ino == t->st_ino)
      found = dir_file (dir, ent->d_name);
  }
  closedir (d);
  return found;
}

static bool
same_dir (const char *a, const struct stat *b)
{
  struct stat s;

  return stat (a, &s) == 0 && s.st_dev == b->st_dev && s.st_ino == b->st_ino;
}

/* Is TARGET (a local path) a file of another chain of the same backup
 * directory: an archived one (DIR/chain-UUID/, where a new full backup
 * moves the chain before it), or, when restoring an archived chain, the
 * current one and its other archives?  ROOT is the backup directory,
 * SELF the chain being restored.
 */
static bool
target_in_other_chain (const char *root, const struct stat *self,
                       const struct stat *t, const char *target)
{
  DIR *d;
  struct dirent *ent;
  CLEANUP_FREE char *found = NULL;

  if (!same_dir (root, self))
    found = same_file_in_dir (root, t);
  d = found ? NULL : opendir (root);
  while (d && found == NULL && (ent = readdir (d)) != NULL) {
    CLEANUP_FREE char *sub = NULL;

    if (strncmp (ent->d_name, "chain-", 6) != 0
        || (sub = dir_file (root, ent->d_name)) == NULL || same_dir (sub, self))
      continue;
    found = same_file_in_dir (sub, t);
  }
  if (d)
    closedir (d);
  if (found)
    error ("restore: %s is a file of another backup chain in %s (%s): "
           "choose another target",
           target, root, found);
  return found != NULL;
}

/* Is TARGET (a local path) one of the files of the chain in ST's
 * directory, under this name or another (a link), or of another chain
 * kept beside it?  Writing it would destroy that chain, or the one
 * being read.
 */
static bool
target_in_chain (struct store *st, const char *target)
{
  const char *dir = store_dir (st);
  CLEANUP_FREE char *found = NULL, *real = NULL, *parent = NULL;
  struct stat t, self;
  char *slash;

  if (dir == NULL || stat (target, &t) == -1 || !S_ISREG (t.st_mode))
    return false;
  found = same_file_in_dir (dir, &t);
  if (found) {
    error ("restore: %s is a file of the chain being restored (%s): "
           "choose another target",
           target, found);
    return true;
  }
  if (stat (dir, &self) == -1)
    return false;

  /* An archived chain lives in ROOT/chain-UUID/, the current one in
   * ROOT (which has a manifest).
   */
  real = realpath (dir, NULL);
  slash = real ? strrchr (real, '/') : NULL;
  if (slash && strncmp (slash + 1, "chain-", 6) == 0) {
    CLEANUP_FREE char *man = NULL;
    struct stat m;

    parent = strndup (real, slash == real ? 1 : (size_t) (slash - real));
    man = parent ? dir_file (parent, MANIFEST_NAME) : NULL;
    if (man == NULL || stat (man, &m) == -1) {
      free (parent);
      parent = NULL;
    }
  }
  return target_in_other_chain (parent ? parent : dir, &self, &t, target);
}

int
do_restore (const char *location)
{
  struct store *st = store_open (location, false);
  struct manifest m = { 0 };
  CLEANUP_FREE char *top = NULL;
  CLEANUP_FREE char *why = NULL;
  CLEANUP_FREE char *buf = NULL;
  struct layer *q = NULL;
  struct qcow2 *outq = NULL;
  struct sink *sink = NULL;
  const char *target = opts.output;
  uint64_t size, offset, done = 0;
  int64_t n, i;
  int r, ret = -1;

  if (st == NULL)
    return -1;
  r = manifest_load (st, &m);
  if (r == -1)
    goto out;
  if (r == 1) {
    error ("restore: %s holds no backup chain", location);
    goto out;
  }
  /* --until names a backup by its index (list shows them). */
  n = opts.until == -1 ? (int64_t) m.backups.len - 1
    : manifest_find (&m, opts.until);
  if (n == -1) {
    if (opts.until < m.backups.ptr[0].index)
      error ("restore: there is no backup %" PRIi64 " (the chain has %"
             PRIi64 " to %" PRIi64 "; older backups were pruned, merged "
             "into backup %" PRIi64 ")", opts.until, m.backups.ptr[0].index,
             m.backups.ptr[m.backups.len - 1].index, m.backups.ptr[0].index);
    else
      error ("restore: there is no backup %" PRIi64 " (the chain has %"
             PRIi64 " to %" PRIi64 ")", opts.until, m.backups.ptr[0].index,
             m.backups.ptr[m.backups.len - 1].index);
    goto out;
  }
  for (i = 0; i <= n; ++i)
    if (check_contents ("restore", st, &m.backups.ptr[i],
                        m.virtual_size) > 0) {
      error ("restore: backup %" PRIi64 " is damaged (run '" PROG
             " verify')", m.backups.ptr[i].index);
      goto out;
    }
  /* After an interrupted prune the newer backups may read through its
   * full backup.
   */
  if (m.merge && m.backups.ptr[n].index > m.merge->index &&
      check_contents ("restore", st, m.merge, m.virtual_size) > 0) {
    error ("restore: the full backup %s of an interrupted prune is "
           "damaged (run '" PROG " verify')", m.merge->file);
    goto out;
  }

  if (check_backing_names (st, &m, n, &why) == -1) {
    error ("restore: %s", why ? why : "the chain is damaged");
    goto out;
  }
  top = store_object_path (st, m.backups.ptr[n].file);
  if (top == NULL)
    goto out;
  q = layer_open (st, m.backups.ptr[n].file, 0);
  if (q == NULL) {
    error ("restore: %s: %s", top, layer_last_error ());
    goto out;
  }
  /* The file is the disk rounded up to 512 bytes (older chains: the
   * disk's exact size); what is restored is the disk's true size.
   */
  size = layer_size (q);
  if (size != QCOW2_SIZE (m.virtual_size) && size != m.virtual_size) {
    error ("restore: %s: virtual size %" PRIu64 " does not match the "
           "chain's %" PRIu64, top, size, m.virtual_size);
    goto out;
  }
  size = m.virtual_size;

  if (!is_uri (target) && target_in_chain (st, target))
    goto out;

  if (is_uri (target)) {
    if (opts.out_format) {
      error ("restore: -O does not apply to an NBD target");
      goto out;
    }
    sink = sink_nbd_open (target, size);
  }
  else if (opts.out_format && strcmp (opts.out_format, "qcow2") == 0 &&
           restore_target_is_dir (target)) {
    ret = restore_into_chain (&m, n, q, target);
    goto out;
  }
  else if (opts.out_format && strcmp (opts.out_format, "qcow2") == 0) {
    /* Rounded up as the backups are, so that QEMU reads all of it. */
    struct qcow2_create_opts copts = { .size = QCOW2_SIZE (size) };
    if (qcow2_create (target, &copts) == -1 ||
        (outq = qcow2_open (target, QCOW2_OPEN_NO_BITMAP_IN_USE)) == NULL) {
      error ("restore: %s: %s", target, qcow2_last_error ());
      goto out;
    }
    sink = sink_qcow2_wrap (outq);
    if (sink)
      outq = NULL;
  }
  else
    sink = sink_raw_create (target, size);
  if (sink == NULL)
    goto out;

  buf = malloc (CHUNK);
  if (buf == NULL) {
    error_errno ("malloc");
    goto out;
  }
  progress_start ("restoring", size);
  for (offset = 0; offset < size; ) {
    uint64_t pnum, count = size - offset;
    int status, depth;

    if (count > (UINT64_C (1) << 30))
      count = UINT64_C (1) << 30;
    if (layer_block_status (q, offset, count, &pnum, &status, &depth) == -1) {
      error ("restore: %s: block status at %" PRIu64 ": %s", top, offset,
             layer_last_error ());
      goto out;
    }
    if (pnum == 0 || pnum > count) {
      error ("restore: %s: bad block status at %" PRIu64, top, offset);
      goto out;
    }
    if ((status & QCOW2_STATUS_ZERO) || depth == 0 ||
        !(status & QCOW2_STATUS_DATA)) {
      if (!sink->reads_zero &&
          sink->ops->zero (sink, pnum, offset) == -1)
        goto out;
    }
    else {
      uint64_t pos, end = offset + pnum;
      for (pos = offset; pos < end; ) {
        uint64_t len = end - pos < CHUNK ? end - pos : CHUNK;
        if (layer_pread (q, buf, len, pos) == -1) {
          error ("restore: %s: read at %" PRIu64 ": %s", top, pos,
                 layer_last_error ());
          goto out;
        }
        if (sink->ops->pwrite (sink, buf, len, pos) == -1)
          goto out;
        pos += len;
        progress_update (done + (pos - offset));
      }
    }
    offset += pnum;
    done += pnum;
    progress_update (done);
  }
  progress_end ();
  if (sink->ops->flush (sink) == -1)
    goto out;
  r = sink->ops->close (sink);
  sink = NULL;
  if (r == -1)
    goto out;
  info ("restored backup %" PRIi64 " of chain %s to %s",
        m.backups.ptr[n].index, m.chain_id, target);
  ret = 0;

 out:
  progress_end ();
  if (sink)
    sink->ops->close (sink);
  if (outq)
    qcow2_close (outq);
  layer_close (q);
  manifest_free (&m);
  store_close (st);
  return ret;
}
