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

/* Transport: reading and writing a connection (see transport.h), the
 * plain file descriptor transport, and the input buffer of the
 * transmission phase.
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
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

static int64_t
now_ms (void)
{
  struct timespec ts;

  /* The deadlines are seconds: the coarse clock reads the last tick,
   * without the clock source read that costs tens of nanoseconds in a VM
   * (twice per reply).
   */
  clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {    /* SO_SNDTIMEO passed with no progress */
        nbdcbt_error ("client read nothing for %d seconds, dropping it",
                      SEND_TIMEOUT);
        errno = ETIMEDOUT;
      }
      return -1;
    }
    if (r > 0)
      __atomic_store_n (&t->send_progress, now_ms (), __ATOMIC_RELAXED);
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


static void
set_socket_timeout (struct transport *t, int opt, unsigned seconds)
{
  struct timeval tv = { .tv_sec = seconds };

  if (t->is_socket
      && setsockopt (t->sockin, SOL_SOCKET, opt, &tv, sizeof tv) == -1)
    nbdcbt_debug ("setsockopt: %m");
}

/* A reply that makes no progress for SEND_TIMEOUT seconds fails (a
 * client that stopped reading).
 */
void
transport_init (struct transport *t, int sockin, int sockout, bool is_socket)
{
  t->ops = &plain_transport_ops;
  t->sockin = sockin;
  t->sockout = sockout;
  t->is_socket = is_socket;
  pthread_mutex_init (&t->read_lock, NULL);
  pthread_mutex_init (&t->write_lock, NULL);
  pthread_mutex_init (&t->defer_lock, NULL);
  t->defer_buf = t->defer_space[0];
  t->defer_out = t->defer_space[1];
  set_socket_timeout (t, SO_SNDTIMEO, SEND_TIMEOUT);
}

/* The handshake starts: --handshake-limit counts from now. */
void
transport_start_handshake (struct transport *t)
{
  t->handshake_deadline = handshake_limit
    ? now_ms () + (int64_t) handshake_limit * 1000 : 0;
}

/* The transmission phase starts: the idle timeout replaces the
 * handshake deadline.  On a socket the kernel applies it to each
 * blocking read (SO_RCVTIMEO), so the request path polls for nothing.
 */
void
transport_start_transmission (struct transport *t)
{
  t->handshake_deadline = 0;
  if (idle_timeout)
    set_socket_timeout (t, SO_RCVTIMEO, idle_timeout);
}

/* Milliseconds left for the handshake (at least 1), or 0 if it is
 * over; -1 if there is no limit.
 */
int
transport_handshake_ms_left (struct transport *t)
{
  int64_t left;

  if (t->handshake_deadline == 0)
    return -1;
  left = t->handshake_deadline - now_ms ();
  return left <= 0 ? 0 : (int) MIN (left, (int64_t) INT_MAX);
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
  pthread_mutex_destroy (&t->defer_lock);
}

void
transport_shutdown (struct transport *t, int how)
{
  t->ops->shutdown (t, how);
}

/* Wait until FD is readable (1), the timeout passes (0), or, with
 * WATCH_QUIT, the server quits (-1, ESHUTDOWN).  Without it, FD must be
 * a socket the server shuts down when it quits (connections_shutdown),
 * which makes it readable.
 */
static int
wait_readable (int fd, int timeout_ms, bool watch_quit)
{
  struct pollfd fds[2] = {
    { .fd = fd, .events = POLLIN },
    { .fd = quit_fd, .events = POLLIN },
  };
  int r;

  for (;;) {
    r = poll (fds, watch_quit ? 2 : 1, timeout_ms);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0)
      return 0;
    if (fds[1].revents) {
      errno = ESHUTDOWN;
      return -1;
    }
    return 1;
  }
}

/* The wait for input timed out: drop the client, unless it is in the
 * transmission phase with requests in flight (it waits for their
 * replies, and that is not idling).
 */
static bool
give_up_waiting (struct connection *conn, bool handshake)
{
  if (handshake) {
    if (transport_handshake_ms_left (&conn->transport) != 0)
      return false;
    nbdcbt_error ("client did not finish the handshake within %u seconds "
                  "(--handshake-limit), dropping it", handshake_limit);
  }
  else {
    if (__atomic_load_n (&conn->sched.in_flight, __ATOMIC_RELAXED) > 0)
      return false;
    nbdcbt_error ("client sent no request for %u seconds "
                  "(--idle-timeout), dropping it", idle_timeout);
  }
  errno = ETIMEDOUT;
  return true;
}

/* One read of at most LEN bytes: > 0 bytes read, 0 at EOF, -1 on error.
 * The handshake and every read on a pipe poll first, to see the
 * server's quit and apply the handshake deadline or the idle timeout;
 * the transmission phase on a socket goes straight into the blocking
 * read (shutdown wakes it; SO_RCVTIMEO is the idle timeout).
 */
static ssize_t
recv_some (struct connection *conn, void *buf, size_t len, int flags,
           bool handshake)
{
  struct transport *t = &conn->transport;
  ssize_t r;

  for (;;) {
    /* In the transmission phase on a socket, a reader with no request
     * in flight waits in poll(2) first: its client is thinking or idle,
     * and a thread asleep in recv(2) on a Unix socket is also woken each
     * time the client reads a reply (the write-space wake-up shares the
     * socket's wait queue), only to sleep again; poll(2) waits for input
     * alone.  A libnbd client mapping a 1 TiB export (257 requests, one
     * at a time) took 7% less wall time so, for the same server CPU.
     * With requests in flight more input is usually on its way, and the
     * blocking recv(2) saves the extra system call.  That wait watches
     * the socket alone: a socket's connection came from the accept loop,
     * and the server shuts its socket down when it quits.  Leaving the
     * quit pipe out saves 1.5-2% of the server's CPU per request of a
     * map (cgroup CPU of 40 libnbd maps, 8 alternating rounds).  The
     * handshake and pipes (nbdcbt -s) keep watching the quit pipe.
     */
    bool watch_quit = handshake || !t->is_socket;
    bool poll_first = watch_quit
      || __atomic_load_n (&conn->sched.in_flight, __ATOMIC_RELAXED) == 0;

    if (poll_first && !(t->ops->pending && t->ops->pending (t))) {
      int timeout = handshake ? transport_handshake_ms_left (t)
        : idle_timeout ? (int) MIN (idle_timeout * 1000ull,
                                    (unsigned long long) INT_MAX)
        : -1;

      r = timeout == 0 ? 0 : wait_readable (t->sockin, timeout, watch_quit);
      if (r == -1)
        return -1;
      if (r == 0) {
        if (give_up_waiting (conn, handshake))
          return -1;
        continue;
      }
    }
    r = t->ops->recv (t, buf, len, flags);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && errno == EAGAIN) {
      if (give_up_waiting (conn, handshake))
        return -1;
      continue;
    }
    return r;
  }
}

int
conn_recv (struct connection *conn, void *buf, size_t len, bool handshake)
{
  char *p = buf;
  size_t done = 0;
  ssize_t r;

  while (done < len) {
    r = recv_some (conn, p + done, len - done, 0, handshake);
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
      r = recv_some (conn, p + done, len - done, TRANSPORT_WAITALL, false);
    else
      r = recv_some (conn, t->rbuf,
                     t->rfill ? MIN (t->rfill, sizeof t->rbuf)
                     : sizeof t->rbuf, 0, false);
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

/* Read LEN bytes and drop them (the payload of a WRITE that will be
 * refused), through the input buffer.  Same results as conn_recv.
 */
int
conn_discard_buffered (struct connection *conn, uint64_t len)
{
  struct transport *t = &conn->transport;
  uint64_t done = 0, n;
  ssize_t r;

  while (done < len) {
    if (t->rpos < t->rlen) {
      n = MIN (len - done, t->rlen - t->rpos);
      t->rpos += n;
      done += n;
      continue;
    }
    t->rpos = t->rlen = 0;
    r = recv_some (conn, t->rbuf, sizeof t->rbuf, 0, false);
    if (r == -1)
      return -1;
    if (r == 0) {
      if (done == 0)
        return 0;
      errno = EPIPE;
      return -1;
    }
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

/* Under WRITE_LOCK. */
static int
send_locked (struct transport *t, struct iovec *iov, int n)
{
  int r;

  __atomic_store_n (&t->send_progress, now_ms (), __ATOMIC_RELAXED);
  r = t->ops->sendv (t, iov, n);
  __atomic_store_n (&t->send_progress, 0, __ATOMIC_RELAXED);
  return r;
}

/* Queue a copy of the LEN bytes of IOV for the write lock's holder;
 * false if the queue has no room.
 */
static bool
defer_reply (struct transport *t, const struct iovec *iov, int n, size_t len)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->defer_lock);
  int i;

  if (t->defer_len + len > DEFER_BUFFER)
    return false;
  for (i = 0; i < n; i++) {
    memcpy (t->defer_buf + t->defer_len, iov[i].iov_base, iov[i].iov_len);
    t->defer_len += iov[i].iov_len;
  }
  return true;
}

static bool
have_deferred (struct transport *t)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->defer_lock);

  return t->defer_len > 0;
}

/* Under WRITE_LOCK: send what was queued, in one call. */
static int
send_deferred (struct transport *t)
{
  struct iovec iov;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->defer_lock);
    char *out = t->defer_out;

    if (t->defer_len == 0)
      return 0;
    iov.iov_base = t->defer_out = t->defer_buf;
    iov.iov_len = t->defer_len;
    t->defer_buf = out;
    t->defer_len = 0;
  }
  return send_locked (t, &iov, 1);
}

/* One message at a time on the wire (a reply, or a handshake message).
 * A small reply (an acknowledgement, an error) that finds another being
 * sent does not wait for the lock: it is queued, and the lock's holder
 * sends it before letting go.  With many requests in flight this saves
 * the futex sleep and wake-up of each collision and sends several
 * replies in one system call.  A failure to send a queued reply is the
 * holder's to report; the connection is finished either way.
 */
int
conn_sendv (struct connection *conn, struct iovec *iov, int n)
{
  struct transport *t = &conn->transport;
  size_t len = 0;
  int i, r = 0;

  for (i = 0; i < n; i++)
    len += iov[i].iov_len;
  if (len > DEFER_REPLY_MAX)
    pthread_mutex_lock (&t->write_lock);
  else if (pthread_mutex_trylock (&t->write_lock) != 0) {
    if (!defer_reply (t, iov, n, len))
      pthread_mutex_lock (&t->write_lock);
    /* The holder sends it, unless it let go in the meantime. */
    else if (pthread_mutex_trylock (&t->write_lock) != 0)
      return 0;
    else
      goto drain;
  }
  r = send_locked (t, iov, n);
 drain:
  for (;;) {
    if (send_deferred (t) == -1)
      r = -1;
    pthread_mutex_unlock (&t->write_lock);
    /* A reply queued after the last look, by a sender whose trylock
     * failed while this thread held the lock, is this thread's to send:
     * the queue is looked at after the unlock, under DEFER_LOCK, so
     * either this look sees it or that sender's trylock sees the lock
     * free.
     */
    if (!have_deferred (t) || pthread_mutex_trylock (&t->write_lock) != 0)
      break;
  }
  return r;
}

void
transport_abort (struct transport *t)
{
  /* The socket itself: a TLS close notify would need the session that
   * the stalled sender holds, and could block on the full socket too.
   */
  if (t->is_socket)
    shutdown (t->sockin, SHUT_RDWR);
}

bool
transport_send_stalled (struct transport *t, int ms)
{
  int64_t since = __atomic_load_n (&t->send_progress, __ATOMIC_RELAXED);

  return since != 0 && now_ms () - since >= ms;
}

int
conn_send (struct connection *conn, const void *buf, size_t len)
{
  struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };

  return conn_sendv (conn, &iov, 1);
}
