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

/* The chain of one export, as nbdkit's server/backend.c: its layers'
 * life cycle, per-connection contexts, and the data-path entry points.
 *
 * Every data call (backend_pread ... backend_meta_extents) checks its
 * contract on entry: the range inside the layer's size, a write only to a
 * layer that can write, only the flags the layer advertised.  Here these
 * are assertions: the server validated the request against the top
 * layer's capabilities, and filters' calls were checked (with an error)
 * in filters.c's next_ops before they got here.  Then the emulations that
 * any layer may need run here (zero by writing zeroes, cache by reading,
 * extents as "all data"), and the call goes through the layer's ops:
 * plugins.c or filters.c.  There is no "if filter ... else plugin" in
 * this file.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "minmax.h"

#define HANDLE_NOT_NEEDED ((void *) &handle_not_needed)
static int handle_not_needed;

/* A chain's server-wide life cycle: its layers and their instances. */

struct nbdcbt_backend *
backend_chain_new (const char *plugin, const char *const *filters,
                   size_t nfilters)
{
  struct nbdcbt_backend *top = NULL, *b;
  struct nbdcbt_module *m;
  size_t k;

  /* Bottom up: the plugin first, then the innermost filter. */
  for (k = 0; k <= nfilters; ++k) {
    bool is_plugin = k == 0;

    m = module_get (is_plugin ? plugin : filters[nfilters - k], is_plugin,
                    false);
    if (m == NULL)
      goto fail;
    b = calloc (1, sizeof *b);
    if (b == NULL) {
      nbdcbt_error ("calloc: %m");
      goto fail;
    }
    b->m = m;
    b->ops = m->ops;
    b->name = m->name;
    b->filename = m->filename;
    b->plugin = m->plugin;
    b->filter = m->filter;
    b->next = top;
    b->i = top ? top->i + 1 : 0;
    top = b;
    b->instance = b->ops->instance_new (b);
    if (b->instance == NULL && (b->plugin ? b->plugin->instance_new != NULL
                                : b->filter->instance_new != NULL)) {
      nbdcbt_debug ("%s: instance_new failed", b->name);
      goto fail;
    }
    b->has_instance = true;
  }
  return top;

 fail:
  backend_chain_free (top);
  return NULL;
}

/* Top down: filters first, then the plugin; only layers that got ready. */
static void
backend_cleanup (struct nbdcbt_backend *b)
{
  for (; b; b = b->next)
    if (b->ready) {
      b->ready = false;
      b->ops->cleanup (b);
    }
}

void
backend_chain_free (struct nbdcbt_backend *b)
{
  struct nbdcbt_backend *next;

  backend_cleanup (b);
  for (; b; b = next) {
    next = b->next;
    if (b->has_instance)
      b->ops->instance_free (b);
    free (b);
  }
}

int
backend_config (struct nbdcbt_backend *b, const char *key, const char *value)
{
  return b->ops->config (b, key, value);
}

int
backend_config_complete (struct nbdcbt_backend *b)
{
  return b->ops->config_complete (b);
}

const char *
backend_magic_config_key (struct nbdcbt_backend *b)
{
  while (b->next)
    b = b->next;
  return b->plugin->magic_config_key;
}

/* Bottom up: the plugin gets ready first. */
int
backend_get_ready (struct nbdcbt_backend *b)
{
  if (b->next && backend_get_ready (b->next) == -1)
    return -1;
  if (b->ops->get_ready (b) == -1)
    return -1;
  b->ready = true;
  return 0;
}

/* The lowest model of the chain's layers. */
int
backend_thread_model (struct nbdcbt_backend *b)
{
  int model = NBDCBT_THREAD_MODEL_PARALLEL, m;

  for (; b; b = b->next) {
    m = b->ops->thread_model (b);
    if (m < NBDCBT_THREAD_MODEL_SERIALIZE_CONNECTIONS
        || m > NBDCBT_THREAD_MODEL_PARALLEL) {
      nbdcbt_error ("%s: invalid thread model %d", b->name, m);
      return -1;
    }
    model = MIN (model, m);
  }
  return model;
}

int
backend_list_meta_contexts (struct nbdcbt_backend *b,
                            const char *export_name,
                            struct nbdcbt_meta_contexts *mc)
{
  return b->ops->list_meta_contexts (b, export_name, mc);
}

const void *
backend_get_service (struct nbdcbt_backend *b, const char *name)
{
  const void *r;

  for (; b; b = b->next)
    if ((r = b->ops->get_service (b, name)) != NULL)
      return r;
  return NULL;
}

/* Per connection: open, capabilities, close. */

void *
layer_default_handle (struct nbdcbt_backend *b)
{
  return b->instance ? b->instance : HANDLE_NOT_NEEDED;
}

int
context_open (struct nbdcbt_context *c, int readonly)
{
  void *h;

  if (c->opened) {
    nbdcbt_error ("%s: next layer opened twice", c->b->name);
    return -1;
  }
  h = c->b->ops->open (c, readonly);
  if (h == NULL) {
    nbdcbt_debug ("%s: open failed", c->b->name);
    return -1;
  }
  c->handle = h;
  c->opened = true;
  if (c->next && !c->next->opened) {
    nbdcbt_error ("%s: filter open did not open the next layer",
                  c->b->name);
    return -1;
  }
  return 0;
}

static void
context_free (struct nbdcbt_context *c)
{
  struct nbdcbt_context *next;

  for (; c; c = next) {
    next = c->next;
    free (c);
  }
}

static int
compute_caps (struct nbdcbt_context *c)
{
  if (c->b->ops->get_caps (c) == -1) {
    nbdcbt_error ("%s: could not get the export size or block size",
                  c->b->name);
    return -1;
  }
  if (c->can_write == -1 || c->can_flush == -1 || c->is_rotational == -1
      || c->can_trim == -1 || c->can_zero == -1 || c->can_fast_zero == -1
      || c->can_extents == -1 || c->can_fua == -1
      || c->can_multi_conn == -1 || c->can_cache == -1) {
    nbdcbt_error ("%s: a capability callback failed", c->b->name);
    return -1;
  }
  /* Normalize: booleans to 0/1, enums within range. */
  c->can_write = !!c->can_write;
  c->can_flush = !!c->can_flush;
  c->is_rotational = !!c->is_rotational;
  c->can_trim = !!c->can_trim;
  c->can_fast_zero = !!c->can_fast_zero;
  c->can_extents = !!c->can_extents;
  c->can_multi_conn = !!c->can_multi_conn;
  if (c->can_zero > NBDCBT_ZERO_NATIVE)
    c->can_zero = NBDCBT_ZERO_NATIVE;
  if (c->can_fua > NBDCBT_FUA_NATIVE)
    c->can_fua = NBDCBT_FUA_NATIVE;
  if (c->can_cache > NBDCBT_CACHE_NATIVE)
    c->can_cache = NBDCBT_CACHE_NATIVE;
  /* Emulated FUA needs flush. */
  if (c->can_fua == NBDCBT_FUA_EMULATE && !c->can_flush)
    c->can_fua = NBDCBT_FUA_NONE;
  return 0;
}

/* Prepare bottom up, then compute capabilities bottom up. */
static int
context_prepare (struct nbdcbt_context *c, bool readonly)
{
  if (c->next && context_prepare (c->next, readonly) == -1)
    return -1;
  if (c->b->ops->prepare (c, readonly) == -1)
    return -1;
  c->prepared = true;
  return compute_caps (c);
}

struct nbdcbt_context *
backend_open (struct nbdcbt_backend *b, bool readonly)
{
  struct nbdcbt_context *chain = NULL, **pp = &chain;
  struct nbdcbt_context *c;

  for (; b; b = b->next) {
    c = calloc (1, sizeof *c);
    if (c == NULL) {
      nbdcbt_error ("calloc: %m");
      context_free (chain);
      return NULL;
    }
    c->b = b;
    *pp = c;
    pp = &c->next;
  }
  if (context_open (chain, readonly) == -1
      || context_prepare (chain, readonly) == -1) {
    backend_close (chain);
    return NULL;
  }
  return chain;
}

/* Finalize top down, then close top down (filters, then the plugin). */
void
backend_close (struct nbdcbt_context *chain)
{
  struct nbdcbt_context *c;

  for (c = chain; c; c = c->next)
    if (c->prepared && c->b->ops->finalize (c) == -1)
      nbdcbt_debug ("%s: finalize failed", c->b->name);
  for (c = chain; c; c = c->next)
    if (c->opened)
      c->b->ops->close (c);
  context_free (chain);
}

/* Contracts. */

const char *
backend_op_name (enum backend_op op)
{
  static const char *const names[] = {
    [OP_PREAD] = "read", [OP_PWRITE] = "write", [OP_FLUSH] = "flush",
    [OP_TRIM] = "trim", [OP_ZERO] = "zero", [OP_EXTENTS] = "extents",
    [OP_CACHE] = "cache", [OP_META_EXTENTS] = "block status",
  };
  return names[op];
}

const char *
backend_contract (const struct nbdcbt_context *c, enum backend_op op,
                  uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  uint32_t allowed = 0;

  *err = EINVAL;
  if (!c->prepared)
    return "the layer is not open";
  switch (op) {
  case OP_PREAD:
    break;
  case OP_PWRITE:
  case OP_TRIM:
  case OP_ZERO:
    if (!c->can_write) {
      *err = EROFS;
      return "the layer is read-only";
    }
    if (op == OP_TRIM && !c->can_trim)
      return "the layer cannot trim";
    if (op == OP_ZERO && c->can_zero == NBDCBT_ZERO_NONE)
      return "the layer cannot zero";
    if (c->can_fua != NBDCBT_FUA_NONE)
      allowed |= NBDCBT_FLAG_FUA;
    if (op == OP_ZERO) {
      allowed |= NBDCBT_FLAG_MAY_TRIM;
      if (c->can_fast_zero)
        allowed |= NBDCBT_FLAG_FAST_ZERO;
    }
    break;
  case OP_FLUSH:
    if (!c->can_flush)
      return "the layer cannot flush";
    if (flags)
      return "flags the layer did not advertise";
    return NULL;                /* no range */
  case OP_EXTENTS:
  case OP_META_EXTENTS:
    allowed |= NBDCBT_FLAG_REQ_ONE;
    break;
  case OP_CACHE:
    if (c->can_cache == NBDCBT_CACHE_NONE)
      return "the layer cannot cache";
    break;
  }
  if (flags & ~allowed)
    return "flags the layer did not advertise";
  if (count == 0 || offset > (uint64_t) c->size
      || count > (uint64_t) c->size - offset)
    return "the range is not inside the export";
  return NULL;
}

#ifdef NDEBUG
#define ASSERT_CONTRACT(c, op, count, offset, flags) do { } while (0)
#else
#define ASSERT_CONTRACT(c, op, count, offset, flags)                    \
  do {                                                                  \
    int _e;                                                             \
    assert (backend_contract (c, op, count, offset, flags, &_e) == NULL); \
  } while (0)
#endif

/* Data path. */

int
backend_pread (struct nbdcbt_context *c, void *buf, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  ASSERT_CONTRACT (c, OP_PREAD, count, offset, flags);
  return c->b->ops->pread (c, buf, count, offset, flags, err);
}

int
backend_pwrite (struct nbdcbt_context *c, const void *buf, uint32_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  ASSERT_CONTRACT (c, OP_PWRITE, count, offset, flags);
  return c->b->ops->pwrite (c, buf, count, offset, flags, err);
}

int
backend_flush (struct nbdcbt_context *c, uint32_t flags, int *err)
{
  ASSERT_CONTRACT (c, OP_FLUSH, 0, 0, flags);
  return c->b->ops->flush (c, flags, err);
}

int
backend_trim (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  ASSERT_CONTRACT (c, OP_TRIM, count, offset, flags);
  return c->b->ops->trim (c, count, offset, flags, err);
}

/* Zeroes for a layer that asks for zero emulation. */
#define ZERO_BUF_SIZE (1024 * 1024)
static const char zero_buf[ZERO_BUF_SIZE];

int
backend_zero (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  ASSERT_CONTRACT (c, OP_ZERO, count, offset, flags);
  if (c->can_zero == NBDCBT_ZERO_EMULATE) {
    /* Writing zeroes is never fast. */
    if (flags & NBDCBT_FLAG_FAST_ZERO) {
      *err = ENOTSUP;
      return -1;
    }
    flags &= NBDCBT_FLAG_FUA;
    while (count > 0) {
      uint32_t n = MIN (count, (uint32_t) ZERO_BUF_SIZE);

      if (backend_pwrite (c, zero_buf, n, offset, count == n ? flags : 0,
                          err) == -1)
        return -1;
      count -= n;
      offset += n;
    }
    return 0;
  }
  return c->b->ops->zero (c, count, offset, flags, err);
}

int
backend_extents (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
                 uint32_t flags, struct nbdcbt_extents *extents, int *err)
{
  ASSERT_CONTRACT (c, OP_EXTENTS, count, offset, flags);
  if (!c->can_extents) {
    /* Everything is allocated data. */
    if (nbdcbt_add_extent (extents, offset, count, 0) == -1) {
      *err = errno ? errno : EIO;
      return -1;
    }
    return 0;
  }
  return c->b->ops->extents (c, count, offset, flags, extents, err);
}

int
backend_cache (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  ASSERT_CONTRACT (c, OP_CACHE, count, offset, flags);
  if (c->can_cache == NBDCBT_CACHE_EMULATE) {
    uint32_t bufsize = MIN (count, (uint32_t) (1024 * 1024));
    char *buf = malloc (bufsize);

    if (buf == NULL) {
      *err = ENOMEM;
      return -1;
    }
    while (count > 0) {
      uint32_t n = MIN (count, bufsize);

      if (backend_pread (c, buf, n, offset, 0, err) == -1) {
        free (buf);
        return -1;
      }
      count -= n;
      offset += n;
    }
    free (buf);
    return 0;
  }
  return c->b->ops->cache (c, count, offset, flags, err);
}

int
backend_meta_extents (struct nbdcbt_context *c, const char *context,
                      uint32_t count, uint64_t offset, uint32_t flags,
                      struct nbdcbt_extents *extents, int *err)
{
  assert (context != NULL);
  ASSERT_CONTRACT (c, OP_META_EXTENTS, count, offset, flags);
  return c->b->ops->meta_extents (c, context, count, offset, flags, extents,
                                  err);
}
