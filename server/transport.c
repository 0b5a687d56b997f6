/* Transport: reading and writing a connection (see transport.h), the
 * plain file descriptor transport, and the input buffer of the
 * transmission phase.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "cleanup.h"
#include "minmax.h"

/* The plain transport: the descriptors themselves. */

static ssize_t
plain_recv (struct transport *t, void *buf, size_t len, int flags)
{
  if (t->is_socket)
    return recv (t->sockin, buf, len,
                 ((flags & TRANSPORT_WAITALL) ? MSG_WAITALL : 0)
                 | ((flags & TRANSPORT_NOWAIT) ? MSG_DONTWAIT : 0));
  if (flags & TRANSPORT_NOWAIT) {
    errno = EAGAIN;             /* a pipe is only read after a poll */
    return -1;
  }
  return read (t->sockin, buf, len);
}

static int
plain_sendv (struct transport *t, struct iovec *iov, int n)
{
  ssize_t r;

  while (n > 0) {
    if (t->is_socket) {
      struct msghdr msg = { .msg_iov = iov, .msg_iovlen = n };
      r = sendmsg (t->sockout, &msg, MSG_NOSIGNAL);
    }
    else
      r = writev (t->sockout, iov, n);
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

static void
plain_shutdown (struct transport *t, int how)
{
  if (t->is_socket)
    shutdown (t->sockin, how);
}

const struct transport_ops plain_transport_ops = {
  .name = "plain",
  .recv = plain_recv,
  .sendv = plain_sendv,
  .shutdown = plain_shutdown,
};

void
transport_init (struct transport *t, int sockin, int sockout, bool is_socket)
{
  t->ops = &plain_transport_ops;
  t->sockin = sockin;
  t->sockout = sockout;
  t->is_socket = is_socket;
  pthread_mutex_init (&t->read_lock, NULL);
  pthread_mutex_init (&t->write_lock, NULL);
}

/* The descriptors stay open: the connection closes them. */
void
transport_free (struct transport *t)
{
  if (t->ops->close)
    t->ops->close (t);
  t->ops = &plain_transport_ops;
  t->priv = NULL;
  pthread_mutex_destroy (&t->read_lock);
  pthread_mutex_destroy (&t->write_lock);
}

void
transport_shutdown (struct transport *t, int how)
{
  t->ops->shutdown (t, how);
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

/* One read of at most LEN bytes: > 0 bytes read, 0 at EOF, -1 on error.
 * POLL_MS: wait with poll first (-1 = no timeout) so that the server's
 * quit and the timeout are seen; or -2, straight into the blocking read
 * (the transmission phase on a socket: shutdown wakes it).
 */
static ssize_t
recv_some (struct transport *t, void *buf, size_t len, int flags,
           int poll_ms)
{
  ssize_t r;

  for (;;) {
    if (poll_ms != -2 && !(t->ops->pending && t->ops->pending (t))
        && wait_readable (t->sockin, poll_ms) == -1)
      return -1;
    r = t->ops->recv (t, buf, len, flags);
    if (r == -1 && (errno == EINTR || errno == EAGAIN))
      continue;
    return r;
  }
}

/* The handshake, and every read on a pipe, polls first; the transmission
 * phase on a socket reads straight away.
 */
static int
poll_timeout (struct transport *t, bool handshake)
{
  if (handshake)
    return HANDSHAKE_TIMEOUT_MS;
  return t->is_socket ? -2 : -1;
}

int
conn_recv (struct connection *conn, void *buf, size_t len, bool handshake)
{
  struct transport *t = &conn->transport;
  char *p = buf;
  size_t done = 0;
  ssize_t r;

  while (done < len) {
    r = recv_some (t, p + done, len - done, 0, poll_timeout (t, handshake));
    if (r == -1)
      return -1;
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

/* Transmission phase, under the read lock: read exactly LEN bytes through
 * the connection's input buffer, so that one system call picks up several
 * small requests (a client with many requests in flight sends them back
 * to back) or a request with its small payload.  Large payloads bypass
 * the buffer, and on a socket are waited for in the kernel in one call
 * instead of one per segment the client sends.  Same results as
 * conn_recv.
 */
int
conn_recv_buffered (struct connection *conn, void *buf, size_t len)
{
  struct transport *t = &conn->transport;
  int poll_ms = poll_timeout (t, false);
  char *p = buf;
  size_t done = 0, n;
  ssize_t r;

  while (done < len) {
    if (t->rpos < t->rlen) {
      n = MIN (len - done, t->rlen - t->rpos);
      memcpy (p + done, t->rbuf + t->rpos, n);
      t->rpos += n;
      done += n;
      continue;
    }
    t->rpos = t->rlen = 0;
    if (len - done >= RECV_DIRECT_MIN)
      r = recv_some (t, p + done, len - done, TRANSPORT_WAITALL, poll_ms);
    else
      r = recv_some (t, t->rbuf,
                     t->rfill ? MIN (t->rfill, sizeof t->rbuf)
                     : sizeof t->rbuf, 0, poll_ms);
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
      t->rlen = r;
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
  struct transport *t = &conn->transport;
  ssize_t r;

  if (t->rpos < t->rlen)
    return t->rlen - t->rpos;
  do
    r = t->ops->recv (t, t->rbuf,
                      t->rfill ? MIN (t->rfill, sizeof t->rbuf)
                      : sizeof t->rbuf, TRANSPORT_NOWAIT);
  while (r == -1 && errno == EINTR);
  if (r <= 0)
    return 0;
  t->rpos = 0;
  t->rlen = r;
  return r;
}

/* One reply (or handshake message) at a time. */
int
conn_sendv (struct connection *conn, struct iovec *iov, int n)
{
  struct transport *t = &conn->transport;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->write_lock);

  return t->ops->sendv (t, iov, n);
}

int
conn_send (struct connection *conn, const void *buf, size_t len)
{
  struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

  return conn_sendv (conn, &iov, 1);
}
