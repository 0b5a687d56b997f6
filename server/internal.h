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

/* connections.c */
struct pooled_buffer {
  char *buf;
  size_t cap;
};
DEFINE_VECTOR_TYPE (buffer_vector, struct pooled_buffer);
#define RECV_BUFFER (16 * 1024)     /* input buffer of a connection */
#define RECV_DIRECT_MIN (8 * 1024)  /* larger reads bypass it */
struct connection {
  int sockin, sockout;
  bool is_socket;
  pthread_mutex_t read_lock;
  unsigned in_flight;     /* requests received, not yet answered (atomic) */
  /* Worker threads (protocol.c), started as the client's queue depth
   * needs them, up to MAX_WORKERS.  NWORKERS counts the first one too
   * (atomic reads; written under WORKERS_LOCK with WORKER_TIDS).
   */
  pthread_mutex_t workers_lock;
  pthread_t *worker_tids;
  unsigned nworkers, max_workers;
  /* Input buffer of the transmission phase, under read_lock.  RFILL,
   * when not 0, limits how much one read into it may take.
   */
  size_t rpos, rlen, rfill;
  char rbuf[RECV_BUFFER];
  pthread_mutex_t write_lock;
  /* Request buffers not in use, the most recently used last. */
  pthread_mutex_t pool_lock;
  buffer_vector pool;
  bool closing;           /* no more requests are read (atomic) */
  /* Writes, zeroes and trims completed, and how many of them the last
   * successful flush covers (both atomic): the chain is flushed at
   * disconnect only when something is left.
   */
  uint64_t writes_done, writes_flushed;
  bool structured;
  bool meta_set;          /* SET_META_CONTEXT seen since last reset */
  char *meta_export;      /* export name of the last SET */
  selected_vector selected;
  char *export_name;      /* after GO/EXPORT_NAME */
  uint16_t eflags;
  uint64_t size;
  uint32_t minimum;
  unsigned hole_misses, hole_interval, hole_skip; /* protocol.c */
  struct nbdcbt_context *top;
  struct connection *list_next, *list_prev;
};
extern __thread struct connection *current_conn;
extern void accept_connection (int fd, bool is_socket, int outfd);
extern void handle_single_connection (int infd, int outfd);
extern void connections_shutdown (void);
extern void connections_wait (void);
extern void conn_set_closing (struct connection *conn);
extern bool conn_is_closing (struct connection *conn);
extern int conn_recv (struct connection *conn, void *buf, size_t len,
                      bool handshake);
extern int conn_recv_buffered (struct connection *conn, void *buf,
                               size_t len);
extern size_t conn_fill_nowait (struct connection *conn);
extern int conn_send (struct connection *conn, const void *buf, size_t len);
extern int conn_sendv (struct connection *conn, struct iovec *iov, int n);

/* handshake.c: 0 = go to transmission, -1 = drop the connection. */
extern int handshake (struct connection *conn);

/* protocol.c */
extern void *worker_thread (void *conn);
extern void protocol_serve (struct connection *conn);

/* sockets.c */
extern int *listen_fds;
extern size_t nr_listen_fds;
extern int sockets_socket_activation (void);
extern int sockets_unix (const char *path);
extern int sockets_tcp (const char *addr, const char *port);
extern void sockets_accept_loop (void);
extern void sockets_close (void);
extern int request_lock (void);
extern void request_unlock (int);

#endif /* NBDCBT_INTERNAL_H */
