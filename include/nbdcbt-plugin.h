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

/* nbdcbt plugin API.
 *
 * A plugin is a shared object (nbdcbt-NAME-plugin.so) that does the I/O at
 * the bottom of the chain.  It defines one struct nbdcbt_plugin and
 * registers it with NBDCBT_REGISTER_PLUGIN.  Callbacks return 0 (or the
 * documented value) on success and -1 with errno set (or
 * nbdcbt_set_error) on failure.  Optional callbacks may be NULL.
 *
 * Instances: one server may serve several exports, each through its own
 * chain, and two of them may use the same plugin with different
 * parameters.  The module is loaded once (load, unload); each export gets
 * an instance: instance_new makes it, config and config_complete fill it,
 * and every later server-wide callback (thread_model, get_ready, cleanup,
 * get_service, list_meta_contexts, open) receives it.  Keep the
 * configuration and whatever is shared by the connections of one export
 * in the instance, not in globals.  Per-connection state lives in the
 * handle that open returns; the data callbacks get only the handle, so a
 * handle that needs its instance keeps a pointer to it.  A plugin without
 * instance_new gets NULL as its instance.
 *
 * The life of an instance: instance_new, config ..., config_complete,
 * thread_model, get_ready, then open/close per connection, then cleanup
 * (only if get_ready succeeded), then instance_free.  Exports may also be
 * added and removed while the server runs, so instances come and go.
 */
#ifndef NBDCBT_PLUGIN_H
#define NBDCBT_PLUGIN_H

#include "nbdcbt-common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct nbdcbt_plugin {
  size_t _struct_size; /* filled in by NBDCBT_REGISTER_PLUGIN */
  int _api_version;

  const char *name;        /* [a-z0-9_-]+, required */
  const char *longname;
  const char *version;
  const char *description;
  const char *config_help; /* shown by --help PLUGIN and --dump-plugin */
  const char *magic_config_key; /* bare VALUE means MAGIC_KEY=VALUE */

  /* The module: once per process. */
  void (*load) (void);
  void (*unload) (void);
  int (*dump_plugin) (void);  /* extra KEY=VALUE lines for --dump-plugin */

  /* An instance: one per export using the plugin.  instance_new returns
   * the new instance, or NULL after nbdcbt_error.  instance_free is
   * called exactly once for every instance made, last.
   */
  void *(*instance_new) (void);
  void (*instance_free) (void *instance);
  int (*config) (void *instance, const char *key, const char *value);
  int (*config_complete) (void *instance);
  int (*thread_model) (void *instance); /* default SERIALIZE_ALL_REQUESTS */
  int (*get_ready) (void *instance); /* after config, before its clients */
  void (*cleanup) (void *instance);  /* after its last connection */

  /* Named services a layer above may look up (nbdcbt_next_service), e.g.
   * "bitmap-store".  Returns NULL when not provided.
   */
  const void *(*get_service) (void *instance, const char *name);

  /* Per connection.  Without open the handle is the instance (or, with
   * no instance, some non-NULL pointer).
   */
  void *(*open) (void *instance, int readonly);
  void (*close) (void *handle);

  int64_t (*get_size) (void *handle);
  int (*block_size) (void *handle, uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum);
  int (*can_write) (void *handle);
  int (*can_flush) (void *handle);
  int (*is_rotational) (void *handle);
  int (*can_trim) (void *handle);
  int (*can_zero) (void *handle);      /* NBDCBT_ZERO_* */
  int (*can_fast_zero) (void *handle);
  int (*can_extents) (void *handle);
  int (*can_fua) (void *handle);       /* NBDCBT_FUA_* */
  int (*can_multi_conn) (void *handle);
  int (*can_cache) (void *handle);     /* NBDCBT_CACHE_* */

  int (*pread) (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags);
  int (*pwrite) (void *handle, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags);
  int (*flush) (void *handle, uint32_t flags);
  int (*trim) (void *handle, uint32_t count, uint64_t offset, uint32_t flags);
  int (*zero) (void *handle, uint32_t count, uint64_t offset, uint32_t flags);
  int (*extents) (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdcbt_extents *extents);
  int (*cache) (void *handle, uint32_t count, uint64_t offset, uint32_t flags);

  /* Metadata contexts this plugin owns (see nbdcbt_add_meta_context). */
  int (*list_meta_contexts) (void *instance, const char *export_name,
                             struct nbdcbt_meta_contexts *contexts);
  int (*meta_extents) (void *handle, const char *context, uint32_t count,
                       uint64_t offset, uint32_t flags,
                       struct nbdcbt_extents *extents);
};

#define NBDCBT_REGISTER_PLUGIN(p)                                             \
  extern struct nbdcbt_plugin *nbdcbt_register_plugin (void);                 \
  struct nbdcbt_plugin *                                                      \
  nbdcbt_register_plugin (void)                                               \
  {                                                                           \
    (p)._struct_size = sizeof (p);                                            \
    (p)._api_version = NBDCBT_API_VERSION;                                    \
    return &(p);                                                              \
  }

#ifdef __cplusplus
}
#endif

#endif /* NBDCBT_PLUGIN_H */
