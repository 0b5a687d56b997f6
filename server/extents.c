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

/* Extent lists handed to extents and meta_extents callbacks.
 *
 * A list covers [start, end).  Producers add extents in ascending order;
 * the list keeps only the part inside [start, end), merges neighbours of
 * the same type, and stops accepting extents once it reaches end or holds
 * its maximum number of entries.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "internal.h"
#include "byte-order.h"

DEFINE_VECTOR_TYPE (extent_vector, struct nbdcbt_extent);

struct nbdcbt_extents {
  extent_vector v;
  uint64_t start, end;
  uint64_t next;          /* where the next extent must begin */
  size_t max;
};

struct nbdcbt_extents *
extents_new_limited (uint64_t start, uint64_t end, size_t max)
{
  struct nbdcbt_extents *e;

  if (start > end || max == 0) {
    nbdcbt_error ("nbdcbt_extents_new: invalid range");
    errno = EINVAL;
    return NULL;
  }
  e = calloc (1, sizeof *e);
  if (e == NULL) {
    nbdcbt_error ("calloc: %m");
    return NULL;
  }
  e->start = e->next = start;
  e->end = end;
  e->max = max;
  return e;
}

/* Empty E for a new request, keeping its array: a worker reuses one
 * list for every BLOCK_STATUS instead of allocating and growing a new one
 * per request.  Same checks as extents_new_limited.
 */
int
extents_reuse (struct nbdcbt_extents *e, uint64_t start, uint64_t end,
               size_t max)
{
  if (start > end || max == 0) {
    nbdcbt_error ("nbdcbt_extents_new: invalid range");
    errno = EINVAL;
    return -1;
  }
  e->v.len = 0;
  e->start = e->next = start;
  e->end = end;
  e->max = max;
  return 0;
}

/* The descriptors of E in the wire format of a BLOCK_STATUS chunk (length
 * and flags, big endian), flags masked by TYPE_MASK.  P has room for
 * 8 * count bytes.
 */
void
extents_encode (const struct nbdcbt_extents *e, char *p, uint32_t type_mask)
{
  size_t i;

  for (i = 0; i < e->v.len; ++i, p += 8) {
    store_be32 (p, e->v.ptr[i].length);
    store_be32 (p + 4, e->v.ptr[i].type & type_mask);
  }
}

struct nbdcbt_extents *
nbdcbt_extents_new (uint64_t start, uint64_t end)
{
  return extents_new_limited (start, end, MAX_EXTENTS);
}

void
nbdcbt_extents_free (struct nbdcbt_extents *e)
{
  if (e) {
    free (e->v.ptr);
    free (e);
  }
}

size_t
nbdcbt_extents_count (const struct nbdcbt_extents *e)
{
  return e->v.len;
}

struct nbdcbt_extent
nbdcbt_get_extent (const struct nbdcbt_extents *e, size_t i)
{
  return e->v.ptr[i];
}

bool
nbdcbt_extents_full (const struct nbdcbt_extents *e)
{
  return e->next >= e->end || e->v.len >= e->max;
}

int
nbdcbt_add_extent (struct nbdcbt_extents *e, uint64_t offset,
                   uint64_t length, uint32_t type)
{
  uint64_t end;

  /* The common case first, in one test: the next extent, of another type
   * than the last, inside the range, with room for it.  A map reply of a
   * 4 GiB request over scattered writes adds about 150 extents, and the
   * checks below cost more than the append.  This is what they would do
   * with such an extent.
   */
  if (offset == e->next && offset < e->end && length - 1 < e->end - offset
      && e->v.len < e->max && e->v.len < e->v.cap
      && (e->v.len == 0 || e->v.ptr[e->v.len - 1].type != type)) {
    e->v.ptr[e->v.len++] = (struct nbdcbt_extent) {
      .offset = offset, .length = length, .type = type };
    e->next = offset + length;
    return 0;
  }

  if (length == 0)
    return 0;
  if (offset + length < offset) {
    nbdcbt_error ("nbdcbt_add_extent: offset + length overflows");
    errno = ERANGE;
    return -1;
  }
  end = offset + length;

  /* Before what the list still needs: ignore, or keep the new part. */
  if (end <= e->next)
    return 0;
  if (offset < e->next)
    offset = e->next;
  if (offset > e->next) {
    nbdcbt_error ("nbdcbt_add_extent: extents must be contiguous "
                  "(expected offset %" PRIu64 ", got %" PRIu64 ")",
                  e->next, offset);
    errno = ERANGE;
    return -1;
  }
  if (offset >= e->end)
    return 0;
  if (end > e->end)
    end = e->end;

  if (e->v.len > 0 && e->v.ptr[e->v.len - 1].type == type) {
    e->v.ptr[e->v.len - 1].length += end - offset;
    e->next = end;
    return 0;
  }
  if (e->v.len >= e->max)
    return 0;            /* full: silently dropped */
  if (extent_vector_append (&e->v, (struct nbdcbt_extent) {
        .offset = offset, .length = end - offset, .type = type }) == -1) {
    nbdcbt_error ("realloc: %m");
    return -1;
  }
  e->next = end;
  return 0;
}
