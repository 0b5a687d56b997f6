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

/* nbdcbt filter API.
 *
 * A filter is a shared object (nbdcbt-NAME-filter.so) placed above the
 * plugin with --filter=NAME.  Every callback gets the next layer's
 * operations (next_ops) and its opaque handle (nxdata): a filter may change,
 * answer or pass on each request.  Data callbacks report errors through
 * *err (an errno value) and return -1.  A NULL callback passes the request
 * down unchanged.
 */
#ifndef NBDCBT_FILTER_H
#define NBDCBT_FILTER_H

#include "nbdcbt-common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nbdcbt_backend nbdcbt_backend; /* a layer, server-wide */
typedef struct nbdcbt_context nbdcbt_context; /* a layer, per connection */

/* The next layer's callbacks at configuration time.  NXDATA stands for
 * the next layer of this export's chain (its instance included).
 */
typedef int nbdcbt_next_config (nbdcbt_backend *nxdata, const char *key,
                                const char *value);
typedef int nbdcbt_next_config_complete (nbdcbt_backend *nxdata);
typedef int nbdcbt_next_open (nbdcbt_context *nxdata, int readonly);
typedef int nbdcbt_next_list_meta_contexts (
  nbdcbt_backend *nxdata, const char *export_name,
  struct nbdcbt_meta_contexts *contexts);

/* A service (see the plugin's get_service) of the first layer from
 * NXDATA down that provides it, or NULL.  Valid from get_ready on.
 */
extern const void *nbdcbt_next_service (nbdcbt_backend *nxdata,
                                        const char *name);

struct nbdcbt_next_ops {
  int64_t (*get_size) (nbdcbt_context *nxdata);
  int (*block_size) (nbdcbt_context *nxdata, uint32_t *minimum,
                     uint32_t *preferred, uint32_t *maximum);
  int (*can_write) (nbdcbt_context *nxdata);
  int (*can_flush) (nbdcbt_context *nxdata);
  int (*is_rotational) (nbdcbt_context *nxdata);
  int (*can_trim) (nbdcbt_context *nxdata);
  int (*can_zero) (nbdcbt_context *nxdata);
  int (*can_fast_zero) (nbdcbt_context *nxdata);
  int (*can_extents) (nbdcbt_context *nxdata);
  int (*can_fua) (nbdcbt_context *nxdata);
  int (*can_multi_conn) (nbdcbt_context *nxdata);
  int (*can_cache) (nbdcbt_context *nxdata);

  int (*pread) (nbdcbt_context *nxdata, void *buf, uint32_t count,
                uint64_t offset, uint32_t flags, int *err);
  int (*pwrite) (nbdcbt_context *nxdata, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags, int *err);
  int (*flush) (nbdcbt_context *nxdata, uint32_t flags, int *err);
  int (*trim) (nbdcbt_context *nxdata, uint32_t count, uint64_t offset,
               uint32_t flags, int *err);
  int (*zero) (nbdcbt_context *nxdata, uint32_t count, uint64_t offset,
               uint32_t flags, int *err);
  int (*extents) (nbdcbt_context *nxdata, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdcbt_extents *extents, int *err);
  int (*cache) (nbdcbt_context *nxdata, uint32_t count, uint64_t offset,
                uint32_t flags, int *err);
  int (*meta_extents) (nbdcbt_context *nxdata, const char *context,
                       uint32_t count, uint64_t offset, uint32_t flags,
                       struct nbdcbt_extents *extents, int *err);
};

struct nbdcbt_filter {
  size_t _struct_size;
  int _api_version;

  const char *name;
  const char *longname;
  const char *version;
  const char *description;
  const char *config_help;

  /* The module: once per process. */
  void (*load) (void);
  void (*unload) (void);

  /* An instance: one per export whose chain has the filter (see the
   * plugin's instance_new and instance_free).
   */
  void *(*instance_new) (void);
  void (*instance_free) (void *instance);
  int (*config) (nbdcbt_next_config *next, nbdcbt_backend *nxdata,
                 void *instance, const char *key, const char *value);
  int (*config_complete) (nbdcbt_next_config_complete *next,
                          nbdcbt_backend *nxdata, void *instance);
  /* May only lower the model below it. */
  int (*thread_model) (void *instance);
  /* The layers below are ready first; cleanup runs top down. */
  int (*get_ready) (nbdcbt_backend *nxdata, void *instance);
  void (*cleanup) (nbdcbt_backend *nxdata, void *instance);
  const void *(*get_service) (nbdcbt_backend *nxdata, void *instance,
                              const char *name);

  int (*list_meta_contexts) (nbdcbt_next_list_meta_contexts *next,
                             nbdcbt_backend *nxdata, void *instance,
                             const char *export_name,
                             struct nbdcbt_meta_contexts *contexts);

  /* Per connection: must call NEXT (nxdata, readonly) once. */
  void *(*open) (nbdcbt_next_open *next, nbdcbt_context *nxdata,
                 void *instance, int readonly);
  void (*close) (void *handle);
  /* After open succeeded all the way down / before close. */
  int (*prepare) (const struct nbdcbt_next_ops *next_ops,
                  nbdcbt_context *nxdata, void *handle, int readonly);
  int (*finalize) (const struct nbdcbt_next_ops *next_ops,
                   nbdcbt_context *nxdata, void *handle);

  int64_t (*get_size) (const struct nbdcbt_next_ops *next_ops,
                       nbdcbt_context *nxdata, void *handle);
  int (*block_size) (const struct nbdcbt_next_ops *next_ops,
                     nbdcbt_context *nxdata, void *handle,
                     uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum);
  int (*can_write) (const struct nbdcbt_next_ops *next_ops,
                    nbdcbt_context *nxdata, void *handle);
  int (*can_flush) (const struct nbdcbt_next_ops *next_ops,
                    nbdcbt_context *nxdata, void *handle);
  int (*is_rotational) (const struct nbdcbt_next_ops *next_ops,
                        nbdcbt_context *nxdata, void *handle);
  int (*can_trim) (const struct nbdcbt_next_ops *next_ops,
                   nbdcbt_context *nxdata, void *handle);
  int (*can_zero) (const struct nbdcbt_next_ops *next_ops,
                   nbdcbt_context *nxdata, void *handle);
  int (*can_fast_zero) (const struct nbdcbt_next_ops *next_ops,
                        nbdcbt_context *nxdata, void *handle);
  int (*can_extents) (const struct nbdcbt_next_ops *next_ops,
                      nbdcbt_context *nxdata, void *handle);
  int (*can_fua) (const struct nbdcbt_next_ops *next_ops,
                  nbdcbt_context *nxdata, void *handle);
  int (*can_multi_conn) (const struct nbdcbt_next_ops *next_ops,
                         nbdcbt_context *nxdata, void *handle);
  int (*can_cache) (const struct nbdcbt_next_ops *next_ops,
                    nbdcbt_context *nxdata, void *handle);

  int (*pread) (const struct nbdcbt_next_ops *next_ops,
                nbdcbt_context *nxdata, void *handle, void *buf,
                uint32_t count, uint64_t offset, uint32_t flags, int *err);
  int (*pwrite) (const struct nbdcbt_next_ops *next_ops,
                 nbdcbt_context *nxdata, void *handle, const void *buf,
                 uint32_t count, uint64_t offset, uint32_t flags, int *err);
  int (*flush) (const struct nbdcbt_next_ops *next_ops,
                nbdcbt_context *nxdata, void *handle, uint32_t flags,
                int *err);
  int (*trim) (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, uint32_t count,
               uint64_t offset, uint32_t flags, int *err);
  int (*zero) (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, uint32_t count,
               uint64_t offset, uint32_t flags, int *err);
  int (*extents) (const struct nbdcbt_next_ops *next_ops,
                  nbdcbt_context *nxdata, void *handle, uint32_t count,
                  uint64_t offset, uint32_t flags,
                  struct nbdcbt_extents *extents, int *err);
  int (*cache) (const struct nbdcbt_next_ops *next_ops,
                nbdcbt_context *nxdata, void *handle, uint32_t count,
                uint64_t offset, uint32_t flags, int *err);
  int (*meta_extents) (const struct nbdcbt_next_ops *next_ops,
                       nbdcbt_context *nxdata, void *handle,
                       const char *context, uint32_t count, uint64_t offset,
                       uint32_t flags, struct nbdcbt_extents *extents,
                       int *err);
};

#define NBDCBT_REGISTER_FILTER(f)                                             \
  extern struct nbdcbt_filter *nbdcbt_register_filter (void);                 \
  struct nbdcbt_filter *                                                      \
  nbdcbt_register_filter (void)                                               \
  {                                                                           \
    (f)._struct_size = sizeof (f);                                            \
    (f)._api_version = NBDCBT_API_VERSION;                                    \
    return &(f);                                                              \
  }

#ifdef __cplusplus
}
#endif

#endif /* NBDCBT_FILTER_H */
