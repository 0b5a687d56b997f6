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

/* Plugin dispatch: the server's side of every plugin callback, and the
 * emulations that belong at the bottom of the chain.
 *
 * backend.c checks each call's contract and then calls through the
 * layer's ops; for a plugin those are the functions here (plugin_ops).
 * They set the request's error from nbdcbt_set_error or errno, and
 * emulate what the plugin lacks: FUA by a flush after the write (here,
 * where the write happens, as nbdkit's plugin_pwrite: no filter above
 * sees an extra flush), a zero the plugin turns down by writing zeroes.
 * Also --dump-plugin and PLUGIN --help.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "minmax.h"

#define P(b) ((b)->plugin)

/* The error of a failed callback: nbdcbt_set_error's, else errno. */
static int
plugin_error (void)
{
  int err = get_thread_error ();

  if (err == 0)
    err = errno;
  if (err == 0)
    err = EIO;
  return err;
}

/* Server-wide. */

static void *
plugin_instance_new (struct nbdcbt_backend *b)
{
  return P (b)->instance_new ? P (b)->instance_new () : NULL;
}

static void
plugin_instance_free (struct nbdcbt_backend *b)
{
  if (P (b)->instance_free)
    P (b)->instance_free (b->instance);
}

static int
plugin_config (struct nbdcbt_backend *b, const char *key, const char *value)
{
  if (P (b)->config == NULL) {
    nbdcbt_error ("%s: this plugin takes no parameters (got %s=%s)",
                  b->name, key, value);
    return -1;
  }
  return P (b)->config (b->instance, key, value);
}

static int
plugin_config_complete (struct nbdcbt_backend *b)
{
  return P (b)->config_complete ? P (b)->config_complete (b->instance) : 0;
}

static int
plugin_thread_model (struct nbdcbt_backend *b)
{
  return P (b)->thread_model ? P (b)->thread_model (b->instance)
    : NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
}

static int
plugin_get_ready (struct nbdcbt_backend *b)
{
  return P (b)->get_ready ? P (b)->get_ready (b->instance) : 0;
}

static void
plugin_cleanup (struct nbdcbt_backend *b)
{
  if (P (b)->cleanup)
    P (b)->cleanup (b->instance);
}

static const void *
plugin_get_service (struct nbdcbt_backend *b, const char *name)
{
  return P (b)->get_service ? P (b)->get_service (b->instance, name) : NULL;
}

static int
plugin_list_meta_contexts (struct nbdcbt_backend *b, const char *export_name,
                           struct nbdcbt_meta_contexts *mc)
{
  if (P (b)->list_meta_contexts == NULL)
    return 0;
  return P (b)->list_meta_contexts (b->instance, export_name, mc);
}

/* Per connection. */

static void *
plugin_open (struct nbdcbt_context *c, int readonly)
{
  struct nbdcbt_backend *b = c->b;

  clear_thread_error ();
  if (P (b)->open == NULL)
    return layer_default_handle (b);
  return P (b)->open (b->instance, readonly);
}

static int
plugin_prepare (struct nbdcbt_context *c, int readonly)
{
  return 0;
}

static int
plugin_finalize (struct nbdcbt_context *c)
{
  return 0;
}

static void
plugin_close (struct nbdcbt_context *c)
{
  if (P (c->b)->close)
    P (c->b)->close (c->handle);
}

/* The capabilities, with the defaults for missing callbacks. */
static int
plugin_get_caps (struct nbdcbt_context *c)
{
  const struct nbdcbt_plugin *p = P (c->b);
  void *h = c->handle;

  clear_thread_error ();
  c->size = p->get_size (h);
  if (c->size < 0)
    return -1;
  c->minimum = 1;
  c->preferred = 4096;
  c->maximum = 0xffffffff;
  if (p->block_size && p->block_size (h, &c->minimum, &c->preferred,
                                      &c->maximum) == -1)
    return -1;
  c->can_write = p->can_write ? p->can_write (h) : p->pwrite != NULL;
  c->can_flush = p->can_flush ? p->can_flush (h) : p->flush != NULL;
  c->is_rotational = p->is_rotational ? p->is_rotational (h) : 0;
  c->can_trim = p->can_trim ? p->can_trim (h) : p->trim != NULL;
  c->can_zero = p->can_zero ? p->can_zero (h)
    : p->zero ? NBDCBT_ZERO_NATIVE : NBDCBT_ZERO_EMULATE;
  if (p->can_fast_zero)
    c->can_fast_zero = p->can_fast_zero (h);
  else   /* without a zero callback failing fast is trivial */
    c->can_fast_zero = p->zero == NULL || c->can_zero == NBDCBT_ZERO_EMULATE;
  c->can_extents = p->can_extents ? p->can_extents (h) : p->extents != NULL;
  if (p->can_fua)
    c->can_fua = p->can_fua (h);
  else
    c->can_fua = c->can_flush > 0 ? NBDCBT_FUA_EMULATE : NBDCBT_FUA_NONE;
  c->can_multi_conn = p->can_multi_conn ? p->can_multi_conn (h) : 0;
  c->can_cache = p->can_cache ? p->can_cache (h)
    : p->cache ? NBDCBT_CACHE_NATIVE : NBDCBT_CACHE_NONE;
  return 0;
}

/* Data path. */

static int
plugin_pread (struct nbdcbt_context *c, void *buf, uint32_t count,
              uint64_t offset, uint32_t flags, int *err)
{
  clear_thread_error ();
  if (P (c->b)->pread (c->handle, buf, count, offset, flags) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

static int
plugin_flush (struct nbdcbt_context *c, uint32_t flags, int *err)
{
  if (P (c->b)->flush == NULL)
    return 0;
  clear_thread_error ();
  if (P (c->b)->flush (c->handle, flags) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

/* FUA this plugin does not do itself: take the flag off the call and
 * report that a flush must follow it.
 */
static bool
emulate_fua (struct nbdcbt_context *c, uint32_t *flags)
{
  if ((*flags & NBDCBT_FLAG_FUA) && c->can_fua != NBDCBT_FUA_NATIVE) {
    *flags &= ~NBDCBT_FLAG_FUA;
    return true;
  }
  return false;
}

static int
plugin_pwrite (struct nbdcbt_context *c, const void *buf, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  bool need_flush = emulate_fua (c, &flags);

  if (P (c->b)->pwrite == NULL) {
    *err = EROFS;
    return -1;
  }
  clear_thread_error ();
  if (P (c->b)->pwrite (c->handle, buf, count, offset, flags) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return need_flush ? plugin_flush (c, 0, err) : 0;
}

static int
plugin_trim (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  bool need_flush = emulate_fua (c, &flags);

  if (P (c->b)->trim) {          /* without one, trim is advisory */
    clear_thread_error ();
    if (P (c->b)->trim (c->handle, count, offset, flags) == -1) {
      *err = plugin_error ();
      return -1;
    }
  }
  return need_flush ? plugin_flush (c, 0, err) : 0;
}

/* Zeroes for a zero the plugin cannot do. */
#define ZERO_BUF_SIZE (1024 * 1024)
static const char zero_buf[ZERO_BUF_SIZE];

static int
plugin_zero (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
             uint32_t flags, int *err)
{
  bool need_flush = emulate_fua (c, &flags);
  int r;

  clear_thread_error ();
  if (P (c->b)->zero)
    r = P (c->b)->zero (c->handle, count, offset, flags);
  else {
    r = -1;
    nbdcbt_set_error (ENOTSUP);
  }
  if (r == -1) {
    *err = plugin_error ();
    if (*err == EOPNOTSUPP)
      *err = ENOTSUP;
    /* Not supported here after all: write zeroes, unless the client
     * wants to know that zeroing is slow.
     */
    if (*err != ENOTSUP || (flags & NBDCBT_FLAG_FAST_ZERO))
      return -1;
    while (count > 0) {
      uint32_t n = MIN (count, (uint32_t) ZERO_BUF_SIZE);

      if (plugin_pwrite (c, zero_buf, n, offset, 0, err) == -1)
        return -1;
      count -= n;
      offset += n;
    }
  }
  return need_flush ? plugin_flush (c, 0, err) : 0;
}

static int
plugin_extents (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
                uint32_t flags, struct nbdcbt_extents *extents, int *err)
{
  clear_thread_error ();
  if (P (c->b)->extents (c->handle, count, offset, flags, extents) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

static int
plugin_cache (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  if (P (c->b)->cache == NULL)
    return 0;
  clear_thread_error ();
  if (P (c->b)->cache (c->handle, count, offset, flags) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

static int
plugin_meta_extents (struct nbdcbt_context *c, const char *context,
                     uint32_t count, uint64_t offset, uint32_t flags,
                     struct nbdcbt_extents *extents, int *err)
{
  if (P (c->b)->meta_extents == NULL) {
    *err = EINVAL;
    return -1;
  }
  clear_thread_error ();
  if (P (c->b)->meta_extents (c->handle, context, count, offset, flags,
                              extents) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

const struct layer_ops plugin_ops = {
  .instance_new = plugin_instance_new,
  .instance_free = plugin_instance_free,
  .config = plugin_config,
  .config_complete = plugin_config_complete,
  .thread_model = plugin_thread_model,
  .get_ready = plugin_get_ready,
  .cleanup = plugin_cleanup,
  .get_service = plugin_get_service,
  .list_meta_contexts = plugin_list_meta_contexts,
  .open = plugin_open,
  .prepare = plugin_prepare,
  .finalize = plugin_finalize,
  .close = plugin_close,
  .get_caps = plugin_get_caps,
  .pread = plugin_pread,
  .pwrite = plugin_pwrite,
  .flush = plugin_flush,
  .trim = plugin_trim,
  .zero = plugin_zero,
  .extents = plugin_extents,
  .cache = plugin_cache,
  .meta_extents = plugin_meta_extents,
};

void
plugin_usage (struct nbdcbt_backend *b)
{
  const struct nbdcbt_plugin *p = b->plugin;

  printf ("%s", p->name);
  if (p->longname)
    printf (" (%s)", p->longname);
  printf ("\n");
  if (p->description)
    printf ("%s\n", p->description);
  if (p->magic_config_key)
    printf ("\nA bare VALUE means %s=VALUE.\n", p->magic_config_key);
  if (p->config_help)
    printf ("\n%s\n", p->config_help);
}

void
plugin_dump (struct nbdcbt_backend *b)
{
  const struct nbdcbt_plugin *p = b->plugin;
  int model;

  printf ("path=%s\n", b->filename);
  printf ("name=%s\n", p->name);
  if (p->version)
    printf ("version=%s\n", p->version);
  printf ("api_version=%d\n", p->_api_version);
  printf ("struct_size=%zu\n", p->_struct_size);
  model = p->thread_model ? p->thread_model (b->instance)
    : NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
  printf ("thread_model=%s\n",
          model == NBDCBT_THREAD_MODEL_SERIALIZE_CONNECTIONS
          ? "serialize_connections"
          : model == NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS
          ? "serialize_all_requests"
          : model == NBDCBT_THREAD_MODEL_SERIALIZE_REQUESTS
          ? "serialize_requests"
          : model == NBDCBT_THREAD_MODEL_PARALLEL ? "parallel" : "invalid");
  if (p->magic_config_key)
    printf ("magic_config_key=%s\n", p->magic_config_key);
#define HAS(field) printf ("has_%s=%d\n", #field, p->field != NULL)
  HAS (longname);
  HAS (description);
  HAS (load);
  HAS (unload);
  HAS (instance_new);
  HAS (instance_free);
  HAS (config);
  HAS (config_complete);
  HAS (config_help);
  HAS (thread_model);
  HAS (get_ready);
  HAS (cleanup);
  HAS (get_service);
  HAS (open);
  HAS (close);
  HAS (get_size);
  HAS (block_size);
  HAS (can_write);
  HAS (can_flush);
  HAS (is_rotational);
  HAS (can_trim);
  HAS (can_zero);
  HAS (can_fast_zero);
  HAS (can_extents);
  HAS (can_fua);
  HAS (can_multi_conn);
  HAS (can_cache);
  HAS (pread);
  HAS (pwrite);
  HAS (flush);
  HAS (trim);
  HAS (zero);
  HAS (extents);
  HAS (cache);
  HAS (list_meta_contexts);
  HAS (meta_extents);
#undef HAS
  fflush (stdout);
  if (p->dump_plugin)
    p->dump_plugin ();
}
