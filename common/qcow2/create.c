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

/* Creating an image: header, refcount table and blocks, empty L1. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byte-order.h"
#include "qcow2-internal.h"

/* The size of the backing file named as the image would resolve it. */
static int
backing_size (const char *path, const struct qcow2_create_opts *opts,
              uint64_t *size)
{
  char *tmp = strdup (path), *full = NULL;
  struct qcow2 *b;
  int fd;

  if (tmp == NULL)
    return qcow2_error (errno, "strdup: %m");
  if (opts->backing_file[0] == '/')
    full = strdup (opts->backing_file);
  else if (asprintf (&full, "%s/%s", dirname (tmp), opts->backing_file) == -1)
    full = NULL;
  free (tmp);
  if (full == NULL)
    return qcow2_error (errno, "malloc: %m");
  fd = open (full, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    int e = errno;
    qcow2_error (e, "cannot open backing file %s: %m", full);
    free (full);
    return -1;
  }
  if ((opts->backing_format && strcmp (opts->backing_format, "raw") == 0) ||
      (opts->backing_format == NULL && !qcow2_probe_fd (fd))) {
    off_t end = lseek (fd, 0, SEEK_END);
    close (fd);
    free (full);
    if (end == -1)
      return qcow2_error (errno, "lseek: %m");
    *size = end;
    return 0;
  }
  close (fd);
  b = qcow2_open (full, QCOW2_OPEN_RDONLY | QCOW2_OPEN_NO_BACKING |
                  QCOW2_OPEN_NO_BITMAP_IN_USE);
  free (full);
  if (b == NULL)
    return -1;
  *size = qcow2_get_size (b);
  qcow2_close (b);
  return 0;
}

int
qcow2_create (const char *path, const struct qcow2_create_opts *opts)
{
  struct qcow2 q = { .fd = -1 };
  uint64_t cs, size = opts->size, l1_size, l, k = 1, t = 1, n, i;
  uint32_t cluster_size = opts->cluster_size ? opts->cluster_size : 65536;
  int refcount_bits = opts->refcount_bits ? opts->refcount_bits : 16;
  int version = opts->version ? opts->version : 3;
  uint8_t *buf = NULL;
  int r = -1;

  q.filename = (char *) path;
  if (cluster_size < 512 || cluster_size > 2 * 1024 * 1024 ||
      (cluster_size & (cluster_size - 1)))
    return qcow2_error (EINVAL, "cluster size must be a power of two "
                        "between 512 and 2M");
  if (refcount_bits < 1 || refcount_bits > 64 ||
      (refcount_bits & (refcount_bits - 1)))
    return qcow2_error (EINVAL, "refcount width must be a power of two "
                        "from 1 to 64 bits");
  if (version != 2 && version != 3)
    return qcow2_error (EINVAL, "version must be 2 or 3");
  if (version == 2 && (refcount_bits != 16 || opts->lazy_refcounts ||
                       opts->extended_l2 || opts->compression_type))
    return qcow2_error (EINVAL, "version 2 images support only 16-bit "
                        "refcounts, no lazy refcounts, extended L2 or zstd");
  if (opts->extended_l2 && cluster_size < 16384)
    return qcow2_error (EINVAL, "extended L2 needs a cluster size of at "
                        "least 16K");
  if (opts->compression_type < 0 || opts->compression_type > 1)
    return qcow2_error (EINVAL, "unknown compression type");
  if (opts->backing_format && strcmp (opts->backing_format, "raw") != 0 &&
      strcmp (opts->backing_format, "qcow2") != 0)
    return qcow2_error (EINVAL, "backing format must be raw or qcow2");
  if (opts->backing_file &&
      (strlen (opts->backing_file) == 0 ||
       strlen (opts->backing_file) > MAX_BACKING_FILE_SIZE))
    return qcow2_error (EINVAL, "backing file name is empty or longer "
                        "than 1023 bytes");
  if (opts->backing_file && size == 0 &&
      backing_size (path, opts, &size) == -1)
    return -1;
  if (size > (UINT64_C (1) << 62))
    return qcow2_error (EINVAL, "virtual size too large");

  q.version = version;
  q.cluster_bits = __builtin_ctz (cluster_size);
  q.cluster_size = cs = cluster_size;
  q.size = size;
  q.refcount_order = __builtin_ctz (refcount_bits);
  q.refcount_bits = refcount_bits;
  q.rb_entries = cs * 8 / refcount_bits;
  q.extended_l2 = opts->extended_l2;
  q.l2_entries = cs / (opts->extended_l2 ? 16 : 8);
  if (opts->lazy_refcounts)
    q.compat |= COMPAT_LAZY_REFCOUNTS;
  if (opts->extended_l2)
    q.incompat |= INCOMPAT_EXTL2;
  if (opts->compression_type) {
    q.incompat |= INCOMPAT_COMPRESSION;
    q.compression_type = opts->compression_type;
  }

  l1_size = (size + q.l2_entries * cs - 1) / (q.l2_entries * cs);
  if (l1_size * 8 > MAX_L1_BYTES)
    return qcow2_error (EFBIG, "virtual size too large for the cluster "
                        "size (L1 table over 32 MiB)");
  l = (l1_size * 8 + cs - 1) / cs;
  for (;;) {
    n = 1 + t + k + l;
    uint64_t k2 = (n + q.rb_entries - 1) / q.rb_entries;
    uint64_t t2 = (k2 * 8 + cs - 1) / cs;
    if (k2 == k && t2 == t)
      break;
    k = k2;
    t = t2;
  }
  q.refcount_table_offset = cs;
  q.refcount_table_clusters = t;
  q.l1_size = l1_size;
  q.l1_table_offset = l1_size ? (1 + t + k) * cs : 0;
  if (opts->backing_file) {
    q.backing_file = strdup (opts->backing_file);
    if (q.backing_file == NULL)
      return qcow2_error (errno, "strdup: %m");
  }
  if (opts->backing_format) {
    q.backing_format = strdup (opts->backing_format);
    if (q.backing_format == NULL) {
      free (q.backing_file);
      return qcow2_error (errno, "strdup: %m");
    }
  }

  /* Truncated only once QEMU's write locks are ours, as qemu-img create
   * does: an image another process uses is refused, not destroyed.
   */
  q.fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (q.fd == -1) {
    qcow2_error (errno, "%s: %m", path);
    goto out;
  }
  if (qcow2_lock_file (&q, true, false) == -1)
    goto out;
  if (ftruncate (q.fd, 0) == -1) {
    qcow2_error (errno, "%s: ftruncate: %m", path);
    goto out;
  }
  buf = calloc (t + k + l, cs);
  if (buf == NULL) {
    qcow2_error (errno, "calloc: %m");
    goto out;
  }
  for (i = 0; i < k; i++)
    store_be64 (buf + i * 8, (1 + t + i) * cs);
  for (i = 0; i < n; i++)
    rb_set (buf + (t + i / q.rb_entries) * cs, refcount_bits,
            i % q.rb_entries, 1);
  if (qcow2_file_pwrite (&q, buf, (t + k + l) * cs, cs) == -1)
    goto out;
  if (qcow2_write_header (&q) == -1 || qcow2_file_sync (&q) == -1)
    goto out;
  r = 0;
 out:
  free (buf);
  if (q.fd >= 0 && close (q.fd) == -1 && r == 0)
    r = qcow2_error (errno, "%s: close: %m", path);
  free (q.backing_file);
  free (q.backing_format);
  return r;
}
