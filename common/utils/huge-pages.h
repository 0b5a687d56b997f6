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

/* Anonymous memory in whole 2 MiB huge pages, on a huge page boundary,
 * with MADV_HUGEPAGE: nothing is faulted in or zeroed before it is
 * touched, and the first touch faults in 2 MiB at once instead of one
 * 4 KiB page (in a VM each page fault costs tens of microseconds).  Only
 * advice: without transparent huge pages the kernel uses 4 KiB pages.
 * Header-only, so that any library can use it without a link
 * dependency.
 */
#ifndef NBDCBT_HUGE_PAGES_H
#define NBDCBT_HUGE_PAGES_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE_SIZE ((size_t) 2 << 20)

/* At least BYTES of zeroed memory; *LEN is the length to give
 * huge_pages_free.  NULL with errno ENOMEM.
 */
static inline void *
huge_pages_alloc (size_t bytes, size_t *len)
{
  size_t n = (bytes + HUGE_PAGE_SIZE - 1) & ~(HUGE_PAGE_SIZE - 1);
  uintptr_t start, aligned;
  void *p;

  if (bytes == 0 || n < bytes || n > SIZE_MAX - HUGE_PAGE_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  /* Map one huge page more and trim to the boundary. */
  p = mmap (NULL, n + HUGE_PAGE_SIZE, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  start = (uintptr_t) p;
  aligned = (start + HUGE_PAGE_SIZE - 1) & ~(uintptr_t) (HUGE_PAGE_SIZE - 1);
  if (aligned > start)
    munmap (p, aligned - start);
  if (aligned + n < start + n + HUGE_PAGE_SIZE)
    munmap ((void *) (aligned + n), start + n + HUGE_PAGE_SIZE - (aligned + n));
#ifdef MADV_HUGEPAGE
  madvise ((void *) aligned, n, MADV_HUGEPAGE);
#endif
  *len = n;
  return (void *) aligned;
}

static inline void
huge_pages_free (void *p, size_t len)
{
  if (p)
    munmap (p, len);
}

#endif /* NBDCBT_HUGE_PAGES_H */
