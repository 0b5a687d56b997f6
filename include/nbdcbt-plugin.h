/* nbdcbt plugin API.
 *
 * A plugin is a shared object (nbdcbt-NAME-plugin.so) that does the I/O at
 * the bottom of the chain.  It defines one struct nbdcbt_plugin and
 * registers it with NBDCBT_REGISTER_PLUGIN.  Callbacks return 0 (or the
 * documented value) on success and -1 with errno set (or
 * nbdcbt_set_error) on failure.  Optional callbacks may be NULL.
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

  /* Life cycle of the whole server. */
  void (*load) (void);
  void (*unload) (void);
  int (*config) (const char *key, const char *value);
  int (*config_complete) (void);
  int (*thread_model) (void); /* default SERIALIZE_ALL_REQUESTS */
  int (*get_ready) (void);    /* after config, before the first client */
  void (*cleanup) (void);     /* at shutdown, after the last connection */
  int (*dump_plugin) (void);  /* extra KEY=VALUE lines for --dump-plugin */

  /* Named services a layer above may look up (nbdcbt_next_service), e.g.
   * "bitmap-store".  Returns NULL when not provided.
   */
  const void *(*get_service) (const char *name);

  /* Per connection. */
  void *(*open) (int readonly);
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
  int (*list_meta_contexts) (const char *export_name,
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
