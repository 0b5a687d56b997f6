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
