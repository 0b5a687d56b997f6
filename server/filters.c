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

/* Filter dispatch: the server's side of every filter callback, and the
 * next_ops a filter calls the layer below with.
 *
 * backend.c checks each call's contract and then calls through the
 * layer's ops; for a filter those are the functions here (filter_ops): the
 * filter's callback with next_ops and the next layer's context, or, when
 * the filter has no such callback, the same call on the next layer.
 *
 * Calls a filter makes (next_ops, and the pass-through of a missing
 * callback) have their contract checked here with an error, not an
 * assertion: a filter may get the range, the flags or the next layer's
 * capabilities wrong, and that fails the request with a message rather
 * than the server.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define F(b) ((b)->filter)

/* Server-wide. */

static void *
filter_instance_new (struct nbdcbt_backend *b)
{
  return F (b)->instance_new ? F (b)->instance_new () : NULL;
}

static void
filter_instance_free (struct nbdcbt_backend *b)
{
  if (F (b)->instance_free)
    F (b)->instance_free (b->instance);
}

static int
filter_config (struct nbdcbt_backend *b, const char *key, const char *value)
{
  if (F (b)->config)
    return F (b)->config (backend_config, b->next, b->instance, key, value);
  return backend_config (b->next, key, value);
}

static int
filter_config_complete (struct nbdcbt_backend *b)
{
  if (F (b)->config_complete)
    return F (b)->config_complete (backend_config_complete, b->next,
                                   b->instance);
  return backend_config_complete (b->next);
}

/* The filter's own model; backend_thread_model takes the lowest. */
static int
filter_thread_model (struct nbdcbt_backend *b)
{
  return F (b)->thread_model ? F (b)->thread_model (b->instance)
    : NBDCBT_THREAD_MODEL_PARALLEL;
}

static int
filter_get_ready (struct nbdcbt_backend *b)
{
  return F (b)->get_ready ? F (b)->get_ready (b->next, b->instance) : 0;
}

static void
filter_cleanup (struct nbdcbt_backend *b)
{
  if (F (b)->cleanup)
    F (b)->cleanup (b->next, b->instance);
}

static const void *
filter_get_service (struct nbdcbt_backend *b, const char *name)
{
  return F (b)->get_service ? F (b)->get_service (b->next, b->instance, name)
    : NULL;
}

static int
filter_list_meta_contexts (struct nbdcbt_backend *b, const char *export_name,
                           struct nbdcbt_meta_contexts *mc)
{
  if (F (b)->list_meta_contexts)
    return F (b)->list_meta_contexts (backend_list_meta_contexts, b->next,
                                      b->instance, export_name, mc);
  return backend_list_meta_contexts (b->next, export_name, mc);
}

/* Per connection. */

static void *
filter_open (struct nbdcbt_context *c, int readonly)
{
  struct nbdcbt_backend *b = c->b;

  if (F (b)->open)
    return F (b)->open (context_open, c->next, b->instance, readonly);
  if (context_open (c->next, readonly) == -1)
    return NULL;
  return layer_default_handle (b);
}

static int
filter_prepare (struct nbdcbt_context *c, int readonly)
{
  if (F (c->b)->prepare == NULL)
    return 0;
  return F (c->b)->prepare (&next_ops, c->next, c->handle, readonly);
}

static int
filter_finalize (struct nbdcbt_context *c)
{
  if (F (c->b)->finalize == NULL)
    return 0;
  return F (c->b)->finalize (&next_ops, c->next, c->handle);
}

static void
filter_close (struct nbdcbt_context *c)
{
  if (F (c->b)->close)
    F (c->b)->close (c->handle);
}

/* A capability: the filter's answer, or the next layer's. */
#define CAP(c, fn)                                                      \
  (F ((c)->b)->fn ? F ((c)->b)->fn (&next_ops, (c)->next, (c)->handle)  \
   : (c)->next->fn)

static int
filter_get_caps (struct nbdcbt_context *c)
{
  const struct nbdcbt_filter *f = F (c->b);
  struct nbdcbt_context *n = c->next;

  c->size = f->get_size ? f->get_size (&next_ops, n, c->handle) : n->size;
  if (c->size < 0)
    return -1;
  c->minimum = n->minimum;
  c->preferred = n->preferred;
  c->maximum = n->maximum;
  if (f->block_size && f->block_size (&next_ops, n, c->handle, &c->minimum,
                                      &c->preferred, &c->maximum) == -1)
    return -1;
  c->can_write = CAP (c, can_write);
  c->can_flush = CAP (c, can_flush);
  c->is_rotational = CAP (c, is_rotational);
  c->can_trim = CAP (c, can_trim);
  c->can_zero = CAP (c, can_zero);
  c->can_fast_zero = CAP (c, can_fast_zero);
  c->can_extents = CAP (c, can_extents);
  c->can_fua = CAP (c, can_fua);
  c->can_multi_conn = CAP (c, can_multi_conn);
  c->can_cache = CAP (c, can_cache);
  return 0;
}

/* Data path: the filter's callback, or the same call one layer down
 * (checked: the filter may have changed a capability it does not
 * implement).
 */

static int
filter_pread (struct nbdcbt_context *c, void *buf, uint32_t count,
              uint64_t offset, uint32_t flags, int *err)
{
  if (F (c->b)->pread)
    return F (c->b)->pread (&next_ops, c->next, c->handle, buf, count,
                            offset, flags, err);
  return next_ops.pread (c->next, buf, count, offset, flags, err);
}

static int
filter_pwrite (struct nbdcbt_context *c, const void *buf, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  if (F (c->b)->pwrite)
    return F (c->b)->pwrite (&next_ops, c->next, c->handle, buf, count,
                             offset, flags, err);
  return next_ops.pwrite (c->next, buf, count, offset, flags, err);
}

static int
filter_flush (struct nbdcbt_context *c, uint32_t flags, int *err)
{
  if (F (c->b)->flush)
    return F (c->b)->flush (&next_ops, c->next, c->handle, flags, err);
  return next_ops.flush (c->next, flags, err);
}

static int
filter_trim (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  if (F (c->b)->trim)
    return F (c->b)->trim (&next_ops, c->next, c->handle, count, offset,
                           flags, err);
  return next_ops.trim (c->next, count, offset, flags, err);
}

static int
filter_zero (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  if (F (c->b)->zero)
    return F (c->b)->zero (&next_ops, c->next, c->handle, count, offset,
                           flags, err);
  return next_ops.zero (c->next, count, offset, flags, err);
}

static int
filter_extents (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
                uint32_t flags, struct nbdcbt_extents *extents, int *err)
{
  if (F (c->b)->extents)
    return F (c->b)->extents (&next_ops, c->next, c->handle, count, offset,
                              flags, extents, err);
  return next_ops.extents (c->next, count, offset, flags, extents, err);
}

static int
filter_cache (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  if (F (c->b)->cache)
    return F (c->b)->cache (&next_ops, c->next, c->handle, count, offset,
                            flags, err);
  return next_ops.cache (c->next, count, offset, flags, err);
}

static int
filter_meta_extents (struct nbdcbt_context *c, const char *context,
                     uint32_t count, uint64_t offset, uint32_t flags,
                     struct nbdcbt_extents *extents, int *err)
{
  if (F (c->b)->meta_extents)
    return F (c->b)->meta_extents (&next_ops, c->next, c->handle, context,
                                   count, offset, flags, extents, err);
  return next_ops.meta_extents (c->next, context, count, offset, flags,
                                extents, err);
}

const struct layer_ops filter_ops = {
  .instance_new = filter_instance_new,
  .instance_free = filter_instance_free,
  .config = filter_config,
  .config_complete = filter_config_complete,
  .thread_model = filter_thread_model,
  .get_ready = filter_get_ready,
  .cleanup = filter_cleanup,
  .get_service = filter_get_service,
  .list_meta_contexts = filter_list_meta_contexts,
  .open = filter_open,
  .prepare = filter_prepare,
  .finalize = filter_finalize,
  .close = filter_close,
  .get_caps = filter_get_caps,
  .pread = filter_pread,
  .pwrite = filter_pwrite,
  .flush = filter_flush,
  .trim = filter_trim,
  .zero = filter_zero,
  .extents = filter_extents,
  .cache = filter_cache,
  .meta_extents = filter_meta_extents,
};

/* next_ops: what a filter calls the layer below with. */

static int64_t
next_get_size (struct nbdcbt_context *c)
{
  return c->size;
}

static int
next_block_size (struct nbdcbt_context *c, uint32_t *minimum,
                 uint32_t *preferred, uint32_t *maximum)
{
  *minimum = c->minimum;
  *preferred = c->preferred;
  *maximum = c->maximum;
  return 0;
}

#define NEXT_CAP(field)                                                 \
  static int next_##field (struct nbdcbt_context *c) { return c->field; }
NEXT_CAP (can_write)
NEXT_CAP (can_flush)
NEXT_CAP (is_rotational)
NEXT_CAP (can_trim)
NEXT_CAP (can_zero)
NEXT_CAP (can_fast_zero)
NEXT_CAP (can_extents)
NEXT_CAP (can_fua)
NEXT_CAP (can_multi_conn)
NEXT_CAP (can_cache)

/* A broken contract: say which and fail the request with ERR. */
static int
refuse (struct nbdcbt_context *c, const char *op, const char *why, int err,
        int *errp)
{
  nbdcbt_error ("%s: %s from the layer above refused: %s", c->b->name, op,
                why);
  *errp = err;
  return -1;
}

#define CHECK(c, op, ...)                                               \
  do {                                                                  \
    int _e;                                                             \
    const char *_why = backend_contract (c, op, __VA_ARGS__, &_e);      \
    if (_why)                                                           \
      return refuse (c, backend_op_name (op), _why, _e, err);           \
  } while (0)

static int
next_pread (struct nbdcbt_context *c, void *buf, uint32_t count,
            uint64_t offset, uint32_t flags, int *err)
{
  CHECK (c, OP_PREAD, count, offset, flags);
  return backend_pread (c, buf, count, offset, flags, err);
}

static int
next_pwrite (struct nbdcbt_context *c, const void *buf, uint32_t count,
             uint64_t offset, uint32_t flags, int *err)
{
  CHECK (c, OP_PWRITE, count, offset, flags);
  return backend_pwrite (c, buf, count, offset, flags, err);
}

static int
next_flush (struct nbdcbt_context *c, uint32_t flags, int *err)
{
  CHECK (c, OP_FLUSH, 0, 0, flags);
  return backend_flush (c, flags, err);
}

static int
next_trim (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  CHECK (c, OP_TRIM, count, offset, flags);
  return backend_trim (c, count, offset, flags, err);
}

static int
next_zero (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  CHECK (c, OP_ZERO, count, offset, flags);
  return backend_zero (c, count, offset, flags, err);
}

static int
next_extents (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
              uint32_t flags, struct nbdcbt_extents *extents, int *err)
{
  CHECK (c, OP_EXTENTS, count, offset, flags);
  return backend_extents (c, count, offset, flags, extents, err);
}

static int
next_cache (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  CHECK (c, OP_CACHE, count, offset, flags);
  return backend_cache (c, count, offset, flags, err);
}

static int
next_meta_extents (struct nbdcbt_context *c, const char *context,
                   uint32_t count, uint64_t offset, uint32_t flags,
                   struct nbdcbt_extents *extents, int *err)
{
  if (context == NULL)
    return refuse (c, "block status", "no context", EINVAL, err);
  CHECK (c, OP_META_EXTENTS, count, offset, flags);
  return backend_meta_extents (c, context, count, offset, flags, extents,
                               err);
}

const struct nbdcbt_next_ops next_ops = {
  .get_size = next_get_size,
  .block_size = next_block_size,
  .can_write = next_can_write,
  .can_flush = next_can_flush,
  .is_rotational = next_is_rotational,
  .can_trim = next_can_trim,
  .can_zero = next_can_zero,
  .can_fast_zero = next_can_fast_zero,
  .can_extents = next_can_extents,
  .can_fua = next_can_fua,
  .can_multi_conn = next_can_multi_conn,
  .can_cache = next_can_cache,
  .pread = next_pread,
  .pwrite = next_pwrite,
  .flush = next_flush,
  .trim = next_trim,
  .zero = next_zero,
  .extents = next_extents,
  .cache = next_cache,
  .meta_extents = next_meta_extents,
};

void
filter_usage (struct nbdcbt_backend *b)
{
  const struct nbdcbt_filter *f = b->filter;

  printf ("filter: %s", f->name);
  if (f->longname)
    printf (" (%s)", f->longname);
  printf ("\n");
  if (f->description)
    printf ("%s\n", f->description);
  if (f->config_help)
    printf ("\n%s\n", f->config_help);
  printf ("\n");
}

