/* Connections: life cycle, socket I/O, and the list used at shutdown. */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "minmax.h"

__thread struct connection *current_conn;

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conns_cond = PTHREAD_COND_INITIALIZER;
static struct connection *conns;
static unsigned nr_conns;

/* SERIALIZE_CONNECTIONS: one connection at a time. */
static pthread_mutex_t connection_lock = PTHREAD_MUTEX_INITIALIZER;

/* Checked once per request: an atomic flag, not a lock. */
void
conn_set_closing (struct connection *conn)
{
  __atomic_store_n (&conn->closing, true, __ATOMIC_RELEASE);
}

bool
conn_is_closing (struct connection *conn)
{
  return __atomic_load_n (&conn->closing, __ATOMIC_ACQUIRE);
}

/* Wait until FD is readable, the server quits or the timeout passes. */
static int
wait_readable (int fd, int timeout_ms)
{
  struct pollfd fds[2] = {
    { .fd = fd, .events = POLLIN },
    { .fd = quit_fd, .events = POLLIN },
  };
  int r;

  for (;;) {
    r = poll (fds, 2, timeout_ms);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0) {
      nbdcbt_error ("client sent nothing for %d seconds, dropping it",
                    timeout_ms / 1000);
      errno = ETIMEDOUT;
      return -1;
    }
    if (fds[1].revents) {
      errno = ESHUTDOWN;
      return -1;
    }
    return 0;
  }
}

/* Read exactly LEN bytes.  1 = done, 0 = clean EOF before any byte,
 * -1 = error or EOF in the middle (errno set).
 */
int
conn_recv (struct connection *conn, void *buf, size_t len, bool handshake)
{
  char *p = buf;
  size_t done = 0;
  ssize_t r;

  while (done < len) {
    if ((handshake || !conn->is_socket)
        && wait_readable (conn->sockin,
                          handshake ? HANDSHAKE_TIMEOUT_MS : -1) == -1)
      return -1;
    if (conn->is_socket)
      r = recv (conn->sockin, p + done, len - done, 0);
    else
      r = read (conn->sockin, p + done, len - done);
    if (r == -1) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return -1;
    }
    if (r == 0) {
      if (done == 0)
        return 0;
      errno = EPIPE;
      return -1;
    }
    done += r;
  }
  return 1;
}

/* One read of at most LEN bytes: > 0 bytes read, 0 at EOF, -1 on error.
 * ALL: on a socket, wait in the kernel for all LEN bytes (one system call
 * for a large payload instead of one per segment the client sends).
 */
static ssize_t
recv_some (struct connection *conn, void *buf, size_t len, bool all)
{
  ssize_t r;

  for (;;) {
    if (!conn->is_socket && wait_readable (conn->sockin, -1) == -1)
      return -1;
    if (conn->is_socket)
      r = recv (conn->sockin, buf, len, all ? MSG_WAITALL : 0);
    else
      r = read (conn->sockin, buf, len);
    if (r == -1 && (errno == EINTR || errno == EAGAIN))
      continue;
    return r;
  }
}

/* Transmission phase, under the read lock: read exactly LEN bytes through
 * the connection's input buffer, so that one system call picks up several
 * small requests (a client with many requests in flight sends them back
 * to back) or a request with its small payload.  Large payloads bypass
 * the buffer.  Same results as conn_recv.
 */
int
conn_recv_buffered (struct connection *conn, void *buf, size_t len)
{
  char *p = buf;
  size_t done = 0, n;
  ssize_t r;

  while (done < len) {
    if (conn->rpos < conn->rlen) {
      n = MIN (len - done, conn->rlen - conn->rpos);
      memcpy (p + done, conn->rbuf + conn->rpos, n);
      conn->rpos += n;
      done += n;
      continue;
    }
    conn->rpos = conn->rlen = 0;
    if (len - done >= RECV_DIRECT_MIN)
      r = recv_some (conn, p + done, len - done, true);
    else
      r = recv_some (conn, conn->rbuf,
                     conn->rfill ? MIN (conn->rfill, sizeof conn->rbuf)
                     : sizeof conn->rbuf, false);
    if (r == -1)
      return -1;
    if (r == 0) {
      if (done == 0)
        return 0;
      errno = EPIPE;
      return -1;
    }
    if (len - done >= RECV_DIRECT_MIN)
      done += r;
    else
      conn->rlen = r;
  }
  return 1;
}

/* Under the read lock, with the input buffer empty: take whatever input
 * is already there without waiting (at most RFILL bytes when set), so the
 * caller can tell whether the client has sent more.  Returns the bytes now
 * buffered; 0 if none, at EOF (the next conn_recv_buffered sees it again)
 * or on a pipe.
 */
size_t
conn_fill_nowait (struct connection *conn)
{
  ssize_t r;

  if (conn->rpos < conn->rlen)
    return conn->rlen - conn->rpos;
  if (!conn->is_socket)
    return 0;
  do
    r = recv (conn->sockin, conn->rbuf,
              conn->rfill ? MIN (conn->rfill, sizeof conn->rbuf)
              : sizeof conn->rbuf, MSG_DONTWAIT);
  while (r == -1 && errno == EINTR);
  if (r <= 0)
    return 0;
  conn->rpos = 0;
  conn->rlen = r;
  return r;
}

int
conn_sendv (struct connection *conn, struct iovec *iov, int n)
{
  ssize_t r;

  while (n > 0) {
    if (conn->is_socket) {
      struct msghdr msg = { .msg_iov = iov, .msg_iovlen = n };
      r = sendmsg (conn->sockout, &msg, MSG_NOSIGNAL);
    }
    else
      r = writev (conn->sockout, iov, n);
    if (r == -1) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return -1;
    }
    while (n > 0 && (size_t) r >= iov->iov_len) {
      r -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *) iov->iov_base + r;
      iov->iov_len -= r;
    }
  }
  return 0;
}

int
conn_send (struct connection *conn, const void *buf, size_t len)
{
  struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

  return conn_sendv (conn, &iov, 1);
}

static void
conn_free (struct connection *conn)
{
  size_t i;

  if (conn->top)
    backend_close (conn->top);
  selected_reset (&conn->selected);
  free (conn->meta_export);
  free (conn->export_name);
  if (conn->sockout != conn->sockin && conn->sockout >= 0)
    close (conn->sockout);
  if (conn->sockin >= 0)
    close (conn->sockin);
  for (i = 0; i < conn->pool.len; ++i)
    free (conn->pool.ptr[i].buf);
  buffer_vector_reset (&conn->pool);
  pthread_mutex_destroy (&conn->read_lock);
  pthread_mutex_destroy (&conn->write_lock);
  pthread_mutex_destroy (&conn->pool_lock);
  pthread_mutex_destroy (&conn->workers_lock);
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
    protocol_serve (conn);
  /* Close the chain before the socket: the close callbacks (and bitmap
   * stores in them) finish before the client sees the disconnect.
   */
  if (conn->top) {
    int err;

    /* Whatever the client wrote and did not flush reaches stable storage
     * before the chain closes, whether it said goodbye or the server is
     * stopping.
     */
    if (conn->top->can_flush > 0
        && __atomic_load_n (&conn->writes_done, __ATOMIC_ACQUIRE)
             > __atomic_load_n (&conn->writes_flushed, __ATOMIC_ACQUIRE)
        && backend_flush (conn->top, 0, &err) == -1)
      nbdcbt_error ("flush at disconnect: %s", strerror (err));
    backend_close (conn->top);
    conn->top = NULL;
  }
  if (serialize)
    pthread_mutex_unlock (&connection_lock);
  current_conn = NULL;
}

static void
unregister (struct connection *conn)
{
  pthread_mutex_lock (&conns_lock);
  if (conn->list_prev)
    conn->list_prev->list_next = conn->list_next;
  else
    conns = conn->list_next;
  if (conn->list_next)
    conn->list_next->list_prev = conn->list_prev;
  nr_conns--;
  pthread_cond_broadcast (&conns_cond);
  pthread_mutex_unlock (&conns_lock);
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
  conn->sockin = fd;
  conn->sockout = outfd;
  conn->is_socket = is_socket;
  pthread_mutex_init (&conn->read_lock, NULL);
  pthread_mutex_init (&conn->write_lock, NULL);
  pthread_mutex_init (&conn->pool_lock, NULL);
  pthread_mutex_init (&conn->workers_lock, NULL);
  return conn;
}

/* Takes ownership of FD (and OUTFD). */
void
accept_connection (int fd, bool is_socket, int outfd)
{
  struct connection *conn;
  pthread_attr_t attr;
  pthread_t tid;

  pthread_mutex_lock (&conns_lock);
  if (nr_conns >= max_connections || is_quitting ()) {
    pthread_mutex_unlock (&conns_lock);
    if (!is_quitting ())
      nbdcbt_error ("too many connections (--max-connections=%u), "
                    "closing a new one", max_connections);
    close (fd);
    if (outfd != fd)
      close (outfd);
    return;
  }
  conn = conn_new (fd, is_socket, outfd);
  if (conn == NULL) {
    pthread_mutex_unlock (&conns_lock);
    nbdcbt_error ("calloc: %m");
    close (fd);
    if (outfd != fd)
      close (outfd);
    return;
  }
  conn->list_next = conns;
  if (conns)
    conns->list_prev = conn;
  conns = conn;
  nr_conns++;
  pthread_mutex_unlock (&conns_lock);

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
  conn->sockin = conn->sockout = -1;
  conn_free (conn);
}

/* Stop reading new requests on every connection; requests in flight
 * finish and send their replies.
 */
void
connections_shutdown (void)
{
  struct connection *conn;

  pthread_mutex_lock (&conns_lock);
  for (conn = conns; conn; conn = conn->list_next)
    if (conn->is_socket)
      shutdown (conn->sockin, SHUT_RD);
  pthread_mutex_unlock (&conns_lock);
}

void
connections_wait (void)
{
  pthread_mutex_lock (&conns_lock);
  while (nr_conns > 0)
    pthread_cond_wait (&conns_cond, &conns_lock);
  pthread_mutex_unlock (&conns_lock);
}
