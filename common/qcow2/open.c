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

/* Opening and closing images and their backing chains, image info. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byte-order.h"
#include "qcow2-internal.h"

/* The files already in the chain being opened, for cycle detection. */
struct chain {
  dev_t dev[MAX_BACKING_DEPTH + 1];
  ino_t ino[MAX_BACKING_DEPTH + 1];
  int n;
};

static struct qcow2 *open_image (const char *path, int flags, bool raw,
                                 struct chain *chain);

bool
qcow2_probe_fd (int fd)
{
  uint8_t buf[4];

  if (pread (fd, buf, 4, 0) != 4)
    return false;
  return load_be32 (buf) == QCOW2_MAGIC;
}

static size_t
cache_slots (uint64_t cluster_size)
{
  uint64_t n = (4 * 1024 * 1024) / cluster_size;
  return n < 4 ? 4 : n > 64 ? 64 : n;
}

static void
free_image (struct qcow2 *q)
{
  if (q == NULL)
    return;
  free (q->intent_excl);
  if (q->backing)
    qcow2_close (q->backing);
  qcow2_bitmaps_free (q);
  qcow2_free_header (q);
  mcache_free (&q->l2_cache);
  mcache_free (&q->rb_cache);
  free (q->l1);
  free (q->reftable);
  free (q->pending_free);
  if (q->fd >= 0)
    close (q->fd);
  free (q->filename);
  free (q->dirname);
  pthread_mutex_destroy (&q->lock);
  pthread_cond_destroy (&q->inflight_done);
  pthread_rwlock_destroy (&q->io_lock);
  free (q);
}

static int
open_backing (struct qcow2 *q, struct chain *chain)
{
  char *path;
  bool raw;

  if (q->backing_file == NULL || (q->open_flags & QCOW2_OPEN_NO_BACKING))
    return 0;
  if (chain->n > MAX_BACKING_DEPTH)
    return qcow2_error (ELOOP, "%s: backing chain is longer than %d images",
                        q->filename, MAX_BACKING_DEPTH);
  if (q->backing_file[0] == '/')
    path = strdup (q->backing_file);
  else if (asprintf (&path, "%s/%s", q->dirname, q->backing_file) == -1)
    path = NULL;
  if (path == NULL)
    return qcow2_error (errno, "malloc: %m");

  if (q->backing_format == NULL) {
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
      int e = errno;
      qcow2_error (e, "%s: cannot open backing file %s: %m", q->filename,
                   path);
      free (path);
      return -1;
    }
    raw = !qcow2_probe_fd (fd);
    close (fd);
  }
  else if (strcmp (q->backing_format, "qcow2") == 0)
    raw = false;
  else if (strcmp (q->backing_format, "raw") == 0 ||
           strcmp (q->backing_format, "file") == 0)
    raw = true;
  else {
    qcow2_error (ENOTSUP, "%s: backing file format '%s' is not supported "
                 "(only qcow2 and raw)", q->filename, q->backing_format);
    free (path);
    return -1;
  }
  q->backing = open_image (path, ((q->open_flags & ~QCOW2_OPEN_CHECK) |
                                  QCOW2_OPEN_RDONLY |
                                  QCOW2_OPEN_NO_BITMAP_IN_USE), raw, chain);
  free (path);
  return q->backing ? 0 : -1;
}

/* A writable open of a dirty image (a crash with lazy refcounts) rebuilds
 * the refcounts from the metadata, then clears the dirty bit, as QEMU
 * does.  Anything worse than wrong refcounts is refused.
 */
static int
repair_dirty (struct qcow2 *q)
{
  struct qcow2_check_result res;

  if (qcow2_check (q, QCOW2_CHECK_REPAIR_LEAKS | QCOW2_CHECK_REPAIR_ALL,
                   &res, NULL, NULL) == -1) {
    char why[512];
    snprintf (why, sizeof why, "%s", qcow2_last_error ());
    return qcow2_error (errno, "%s: image is dirty and repairing its "
                        "refcounts failed: %s", q->filename, why);
  }
  if (res.corruptions > res.corruptions_fixed)
    return qcow2_error (EIO, "%s: image is dirty and has corruption that "
                        "cannot be repaired automatically; open it "
                        "read-only or run 'qemu-img check -r all'",
                        q->filename);
  q->incompat &= ~INCOMPAT_DIRTY;
  if (qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1)
    return -1;
  return 0;
}

/* A handle for PATH, nothing opened yet. */
static struct qcow2 *
new_handle (const char *path, int flags, bool raw)
{
  struct qcow2 *q = calloc (1, sizeof *q);
  pthread_rwlockattr_t attr;
  char *tmp;

  if (q == NULL)
    return qcow2_error_null (errno, "calloc: %m");
  q->fd = -1;
  pthread_mutex_init (&q->lock, NULL);
  pthread_cond_init (&q->inflight_done, NULL);
  /* Writers (flushes that release freed clusters) must not starve. */
  pthread_rwlockattr_init (&attr);
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&q->io_lock, &attr);
  pthread_rwlockattr_destroy (&attr);
  q->open_flags = flags;
  q->readonly = !!(flags & QCOW2_OPEN_RDONLY);
  q->is_raw = raw;
  q->filename = strdup (path);
  tmp = strdup (path);
  if (q->filename == NULL || tmp == NULL) {
    free (tmp);
    qcow2_error (errno, "strdup: %m");
    free_image (q);
    return NULL;
  }
  q->dirname = strdup (dirname (tmp));
  free (tmp);
  if (q->dirname == NULL) {
    qcow2_error (errno, "strdup: %m");
    free_image (q);
    return NULL;
  }
  return q;
}

/* Opens the file, refuses a cycle in the backing chain, and takes
 * QEMU's locks before anything is read or written.  Backing files
 * (opened read-only) take the read-only locks, as QEMU's do.
 */
static int
open_file (struct qcow2 *q, struct chain *chain, struct stat *st)
{
  int i;

  q->fd = open (q->filename, (q->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (q->fd == -1)
    return qcow2_error (errno, "%s: %m", q->filename);
  if (fstat (q->fd, st) == -1)
    return qcow2_error (errno, "%s: fstat: %m", q->filename);
  for (i = 0; i < chain->n; i++)
    if (chain->dev[i] == st->st_dev && chain->ino[i] == st->st_ino)
      return qcow2_error (ELOOP, "%s: backing chain contains a cycle",
                          q->filename);
  chain->dev[chain->n] = st->st_dev;
  chain->ino[chain->n] = st->st_ino;
  chain->n++;
  return qcow2_lock_file (q, !q->readonly,
                          q->readonly &&
                          (q->open_flags & QCOW2_OPEN_FORCE_SHARE));
}

/* The header (in the first cluster at most) of a file of FILE_SIZE
 * bytes.  An image marked corrupt opens read-only only.  The first 64 KiB
 * are read, and the rest of the cluster only if its header says it is
 * larger (up to 2 MiB, which would cost an open of a small image more
 * than its bitmaps).
 */
#define HEADER_FIRST_READ (64 * 1024)

static int
read_header (struct qcow2 *q, uint64_t file_size)
{
  size_t len = file_size < HEADER_FIRST_READ ? file_size : HEADER_FIRST_READ;
  uint8_t *buf = malloc (len + 1);
  uint32_t cluster_bits;
  int r;

  if (buf == NULL)
    return qcow2_error (errno, "malloc: %m");
  r = qcow2_file_pread (q, buf, len, 0);
  cluster_bits = len >= 24 ? load_be32 (buf + 20) : 0;
  if (r == 0 && cluster_bits <= MAX_CLUSTER_BITS
      && (UINT64_C (1) << cluster_bits) > len && file_size > len) {
    size_t more = file_size < (UINT64_C (1) << cluster_bits) ? file_size
      : UINT64_C (1) << cluster_bits;
    uint8_t *p = realloc (buf, more + 1);

    if (p == NULL) {
      free (buf);
      return qcow2_error (errno, "malloc: %m");
    }
    buf = p;
    r = qcow2_file_pread (q, buf + len, more - len, len);
    len = more;
  }
  if (r == 0)
    r = qcow2_parse_header (q, buf, len, file_size);
  free (buf);
  if (r == -1)
    return -1;
  q->host_end = (file_size + q->cluster_size - 1) & ~(q->cluster_size - 1);
  q->zero_from = q->host_end;
  {
    const char *d = getenv ("NBDCBT_QCOW2_TEST_ALLOC_DELAY_US");
    if (d)
      q->test_alloc_delay_us = strtoul (d, NULL, 10);
    d = getenv ("NBDCBT_QCOW2_TEST_FAIL_NEW_L2");
    if (d)
      q->test_fail_new_l2 = strtoul (d, NULL, 10);
  }
  if (!q->readonly && q->corrupt_at_open)
    return qcow2_error (EROFS, "%s: image is marked corrupt; it can only "
                        "be opened read-only (repair with 'qemu-img check "
                        "-r all')", q->filename);
  return 0;
}

/* The refcount table, the L1 table and the metadata caches. */
static int
load_tables (struct qcow2 *q)
{
  if (qcow2_load_reftable (q) == -1 || qcow2_load_l1 (q) == -1)
    return -1;
  if (mcache_init (&q->l2_cache, cache_slots (q->cluster_size), true) == -1
      || mcache_init (&q->rb_cache, cache_slots (q->cluster_size), false)
         == -1)
    return -1;
  return 0;
}

/* The bitmap directory.  An extension without autoclear bit 0 (or in a
 * v2 image) is inconsistent and ignored, as in QEMU: *DROPPED says so,
 * for a writable open to remove it from the header.
 */
static int
load_bitmaps (struct qcow2 *q, bool *dropped)
{
  *dropped = false;
  if (q->has_bitmaps_ext &&
      (!(q->autoclear & AUTOCLEAR_BITMAPS) || q->version < 3)) {
    *dropped = true;
    q->has_bitmaps_ext = false;
    q->nb_bitmaps = 0;
  }
  if (q->has_bitmaps_ext && qcow2_bitmaps_load_directory (q) == -1)
    return -1;
  return 0;
}

/* A writable open's first write: unknown autoclear bits are cleared and
 * an inconsistent bitmaps extension dropped (its clusters leak), as QEMU
 * does, before anything else is written.
 */
static int
clear_autoclear (struct qcow2 *q, bool drop_bitmaps_ext)
{
  uint64_t ac = q->autoclear & AUTOCLEAR_MASK & ~AUTOCLEAR_DATA_FILE_RAW;

  if (!q->has_bitmaps_ext)
    ac &= ~AUTOCLEAR_BITMAPS;
  if (ac == q->autoclear && !drop_bitmaps_ext)
    return 0;
  q->autoclear = ac;
  if (qcow2_write_header (q) == -1 || qcow2_file_sync (q) == -1)
    return -1;
  return 0;
}

/* Opens PATH (a qcow2 image, or a raw backing file if RAW) and its
 * backing chain.  Everything is read and checked, the backing chain
 * included, before the first write, so that an image that is refused
 * stays as it was.
 */
static struct qcow2 *
open_image (const char *path, int flags, bool raw, struct chain *chain)
{
  struct qcow2 *q = new_handle (path, flags, raw);
  struct stat st;
  bool drop_bitmaps_ext;

  if (q == NULL)
    return NULL;
  if (open_file (q, chain, &st) == -1)
    goto err;
  if (raw) {
    q->size = q->file_size = st.st_size;
    return q;
  }
  if (read_header (q, st.st_size) == -1 ||
      load_tables (q) == -1 ||
      load_bitmaps (q, &drop_bitmaps_ext) == -1 ||
      open_backing (q, chain) == -1)
    goto err;
  qcow2_intent_open (q);
  if (!q->readonly &&
      (clear_autoclear (q, drop_bitmaps_ext) == -1 ||
       (q->dirty_at_open && repair_dirty (q) == -1)))
    goto err;
  return q;

 err:
  free_image (q);
  return NULL;
}

struct qcow2 *
qcow2_open (const char *path, int flags)
{
  struct chain chain = { .n = 0 };

  return open_image (path, flags, false, &chain);
}

int
qcow2_flush (struct qcow2 *q)
{
  int r;

  if (q->readonly || q->is_raw)
    return 0;
  pthread_mutex_lock (&q->lock);
  if (q->nr_pending_free == 0) {
    r = qcow2_flush_locked (q);
    pthread_mutex_unlock (&q->lock);
    return r;
  }
  pthread_mutex_unlock (&q->lock);
  /* Freed clusters become reusable: no data I/O may be in flight. */
  pthread_rwlock_wrlock (&q->io_lock);
  pthread_mutex_lock (&q->lock);
  r = qcow2_flush_locked (q);
  pthread_mutex_unlock (&q->lock);
  pthread_rwlock_unlock (&q->io_lock);
  return r;
}

int
qcow2_close (struct qcow2 *q)
{
  int r = 0;

  if (q == NULL)
    return 0;
  if (!q->readonly && !q->is_raw) {
    if (q->write_error)
      r = qcow2_error (EIO, "%s: an earlier metadata write failed; the "
                       "image may have leaked clusters", q->filename);
    else
      r = qcow2_flush (q);
  }
  free_image (q);
  return r;
}

void
qcow2_get_info (struct qcow2 *q, struct qcow2_info *info)
{
  memset (info, 0, sizeof *info);
  info->size = q->size;
  if (q->is_raw)
    return;
  info->version = q->version;
  info->cluster_size = q->cluster_size;
  info->refcount_bits = q->refcount_bits;
  info->lazy_refcounts = !!(q->compat & COMPAT_LAZY_REFCOUNTS);
  info->extended_l2 = q->extended_l2;
  info->dirty = q->dirty_at_open;
  info->corrupt = q->corrupt_at_open;
  info->compression_type = q->compression_type;
  info->backing_file = q->backing_file;
  info->backing_format = q->backing_format;
  info->nb_bitmaps = q->nr_bms;
}

uint64_t
qcow2_get_size (struct qcow2 *q)
{
  return q->size;
}

struct qcow2 *
qcow2_backing (struct qcow2 *q)
{
  return q->backing;
}
