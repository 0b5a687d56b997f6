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

/* A sparse byte array in RAM: a radix tree of fixed-size pages allocated
 * on first non-zero write.  Unallocated pages read as zeroes.
 *
 * Locking is the caller's business except for page and node allocation,
 * which is lock-free (compare-and-swap), so that readers and writers may
 * run concurrently under a shared (read) lock.  Anything that frees pages
 * (sparse_zero) must hold the lock exclusively.
 */
#ifndef NBDCBT_MEMORY_SPARSE_H
#define NBDCBT_MEMORY_SPARSE_H

#include <stdbool.h>
#include <stdint.h>

#define SPARSE_PAGE_BITS 15 /* 32 KiB pages */
#define SPARSE_PAGE_SIZE (UINT64_C (1) << SPARSE_PAGE_BITS)

struct sparse;

/* Reported for every run of pages by sparse_extents. */
typedef int (*sparse_extent_fn) (void *opaque, uint64_t offset,
                                 uint64_t length, bool allocated);

extern struct sparse *sparse_new (uint64_t size);
extern void sparse_free (struct sparse *sa);

/* The caller checks that the range lies inside the array. */
extern void sparse_read (struct sparse *sa, void *buf, uint64_t count,
                         uint64_t offset);
/* -1 with errno ENOMEM if a page could not be allocated (the part before
 * it has been written).
 */
extern int sparse_write (struct sparse *sa, const void *buf, uint64_t count,
                         uint64_t offset);
/* Zeroes the range, freeing every page that ends up all zero.  Needs the
 * exclusive lock.
 */
extern void sparse_zero (struct sparse *sa, uint64_t count, uint64_t offset);
/* Calls FN for maximal runs of allocated / unallocated pages covering
 * [offset, offset+count) (the first and last run are clipped to it).
 * Stops early when FN returns non-zero and returns that value.
 */
extern int sparse_extents (struct sparse *sa, uint64_t count, uint64_t offset,
                           sparse_extent_fn fn, void *opaque);

#endif /* NBDCBT_MEMORY_SPARSE_H */
