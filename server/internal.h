/* nbdcbt server: definitions shared by the server's own files. */
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
#define HANDSHAKE_TIMEOUT_MS (60 * 1000)
#define MAX_EXTENTS (1024 * 1024)           /* descriptors per chunk */

/* main.c: settings from the command line. */
extern bool verbose;
extern bool read_only;
extern bool foreground;
extern const char *export_name_setting; /* -e, default "" */
extern const char *export_description;  /* -D, NULL if not given */
extern unsigned threads;                /* -t */
extern unsigned max_connections;
extern int thread_model;                /* effective, whole chain */
extern struct nbdcbt_backend *top;      /* top of the chain */
extern const char *program_name;

/* quit.c-like state (main.c): set by signals or nbdcbt_shutdown. */
extern int quit;
#define is_quitting() __atomic_load_n (&quit, __ATOMIC_SEQ_CST)
extern int quit_fd;                     /* readable once quitting */
extern void set_quit (void);
extern void quit_init (void);

/* log.c */
extern unsigned long log_error_count (void);
extern bool log_to_syslog;
extern void log_init_thread_error (void);
extern int get_thread_error (void);
extern void clear_thread_error (void);

/* A layer of the chain, server-wide. */
struct nbdcbt_backend {
  struct nbdcbt_backend *next; /* layer below, NULL for the plugin */
  unsigned i;                  /* 0 = plugin, counting upwards */
  char *name;
  char *filename;
  void *dl;
  const struct nbdcbt_plugin *plugin; /* exactly one of these two */
  const struct nbdcbt_filter *filter;
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

/* plugins.c / filters.c */
extern struct nbdcbt_backend *plugin_load (const char *name, bool quiet);
extern char *module_find (const char *name, bool is_plugin);
extern struct nbdcbt_backend *filter_load (const char *name,
                                           struct nbdcbt_backend *next);
extern void plugin_dump (struct nbdcbt_backend *b);
extern void plugin_usage (struct nbdcbt_backend *b);
extern void filter_usage (struct nbdcbt_backend *b);
extern bool is_module_name (const char *name);

/* backend.c */
extern int backend_config (struct nbdcbt_backend *b, const char *key,
                           const char *value);
extern int backend_config_complete (struct nbdcbt_backend *b);
extern int backend_get_ready (struct nbdcbt_backend *b);
extern int backend_thread_model (struct nbdcbt_backend *b);
extern void backend_cleanup (struct nbdcbt_backend *b);
extern void backend_unload (struct nbdcbt_backend *b);
extern const char *backend_magic_config_key (struct nbdcbt_backend *b);
extern int backend_list_meta_contexts (struct nbdcbt_backend *b,
                                       const char *export_name,
                                       struct nbdcbt_meta_contexts *mc);
extern struct nbdcbt_context *backend_open (struct nbdcbt_backend *b,
                                            bool readonly);
extern void backend_close (struct nbdcbt_context *c);
extern const struct nbdcbt_next_ops backend_ops;

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
extern int meta_contexts_for_export (const char *export_name,
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
  buffer_vector free;           /* not in use, most recently used last */
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
  struct connection *list_next, *list_prev; /* connections.c */
};
extern __thread struct connection *current_conn;
extern void accept_connection (int fd, bool is_socket, int outfd);
extern void handle_single_connection (int infd, int outfd);
extern void connections_shutdown (void);
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
