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

/* nbdcbt: definitions shared by the plugin and filter APIs.
 *
 * Plugins and filters are shared objects loaded by the server.  They call
 * back into the server through the nbdcbt_* functions declared here.
 */
#ifndef NBDCBT_COMMON_H
#define NBDCBT_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version 2: per-instance module state (see nbdcbt-plugin.h).  A module
 * built for another version is refused when it is loaded.
 */
#define NBDCBT_API_VERSION 2

/* Thread models, least to most parallel (as nbdkit's). */
#define NBDCBT_THREAD_MODEL_SERIALIZE_CONNECTIONS 0
#define NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS 1
#define NBDCBT_THREAD_MODEL_SERIALIZE_REQUESTS 2
#define NBDCBT_THREAD_MODEL_PARALLEL 3

/* Request flags passed to data callbacks. */
#define NBDCBT_FLAG_FUA (1 << 0)       /* write, trim, zero: durable on return */
#define NBDCBT_FLAG_MAY_TRIM (1 << 1)  /* zero: may punch a hole */
#define NBDCBT_FLAG_REQ_ONE (1 << 2)   /* extents: one extent is enough */
#define NBDCBT_FLAG_FAST_ZERO (1 << 3) /* zero: fail with ENOTSUP unless fast */

/* Answers of can_fua. */
#define NBDCBT_FUA_NONE 0
#define NBDCBT_FUA_EMULATE 1 /* the server flushes after the write */
#define NBDCBT_FUA_NATIVE 2  /* the callback honours NBDCBT_FLAG_FUA */

/* Answers of can_zero and can_cache. */
#define NBDCBT_ZERO_NONE 0
#define NBDCBT_ZERO_EMULATE 1 /* the server writes zero buffers */
#define NBDCBT_ZERO_NATIVE 2
#define NBDCBT_CACHE_NONE 0
#define NBDCBT_CACHE_EMULATE 1 /* the server reads and discards */
#define NBDCBT_CACHE_NATIVE 2

/* Extent types for base:allocation (NBD_STATE_HOLE, NBD_STATE_ZERO).  For
 * other metadata contexts the type is the context's own 32-bit status
 * (e.g. 1 = dirty for qemu:dirty-bitmap:NAME, the depth for
 * qemu:allocation-depth).
 */
#define NBDCBT_EXTENT_HOLE (1 << 0)
#define NBDCBT_EXTENT_ZERO (1 << 1)

/* Logging.  nbdcbt_error and nbdcbt_warning go to stderr (or syslog);
 * nbdcbt_debug only with -v.  All accept %m.  An error logged while the
 * server shuts down (in close or cleanup) makes it exit with status 1.
 */
extern void nbdcbt_error (const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));
extern void nbdcbt_verror (const char *fs, va_list args)
  __attribute__ ((__format__ (__printf__, 1, 0)));
/* Something the operator should know that does not stop the server. */
extern void nbdcbt_warning (const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));
extern void nbdcbt_debug (const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));
extern bool nbdcbt_verbose (void);

/* Set the NBD error a failing plugin callback returns (default: errno). */
extern void nbdcbt_set_error (int err);

/* Parsing helpers for KEY=VALUE parameters.  They print an error naming the
 * key and return -1 on bad input.
 */
extern int64_t nbdcbt_parse_size (const char *str); /* 1M, 2G, 512, 4k ... */
extern int nbdcbt_parse_bool (const char *str);     /* 1/0, on/off, yes/no, true/false */
extern int nbdcbt_parse_uint32 (const char *what, const char *str,
                                uint32_t *r);
extern int nbdcbt_parse_uint64 (const char *what, const char *str,
                                uint64_t *r);
/* Absolute path of FILENAME, relative to the server's starting directory.
 * Caller frees.
 */
extern char *nbdcbt_absolute_path (const char *filename);

/* Extents: a list the server hands to extents and meta_extents callbacks.
 * Add extents in ascending order from the requested offset.  Extents
 * before the request are ignored, those past its end clipped; neighbours
 * with the same type are merged.  Returns -1 (errno set) on error.  Once
 * the list is full (for example one extent under NBDCBT_FLAG_REQ_ONE,
 * or the reply's descriptor limit) further extents are silently dropped,
 * and nbdcbt_extents_full returns true so producers can stop early.
 */
struct nbdcbt_extent {
  uint64_t offset;
  uint64_t length;
  uint32_t type;
};
struct nbdcbt_extents;
extern int nbdcbt_add_extent (struct nbdcbt_extents *extents,
                              uint64_t offset, uint64_t length,
                              uint32_t type);
extern bool nbdcbt_extents_full (const struct nbdcbt_extents *extents);
/* For filters that need to read a list they asked for. */
extern struct nbdcbt_extents *nbdcbt_extents_new (uint64_t start,
                                                  uint64_t end);
extern void nbdcbt_extents_free (struct nbdcbt_extents *extents);
extern size_t nbdcbt_extents_count (const struct nbdcbt_extents *extents);
extern struct nbdcbt_extent nbdcbt_get_extent (
  const struct nbdcbt_extents *extents, size_t i);

/* Metadata contexts beyond base:allocation.  A layer that owns contexts
 * (qemu:dirty-bitmap:NAME, qemu:allocation-depth, ...) adds their full
 * names in its list_meta_contexts callback; block status requests for them
 * reach its meta_extents callback.
 */
struct nbdcbt_meta_contexts;
extern int nbdcbt_add_meta_context (struct nbdcbt_meta_contexts *contexts,
                                    const char *name);

/* The export name the client asked for on this connection ("" by
 * default), or NULL outside a connection.
 */
extern const char *nbdcbt_export_name (void);

/* True when the server was started with -r (--readonly): no connection
 * of any export will ever be opened for writing, so a plugin may open its
 * image read-only once, in get_ready, instead of read-write.  Valid from
 * config on (the command line is parsed before any callback runs).
 */
extern bool nbdcbt_read_only (void);

/* Ask the server to shut down as if it got SIGTERM. */
extern void nbdcbt_shutdown (void);

#ifdef __cplusplus
}
#endif

#endif /* NBDCBT_COMMON_H */
