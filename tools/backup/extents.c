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

/* nbdcbt-backup: the work list, from the dirty bitmap crossed with
 * base:allocation.
 *
 * dirty + data  -> copy
 * dirty + zero  -> record as zero (also holes that read as zero)
 * clean         -> skip (the previous backup already has it)
 *
 * Without a bitmap (full backup) everything is dirty.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"

#define ALLOC_CONTEXT "base:allocation"
#define STATE_HOLE 1
#define STATE_ZERO 2
#define DIRTY_BIT 1

/* Block status is asked for in pieces of at most this, well under the
 * 32 bit protocol limit and aligned to any granularity.
 */
#define STATUS_CHUNK (UINT64_C (1) << 30)

struct range {
  uint64_t end;   /* exclusive */
  uint32_t flags;
};
DEFINE_VECTOR_TYPE (range_list, struct range);

struct status_reply {
  const char *bitmap_context;
  uint64_t start, limit;
  range_list alloc, dirty;
  bool alloc_seen, dirty_seen;
};

enum extent_kind
classify (bool dirty, uint32_t alloc_flags)
{
  if (!dirty)
    return EXTENT_CLEAN;
  if (alloc_flags & STATE_ZERO)
    return EXTENT_ZERO;
  return EXTENT_DATA;
}

static int
status_cb (void *opaque, const char *context, uint64_t offset,
           uint32_t *entries, size_t nr, int *err)
{
  struct status_reply *r = opaque;
  range_list *list;
  uint64_t pos = offset;
  size_t i;

  if (*err)
    return 0;
  if (strcmp (context, ALLOC_CONTEXT) == 0) {
    list = &r->alloc;
    r->alloc_seen = true;
  }
  else if (r->bitmap_context && strcmp (context, r->bitmap_context) == 0) {
    list = &r->dirty;
    r->dirty_seen = true;
  }
  else
    return 0;                   /* a context we did not ask for */

  for (i = 0; i + 1 < nr; i += 2) {
    uint64_t len = entries[i];
    if (len == 0 || pos >= r->limit)
      break;
    pos += len;
    if (pos > r->limit)
      pos = r->limit;
    if (range_list_append (list, (struct range) { pos, entries[i + 1] }) == -1)
      return -1;
  }
  return 0;
}

static int
append_extent (extent_list *out, uint64_t offset, uint64_t length,
               enum extent_kind kind)
{
  if (length == 0)
    return 0;
  if (out->len > 0) {
    struct extent *last = &out->ptr[out->len - 1];
    if (last->kind == kind && last->offset + last->length == offset) {
      last->length += length;
      return 0;
    }
  }
  return extent_list_append (out,
                             (struct extent) { offset, length, kind });
}

int
get_extents (struct nbd_handle *h, uint64_t size,
             const char *bitmap_context, extent_list *out)
{
  bool have_alloc = nbd_can_meta_context (h, ALLOC_CONTEXT) == 1;
  uint64_t offset = 0;
  struct status_reply r = { .bitmap_context = bitmap_context };
  int ret = -1;

  if (bitmap_context && nbd_can_meta_context (h, bitmap_context) != 1) {
    error ("the server does not offer the metadata context '%s': the bitmap "
           "is missing, inconsistent, or not exported (qemu-nbd -B NAME)",
           bitmap_context);
    return -1;
  }

  if (!have_alloc && !bitmap_context) {
    /* Nothing to learn: copy everything. */
    return append_extent (out, 0, size, EXTENT_DATA);
  }

  while (offset < size) {
    uint64_t count = size - offset, end, pos, a_end, d_end;
    size_t ai = 0, di = 0;

    if (count > STATUS_CHUNK)
      count = STATUS_CHUNK;
    r.start = offset;
    r.limit = offset + count;
    r.alloc.len = r.dirty.len = 0;
    r.alloc_seen = r.dirty_seen = false;
    if (nbd_block_status (h, count, offset,
                          (nbd_extent_callback) { .callback = status_cb,
                                                  .user_data = &r },
                          0) == -1) {
      error ("block status at offset %" PRIu64 ": %s", offset,
             nbd_get_error ());
      goto out;
    }
    if (have_alloc && r.alloc.len == 0) {
      error ("the server sent no base:allocation extents at offset %"
             PRIu64, offset);
      goto out;
    }
    if (bitmap_context && r.dirty.len == 0) {
      error ("the server sent no %s extents at offset %" PRIu64,
             bitmap_context, offset);
      goto out;
    }

    /* Both lists cover [offset, their last end); walk to the shorter. */
    a_end = have_alloc ? r.alloc.ptr[r.alloc.len - 1].end : r.limit;
    d_end = bitmap_context ? r.dirty.ptr[r.dirty.len - 1].end : r.limit;
    end = a_end < d_end ? a_end : d_end;

    pos = offset;
    while (pos < end) {
      uint64_t next = end;
      uint32_t aflags = 0;
      bool dirty = true;

      if (have_alloc) {
        while (r.alloc.ptr[ai].end <= pos)
          ai++;
        aflags = r.alloc.ptr[ai].flags;
        if (r.alloc.ptr[ai].end < next)
          next = r.alloc.ptr[ai].end;
      }
      if (bitmap_context) {
        while (r.dirty.ptr[di].end <= pos)
          di++;
        dirty = r.dirty.ptr[di].flags & DIRTY_BIT;
        if (r.dirty.ptr[di].end < next)
          next = r.dirty.ptr[di].end;
      }
      if (append_extent (out, pos, next - pos, classify (dirty, aflags)) == -1) {
        error_errno ("malloc");
        goto out;
      }
      pos = next;
    }
    offset = end;
  }
  ret = 0;

 out:
  free (r.alloc.ptr);
  free (r.dirty.ptr);
  return ret;
}
