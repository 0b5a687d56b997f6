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

/* nbdcbt-backup: change the backing file name in the header of a qcow2
 * layer of a chain (what 'qemu-img rebase -u' does, and QEMU's
 * block-commit to the overlay above the committed layers).
 *
 * Prune needs the change to be atomic: a process killed at any moment
 * must leave the layer naming the old backing file or the new one.  The
 * layer is therefore never written in place: it is copied through a
 * store upload with the header changed, and the upload's commit replaces
 * it whole (a directory: DIR/.NAME.part fsync'd and renamed over NAME;
 * an object store: the new object replaces the old at once).  The data
 * is copied unchanged, so the layer's checksum list stays right.  This
 * costs one copy of the layer, an incremental; the merge that comes
 * before it writes the whole disk.
 *
 * Only the backing file's size field (offset 16) and the name change.
 * The name must be the last thing in the first 4K of the header (as in
 * the files nbdcbt-backup writes); a file laid out otherwise is refused
 * rather than rewritten.
 */
#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "byte-order.h"
#include "cleanup.h"
#include "store.h"

#define HEADER_PAGE 4096
#define COPY_CHUNK (4 * 1024 * 1024)

/* Change the name in the header page BUF.  Returns 0 when changed, 1
 * if it already names NEW_NAME, -1 after an error about PATH.
 */
static int
patch_header (unsigned char *buf, const char *path, const char *old_name,
              const char *new_name)
{
  uint64_t off = load_be64 (buf + 8);
  uint32_t old_len = load_be32 (buf + 16), new_len = strlen (new_name);
  uint32_t end, i;

  if (load_be32 (buf) != 0x514649fb) {
    error ("%s: not a qcow2 file", path);
    return -1;
  }
  /* OFF comes from the file: compared so that no sum can wrap. */
  if (off >= 72 && off <= HEADER_PAGE && new_len <= HEADER_PAGE - off &&
      old_len == new_len && memcmp (buf + off, new_name, new_len) == 0)
    return 1;
  if (off < 72 || off > HEADER_PAGE || old_len > HEADER_PAGE - off ||
      new_len > HEADER_PAGE - off || old_len != strlen (old_name) ||
      memcmp (buf + off, old_name, old_len) != 0) {
    error ("%s: the header does not name the backing file %s where "
           "expected; not changed", path, old_name);
    return -1;
  }
  /* Nothing may follow the name in the page (the rest is zeroes). */
  for (i = off + old_len; i < HEADER_PAGE; ++i)
    if (buf[i] != 0) {
      error ("%s: data follows the backing file name in the header; "
             "not changed", path);
      return -1;
    }
  end = off + (old_len > new_len ? old_len : new_len);
  memset (buf + off, 0, end - off);
  memcpy (buf + off, new_name, new_len);
  store_be32 (buf + 16, new_len);
  return 0;
}

int
layer_set_backing (struct store *st, const char *name, const char *old_name,
                   const char *new_name)
{
  CLEANUP_FREE char *path = store_object_path (st, name);
  CLEANUP_FREE unsigned char *head = NULL;
  CLEANUP_FREE char *buf = NULL;
  struct store_upload *u;
  uint64_t size, off;
  int r;

  if (path == NULL)
    return -1;
  r = store_stat (st, name, &size);
  if (r == 1)
    error ("%s: %s", path, strerror (ENOENT));
  if (r != 0)
    return -1;
  if (size < HEADER_PAGE) {
    error ("%s: too small for a qcow2 layer", path);
    return -1;
  }
  if ((head = malloc (HEADER_PAGE)) == NULL ||
      (buf = malloc (COPY_CHUNK)) == NULL) {
    error_errno ("malloc");
    return -1;
  }
  if (store_pread (st, name, head, HEADER_PAGE, 0) == -1)
    return -1;
  r = patch_header (head, path, old_name, new_name);
  if (r != 0)
    return r == 1 ? 0 : -1;

  u = store_upload_begin (st, name, HEADER_PAGE);
  if (u == NULL)
    return -1;
  for (off = HEADER_PAGE; off < size; ) {
    size_t len = size - off < COPY_CHUNK ? size - off : COPY_CHUNK;

    if (store_pread (st, name, buf, len, off) == -1 ||
        store_upload_append (u, buf, len) == -1) {
      store_upload_abort (u);
      return -1;
    }
    off += len;
  }
  if (store_upload_set_head (u, head) == -1) {
    store_upload_abort (u);
    return -1;
  }
  return store_upload_commit (u);
}
