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

/* nbdcbt file plugin: shared definitions. */
#ifndef NBDCBT_FILE_H
#define NBDCBT_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "nbdcbt-plugin.h"

/* Size of the per-thread aligned bounce buffer used with O_DIRECT, and
 * the largest alignment we accept (both powers of two).
 */
#define BOUNCE_SIZE (1024 * 1024)
#define MAX_DIRECT_ALIGN 65536

/* One per connection: each has its own file descriptor. */
struct handle {
  const char *filename; /* for error messages */
  int fd;
  int fd_buffered;      /* cache=none: the same file without O_DIRECT, for
                         * requests not aligned to ALIGN; else == fd */
  bool is_block_device;
  bool can_write;
  bool direct;          /* opened with O_DIRECT (cache=none) */
  bool can_extents;     /* SEEK_DATA / SEEK_HOLE work */
  bool can_trim;
  uint32_t align;       /* O_DIRECT offset/length alignment, else 1 */
  uint32_t mem_align;   /* O_DIRECT buffer alignment, else 1 */
  uint32_t sector_size; /* block devices: logical sector size */
  int rotational;       /* from sysfs, 0 if unknown */

  /* Methods found not to work are switched off as we go.  Several
   * threads may do it at once: relaxed atomics (see FEATURE_OFF).
   */
  bool can_punch_hole;
  bool can_zero_range;
  bool can_fallocate;
  bool can_blkzeroout;
  bool can_rwf_dsync;
};

#define FEATURE_ON(h, field) __atomic_load_n (&(h)->field, __ATOMIC_RELAXED)
#define FEATURE_OFF(h, field) \
  __atomic_store_n (&(h)->field, false, __ATOMIC_RELAXED)

/* rw.c */
extern int file_rw_load (void);
extern void file_rw_unload (void);
extern int file_pread (void *handle, void *buf, uint32_t count,
                       uint64_t offset, uint32_t flags);
extern int file_pwrite (void *handle, const void *buf, uint32_t count,
                        uint64_t offset, uint32_t flags);
extern int file_flush (void *handle, uint32_t flags);
extern int file_cache (void *handle, uint32_t count, uint64_t offset,
                       uint32_t flags);
/* Write COUNT zero bytes (any alignment), honouring O_DIRECT. */
extern int file_write_zeroes (struct handle *h, uint64_t count,
                              uint64_t offset);

/* zero.c */
extern int file_trim (void *handle, uint32_t count, uint64_t offset,
                      uint32_t flags);
extern int file_zero (void *handle, uint32_t count, uint64_t offset,
                      uint32_t flags);

/* extents.c */
extern int file_extents (void *handle, uint32_t count, uint64_t offset,
                         uint32_t flags, struct nbdcbt_extents *extents);

#endif /* NBDCBT_FILE_H */
