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

/* nbdcbt server: definitions shared by the server's own files.  Each
 * block names the file that owns it; docs/architecture.md has the map of
 * server/ and the path of a request through it.
 */
#ifndef NBDCBT_INTERNAL_H
#define NBDCBT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nbdcbt-plugin.h"
#include "nbdcbt-filter.h"
#include "nbd-protocol.h"
#include "vector.h"
#include "transport.h"

#define MAX_REQUEST_SIZE (32 * 1024 * 1024) /* READ/WRITE payload */
#define MAX_OPTION_LENGTH (64 * 1024)       /* larger options: drop */
#define MAX_OPTIONS 256                     /* options per handshake */
#define SEND_TIMEOUT 60          /* seconds a reply may make no progress */
#define STOP_STALL_MS 2000       /* ... while the server or export stops */
#define MAX_EXTENTS (1024 * 1024)           /* descriptors per chunk */

/* settings.c: the server-wide settings main.c sets from the command line. */
extern bool verbose;
extern bool read_only;                  /* -r: every export */
extern unsigned threads;                /* -t */
extern unsigned max_connections;
/* The effective thread model of the server: the lowest of its exports'
 * chains (exports.c lowers it while the server starts).
 */
extern int thread_model;
extern unsigned handshake_limit;        /* --handshake-limit, seconds */
extern unsigned idle_timeout;           /* --idle-timeout, seconds */
extern uint64_t max_in_flight;          /* --max-in-flight, bytes */
extern const char *program_name;

/* quit.c: stopping, set by SIGTERM/SIGINT/SIGQUIT, nbdcbt_shutdown,
 * --exit-with-parent and the control socket's quit.
 */
extern int quit;
#define is_quitting() __atomic_load_n (&quit, __ATOMIC_SEQ_CST)
extern int quit_fd;                     /* readable once quitting */
extern void set_quit (void);
extern void quit_init (void);          /* the pipe; SIGPIPE ignored */
extern void quit_on_signals (void);    /* SIGTERM, SIGINT, SIGQUIT */

/* log.c */
extern unsigned long log_error_count (void);
extern bool log_to_syslog;
extern void log_init_thread_error (void);
extern int get_thread_error (void);
extern void clear_thread_error (void);

struct nbdcbt_backend;
struct nbdcbt_context;

/* How the server drives one kind of layer: plugins.c (plugin_ops) and
 * filters.c (filter_ops) put the module's callbacks behind this, so that
 * backend.c calls the layer without asking what it is.  The server-wide
 * calls get the layer; the per-connection ones its context.  Data calls
 * return 0 or -1 with *ERR set; their contracts were checked in backend.c.
 */
struct layer_ops {
  void *(*instance_new) (struct nbdcbt_backend *b);
  void (*instance_free) (struct nbdcbt_backend *b);
  int (*config) (struct nbdcbt_backend *b, const char *key,
                 const char *value);
  int (*config_complete) (struct nbdcbt_backend *b);
  int (*thread_model) (struct nbdcbt_backend *b); /* this layer's own */
  int (*get_ready) (struct nbdcbt_backend *b);
  void (*cleanup) (struct nbdcbt_backend *b);
  const void *(*get_service) (struct nbdcbt_backend *b, const char *name);
  int (*list_meta_contexts) (struct nbdcbt_backend *b,
                             const char *export_name,
                             struct nbdcbt_meta_contexts *mc);

  void *(*open) (struct nbdcbt_context *c, int readonly); /* the handle */
  int (*prepare) (struct nbdcbt_context *c, int readonly);
  int (*finalize) (struct nbdcbt_context *c);
  void (*close) (struct nbdcbt_context *c);
  int (*get_caps) (struct nbdcbt_context *c); /* size, block size, can_* */

  int (*pread) (struct nbdcbt_context *c, void *buf, uint32_t count,
                uint64_t offset, uint32_t flags, int *err);
  int (*pwrite) (struct nbdcbt_context *c, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags, int *err);
  int (*flush) (struct nbdcbt_context *c, uint32_t flags, int *err);
  int (*trim) (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
               uint32_t flags, int *err);
  int (*zero) (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
               uint32_t flags, int *err);
  int (*extents) (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdcbt_extents *extents, int *err);
  int (*cache) (struct nbdcbt_context *c, uint32_t count, uint64_t offset,
                uint32_t flags, int *err);
  int (*meta_extents) (struct nbdcbt_context *c, const char *context,
                       uint32_t count, uint64_t offset, uint32_t flags,
                       struct nbdcbt_extents *extents, int *err);
};
extern const struct layer_ops plugin_ops;   /* plugins.c */
extern const struct layer_ops filter_ops;   /* filters.c */

/* A loaded plugin or filter module (modules.c): one per .so file, shared
 * by every chain that uses it, loaded until the server exits.
 */
struct nbdcbt_module {
  char *name;
  char *filename;
  void *dl;
  const struct nbdcbt_plugin *plugin; /* exactly one of these two */
  const struct nbdcbt_filter *filter;
  const struct layer_ops *ops;        /* &plugin_ops or &filter_ops */
  struct nbdcbt_module *list_next;
};

/* A layer of one export's chain: a module and its instance (the state
 * that config filled, shared by the export's connections).
 */
struct nbdcbt_backend {
  struct nbdcbt_backend *next; /* layer below, NULL for the plugin */
  unsigned i;                  /* 0 = plugin, counting upwards */
  const char *name;            /* the module's */
  const char *filename;
  const struct nbdcbt_plugin *plugin; /* the module's; one of the two */
  const struct nbdcbt_filter *filter;
  struct nbdcbt_module *m;
  const struct layer_ops *ops; /* the module's */
  void *instance;
  bool has_instance;           /* instance_new ran */
  bool ready;                  /* get_ready succeeded: cleanup is due */
};

/* A layer of the chain on one connection.  The capability fields are
 * filled in once after open (bottom up) and only read afterwards.
 */
struct nbdcbt_context {
  struct nbdcbt_backend *b;
  struct nbdcbt_context *next;
  void *handle;
  bool opened, prepared;
  int64_t size;
  uint32_t minimum, preferred, maximum;
  int can_write, can_flush, is_rotational, can_trim, can_zero;
  int can_fast_zero, can_extents, can_fua, can_multi_conn, can_cache;
};

/* modules.c: finding and loading modules. */
extern char *module_find (const char *name, bool is_plugin);
/* The module NAME (a name or a path), loaded on first use.  QUIET: no
 * message when a plugin is not found.  NULL on error.
 */
extern struct nbdcbt_module *module_get (const char *name, bool is_plugin,
                                         bool quiet);
extern void modules_unload (void);   /* at exit: unload every module */
extern bool is_module_name (const char *name);

/* plugins.c: --dump-plugin, PLUGIN --help; filters.c: --help. */
extern void plugin_dump (struct nbdcbt_backend *b);
extern void plugin_usage (struct nbdcbt_backend *b);
extern void filter_usage (struct nbdcbt_backend *b);

/* filters.c: what filters call the layer below with.  The contracts of
 * these calls are checked with an error (a filter may get them wrong).
 */
extern const struct nbdcbt_next_ops next_ops;

/* backend.c: a chain's server-wide life cycle, then its connections. */
/* A new chain: PLUGIN under FILTERS (FILTERS[0] outermost), each layer
 * with a new instance.  NULL (error logged) on failure.
 */
extern struct nbdcbt_backend *backend_chain_new (const char *plugin,
                                                 const char *const *filters,
                                                 size_t nfilters);
/* cleanup of the layers that got ready, then instance_free of all. */
extern void backend_chain_free (struct nbdcbt_backend *b);
extern int backend_config (struct nbdcbt_backend *b, const char *key,
                           const char *value);
extern int backend_config_complete (struct nbdcbt_backend *b);
extern int backend_get_ready (struct nbdcbt_backend *b);
extern int backend_thread_model (struct nbdcbt_backend *b);
extern const char *backend_magic_config_key (struct nbdcbt_backend *b);
extern int backend_list_meta_contexts (struct nbdcbt_backend *b,
                                       const char *export_name,
                                       struct nbdcbt_meta_contexts *mc);
extern struct nbdcbt_context *backend_open (struct nbdcbt_backend *b,
                                            bool readonly);
extern void backend_close (struct nbdcbt_context *c);
/* The first service NAME a layer from B down offers, or NULL. */
extern const void *backend_get_service (struct nbdcbt_backend *b,
                                        const char *name);
/* Open C's layer (and through it the ones below); the handle of a layer
 * without open (see nbdcbt-plugin.h).
 */
extern int context_open (struct nbdcbt_context *c, int readonly);
extern void *layer_default_handle (struct nbdcbt_backend *b);

/* The contract of a data call on C's layer: NULL if it holds, else why
 * not, with the errno to fail with in *ERR.  The backend_* data calls
 * below assert it; next_ops checks it.
 */
enum backend_op {
  OP_PREAD, OP_PWRITE, OP_FLUSH, OP_TRIM, OP_ZERO, OP_EXTENTS, OP_CACHE,
  OP_META_EXTENTS,
};
extern const char *backend_contract (const struct nbdcbt_context *c,
                                     enum backend_op op, uint32_t count,
                                     uint64_t offset, uint32_t flags,
                                     int *err);
extern const char *backend_op_name (enum backend_op op);

extern int backend_pread (struct nbdcbt_context *c, void *buf, uint32_t count,
                          uint64_t offset, uint32_t flags, int *err);
extern int backend_pwrite (struct nbdcbt_context *c, const void *buf,
                           uint32_t count, uint64_t offset, uint32_t flags,
                           int *err);
extern int backend_flush (struct nbdcbt_context *c, uint32_t flags, int *err);
extern int backend_trim (struct nbdcbt_context *c, uint32_t count,
                         uint64_t offset, uint32_t flags, int *err);
extern int backend_zero (struct nbdcbt_context *c, uint32_t count,
                         uint64_t offset, uint32_t flags, int *err);
extern int backend_extents (struct nbdcbt_context *c, uint32_t count,
                            uint64_t offset, uint32_t flags,
                            struct nbdcbt_extents *extents, int *err);
extern int backend_cache (struct nbdcbt_context *c, uint32_t count,
                          uint64_t offset, uint32_t flags, int *err);
extern int backend_meta_extents (struct nbdcbt_context *c,
                                 const char *context, uint32_t count,
                                 uint64_t offset, uint32_t flags,
                                 struct nbdcbt_extents *extents, int *err);

/* extents.c */
extern struct nbdcbt_extents *extents_new_limited (uint64_t start,
                                                   uint64_t end,
                                                   size_t max);
extern int extents_reuse (struct nbdcbt_extents *e, uint64_t start,
                          uint64_t end, size_t max);
extern void extents_encode (const struct nbdcbt_extents *e, char *p,
                            uint32_t type_mask);

/* exports.c: the exports this server serves.
 *
 * Each export has its own chain (its own instances of its modules) and a
 * node name, the name the control socket uses for it.  Exports are added
 * at startup and may be added and removed while the server runs.  The
 * registry holds a reference to each export; every connection that picked
 * an export (and the handshake while it looks at one) holds another, so an
 * export removed while in use lives until its last connection ends.
 */
#define NODE_NAME_MAX 31        /* as QEMU's node names */
struct export {
  char *name;                   /* export name ("" allowed) */
  char *node_name;
  char *description;            /* NULL: none */
  struct nbdcbt_backend *top;   /* top of its chain, owned */
  bool read_only;               /* this export only (-r is global) */
  bool default_alias;           /* also answers to "" (single export form) */
  /* Every READ goes to the chain whole, never split around holes (a
   * backup session's view counts what its client read whole).
   */
  bool whole_reads;
  /* Registry state, under the registry lock. */
  bool listed;                  /* in the registry */
  unsigned refs;
  struct export *list_next;
};
/* A new export (not yet served) around the configured chain TOP, which it
 * takes over even on failure.  NODE_NAME NULL: the export's name.  NULL
 * (error logged) for an invalid name or node name.
 */
extern struct export *export_new (const char *name, const char *node_name,
                                  const char *description,
                                  struct nbdcbt_backend *top, bool read_only);
/* Free an export no one references: cleanup, then its instances. */
extern void export_free (struct export *exp);
/* Serve EXP: its chain gets ready (get_ready), then new connections may
 * pick it.  Refused (-1, error logged, EXP unchanged and still the
 * caller's) if its name or node name is taken, get_ready fails, or, once
 * the server accepts clients, its chain needs a lower thread model than
 * the server runs with.  At run time the caller then frees it.
 */
extern int exports_add (struct export *exp);
/* Stop serving export NAME: new connections no longer find it, its
 * connections stop reading requests, answer those in flight and close
 * (flushing, as at any disconnect); then its chain is cleaned up and
 * freed.  Returns once all that is done; -1 (errno ENOENT) if there is no
 * such export.  Must not be called from one of its connections.
 */
extern int exports_remove (const char *name);
/* The export a client asking for NAME (LEN bytes, not NUL-terminated)
 * gets, with a reference (export_put it); NULL if none.
 */
extern struct export *export_get (const char *name, size_t len);
extern struct export *export_get_by_node (const char *node_name);
extern void export_put (struct export *exp);
/* Call F for each export in the order they were added, under the
 * registry lock (F must not call other exports_* functions); stops at and
 * returns F's first non-zero result.
 */
extern int exports_foreach (int (*f) (struct export *exp, void *opaque),
                            void *opaque);
extern size_t exports_count (void);
/* The service NAME of EXP's chain (the first layer from the top that
 * offers it: nbdcbt_next_service), e.g. "dirty-bitmaps"; NULL if none.
 */
extern const void *export_get_service (struct export *exp, const char *name);
/* After the startup exports were added: from now on exports_add keeps
 * the server's thread model (connections are about to be accepted).
 */
extern void exports_start (void);
/* At shutdown, after the last connection: remove every export. */
extern void exports_remove_all (void);
extern bool is_node_name (const char *name);

/* probe.c: the shorthand chain for an image file.  Returns the plugin
 * (FILE is given as its magic parameter, file=FILE) and appends the
 * filters that go right above it to FILTERS; NULL (error logged) if FILE
 * cannot be read or its format's plugin is not installed.  What is not an
 * image file at all goes to the raw plugin, which says what is wrong.
 */
DEFINE_VECTOR_TYPE (const_string_vector, const char *);
extern const char *probe_image (const char *file,
                                const_string_vector *filters);

/* metacontext.c */
DEFINE_VECTOR_TYPE (string_vector, char *);
struct nbdcbt_meta_contexts {
  string_vector names;
};
struct selected_context {
  uint32_t id;
  char *name;          /* NULL for base:allocation */
};
DEFINE_VECTOR_TYPE (selected_vector, struct selected_context);
extern void meta_contexts_free (struct nbdcbt_meta_contexts *mc);
extern int meta_contexts_for_export (struct export *exp,
                                     const char *export_name,
                                     struct nbdcbt_meta_contexts *mc);
extern bool meta_query_matches (const char *query, size_t qlen,
                                const char *name, bool list);
extern void selected_reset (selected_vector *v);

/* buffers.c: a connection's request buffers.  The payload starts at
 * HDR_ROOM (a page boundary); the reply header goes right before it.
 */
#define HDR_ROOM 4096
struct request_buffer {
  char *buf;                    /* HDR_ROOM + payload, or NULL */
  size_t cap;
};
DEFINE_VECTOR_TYPE (buffer_vector, struct request_buffer);
struct buffer_pool {
  pthread_mutex_t lock;
  pthread_cond_t released;      /* a buffer was given back */
  buffer_vector free;           /* not in use, most recently used last */
  uint64_t held;                /* bytes of all buffers, FREE included */
  unsigned in_use;              /* buffers handed out */
};
#define REQUEST_DATA(rb) ((rb)->buf + HDR_ROOM)
extern void buffer_pool_init (struct buffer_pool *pool);
extern void buffer_pool_free (struct buffer_pool *pool);
extern int buffer_get (struct buffer_pool *pool, struct request_buffer *rb,
                       size_t len, size_t keep);
extern void buffer_put (struct buffer_pool *pool, struct request_buffer *rb);

/* handshake.c: what the client negotiated.  Written by the handshake,
 * read-only in the transmission phase.
 */
struct negotiation {
  bool structured;
  bool meta_set;          /* SET_META_CONTEXT seen since last reset */
  char *meta_export;      /* export name of the last SET */
  selected_vector selected;
  char *export_name;      /* after GO/EXPORT_NAME */
  uint16_t eflags;
  uint64_t size;
  uint32_t minimum;
};
extern void negotiation_free (struct negotiation *neg);

/* workers.c: the worker threads of a connection, started as the
 * client's queue depth needs them, up to MAX_WORKERS.  NWORKERS counts
 * the first one too (atomic reads; written under WORKERS_LOCK with
 * WORKER_TIDS).
 */
struct scheduling {
  pthread_mutex_t workers_lock;
  pthread_t *worker_tids;
  unsigned nworkers, max_workers;
  unsigned in_flight;     /* requests received, not yet answered (atomic) */
  bool closing;           /* no more requests are read (atomic) */
};

/* read-holes.c: the hole-aware READ path. */
#define HOLE_READ_EXTENTS 16
struct hole_probe {       /* when to look for holes (atomic) */
  unsigned misses, interval, skip;
};
struct read_layout {      /* the extents of one READ; N = 0: one chunk */
  size_t n;
  struct nbdcbt_extent e[HOLE_READ_EXTENTS + 1];
};

/* connections.c: writes, zeroes and trims completed, and how many of
 * them the last successful flush covers (both atomic): the chain is
 * flushed at disconnect only when something is left.
 */
struct unflushed {
  uint64_t writes_done, writes_flushed;
};

struct connection {
  struct transport transport;   /* transport.c */
  struct negotiation neg;       /* handshake.c */
  struct scheduling sched;      /* workers.c */
  struct buffer_pool buffers;   /* buffers.c */
  struct hole_probe holes;      /* read-holes.c */
  struct unflushed unflushed;   /* connections.c */
  struct nbdcbt_context *top;   /* the chain, opened by the handshake */
  struct export *exp;           /* TOP's export, with a reference */
  struct conn_list_entry {      /* connections.c, under its lock */
    struct connection *next, *prev;
    bool in_handshake;          /* may be evicted at the limit */
    bool evicted;
  } list;
  /* connections.c: waiting for an idle thread, under its lock. */
  struct connection *handoff_next;
};
extern __thread struct connection *current_conn;
extern void accept_connection (int fd, bool is_socket, int outfd);
extern void handle_single_connection (int infd, int outfd);
/* Stop reading requests on the connections of EXP (NULL: all). */
extern void connections_shutdown (struct export *exp);
extern void connections_wait (void);
extern void unflushed_note_write (struct connection *conn);
extern uint64_t unflushed_flush_start (struct connection *conn);
extern void unflushed_flush_done (struct connection *conn, uint64_t start);
extern void connection_close_chain (struct connection *conn);

/* handshake.c: 0 = go to transmission, -1 = drop the connection. */
extern int handshake (struct connection *conn);

/* One request of the transmission phase. */
struct request {
  uint16_t type, flags;
  uint64_t cookie, offset;
  uint32_t count;
  int err;                      /* refused as it was received */
};

/* A worker thread's state (workers.c). */
struct worker {
  struct connection *conn;
  struct request_buffer rb;     /* only while serving a request */
  struct nbdcbt_extents *ext;   /* reused by every extents call */
  size_t reply_len;             /* BLOCK_STATUS: chunks built in RB */
  struct read_layout layout;    /* READ */
};
extern void workers_serve (struct connection *conn);
extern void conn_set_closing (struct connection *conn);
extern bool conn_is_closing (struct connection *conn);
extern struct nbdcbt_extents *worker_extents (struct worker *w,
                                              uint64_t start, uint64_t end,
                                              size_t max);

/* protocol.c */
extern int protocol_recv_request (struct worker *w, struct request *req);
extern int protocol_serve_request (struct worker *w,
                                   const struct request *req);
extern void reply_chunk_header (char *hdr, uint16_t flags, uint16_t type,
                                uint64_t cookie, uint32_t length);

/* read-holes.c */
extern bool read_holes_wanted (struct connection *conn,
                               const struct request *req);
extern int read_with_holes (struct worker *w, const struct request *req,
                            int *err);
extern int send_read_with_holes (struct worker *w, const struct request *req);

/* sockets.c */
extern int *listen_fds;
extern size_t nr_listen_fds;
extern int sockets_socket_activation (void);
extern int sockets_unix (const char *path);
extern int sockets_tcp (const char *addr, const char *port);
extern void sockets_accept_loop (void);
extern void sockets_close (void);

#endif /* NBDCBT_INTERNAL_H */
