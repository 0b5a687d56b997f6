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

/* nbdcbt memory plugin: a sparse disk in RAM, shared by all connections
 * of an export and lost when the server exits.  Each instance (export) has
 * its own disk; it has no open callback, so the handle is the instance.
 *
 * Reads, writes and block status share a read-write lock in read mode
 * (page allocation is lock-free, see sparse.c); trim and write zeroes free
 * pages and so take it in write mode.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdcbt-plugin.h"

#include "cleanup.h"
#include "utils.h"
#include "sparse.h"

struct memory {
  int64_t size;
  struct sparse *sa;
  pthread_rwlock_t lock;
};

static void *
memory_instance_new (void)
{
  struct memory *m = calloc (1, sizeof *m);

  if (m == NULL) {
    nbdcbt_error ("memory: calloc: %m");
    return NULL;
  }
  m->size = -1;
  pthread_rwlock_init (&m->lock, NULL);
  return m;
}

static void
memory_instance_free (void *instance)
{
  struct memory *m = instance;

  sparse_free (m->sa);
  pthread_rwlock_destroy (&m->lock);
  free (m);
}

static int
memory_config (void *instance, const char *key, const char *value)
{
  struct memory *m = instance;

  if (strcmp (key, "size") == 0) {
    const char *err;
    int64_t r = parse_human_size (value, &err);

    if (r == -1) {
      nbdcbt_error ("memory: size=%s: %s", value, err);
      return -1;
    }
    m->size = r;
    return 0;
  }
  nbdcbt_error ("memory: unknown parameter '%s' (try size=SIZE)", key);
  return -1;
}

static int
memory_config_complete (void *instance)
{
  struct memory *m = instance;

  if (m->size == -1) {
    nbdcbt_error ("memory: the size parameter is required, "
                  "for example: memory size=1G");
    return -1;
  }
  m->sa = sparse_new (m->size);
  if (m->sa == NULL) {
    nbdcbt_error ("memory: cannot allocate the page table: %m");
    return -1;
  }
  return 0;
}

static int
memory_thread_model (void *instance)
{
  return NBDCBT_THREAD_MODEL_PARALLEL;
}

static int64_t
memory_get_size (void *handle)
{
  struct memory *m = handle;

  return m->size;
}

static int
memory_can_write (void *handle)
{
  return 1;
}

static int
memory_can_flush (void *handle)
{
  return 1;
}

static int
memory_can_trim (void *handle)
{
  return 1;
}

static int
memory_can_zero (void *handle)
{
  return NBDCBT_ZERO_NATIVE;
}

static int
memory_can_fast_zero (void *handle)
{
  return 1;
}

static int
memory_can_extents (void *handle)
{
  return 1;
}

/* RAM has nothing to make durable: FUA and flush are free. */
static int
memory_can_fua (void *handle)
{
  return NBDCBT_FUA_NATIVE;
}

/* All connections see the same pages. */
static int
memory_can_multi_conn (void *handle)
{
  return 1;
}

static int
memory_can_cache (void *handle)
{
  return NBDCBT_CACHE_NATIVE;
}

static int
memory_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  struct memory *m = handle;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&m->lock);

  sparse_read (m->sa, buf, count, offset);
  return 0;
}

static int
memory_pwrite (void *handle, const void *buf, uint32_t count,
               uint64_t offset, uint32_t flags)
{
  struct memory *m = handle;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&m->lock);

  return sparse_write (m->sa, buf, count, offset);
}

static int
memory_flush (void *handle, uint32_t flags)
{
  return 0;
}

static int
memory_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct memory *m = handle;
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&m->lock);

  sparse_zero (m->sa, count, offset);
  return 0;
}

/* Zeroing frees whole pages and so is always fast. */
static int
memory_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct memory *m = handle;
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&m->lock);

  sparse_zero (m->sa, count, offset);
  return 0;
}

static int
memory_cache (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  return 0;
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, bool allocated)
{
  struct nbdcbt_extents *extents = opaque;

  if (nbdcbt_add_extent (extents, offset, length,
                         allocated ? 0
                         : NBDCBT_EXTENT_HOLE | NBDCBT_EXTENT_ZERO) == -1)
    return -1;
  return nbdcbt_extents_full (extents) ? 1 : 0;
}

static int
memory_extents (void *handle, uint32_t count, uint64_t offset,
                uint32_t flags, struct nbdcbt_extents *extents)
{
  struct memory *m = handle;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&m->lock);

  return sparse_extents (m->sa, count, offset, add_extent, extents) == -1
         ? -1 : 0;
}

static int
memory_dump_plugin (void)
{
  printf ("memory_page_size=%" PRIu64 "\n", SPARSE_PAGE_SIZE);
  return 0;
}

static struct nbdcbt_plugin plugin = {
  .name = "memory",
  .longname = "nbdcbt memory plugin",
  .version = PACKAGE_VERSION,
  .description = "A sparse RAM disk, shared by all clients, lost at exit",
  .config_help = "size=SIZE (required)  Virtual size, e.g. 1G, 512k",
  .magic_config_key = "size",
  .instance_new = memory_instance_new,
  .instance_free = memory_instance_free,
  .config = memory_config,
  .config_complete = memory_config_complete,
  .thread_model = memory_thread_model,
  .dump_plugin = memory_dump_plugin,
  .get_size = memory_get_size,
  .can_write = memory_can_write,
  .can_flush = memory_can_flush,
  .can_trim = memory_can_trim,
  .can_zero = memory_can_zero,
  .can_fast_zero = memory_can_fast_zero,
  .can_extents = memory_can_extents,
  .can_fua = memory_can_fua,
  .can_multi_conn = memory_can_multi_conn,
  .can_cache = memory_can_cache,
  .pread = memory_pread,
  .pwrite = memory_pwrite,
  .flush = memory_flush,
  .trim = memory_trim,
  .zero = memory_zero,
  .extents = memory_extents,
  .cache = memory_cache,
};

NBDCBT_REGISTER_PLUGIN (plugin)
