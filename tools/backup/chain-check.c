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

/* nbdcbt-backup: is the chain in the directory a usable base for an
 * incremental backup of this export?  The disk's identity (--disk-id,
 * export name and description, size), the bitmap the chain follows, the
 * last backup's file, and a spot check of the areas the bitmap reports
 * unchanged.
 */
#include <config.h>

#include <errno.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "backup.h"
#include "cleanup.h"
#include "layer.h"
#include "store.h"

#define SAMPLES 32
#define SAMPLE_SIZE (64 * 1024)

static void __attribute__ ((format (printf, 2, 3)))
set_why (char **why, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  if (vasprintf (why, fs, args) == -1)
    *why = NULL;
  va_end (args);
}

static bool
same_string (const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp (a, b) == 0;
}

/* Is the export the disk the chain was taken from, as far as the
 * reliable facts go: the user's --disk-id, the export name (or, under
 * another name, the same non-empty description), the export
 * description, the size.  Returns 0 (*RENAMED: under another export
 * name), or -1 with *why set.
 */
static int
check_identity (const struct manifest *m, const struct disk_identity *id,
                bool *renamed, char **why)
{
  bool described;

  if (!same_string (m->disk_id, opts.disk_id)) {
    if (m->disk_id == NULL)
      set_why (why, "the chain was started without --disk-id, this backup "
                "gives --disk-id '%s'", opts.disk_id);
    else if (opts.disk_id == NULL)
      set_why (why, "the chain belongs to --disk-id '%s', this backup "
                "gives no --disk-id", m->disk_id);
    else
      set_why (why, "the chain belongs to --disk-id '%s', not '%s'",
                m->disk_id, opts.disk_id);
    return -1;
  }
  /* The same description (not empty) names the same disk under another
   * export name: a backup session's view, begun on the control socket by
   * hand, carries its disk's description.
   */
  described = m->description_known && m->export_description
    && *m->export_description
    && same_string (m->export_description, id->description);
  *renamed = !same_string (m->export_name, id->export_name);
  if (*renamed && !described) {
    set_why (why, "the chain was taken from export \"%s\", this is export "
              "\"%s\" (a backup session's view of that disk: give "
              "--node with the disk's node name)", m->export_name,
              id->export_name);
    return -1;
  }
  if (m->description_known &&
      !same_string (m->export_description, id->description)) {
    if (m->export_description == NULL)
      set_why (why, "the chain's export had no description, this one has "
                "\"%s\"", id->description);
    else if (id->description == NULL)
      set_why (why, "the chain's export had the description \"%s\", this "
                "one has none", m->export_description);
    else
      set_why (why, "the chain's export had the description \"%s\", this "
                "one has \"%s\"", m->export_description, id->description);
    return -1;
  }
  if (id->size != m->virtual_size) {
    set_why (why, "the disk size changed (the chain has %" PRIu64
              " bytes, the export %" PRIu64 ")", m->virtual_size, id->size);
    return -1;
  }
  return 0;
}

/* A random number below N (N > 0); not for secrets.  Only spreads the
 * spot check's samples differently at each backup.
 */
static uint64_t
random_below (uint64_t n)
{
  uint64_t r = 0;

  if (gnutls_rnd (GNUTLS_RND_NONCE, &r, sizeof r) < 0)
    r = (uint64_t) time (NULL) * UINT64_C (6364136223846793005);
  return r % n;
}

/* The spot check: where the bitmap says nothing changed since the last
 * backup, the export must read exactly as the chain does.  SAMPLES
 * reads of SAMPLE_SIZE bytes, one at a random place in each of SAMPLES
 * equal slices of the clean bytes.  It is a heuristic: it finds a
 * bitmap that was cleared or recreated without a backup in between, or
 * a chain of another disk, only if a sample falls where they differ.
 * Returns 0, or -1 with *why set.
 */
static int
spot_check (struct store *st, const char *name, const char *top,
            struct nbd_handle *h, uint64_t size,
            const extent_list *list, bool view, char **why)
{
  CLEANUP_FREE char *srcbuf = NULL, *chainbuf = NULL;
  struct layer *q = NULL;
  uint64_t clean_total = 0, step, base, pos[SAMPLES];
  size_t i, k, nsamples;
  int r = -1;

  for (i = 0; i < list->len; ++i)
    if (list->ptr[i].kind == EXTENT_CLEAN)
      clean_total += list->ptr[i].length;
  if (clean_total == 0)
    return 0;

  /* Sample K starts at POS[K] counted in clean bytes (increasing). */
  step = clean_total / SAMPLES;
  nsamples = step == 0 ? 1 : SAMPLES;
  for (k = 0; k < nsamples; ++k)
    pos[k] = step == 0 ? 0 : k * step + random_below (step);

  q = layer_open (st, name, 0);
  if (q == NULL) {
    set_why (why, "the last backup %s cannot be opened: %s", top,
              layer_last_error ());
    return -1;
  }
  /* Chains made before the size was rounded up have the exact size. */
  if (layer_size (q) != QCOW2_SIZE (size) && layer_size (q) != size) {
    set_why (why, "the last backup %s is not of the disk's size", top);
    goto out;
  }
  srcbuf = malloc (SAMPLE_SIZE);
  chainbuf = malloc (SAMPLE_SIZE);
  if (!srcbuf || !chainbuf) {
    set_why (why, "out of memory");
    goto out;
  }
  base = 0;                     /* clean bytes before extent I */
  for (i = 0, k = 0; k < nsamples && i < list->len; ++i) {
    const struct extent *x = &list->ptr[i];

    if (x->kind != EXTENT_CLEAN)
      continue;
    while (k < nsamples && pos[k] < base + x->length) {
      uint64_t off = x->offset + (pos[k] - base);
      uint64_t len = x->offset + x->length - off;

      if (len > SAMPLE_SIZE)
        len = SAMPLE_SIZE;
      if (nbd_pread (h, srcbuf, len, off, 0) == -1) {
        /* A backup session's view refuses (EIO) the unchanged areas
         * written since its instant rather than show newer data: no
         * sample there.
         */
        if (view && nbd_get_errno () == EIO) {
          k++;
          continue;
        }
        set_why (why, "read at %" PRIu64 ": %s", off, nbd_get_error ());
        goto out;
      }
      if (layer_pread (q, chainbuf, len, off) == -1) {
        set_why (why, "%s: read at %" PRIu64 ": %s", top, off,
                  layer_last_error ());
        goto out;
      }
      if (memcmp (srcbuf, chainbuf, len) != 0) {
        set_why (why, "the export differs from the chain at offset %"
                  PRIu64 " where bitmap '%s' reports no change: the chain "
                  "belongs to another disk, or the bitmap missed writes or "
                  "was cleared without a backup (found by sampling %zu "
                  "places of the unchanged areas, a heuristic that cannot "
                  "catch every case)", off, opts.bitmap, nsamples);
        goto out;
      }
      k++;
    }
    base += x->length;
  }
  r = 0;

 out:
  layer_close (q);
  return r;
}

const char *
backing_after_merge (const struct manifest *m, size_t i)
{
  if (m->merge && i > 0 && m->backups.ptr[i - 1].index == m->merge->index)
    return m->merge->file;
  return NULL;
}

bool
backing_matches (const char *file, const char *format, const char *expect,
                 const char *also)
{
  if (expect == NULL)
    return file == NULL;
  return file != NULL && format != NULL && strcmp (format, "qcow2") == 0
    && (strcmp (file, expect) == 0
        || (also != NULL && strcmp (file, also) == 0));
}

int
check_backing_names (struct store *st, const struct manifest *m,
                     size_t upto, char **why)
{
  size_t i;

  *why = NULL;
  for (i = 0; i <= upto && i < m->backups.len; ++i) {
    const struct backup_entry *b = &m->backups.ptr[i];
    const char *file;
    struct layer *q;
    bool ok;

    q = layer_open (st, b->file, LAYER_NO_BACKING);
    if (q == NULL) {
      set_why (why, "backup %" PRIi64 " (%s) cannot be opened: %s",
               b->index, b->file, layer_last_error ());
      return -1;
    }
    file = layer_backing_file (q);
    ok = backing_matches (file, layer_backing_format (q), b->backing,
                          backing_after_merge (m, i));
    if (!ok)
      set_why (why, "backup %" PRIi64 " (%s) is backed by %s, the manifest "
               "says %s: the chain is damaged (run '" PROG " verify')",
               b->index, b->file, file ? file : "nothing",
               b->backing ? b->backing : "nothing");
    layer_close (q);
    if (!ok)
      return -1;
  }
  return 0;
}

/* The files of the backups before the last (whose own file
 * check_chain checks): each with the size the manifest records.  A
 * file truncated or grown since it was written fails verify, and
 * restore refuses every point from it on once the damage reaches its
 * data.  Returns 0, or -1 with *why set.
 */
static int
check_earlier_files (struct store *st, const struct manifest *m, char **why)
{
  size_t i;

  for (i = 0; i + 1 < m->backups.len; ++i) {
    const struct backup_entry *b = &m->backups.ptr[i];
    CLEANUP_FREE char *path = store_object_path (st, b->file);
    uint64_t size;
    int r;

    if (path == NULL)
      return -1;
    r = store_stat (st, b->file, &size);
    if (r != 0 || size != b->file_size) {
      set_why (why, "the file %s of backup %" PRIi64 " is %s: the chain "
               "cannot be verified (run '" PROG " verify %s' to see what "
               "else is damaged)", path, b->index,
               r == 1 ? "missing" : r == -1 ? "unreadable"
               : "not of the size it was written with (damaged?)",
               store_location (st));
      return -1;
    }
  }
  return 0;
}

struct object_reader {
  struct store *st;
  const char *name;
  uint64_t size;
};

static ssize_t
read_object_piece (void *opaque, char *buf, size_t len, uint64_t offset)
{
  struct object_reader *r = opaque;
  size_t n = r->size - offset < len ? r->size - offset : len;

  if (n > 0 && store_pread (r->st, r->name, buf, n, offset) == -1)
    return -1;
  return n;
}

/* The SHA-256 of object NAME (SIZE bytes) as hex into HEX, read in
 * pieces: the list of a full backup of a large disk is hundreds of
 * megabytes.  Returns 0, or -1 after printing an error.
 */
static int
sha256_object (struct store *st, const char *name, uint64_t size,
               char hex[65])
{
  struct object_reader r = { .st = st, .name = name, .size = size };

  return sha256_pieces (read_object_piece, &r, hex);
}

/* The checksum lists: without one, verify fails and restore refuses
 * every point from that backup on, so a new layer on top could never be
 * restored.  Every list must exist; the last backup's (the one the new
 * layer is checked against first) must also match its SHA-256 in the
 * manifest.  Returns 0, or -1 with *why set.
 */
static int
check_sums_lists (struct store *st, const struct manifest *m, char **why)
{
  size_t i;

  for (i = 0; i < m->backups.len; ++i) {
    const struct backup_entry *b = &m->backups.ptr[i];
    CLEANUP_FREE char *path = NULL;
    char hex[65];
    uint64_t size;
    int r;

    if (b->sums_file == NULL)   /* an older entry: whole-file SHA-256 */
      continue;
    path = store_object_path (st, b->sums_file);
    if (path == NULL)
      return -1;
    r = store_stat (st, b->sums_file, &size);
    if (r == 0 && i + 1 == m->backups.len &&
        sha256_object (st, b->sums_file, size, hex) == -1)
      r = -1;
    if (r != 0) {
      set_why (why, "the checksum list %s of backup %" PRIi64 " is %s: the "
               "chain cannot be verified, and restore refuses every point "
               "from backup %" PRIi64 " on (run '" PROG " verify %s' to see "
               "what else is damaged)", path, b->index,
               r == 1 ? "missing" : "unreadable", b->index,
               store_location (st));
      return -1;
    }
    if (i + 1 == m->backups.len && strcmp (hex, b->sums_sha256) != 0) {
      set_why (why, "the checksum list %s of backup %" PRIi64 " is damaged "
               "(its SHA-256 is not the manifest's): the chain cannot be "
               "verified, and restore refuses every point from backup %"
               PRIi64 " on (run '" PROG " verify %s' to see what else is "
               "damaged)", path, b->index, b->index, store_location (st));
      return -1;
    }
  }
  return 0;
}

int
check_chain (struct store *st, const struct manifest *m,
             struct nbd_handle *h, const struct disk_identity *id,
             const char *bitmap_context, extent_list *list, char **why)
{
  const struct backup_entry *last = &m->backups.ptr[m->backups.len - 1];
  CLEANUP_FREE char *top = store_object_path (st, last->file);
  uint64_t file_size;
  bool renamed;
  int r;

  *why = NULL;
  if (top == NULL)
    return -1;
  if (check_identity (m, id, &renamed, why) == -1)
    return -1;
  if (m->bitmap && strcmp (m->bitmap, opts.bitmap) != 0) {
    set_why (why, "the chain follows bitmap '%s', not '%s'", m->bitmap,
              opts.bitmap);
    return -1;
  }
  if (nbd_can_meta_context (h, bitmap_context) != 1) {
    set_why (why, "the server does not offer '%s': the bitmap is missing, "
              "inconsistent, or not exported", bitmap_context);
    return -1;
  }
  r = store_stat (st, last->file, &file_size);
  if (r != 0) {
    set_why (why, "the last backup %s is missing%s", top,
             r == -1 ? " or unreadable" : "");
    return -1;
  }
  if (file_size != last->file_size) {
    set_why (why, "the last backup %s has changed size since it was "
              "written (damaged?)", top);
    return -1;
  }
  if (check_earlier_files (st, m, why) == -1 ||
      check_sums_lists (st, m, why) == -1)
    return -1;
  /* The new layer will read through the chain's qcow2 backing names:
   * they must be the manifest's.
   */
  if (check_backing_names (st, m, m->backups.len - 1, why) == -1)
    return -1;
  if (get_extents (h, id->size, bitmap_context, list) == -1) {
    set_why (why, "the dirty extents could not be read");
    return -1;
  }
  /* A view: pulled through --node, or the disk under another name. */
  return spot_check (st, last->file, top, h, id->size, list,
                     opts.nnodes || renamed, why);
}
