/* Connections: life cycle, the list used at shutdown, and the flush at
 * disconnect.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "cleanup.h"

__thread struct connection *current_conn;

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conns_cond = PTHREAD_COND_INITIALIZER;
static struct connection *conns;
static unsigned nr_conns;

/* SERIALIZE_CONNECTIONS: one connection at a time. */
static pthread_mutex_t connection_lock = PTHREAD_MUTEX_INITIALIZER;

/* Flush at disconnect.  The chain is flushed before it closes only if
 * the connection wrote (WRITE, WRITE_ZEROES, TRIM) something that no
 * successful FLUSH covers since: a read-only session pays no sync.
 */

/* A write, zero or trim completed (counted even when it failed). */
void
unflushed_note_write (struct connection *conn)
{
  __atomic_add_fetch (&conn->unflushed.writes_done, 1, __ATOMIC_RELEASE);
}

/* A flush covers every write completed before it started. */
uint64_t
unflushed_flush_start (struct connection *conn)
{
  return __atomic_load_n (&conn->unflushed.writes_done, __ATOMIC_ACQUIRE);
}

/* The flush that started when START writes were done succeeded. */
void
unflushed_flush_done (struct connection *conn, uint64_t start)
{
  uint64_t *flushed = &conn->unflushed.writes_flushed;
  uint64_t cur = __atomic_load_n (flushed, __ATOMIC_RELAXED);

  while (cur < start
         && !__atomic_compare_exchange_n (flushed, &cur, start, false,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    ;
}

/* Close the connection's chain, flushing first whatever the client
 * wrote and did not flush, whether it said goodbye or the server is
 * stopping.
 */
void
connection_close_chain (struct connection *conn)
{
  int err;

  if (conn->top == NULL)
    return;
  if (conn->top->can_flush > 0
      && __atomic_load_n (&conn->unflushed.writes_done, __ATOMIC_ACQUIRE)
           > __atomic_load_n (&conn->unflushed.writes_flushed,
                              __ATOMIC_ACQUIRE)
      && backend_flush (conn->top, 0, &err) == -1)
    nbdcbt_error ("flush at disconnect: %s", strerror (err));
  backend_close (conn->top);
  conn->top = NULL;
  export_put (conn->exp);
  __atomic_store_n (&conn->exp, NULL, __ATOMIC_RELEASE);
}

static void
conn_free (struct connection *conn)
{
  struct transport *t = &conn->transport;

  if (conn->top)
    backend_close (conn->top);
  export_put (conn->exp);
  negotiation_free (&conn->neg);
  transport_free (t);
  if (t->sockout != t->sockin && t->sockout >= 0)
    close (t->sockout);
  if (t->sockin >= 0)
    close (t->sockin);
  buffer_pool_free (&conn->buffers);
  free (conn);
}

static void
run_connection (struct connection *conn)
{
  bool serialize = thread_model == NBDCBT_THREAD_MODEL_SERIALIZE_CONNECTIONS;

  current_conn = conn;
  if (serialize)
    pthread_mutex_lock (&connection_lock);
  if (handshake (conn) == 0)
    workers_serve (conn);
  /* Close the chain before the socket: the close callbacks (and bitmap
   * stores in them) finish before the client sees the disconnect.
   */
  connection_close_chain (conn);
  if (serialize)
    pthread_mutex_unlock (&connection_lock);
  current_conn = NULL;
}

static void
unregister (struct connection *conn)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conns_lock);

  if (conn->list_prev)
    conn->list_prev->list_next = conn->list_next;
  else
    conns = conn->list_next;
  if (conn->list_next)
    conn->list_next->list_prev = conn->list_prev;
  nr_conns--;
  pthread_cond_broadcast (&conns_cond);
}

static void *
connection_thread (void *arg)
{
  struct connection *conn = arg;

  run_connection (conn);
  unregister (conn);
  conn_free (conn);
  return NULL;
}

static struct connection *
conn_new (int fd, bool is_socket, int outfd)
{
  struct connection *conn = calloc (1, sizeof *conn);

  if (conn == NULL)
    return NULL;
  transport_init (&conn->transport, fd, outfd, is_socket);
  buffer_pool_init (&conn->buffers);
  return conn;
}

/* A new connection on the list, or NULL if it is refused. */
static struct connection *
register_connection (int fd, bool is_socket, int outfd)
{
  struct connection *conn;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conns_lock);

  if (is_quitting ())
    return NULL;
  if (nr_conns >= max_connections) {
    nbdcbt_error ("too many connections (--max-connections=%u), "
                  "closing a new one", max_connections);
    return NULL;
  }
  conn = conn_new (fd, is_socket, outfd);
  if (conn == NULL) {
    nbdcbt_error ("calloc: %m");
    return NULL;
  }
  conn->list_next = conns;
  if (conns)
    conns->list_prev = conn;
  conns = conn;
  nr_conns++;
  return conn;
}

/* Takes ownership of FD (and OUTFD). */
void
accept_connection (int fd, bool is_socket, int outfd)
{
  struct connection *conn;
  pthread_attr_t attr;
  pthread_t tid;

  conn = register_connection (fd, is_socket, outfd);
  if (conn == NULL) {
    close (fd);
    if (outfd != fd)
      close (outfd);
    return;
  }
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create (&tid, &attr, connection_thread, conn) != 0) {
    nbdcbt_error ("pthread_create: %m");
    unregister (conn);
    conn_free (conn);
  }
  pthread_attr_destroy (&attr);
}

/* -s: serve one connection in this thread. */
void
handle_single_connection (int infd, int outfd)
{
  struct connection *conn = conn_new (infd, false, outfd);

  if (conn == NULL) {
    nbdcbt_error ("calloc: %m");
    return;
  }
  run_connection (conn);
  /* Leave stdin/stdout open: closing them is the process exit's job. */
  conn->transport.sockin = conn->transport.sockout = -1;
  conn_free (conn);
}

/* Stop reading new requests on every connection; requests in flight
 * finish and send their replies.
 */
void
connections_shutdown (struct export *exp)
{
  struct connection *conn;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conns_lock);

  for (conn = conns; conn; conn = conn->list_next)
    if (exp == NULL
        || __atomic_load_n (&conn->exp, __ATOMIC_ACQUIRE) == exp)
      transport_shutdown (&conn->transport, SHUT_RD);
}

void
connections_wait (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conns_lock);

  while (nr_conns > 0)
    pthread_cond_wait (&conns_cond, &conns_lock);
}
