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

/* An nbdkit plugin (API 1 or 2) as the plugin of nbdcbt's chain.
 *
 * The adapter is a struct nbdcbt_plugin whose callbacks call the nbdkit
 * plugin's.  A callback the nbdkit plugin lacks is left NULL here too,
 * so the server applies the same defaults nbdkit does (no pwrite: read
 * only; no flush: no flush; zero and FUA emulated; no extents: all data).
 * Only one nbdkit plugin can be loaded (a chain has one plugin), so the
 * adapter's state is global.
 */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "internal.h"
#include "nbdkit-host.h"
#include "minmax.h"

static struct nbdkit_plugin nk;        /* the module's, copied */
static int nk_api;                     /* 1 or 2 */
static struct nbdcbt_plugin adapter;
static struct nbdcbt_module module;   /* the registration, once loaded */
static bool loaded, instantiated;

/* After a failed callback: the error the plugin set, else errno if the
 * plugin says errno is meaningful, else EIO (nbdkit's rule).
 */
static int
failed (void)
{
  int saved = errno;

  if (get_thread_error () == 0)
    nbdcbt_set_error (nk.errno_is_preserved && saved ? saved : EIO);
  return -1;
}

void
nbdkit_plugin_unload (void)
{
  if (loaded && nk.unload)
    nk.unload ();
  loaded = false;
  free (module.name);
  free (module.filename);
}

/* nbdkit plugins keep their settings in globals: one instance. */
static void *
ad_instance_new (void)
{
  if (instantiated) {
    nbdcbt_error ("%s is already used: an nbdkit module keeps its "
                  "settings in global variables, so one process can hold "
                  "one instance of it (one export, once)", module.name);
    return NULL;
  }
  instantiated = true;
  return &nk;
}

static int
ad_config (void *instance, const char *key, const char *value)
{
  return nk.config (key, value);
}

static int
ad_config_complete (void *instance)
{
  return nk.config_complete ();
}

static int
ad_thread_model (void *instance)
{
  int model = nk._thread_model;

  if (nk.thread_model) {
    int m = nk.thread_model ();

    if (m == -1)
      return -1;
    model = MIN (model, m);
  }
  return model;
}

static int
ad_get_ready (void *instance)
{
  return nk.get_ready ();
}

static void
ad_cleanup (void *instance)
{
  nk.cleanup ();
}

static int
ad_dump_plugin (void)
{
  nk.dump_plugin ();
  return 0;
}

static void *
ad_open (void *instance, int readonly)
{
  void *h;

  /* nbdkit runs .preconnect before the handshake; nbdcbt has no such
   * step, so it runs here, just before .open: a refusal still drops the
   * client before it can send a request.
   */
  if (nk.preconnect && nk.preconnect (readonly) == -1)
    return NULL;
  h = nk.open (readonly);
  return h;
}

static void
ad_close (void *h)
{
  nk.close (h);
}

static int64_t
ad_get_size (void *h)
{
  int64_t r = nk.get_size (h);

  return r == -1 ? failed () : r;
}

static int
ad_block_size (void *h, uint32_t *minimum, uint32_t *preferred,
               uint32_t *maximum)
{
  uint32_t mn = 0, pr = 0, mx = 0;

  if (nk.block_size (h, &mn, &pr, &mx) == -1)
    return failed ();
  /* All zero: no constraints; keep the server's defaults. */
  if (mn == 0 && pr == 0 && mx == 0)
    return 0;
  *minimum = mn;
  *preferred = pr;
  *maximum = mx == (uint32_t) -1 ? 0xffffffff : mx;
  return 0;
}

#define CAP(fn)                                                         \
  static int ad_##fn (void *h)                                          \
  {                                                                     \
    int r = nk.fn (h);                                                  \
    return r == -1 ? failed () : r;                                     \
  }
CAP (can_write)
CAP (can_flush)
CAP (is_rotational)
CAP (can_trim)
CAP (can_extents)
CAP (can_multi_conn)
CAP (can_cache)

static bool
has_zero (void)
{
  return nk_api == 1 ? nk._zero_v1 != NULL : nk.zero != NULL;
}

/* nbdkit's .can_zero is a boolean: true uses .zero, false makes the
 * server write zeroes.
 */
static int
ad_can_zero (void *h)
{
  int r = nk.can_zero ? nk.can_zero (h) : 1;

  if (r == -1)
    return failed ();
  return r && has_zero () ? NBDCBT_ZERO_NATIVE : NBDCBT_ZERO_EMULATE;
}

static int
ad_can_fast_zero (void *h)
{
  int r;

  if (nk.can_fast_zero) {
    r = nk.can_fast_zero (h);
    return r == -1 ? failed () : r;
  }
  /* Without it, nbdkit promises fast zeroes only where it emulates
   * (and so fails fast requests at once).
   */
  r = ad_can_zero (h);
  return r == -1 ? -1 : r == NBDCBT_ZERO_EMULATE;
}

static int
ad_can_fua (void *h)
{
  int r = nk.can_fua (h);

  if (r == -1)
    return failed ();
  /* An API 1 plugin cannot see the flag: the server flushes for it. */
  if (nk_api == 1 && r == NBDKIT_FUA_NATIVE)
    r = NBDKIT_FUA_EMULATE;
  return r;
}

static int
ad_pread (void *h, void *buf, uint32_t count, uint64_t offset,
          uint32_t flags)
{
  int r = nk_api == 1 ? nk._pread_v1 (h, buf, count, offset)
    : nk.pread (h, buf, count, offset, 0);

  return r == -1 ? failed () : 0;
}

static int
ad_pwrite (void *h, const void *buf, uint32_t count, uint64_t offset,
           uint32_t flags)
{
  int r = nk_api == 1 ? nk._pwrite_v1 (h, buf, count, offset)
    : nk.pwrite (h, buf, count, offset, nbdcbt_flags_to_nbdkit (flags));

  return r == -1 ? failed () : 0;
}

static int
ad_flush (void *h, uint32_t flags)
{
  int r = nk_api == 1 ? nk._flush_v1 (h) : nk.flush (h, 0);

  return r == -1 ? failed () : 0;
}

static int
ad_trim (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
  int r = nk_api == 1 ? nk._trim_v1 (h, count, offset)
    : nk.trim (h, count, offset, nbdcbt_flags_to_nbdkit (flags));

  return r == -1 ? failed () : 0;
}

static int
ad_zero (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
  int r;

  if (nk_api == 1) {
    /* API 1 cannot fail fast: refuse fast requests as nbdkit does. */
    if (flags & NBDCBT_FLAG_FAST_ZERO) {
      nbdcbt_set_error (ENOTSUP);
      return -1;
    }
    r = nk._zero_v1 (h, count, offset, !!(flags & NBDCBT_FLAG_MAY_TRIM));
  }
  else
    r = nk.zero (h, count, offset, nbdcbt_flags_to_nbdkit (flags));
  return r == -1 ? failed () : 0;
}

static int
ad_extents (void *h, uint32_t count, uint64_t offset, uint32_t flags,
            struct nbdcbt_extents *extents)
{
  /* An nbdkit extents list is an nbdcbt one (nbdkit-public.c). */
  if (nk.extents (h, count, offset, nbdcbt_flags_to_nbdkit (flags),
                  (struct nbdkit_extents *) extents) == -1)
    return failed ();
  return 0;
}

static int
ad_cache (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
  if (nk.cache (h, count, offset, 0) == -1)
    return failed ();
  return 0;
}

/* Where a field of API 2's struct lies beyond what the module filled. */
#define HAS(field)                                                      \
  (offsetof (struct nbdkit_plugin, field) + sizeof nk.field <= size     \
   && nk.field != NULL)

struct nbdcbt_module *
nbdkit_plugin_module (const char *name)
{
  struct nbdkit_plugin *(*init) (void);
  const struct nbdkit_plugin *p;
  char *path;
  void *dl;
  size_t size;

  path = nbdkit_module_path (name, true);
  if (path == NULL)
    return NULL;
  if (loaded) {
    if (strcmp (path, module.filename) == 0) {
      free (path);
      return &module;   /* instance_new refuses a second instance */
    }
    nbdcbt_error ("%s: only one nbdkit plugin can be loaded (%s is)",
                  name, module.filename);
    free (path);
    return NULL;
  }
  if (nbdkit_module_refused (path)) {
    nbdcbt_error ("nbdkit plugin %s cannot be used in nbdcbt: %s", name,
                  nbdkit_module_refused (path));
    free (path);
    return NULL;
  }
  dl = nbdkit_module_open (path, "plugin", "plugin_init", (void **) &init);
  if (dl == NULL) {
    free (path);
    return NULL;
  }
  p = init ();
  if (p == NULL || (p->_api_version != 1 && p->_api_version != 2)) {
    nbdcbt_error ("%s: nbdkit plugin API version %d is not supported "
                  "(nbdcbt hosts API 1 and 2, as nbdkit 1.32)", path,
                  p ? p->_api_version : -1);
    goto fail;
  }
  size = p->_struct_size;
  if (size < offsetof (struct nbdkit_plugin, _pread_v1)) {
    nbdcbt_error ("%s: nbdkit plugin structure too small (%zu bytes)",
                  path, size);
    goto fail;
  }
  memset (&nk, 0, sizeof nk);
  memcpy (&nk, p, MIN (size, sizeof nk));
  nk_api = p->_api_version;
  if (nk.name == NULL || nk.open == NULL || nk.get_size == NULL
      || (nk_api == 1 ? nk._pread_v1 == NULL : nk.pread == NULL)) {
    nbdcbt_error ("%s: nbdkit plugin lacks a name, .open, .get_size or "
                  ".pread", path);
    goto fail;
  }
  if (nk._thread_model < NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS
      || nk._thread_model > NBDKIT_THREAD_MODEL_PARALLEL) {
    nbdcbt_error ("%s: invalid thread model %d", path, nk._thread_model);
    goto fail;
  }

  adapter._struct_size = sizeof adapter;
  adapter._api_version = NBDCBT_API_VERSION;
  adapter.name = nk.name;
  adapter.longname = nk.longname;
  adapter.version = nk.version;
  adapter.description = nk.description;
  adapter.config_help = nk.config_help;
  adapter.magic_config_key = HAS (magic_config_key) ? nk.magic_config_key
    : NULL;
  adapter.instance_new = ad_instance_new;
  adapter.config = nk.config ? ad_config : NULL;
  adapter.config_complete = nk.config_complete ? ad_config_complete : NULL;
  adapter.thread_model = ad_thread_model;
  adapter.get_ready = HAS (get_ready) ? ad_get_ready : NULL;
  adapter.cleanup = HAS (cleanup) ? ad_cleanup : NULL;
  adapter.dump_plugin = HAS (dump_plugin) ? ad_dump_plugin : NULL;
  adapter.open = ad_open;
  adapter.close = nk.close ? ad_close : NULL;
  adapter.get_size = ad_get_size;
  adapter.block_size = HAS (block_size) ? ad_block_size : NULL;
  adapter.can_write = nk.can_write ? ad_can_write : NULL;
  adapter.can_flush = nk.can_flush ? ad_can_flush : NULL;
  adapter.is_rotational = nk.is_rotational ? ad_is_rotational : NULL;
  adapter.can_trim = nk.can_trim ? ad_can_trim : NULL;
  adapter.can_zero = ad_can_zero;
  adapter.can_fast_zero = ad_can_fast_zero;
  adapter.can_extents = HAS (can_extents) ? ad_can_extents : NULL;
  adapter.can_fua = HAS (can_fua) ? ad_can_fua : NULL;
  adapter.can_multi_conn = HAS (can_multi_conn) ? ad_can_multi_conn : NULL;
  adapter.can_cache = HAS (can_cache) ? ad_can_cache : NULL;
  adapter.pread = ad_pread;
  if (nk_api == 1) {
    adapter.pwrite = nk._pwrite_v1 ? ad_pwrite : NULL;
    adapter.flush = nk._flush_v1 ? ad_flush : NULL;
    adapter.trim = nk._trim_v1 ? ad_trim : NULL;
  }
  else {
    adapter.pwrite = HAS (pwrite) ? ad_pwrite : NULL;
    adapter.flush = HAS (flush) ? ad_flush : NULL;
    adapter.trim = HAS (trim) ? ad_trim : NULL;
    if (!HAS (zero))
      nk.zero = NULL;
  }
  adapter.zero = has_zero () ? ad_zero : NULL;
  adapter.extents = HAS (extents) ? ad_extents : NULL;
  adapter.cache = HAS (cache) ? ad_cache : NULL;
  if (!HAS (preconnect))
    nk.preconnect = NULL;
  if (!HAS (after_fork))
    nk.after_fork = NULL;

  if (nbdkit_debug_flags_apply (dl, nk.name) == -1)
    goto fail;
  memset (&module, 0, sizeof module);
  if (asprintf (&module.name, "nbdkit:%s", nk.name) == -1) {
    nbdcbt_error ("asprintf: %m");
    goto fail;
  }
  module.filename = path;
  module.dl = dl;
  module.plugin = &adapter;
  loaded = true;
  if (nk.load)
    nk.load ();
  return &module;

 fail:
  dlclose (dl);
  free (path);
  return NULL;
}

int
nbdkit_plugin_after_fork (void)
{
  if (loaded && nk.after_fork)
    return nk.after_fork ();
  return 0;
}
