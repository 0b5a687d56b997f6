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

/* Sparse byte array: a radix tree whose leaves are pages.
 *
 * Each interior node is an array of NODE_FANOUT pointers.  A node at level
 * 1 points at pages, a node at level L > 1 at nodes of level L-1.  The
 * number of levels is fixed when the array is created, from its size:
 * 32 KiB pages and 4096-way nodes give 128 MiB per level-1 node, 512 GiB
 * with two levels, 2 PiB with three and the whole 63-bit range with four.
 *
 * Slots are filled with compare-and-swap so that concurrent writers
 * allocating the same page or node agree on one (the loser frees its
 * copy).  Slots are only cleared under the caller's exclusive lock.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "minmax.h"
#include "sparse.h"

#define NODE_BITS 12
#define NODE_FANOUT (1u << NODE_BITS)

struct sparse {
  uint64_t size;
  unsigned levels;   /* of interior nodes, >= 1 */
  void **root;       /* a node of level LEVELS */
};

/* Bytes covered by one slot of a node at LEVEL. */
static inline uint64_t
slot_span (unsigned level)
{
  return SPARSE_PAGE_SIZE << (NODE_BITS * (level - 1));
}

static inline unsigned
slot_index (uint64_t offset, unsigned level)
{
  return (offset >> (SPARSE_PAGE_BITS + NODE_BITS * (level - 1)))
         & (NODE_FANOUT - 1);
}

static inline void *
load_slot (void **slot)
{
  return __atomic_load_n (slot, __ATOMIC_ACQUIRE);
}

/* True if the buffer is all zero bytes. */
static bool
is_zero (const void *buf, size_t len)
{
  const unsigned char *p = buf;
  size_t i, head = MIN (len, (size_t) 16);

  for (i = 0; i < head; ++i)
    if (p[i])
      return false;
  /* The first 16 bytes are zero, so comparing the buffer with itself
   * shifted by 16 checks the rest at memcmp speed.
   */
  return len <= 16 || memcmp (p, p + 16, len - 16) == 0;
}

struct sparse *
sparse_new (uint64_t size)
{
  struct sparse *sa;
  unsigned bits;

  sa = calloc (1, sizeof *sa);
  if (sa == NULL)
    return NULL;
  sa->size = size;
  bits = size <= 1 ? 0 : 64 - __builtin_clzll (size - 1);
  sa->levels = 1;
  while (SPARSE_PAGE_BITS + NODE_BITS * sa->levels < bits)
    sa->levels++;
  sa->root = calloc (NODE_FANOUT, sizeof (void *));
  if (sa->root == NULL) {
    free (sa);
    return NULL;
  }
  return sa;
}

static void
free_node (void **node, unsigned level)
{
  unsigned i;

  for (i = 0; i < NODE_FANOUT; ++i) {
    if (node[i] == NULL)
      continue;
    if (level > 1)
      free_node (node[i], level - 1);
    else
      free (node[i]);
  }
  free (node);
}

void
sparse_free (struct sparse *sa)
{
  if (sa) {
    free_node (sa->root, sa->levels);
    free (sa);
  }
}

/* The page holding OFFSET, or NULL if it is not allocated. */
static void *
lookup_page (struct sparse *sa, uint64_t offset)
{
  void **node = sa->root;
  unsigned level;

  for (level = sa->levels; level > 1; --level) {
    node = load_slot (&node[slot_index (offset, level)]);
    if (node == NULL)
      return NULL;
  }
  return load_slot (&node[slot_index (offset, 1)]);
}

/* Fill *SLOT with a fresh zeroed block of SIZE bytes unless another
 * thread got there first.  Returns the slot's content, NULL on ENOMEM.
 */
static void *
fill_slot (void **slot, size_t size)
{
  void *expected = NULL, *fresh;

  fresh = calloc (1, size);
  if (fresh == NULL)
    return NULL;
  if (__atomic_compare_exchange_n (slot, &expected, fresh, false,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return fresh;
  free (fresh);
  return expected;
}

/* The page holding OFFSET, allocating it (and nodes) if needed. */
static void *
get_page (struct sparse *sa, uint64_t offset)
{
  void **node = sa->root, **slot, *p;
  unsigned level;

  for (level = sa->levels; level >= 1; --level) {
    slot = &node[slot_index (offset, level)];
    p = load_slot (slot);
    if (p == NULL) {
      p = fill_slot (slot, level > 1 ? NODE_FANOUT * sizeof (void *)
                                     : SPARSE_PAGE_SIZE);
      if (p == NULL)
        return NULL;
    }
    if (level == 1)
      return p;
    node = p;
  }
  abort (); /* not reached: levels >= 1 */
}

void
sparse_read (struct sparse *sa, void *buf, uint64_t count, uint64_t offset)
{
  char *b = buf;

  while (count > 0) {
    uint64_t in_page = offset & (SPARSE_PAGE_SIZE - 1);
    uint64_t n = MIN (count, SPARSE_PAGE_SIZE - in_page);
    const char *page = lookup_page (sa, offset);

    if (page)
      memcpy (b, page + in_page, n);
    else
      memset (b, 0, n);
    b += n;
    offset += n;
    count -= n;
  }
}

int
sparse_write (struct sparse *sa, const void *buf, uint64_t count,
              uint64_t offset)
{
  const char *b = buf;

  while (count > 0) {
    uint64_t in_page = offset & (SPARSE_PAGE_SIZE - 1);
    uint64_t n = MIN (count, SPARSE_PAGE_SIZE - in_page);
    char *page = lookup_page (sa, offset);

    /* Zeroes over a hole leave it a hole. */
    if (page == NULL && !is_zero (b, n)) {
      page = get_page (sa, offset);
      if (page == NULL) {
        errno = ENOMEM;
        return -1;
      }
    }
    if (page)
      memcpy (page + in_page, b, n);
    b += n;
    offset += n;
    count -= n;
  }
  return 0;
}

/* Zero [start, end) inside NODE (level LEVEL, first byte BASE), freeing
 * what becomes empty.
 */
static void
zero_node (void **node, unsigned level, uint64_t base,
           uint64_t start, uint64_t end)
{
  uint64_t span = slot_span (level);
  unsigned i = slot_index (start, level);

  for (; i < NODE_FANOUT; ++i) {
    uint64_t cbase = base + (uint64_t) i * span, cend = cbase + span;

    if (cbase >= end)
      break;
    if (node[i] == NULL)
      continue;
    if (start <= cbase && end >= cend) {
      if (level > 1)
        free_node (node[i], level - 1);
      else
        free (node[i]);
      node[i] = NULL;
    }
    else if (level > 1)
      zero_node (node[i], level - 1, cbase, MAX (start, cbase),
                 MIN (end, cend));
    else {
      uint64_t from = MAX (start, cbase), to = MIN (end, cend);

      memset ((char *) node[i] + (from - cbase), 0, to - from);
      if (is_zero (node[i], SPARSE_PAGE_SIZE)) {
        free (node[i]);
        node[i] = NULL;
      }
    }
  }
}

void
sparse_zero (struct sparse *sa, uint64_t count, uint64_t offset)
{
  if (count > 0)
    zero_node (sa->root, sa->levels, 0, offset, offset + count);
}

/* Runs of equal allocation are merged before they reach the callback. */
struct run {
  sparse_extent_fn fn;
  void *opaque;
  bool have;
  bool allocated;
  uint64_t offset, length;
};

static int
run_add (struct run *run, uint64_t offset, uint64_t length, bool allocated)
{
  int r;

  if (run->have && run->allocated == allocated
      && run->offset + run->length == offset) {
    run->length += length;
    return 0;
  }
  if (run->have) {
    r = run->fn (run->opaque, run->offset, run->length, run->allocated);
    if (r)
      return r;
  }
  run->have = true;
  run->allocated = allocated;
  run->offset = offset;
  run->length = length;
  return 0;
}

static int
extents_node (void **node, unsigned level, uint64_t base,
              uint64_t start, uint64_t end, struct run *run)
{
  uint64_t span = slot_span (level);
  unsigned i = slot_index (start, level);
  int r;

  for (; i < NODE_FANOUT; ++i) {
    uint64_t cbase = base + (uint64_t) i * span, cend = cbase + span;
    uint64_t from = MAX (start, cbase), to = MIN (end, cend);
    void *child;

    if (cbase >= end)
      break;
    child = load_slot (&node[i]);
    if (child == NULL)
      r = run_add (run, from, to - from, false);
    else if (level == 1)
      r = run_add (run, from, to - from, true);
    else
      r = extents_node (child, level - 1, cbase, from, to, run);
    if (r)
      return r;
  }
  return 0;
}

int
sparse_extents (struct sparse *sa, uint64_t count, uint64_t offset,
                sparse_extent_fn fn, void *opaque)
{
  struct run run = { .fn = fn, .opaque = opaque };
  int r;

  if (count == 0)
    return 0;
  r = extents_node (sa->root, sa->levels, 0, offset, offset + count, &run);
  if (r)
    return r;
  if (run.have)
    return fn (opaque, run.offset, run.length, run.allocated);
  return 0;
}
