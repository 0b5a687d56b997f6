/* The plugin + filter chain.
 *
 * Each function below runs one layer's callback: a filter's (which gets
 * backend_ops and the next layer's context) or the plugin's; a filter
 * without the callback passes the call down.  The server-side emulations
 * (FUA by flush, zero by writing zeroes, cache by reading, extents as
 * "all data") happen here, for whichever layer asks for them.
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

/* Zeroes for write-zeroes emulation. */
#define ZERO_BUF_SIZE (1024 * 1024)
static const char zero_buf[ZERO_BUF_SIZE];

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
    b->name = m->name;
    b->filename = m->filename;
    b->plugin = m->plugin;
    b->filter = m->filter;
    b->next = top;
    b->i = top ? top->i + 1 : 0;
    top = b;
    if (b->plugin && b->plugin->instance_new)
      b->instance = b->plugin->instance_new ();
    else if (b->filter && b->filter->instance_new)
      b->instance = b->filter->instance_new ();
    else
      continue;
    if (b->instance == NULL) {
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
  for (; b; b = b->next) {
    if (!b->ready)
      continue;
    b->ready = false;
    if (b->filter && b->filter->cleanup)
      b->filter->cleanup (b->next, b->instance);
    if (b->plugin && b->plugin->cleanup)
      b->plugin->cleanup (b->instance);
  }
}

void
backend_chain_free (struct nbdcbt_backend *b)
{
  struct nbdcbt_backend *next;

  backend_cleanup (b);
  for (; b; b = next) {
    next = b->next;
    if (b->has_instance) {
      if (b->plugin && b->plugin->instance_free)
        b->plugin->instance_free (b->instance);
      if (b->filter && b->filter->instance_free)
        b->filter->instance_free (b->instance);
    }
    free (b);
  }
}

int
backend_config (struct nbdcbt_backend *b, const char *key, const char *value)
{
  if (b->filter) {
    if (b->filter->config)
      return b->filter->config (backend_config, b->next, b->instance, key,
                                value);
    return backend_config (b->next, key, value);
  }
  if (b->plugin->config == NULL) {
    nbdcbt_error ("%s: this plugin takes no parameters (got %s=%s)",
                  b->name, key, value);
    return -1;
  }
  return b->plugin->config (b->instance, key, value);
}

int
backend_config_complete (struct nbdcbt_backend *b)
{
  if (b->filter) {
    if (b->filter->config_complete)
      return b->filter->config_complete (backend_config_complete, b->next,
                                         b->instance);
    return backend_config_complete (b->next);
  }
  if (b->plugin->config_complete)
    return b->plugin->config_complete (b->instance);
  return 0;
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
  int r = 0;

  if (b->next && backend_get_ready (b->next) == -1)
    return -1;
  if (b->filter && b->filter->get_ready)
    r = b->filter->get_ready (b->next, b->instance);
  if (b->plugin && b->plugin->get_ready)
    r = b->plugin->get_ready (b->instance);
  if (r == 0)
    b->ready = true;
  return r;
}

int
backend_thread_model (struct nbdcbt_backend *b)
{
  int model, m;

  if (b->plugin) {
    model = NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
    if (b->plugin->thread_model)
      model = b->plugin->thread_model (b->instance);
  }
  else {
    model = backend_thread_model (b->next);
    if (model == -1)
      return -1;
    if (b->filter->thread_model) {
      m = b->filter->thread_model (b->instance);
      if (m < model)
        model = m;
    }
  }
  if (model < NBDCBT_THREAD_MODEL_SERIALIZE_CONNECTIONS
      || model > NBDCBT_THREAD_MODEL_PARALLEL) {
    nbdcbt_error ("%s: invalid thread model %d", b->name, model);
    return -1;
  }
  return model;
}

int
backend_list_meta_contexts (struct nbdcbt_backend *b,
                            const char *export_name,
                            struct nbdcbt_meta_contexts *mc)
{
  if (b->filter) {
    if (b->filter->list_meta_contexts)
      return b->filter->list_meta_contexts (backend_list_meta_contexts,
                                            b->next, b->instance,
                                            export_name, mc);
    return backend_list_meta_contexts (b->next, export_name, mc);
  }
  if (b->plugin->list_meta_contexts)
    return b->plugin->list_meta_contexts (b->instance, export_name, mc);
  return 0;
}

/* Per connection: open, capabilities, close. */

/* The handle of a layer without open: its instance, if it has one. */
static void *
default_handle (struct nbdcbt_backend *b)
{
  return b->has_instance && b->instance ? b->instance : HANDLE_NOT_NEEDED;
}

static int
context_open (struct nbdcbt_context *c, int readonly)
{
  void *h;

  if (c->opened) {
    nbdcbt_error ("%s: next layer opened twice", c->b->name);
    return -1;
  }
  if (c->b->plugin) {
    clear_thread_error ();
    h = c->b->plugin->open ? c->b->plugin->open (c->b->instance, readonly)
      : default_handle (c->b);
  }
  else if (c->b->filter->open)
    h = c->b->filter->open (context_open, c->next, c->b->instance,
                            readonly);
  else
    h = context_open (c->next, readonly) == 0 ? default_handle (c->b)
      : NULL;
  if (h == NULL) {
    nbdcbt_debug ("%s: open failed", c->b->name);
    return -1;
  }
  if (c->next && !c->next->opened) {
    nbdcbt_error ("%s: filter open did not open the next layer",
                  c->b->name);
    return -1;
  }
  c->handle = h;
  c->opened = true;
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

#define FILTER_OR_PASS(c, fn, ...)                                            \
  ((c)->b->filter->fn                                                         \
   ? (c)->b->filter->fn (&backend_ops, (c)->next, (c)->handle, ##__VA_ARGS__) \
   : (c)->next->fn)

static int
compute_caps (struct nbdcbt_context *c)
{
  const struct nbdcbt_plugin *p = c->b->plugin;
  const struct nbdcbt_filter *f = c->b->filter;
  void *h = c->handle;
  int r;

  if (p) {
    clear_thread_error ();
    c->size = p->get_size ? p->get_size (h) : -1;
    if (c->size < 0) {
      nbdcbt_error ("%s: could not get the export size", c->b->name);
      return -1;
    }
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
      c->can_fast_zero = p->zero == NULL
        || c->can_zero == NBDCBT_ZERO_EMULATE;
    c->can_extents = p->can_extents ? p->can_extents (h)
      : p->extents != NULL;
    if (p->can_fua)
      c->can_fua = p->can_fua (h);
    else
      c->can_fua = c->can_flush > 0 ? NBDCBT_FUA_EMULATE : NBDCBT_FUA_NONE;
    c->can_multi_conn = p->can_multi_conn ? p->can_multi_conn (h) : 0;
    c->can_cache = p->can_cache ? p->can_cache (h)
      : p->cache ? NBDCBT_CACHE_NATIVE : NBDCBT_CACHE_NONE;
  }
  else {
    struct nbdcbt_context *n = c->next;

    c->size = f->get_size ? f->get_size (&backend_ops, n, h) : n->size;
    if (c->size < 0) {
      nbdcbt_error ("%s: could not get the export size", c->b->name);
      return -1;
    }
    c->minimum = n->minimum;
    c->preferred = n->preferred;
    c->maximum = n->maximum;
    if (f->block_size && f->block_size (&backend_ops, n, h, &c->minimum,
                                        &c->preferred, &c->maximum) == -1)
      return -1;
    c->can_write = FILTER_OR_PASS (c, can_write);
    c->can_flush = FILTER_OR_PASS (c, can_flush);
    c->is_rotational = FILTER_OR_PASS (c, is_rotational);
    c->can_trim = FILTER_OR_PASS (c, can_trim);
    c->can_zero = FILTER_OR_PASS (c, can_zero);
    c->can_fast_zero = FILTER_OR_PASS (c, can_fast_zero);
    c->can_extents = FILTER_OR_PASS (c, can_extents);
    c->can_fua = FILTER_OR_PASS (c, can_fua);
    c->can_multi_conn = FILTER_OR_PASS (c, can_multi_conn);
    c->can_cache = FILTER_OR_PASS (c, can_cache);
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
  (void) r;
  return 0;
}

/* Prepare bottom up, then compute capabilities bottom up. */
static int
context_prepare (struct nbdcbt_context *c, bool readonly)
{
  if (c->next && context_prepare (c->next, readonly) == -1)
    return -1;
  if (c->b->filter && c->b->filter->prepare) {
    if (c->b->filter->prepare (&backend_ops, c->next, c->handle,
                               readonly) == -1)
      return -1;
  }
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
    if (c->prepared && c->b->filter && c->b->filter->finalize) {
      if (c->b->filter->finalize (&backend_ops, c->next, c->handle) == -1)
        nbdcbt_debug ("%s: finalize failed", c->b->name);
    }
  for (c = chain; c; c = c->next) {
    if (!c->opened)
      continue;
    if (c->b->filter && c->b->filter->close)
      c->b->filter->close (c->handle);
    if (c->b->plugin && c->b->plugin->close)
      c->b->plugin->close (c->handle);
  }
  context_free (chain);
}

/* Capability accessors used by filters through next_ops. */
static int64_t next_get_size (struct nbdcbt_context *c) { return c->size; }
static int
next_block_size (struct nbdcbt_context *c, uint32_t *minimum,
                 uint32_t *preferred, uint32_t *maximum)
{
  *minimum = c->minimum;
  *preferred = c->preferred;
  *maximum = c->maximum;
  return 0;
}
#define CAP(field)                                                            \
  static int next_##field (struct nbdcbt_context *c) { return c->field; }
CAP (can_write)
CAP (can_flush)
CAP (is_rotational)
CAP (can_trim)
CAP (can_zero)
CAP (can_fast_zero)
CAP (can_extents)
CAP (can_fua)
CAP (can_multi_conn)
CAP (can_cache)

/* Data path. */

int
backend_pread (struct nbdcbt_context *c, void *buf, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  if (c->b->filter) {
    if (c->b->filter->pread)
      return c->b->filter->pread (&backend_ops, c->next, c->handle, buf,
                                  count, offset, flags, err);
    return backend_pread (c->next, buf, count, offset, flags, err);
  }
  clear_thread_error ();
  if (c->b->plugin->pread (c->handle, buf, count, offset, flags) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

static int
layer_pwrite (struct nbdcbt_context *c, const void *buf, uint32_t count,
              uint64_t offset, uint32_t flags, int *err)
{
  if (c->b->filter) {
    if (c->b->filter->pwrite)
      return c->b->filter->pwrite (&backend_ops, c->next, c->handle, buf,
                                   count, offset, flags, err);
    return backend_pwrite (c->next, buf, count, offset, flags, err);
  }
  if (c->b->plugin->pwrite == NULL) {
    *err = EROFS;
    return -1;
  }
  clear_thread_error ();
  if (c->b->plugin->pwrite (c->handle, buf, count, offset, flags) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

/* FUA the layer cannot do natively: do the write, then flush (when a
 * filter asks for FUA from a layer that does not offer it, flushing is
 * still the safe answer).
 */
static bool
strip_fua (struct nbdcbt_context *c, uint32_t *flags)
{
  if ((*flags & NBDCBT_FLAG_FUA) && c->can_fua != NBDCBT_FUA_NATIVE) {
    *flags &= ~NBDCBT_FLAG_FUA;
    return c->can_flush;
  }
  return false;
}

int
backend_pwrite (struct nbdcbt_context *c, const void *buf, uint32_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  bool fua = strip_fua (c, &flags);

  if (layer_pwrite (c, buf, count, offset, flags, err) == -1)
    return -1;
  return fua ? backend_flush (c, 0, err) : 0;
}

int
backend_flush (struct nbdcbt_context *c, uint32_t flags, int *err)
{
  if (c->b->filter) {
    if (c->b->filter->flush)
      return c->b->filter->flush (&backend_ops, c->next, c->handle, flags,
                                  err);
    return backend_flush (c->next, flags, err);
  }
  if (c->b->plugin->flush == NULL)
    return 0;
  clear_thread_error ();
  if (c->b->plugin->flush (c->handle, flags) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

int
backend_trim (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  bool fua = strip_fua (c, &flags);
  int r;

  if (c->b->filter) {
    if (c->b->filter->trim)
      r = c->b->filter->trim (&backend_ops, c->next, c->handle, count,
                              offset, flags, err);
    else
      r = backend_trim (c->next, count, offset, flags, err);
  }
  else if (c->b->plugin->trim == NULL)
    r = 0;                      /* trim is advisory */
  else {
    clear_thread_error ();
    r = c->b->plugin->trim (c->handle, count, offset, flags);
    if (r == -1)
      *err = plugin_error ();
  }
  if (r == 0 && fua)
    r = backend_flush (c, 0, err);
  return r;
}

static int
emulate_zero (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  flags &= NBDCBT_FLAG_FUA;
  while (count > 0) {
    uint32_t n = MIN (count, (uint32_t) ZERO_BUF_SIZE);
    if (layer_pwrite (c, zero_buf, n, offset, count == n ? flags : 0,
                      err) == -1)
      return -1;
    count -= n;
    offset += n;
  }
  return 0;
}

int
backend_zero (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  bool fua = strip_fua (c, &flags);
  int r;

  if (!c->can_write) {
    *err = EROFS;
    return -1;
  }
  if (c->can_zero == NBDCBT_ZERO_NONE
      || c->can_zero == NBDCBT_ZERO_EMULATE) {
    if (flags & NBDCBT_FLAG_FAST_ZERO) {
      *err = ENOTSUP;
      return -1;
    }
    r = emulate_zero (c, count, offset, flags, err);
  }
  else if (c->b->filter) {
    if (c->b->filter->zero)
      r = c->b->filter->zero (&backend_ops, c->next, c->handle, count,
                              offset, flags, err);
    else
      r = backend_zero (c->next, count, offset, flags, err);
  }
  else {
    if ((flags & NBDCBT_FLAG_FAST_ZERO) && !c->can_fast_zero) {
      *err = ENOTSUP;
      return -1;
    }
    clear_thread_error ();
    r = c->b->plugin->zero (c->handle, count, offset, flags);
    if (r == -1) {
      *err = plugin_error ();
      /* Not supported here after all: fall back to writing zeroes,
       * unless the client wants to know that zeroing is slow.
       */
      if ((*err == ENOTSUP || *err == EOPNOTSUPP)
          && !(flags & NBDCBT_FLAG_FAST_ZERO))
        r = emulate_zero (c, count, offset, flags, err);
    }
  }
  if (r == -1 && (flags & NBDCBT_FLAG_FAST_ZERO) && *err == EOPNOTSUPP)
    *err = ENOTSUP;
  if (r == 0 && fua)
    r = backend_flush (c, 0, err);
  return r;
}

int
backend_extents (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
                 uint32_t flags, struct nbdcbt_extents *extents, int *err)
{
  if (!c->can_extents) {
    /* Everything is allocated data. */
    if (nbdcbt_add_extent (extents, offset, count, 0) == -1) {
      *err = errno ? errno : EIO;
      return -1;
    }
    return 0;
  }
  if (c->b->filter) {
    if (c->b->filter->extents)
      return c->b->filter->extents (&backend_ops, c->next, c->handle, count,
                                    offset, flags, extents, err);
    return backend_extents (c->next, count, offset, flags, extents, err);
  }
  clear_thread_error ();
  if (c->b->plugin->extents (c->handle, count, offset, flags,
                             extents) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

int
backend_cache (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  if (c->can_cache == NBDCBT_CACHE_NONE) {
    *err = EINVAL;
    return -1;
  }
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
  if (c->b->filter) {
    if (c->b->filter->cache)
      return c->b->filter->cache (&backend_ops, c->next, c->handle, count,
                                  offset, flags, err);
    return backend_cache (c->next, count, offset, flags, err);
  }
  clear_thread_error ();
  if (c->b->plugin->cache == NULL)
    return 0;
  if (c->b->plugin->cache (c->handle, count, offset, flags) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

int
backend_meta_extents (struct nbdcbt_context *c, const char *context,
                      uint32_t count, uint64_t offset, uint32_t flags,
                      struct nbdcbt_extents *extents, int *err)
{
  if (c->b->filter) {
    if (c->b->filter->meta_extents)
      return c->b->filter->meta_extents (&backend_ops, c->next, c->handle,
                                         context, count, offset, flags,
                                         extents, err);
    return backend_meta_extents (c->next, context, count, offset, flags,
                                 extents, err);
  }
  if (c->b->plugin->meta_extents == NULL) {
    *err = EINVAL;
    return -1;
  }
  clear_thread_error ();
  if (c->b->plugin->meta_extents (c->handle, context, count, offset, flags,
                                  extents) == -1) {
    *err = plugin_error ();
    return -1;
  }
  return 0;
}

const struct nbdcbt_next_ops backend_ops = {
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
  .pread = backend_pread,
  .pwrite = backend_pwrite,
  .flush = backend_flush,
  .trim = backend_trim,
  .zero = backend_zero,
  .extents = backend_extents,
  .cache = backend_cache,
  .meta_extents = backend_meta_extents,
};
