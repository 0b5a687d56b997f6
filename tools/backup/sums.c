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

/* nbdcbt-backup: the checksum list of a backup file.
 *
 * DIR/backup-NNNN.sums describes everything the backup wrote into its
 * qcow2 layer, one line per write, sorted by guest offset:
 *
 *   nbdcbt-backup-sums 2 ALGORITHM
 *   size SIZE                   the disk's size in bytes
 *   data OFFSET LENGTH HEX      LENGTH bytes of guest data with this sum
 *   zero OFFSET LENGTH          recorded as zero (zero clusters)
 *
 * The size line is what guards the manifest's "virtual-size": the qcow2
 * layer only holds it rounded up to 512 bytes.  Version 1 lists (written
 * before it) have no size line; both are read.
 *
 * ALGORITHM is "crc32c-4" (the CRC-32C of each quarter of the block),
 * "umac128 KEY" (UMAC-128, RFC 4418, under the random KEY in hex with
 * the block's OFFSET as the nonce, 8 bytes big endian) or "sha256"; see
 * checksum.c.
 *
 * The manifest holds the SHA-256 of this file, so the list itself cannot
 * be damaged unnoticed.  Checking a backup reads every listed range back
 * through layer.h (the layer alone, without its backing file)
 * and compares, and walks the layer's allocation: every range the layer
 * decides (data or zero clusters) must be listed, so damage to the L2
 * tables (a cluster that appears, a zero flag that is set) is found as
 * well as a flipped data byte.  Refcounts are left to qcow2_check.
 */
#include <config.h>

#include <ctype.h>
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
#include "utils.h"

#define SUMS_MAGIC "nbdcbt-backup-sums "
/* A data record is one read request: at most 32M (--request-size). */
#define MAX_DATA_RECORD (32 * 1024 * 1024)

int
sums_format (const struct sum_params *params, const sum_list *list,
             char **text_ret, size_t *size_ret, char hex[65])
{
  char *text = NULL;
  unsigned char digest[SUM_SIZE];
  size_t size = 0, i;
  FILE *fp;

  /* Built in memory so that its checksum is of exactly these bytes. */
  fp = open_memstream (&text, &size);
  if (fp == NULL) {
    error_errno ("open_memstream");
    return -1;
  }
  fprintf (fp, "%s%d %s", SUMS_MAGIC, params->has_disk_size ? 2 : 1,
           sum_algorithm_name (params->algorithm));
  if (params->algorithm == SUM_UMAC128) {
    char k[2 * SUM_KEY_SIZE + 1];
    hex_bytes (params->key, SUM_KEY_SIZE, k);
    fprintf (fp, " %s", k);
  }
  fputc ('\n', fp);
  if (params->has_disk_size)
    fprintf (fp, "size %" PRIu64 "\n", params->disk_size);
  for (i = 0; i < list->len; ++i) {
    const struct sum_record *r = &list->ptr[i];
    if (r->kind == SUM_DATA) {
      char h[65];
      hex_bytes (r->digest, sum_size (params->algorithm), h);
      fprintf (fp, "data %" PRIu64 " %" PRIu64 " %s\n", r->offset,
               r->length, h);
    }
    else
      fprintf (fp, "zero %" PRIu64 " %" PRIu64 "\n", r->offset, r->length);
  }
  if (fclose (fp) == EOF) {
    error_errno ("open_memstream");
    free (text);
    return -1;
  }
  sum_data (text, size, digest);
  hex_digest (digest, hex);
  *text_ret = text;
  *size_ret = size;
  return 0;
}

int
sums_save (const char *path, const struct sum_params *params,
           const sum_list *list, char hex[65])
{
  CLEANUP_FREE char *text = NULL;
  size_t size;
  int fd, ret = -1;

  if (sums_format (params, list, &text, &size, hex) == -1)
    return -1;
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1) {
    error_errno ("%s", path);
    return -1;
  }
  /* Not fsync'd here (the caller does, after the qcow2 file's syncs):
   * its blocks are allocated now, so that those syncs commit them and
   * the fsync has nothing left to wait for.
   */
  if (full_write (fd, text, size) == -1)
    error_errno ("%s: write", path);
#ifdef SYNC_FILE_RANGE_WRITE
  else if (sync_file_range (fd, 0, 0, SYNC_FILE_RANGE_WRITE) == -1 &&
           errno != ENOSYS && errno != EINVAL && errno != ESPIPE)
    error_errno ("%s: sync_file_range", path);
#endif
  else
    ret = 0;
  if (close (fd) == -1 && ret == 0) {
    error_errno ("%s: close", path);
    ret = -1;
  }
  return ret;
}

/* Read and parse the list, checking it against the manifest's digest.
 * Returns the number of problems (0 with *LIST filled).
 */
/* Parse LEN hex digits at P into LEN/2 bytes. */
static bool
parse_hex (const char *p, size_t len, unsigned char *out)
{
  size_t i;

  for (i = 0; i < len; ++i) {
    int v;
    if (p[i] >= '0' && p[i] <= '9') v = p[i] - '0';
    else if (p[i] >= 'a' && p[i] <= 'f') v = p[i] - 'a' + 10;
    else return false;
    if (i % 2 == 0)
      out[i / 2] = v << 4;
    else
      out[i / 2] |= v;
  }
  return true;
}

static int
load_sums (const char *what, struct store *st, const char *name,
           const char *path, const char *want_hex,
           struct sum_params *params, sum_list *list)
{
  CLEANUP_FREE char *text = NULL;
  unsigned char digest[SUM_SIZE];
  char hex[65], *p, *end;
  size_t len;
  int got, version;

  got = store_get (st, name, &text, &len);
  if (got == 1)
    error ("%s: %s: %s", what, path, strerror (ENOENT));
  if (got != 0)
    return 1;
  sum_data (text, len, digest);
  hex_digest (digest, hex);
  if (strcmp (hex, want_hex) != 0) {
    error ("%s: %s: checksum mismatch, the checksum list is damaged "
           "(SHA-256 %s, the manifest says %s)", what, path, hex, want_hex);
    return 1;
  }
  /* Its digest matched: anything malformed now is our own bug. */
  memset (params, 0, sizeof *params);
  p = text + strlen (SUMS_MAGIC);
  if (strncmp (text, SUMS_MAGIC, strlen (SUMS_MAGIC)) != 0 ||
      (*p != '1' && *p != '2') || p[1] != ' ')
    goto bad;
  version = *p - '0';
  p += 2;
  if (strncmp (p, "sha256\n", 7) == 0) {
    params->algorithm = SUM_SHA256;
    p += 7;
  }
  else if (strncmp (p, "crc32c-4\n", 9) == 0) {
    params->algorithm = SUM_CRC32C4;
    p += 9;
  }
  else if (strncmp (p, "umac128 ", 8) == 0 &&
           parse_hex (p + 8, 2 * SUM_KEY_SIZE, params->key) &&
           p[8 + 2 * SUM_KEY_SIZE] == '\n') {
    params->algorithm = SUM_UMAC128;
    p += 8 + 2 * SUM_KEY_SIZE + 1;
  }
  else
    goto bad;
  if (version >= 2) {
    if (strncmp (p, "size ", 5) != 0 || !isdigit ((unsigned char) p[5]))
      goto bad;
    errno = 0;
    params->disk_size = strtoull (p + 5, &end, 10);
    if (errno != 0 || *end != '\n')
      goto bad;
    params->has_disk_size = true;
    p = end + 1;
  }

  for (; *p; p = end) {
    struct sum_record r = { 0 };
    size_t hlen = 2 * sum_size (params->algorithm);
    char kind[8];
    int n = 0;

    end = strchr (p, '\n');
    if (end == NULL)
      goto bad;
    *end++ = '\0';
    if (sscanf (p, "%7s %" SCNu64 " %" SCNu64 " %n", kind, &r.offset,
                &r.length, &n) != 3)
      goto bad;
    if (strcmp (kind, "zero") == 0)
      r.kind = SUM_ZERO;
    else if (strcmp (kind, "data") == 0 && r.length <= MAX_DATA_RECORD &&
             strlen (p + n) == hlen && parse_hex (p + n, hlen, r.digest))
      r.kind = SUM_DATA;
    else
      goto bad;
    if (r.length == 0 ||
        (list->len > 0 && r.offset < list->ptr[list->len - 1].offset +
         list->ptr[list->len - 1].length))
      goto bad;
    if (sum_list_append (list, r) == -1) {
      error_errno ("malloc");
      return 1;
    }
  }
  return 0;

 bad:
  error ("%s: %s: malformed checksum list", what, path);
  return 1;
}

/* Every range that the layer decides must be listed.  DISK_SIZE is the
 * disk's true size: the file may be up to 511 bytes larger (QCOW2_SIZE),
 * and that padding must read as zero.
 */
static int
check_coverage (const char *what, const char *path, struct layer *q,
                const sum_list *list, uint64_t disk_size)
{
  uint64_t size = layer_size (q), pos = 0;
  size_t j = 0;

  if (disk_size < size) {
    char pad[512];

    if (size - disk_size > sizeof pad ||
        layer_pread (q, pad, size - disk_size, disk_size) == -1) {
      error ("%s: %s: cannot read the padding after the disk's %" PRIu64
             " bytes: %s", what, path, disk_size,
             size - disk_size > sizeof pad ? "the file is too large"
             : layer_last_error ());
      return 1;
    }
    if (!is_zero (pad, size - disk_size)) {
      error ("%s: %s: the file is damaged: the padding after the disk's %"
             PRIu64 " bytes is not zero", what, path, disk_size);
      return 1;
    }
    size = disk_size;
  }

  while (pos < size) {
    uint64_t pnum, end;
    int status, depth;

    if (layer_block_status (q, pos, size - pos, &pnum, &status,
                            &depth) == -1) {
      error ("%s: %s: block status at %" PRIu64 ": %s", what, path, pos,
             layer_last_error ());
      return 1;
    }
    if (pnum == 0)
      break;
    end = pos + pnum;
    if (status & QCOW2_STATUS_ALLOCATED) {
      uint64_t p = pos;
      while (p < end) {
        while (j < list->len &&
               list->ptr[j].offset + list->ptr[j].length <= p)
          j++;
        if (j == list->len || list->ptr[j].offset > p) {
          error ("%s: %s: the file is damaged: it has %s at offset %"
                 PRIu64 " that the backup did not write", what, path,
                 status & QCOW2_STATUS_ZERO ? "zero clusters" : "data", p);
          return 1;
        }
        p = list->ptr[j].offset + list->ptr[j].length;
      }
    }
    pos = end;
  }
  return 0;
}

/* Read back every record.  Returns the number of problems (at most one:
 * the first damaged range is named).
 */
static int
check_records (const char *what, const char *path, struct layer *q,
               struct summer *summer, const sum_list *list)
{
  CLEANUP_FREE char *buf = NULL;
  uint64_t size = layer_size (q);
  size_t i;

  for (i = 0; i < list->len; ++i) {
    const struct sum_record *r = &list->ptr[i];
    unsigned char digest[SUM_SIZE];

    if (r->offset > size || r->length > size - r->offset) {
      error ("%s: %s: the checksum list goes past the end of the disk",
             what, path);
      return 1;
    }
    if (r->kind == SUM_ZERO) {
      uint64_t pos = r->offset, end = r->offset + r->length;
      while (pos < end) {
        uint64_t pnum;
        int status, depth;
        if (layer_block_status (q, pos, end - pos, &pnum, &status,
                                &depth) == -1) {
          error ("%s: %s: block status at %" PRIu64 ": %s", what, path, pos,
                 layer_last_error ());
          return 1;
        }
        if ((status & (QCOW2_STATUS_ALLOCATED | QCOW2_STATUS_ZERO)) !=
            (QCOW2_STATUS_ALLOCATED | QCOW2_STATUS_ZERO)) {
          /* Allocated data may still read as zero: look. */
          uint64_t k, n = pnum;
          if (!(status & QCOW2_STATUS_ALLOCATED))
            goto damaged;
          if (buf == NULL && (buf = malloc (MAX_DATA_RECORD)) == NULL) {
            error_errno ("malloc");
            return 1;
          }
          for (k = 0; k < n; k += MAX_DATA_RECORD) {
            uint64_t m = n - k < MAX_DATA_RECORD ? n - k : MAX_DATA_RECORD;
            if (layer_pread (q, buf, m, pos + k) == -1) {
              error ("%s: %s: read at %" PRIu64 ": %s", what, path, pos + k,
                     layer_last_error ());
              return 1;
            }
            if (!is_zero (buf, m))
              goto damaged;
          }
        }
        pos += pnum;
      }
      continue;
    }
    if (buf == NULL && (buf = malloc (MAX_DATA_RECORD)) == NULL) {
      error_errno ("malloc");
      return 1;
    }
    if (layer_pread (q, buf, r->length, r->offset) == -1) {
      error ("%s: %s: read at %" PRIu64 ": %s", what, path, r->offset,
             layer_last_error ());
      return 1;
    }
    summer_sum (summer, r->offset, buf, r->length, digest);
    if (memcmp (digest, r->digest, SUM_SIZE) != 0)
      goto damaged;
    continue;

  damaged:
    error ("%s: %s: checksum mismatch, the file is damaged (guest data "
           "at offset %" PRIu64 ", %" PRIu64 " bytes)", what, path,
           r->offset, r->length);
    return 1;
  }
  return 0;
}

int
check_contents (const char *what, struct store *st,
                const struct backup_entry *b, uint64_t disk_size)
{
  CLEANUP_FREE char *path = store_object_path (st, b->file);
  CLEANUP_FREE char *sums_path = NULL;
  sum_list list = empty_vector;
  struct sum_params params;
  struct summer *summer = NULL;
  struct layer *q;
  int bad;

  if (path == NULL)
    return 1;
  if (b->sums_file == NULL) {
    /* An older entry (only in directories): the SHA-256 of the whole
     * file.
     */
    char hex[65];
    int fd, r;

    if (store_dir (st) == NULL) {
      error ("%s: %s: no checksum list", what, path);
      return 1;
    }
    fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
      error ("%s: backup %" PRIi64 ": %s: %s", what, b->index, path,
             strerror (errno));
      return 1;
    }
    r = sha256_fd (fd, hex);
    close (fd);
    if (r == -1)
      return 1;
    if (strcmp (hex, b->sha256) != 0) {
      error ("%s: %s: checksum mismatch, the file is damaged "
             "(SHA-256 %s, the manifest says %s)", what, path, hex,
             b->sha256);
      return 1;
    }
    return 0;
  }

  sums_path = store_object_path (st, b->sums_file);
  if (sums_path == NULL)
    return 1;
  bad = load_sums (what, st, b->sums_file, sums_path, b->sums_sha256,
                   &params, &list);
  if (bad)
    goto out;
  if (params.has_disk_size && params.disk_size != disk_size) {
    error ("%s: %s: the manifest's virtual size is %" PRIu64 " bytes, the "
           "backup was of a disk of %" PRIu64 " (the manifest is damaged)",
           what, path, disk_size, params.disk_size);
    bad = 1;
    goto out;
  }
  summer = summer_new (&params);
  if (summer == NULL) {
    bad = 1;
    goto out;
  }
  q = layer_open (st, b->file, LAYER_NO_BACKING);
  if (q == NULL) {
    error ("%s: %s: not a valid qcow2 image: %s", what, path,
           layer_last_error ());
    bad = 1;
    goto out;
  }
  bad = check_records (what, path, q, summer, &list);
  if (!bad)
    bad = check_coverage (what, path, q, &list, disk_size);
  layer_close (q);

 out:
  summer_free (summer);
  free (list.ptr);
  return bad;
}
