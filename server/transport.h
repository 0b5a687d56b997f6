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

/* nbdcbt server: the transport under a connection.
 *
 * Everything above this layer (handshake.c, protocol.c, the read path)
 * reads and writes a connection only through conn_recv, conn_recv_buffered,
 * conn_fill_nowait, conn_send and conn_sendv (transport.c), which in turn
 * call the connection's transport_ops.  The plain transport (transport.c)
 * reads and writes the file descriptors; a TLS session plugs in by
 * replacing conn->transport.ops and setting conn->transport.priv after
 * STARTTLS, with no change to the request path.  The contract of each
 * operation:
 *
 *   recv      Read at most LEN bytes.  FLAGS: TRANSPORT_WAITALL (the
 *             caller wants all LEN bytes: a transport may wait for them
 *             in one call, or return fewer), TRANSPORT_NOWAIT (do not
 *             block: -1 with errno EAGAIN when nothing is there).
 *             Returns the bytes read (> 0), 0 at end of input, or -1 with
 *             errno set.  EINTR is retried by the caller.  A blocking
 *             read that returns -1/EAGAIN means the socket's receive
 *             timeout (--idle-timeout) passed: the caller decides.
 *             The caller polls the descriptor first in the handshake
 *             (the --handshake-limit deadline; a TLS handshake of its
 *             own should use transport_handshake_ms_left) and on pipes.
 *   sendv     Write all of IOV[0..N) (the array may be modified).  0, or
 *             -1 with errno set.  Called with the write lock held: one
 *             reply at a time, while another thread may be in recv.
 *             A socket has a send timeout (SEND_TIMEOUT): a write that
 *             returns EAGAIN made no progress for that long, and fails.
 *   pending   Optional.  True if recv can return data without waiting on
 *             the file descriptor (bytes a TLS layer has already
 *             decrypted): the caller then skips its poll.
 *   shutdown  Stop reading (SHUT_RD, wakes a thread blocked in recv with
 *             end of input) or end the session (SHUT_RDWR: a TLS close
 *             notify, then the socket).  Never fails.
 *   close     Free PRIV (not the descriptors: the connection closes them).
 *
 * The descriptors (SOCKIN == SOCKOUT for a socket; stdin and stdout with
 * -s) and the locks belong to the connection whatever the transport.
 */
#ifndef NBDCBT_TRANSPORT_H
#define NBDCBT_TRANSPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define TRANSPORT_WAITALL 1
#define TRANSPORT_NOWAIT 2

#define RECV_BUFFER (16 * 1024)     /* input buffer of a connection */
#define RECV_DIRECT_MIN (8 * 1024)  /* larger reads bypass it */
#define DEFER_REPLY_MAX 256         /* replies up to this size may wait */
#define DEFER_BUFFER 4096           /* ... in a queue of this size */

struct transport;

struct transport_ops {
  const char *name;
  ssize_t (*recv) (struct transport *t, void *buf, size_t len, int flags);
  int (*sendv) (struct transport *t, struct iovec *iov, int n);
  bool (*pending) (struct transport *t);
  void (*shutdown) (struct transport *t, int how);
  void (*close) (struct transport *t);
};

/* The transport state of a connection (transport.c). */
struct transport {
  const struct transport_ops *ops;
  void *priv;                   /* the transport's own state (TLS) */
  int sockin, sockout;
  bool is_socket;
  int64_t handshake_deadline;   /* CLOCK_MONOTONIC ms, 0 = none */
  /* While a reply is being sent: when it started or last made progress
   * (CLOCK_MONOTONIC ms); 0 when not sending.  Atomic.
   */
  int64_t send_progress;
  /* The reader: whoever holds READ_LOCK reads the next request (and
   * owns the input buffer).  WRITE_LOCK: one reply at a time.
   */
  pthread_mutex_t read_lock;
  pthread_mutex_t write_lock;
  /* Small replies whose sender found WRITE_LOCK taken: copied here
   * (under DEFER_LOCK) for the lock's holder to send after its own, all
   * in one call.  DEFER_OUT is the holder's (under WRITE_LOCK).
   */
  pthread_mutex_t defer_lock;
  size_t defer_len;
  char *defer_buf, *defer_out;
  char defer_space[2][DEFER_BUFFER];
  /* Input buffer of the transmission phase, under read_lock.  RFILL,
   * when not 0, limits how much one read into it may take.
   */
  size_t rpos, rlen, rfill;
  char rbuf[RECV_BUFFER];
};

extern const struct transport_ops plain_transport_ops;

struct connection;
extern void transport_init (struct transport *t, int sockin, int sockout,
                            bool is_socket);
extern void transport_free (struct transport *t);
extern void transport_shutdown (struct transport *t, int how);
/* Whether a reply has been sending for MS milliseconds or more without
 * progress (a client that stopped reading).
 */
extern bool transport_send_stalled (struct transport *t, int ms);
/* Close the socket both ways at once, whatever the transport (a sender
 * blocked in it fails with EPIPE).
 */
extern void transport_abort (struct transport *t);
extern void transport_start_handshake (struct transport *t);
extern void transport_start_transmission (struct transport *t);
/* For a transport's own waits in the handshake (a TLS handshake). */
extern int transport_handshake_ms_left (struct transport *t);

/* Read exactly LEN bytes.  1 = done, 0 = clean EOF before any byte,
 * -1 = error or EOF in the middle (errno set).  HANDSHAKE: the handshake
 * deadline applies (otherwise the idle timeout).
 */
extern int conn_recv (struct connection *conn, void *buf, size_t len,
                      bool handshake);
/* The same through the input buffer (transmission phase, under the read
 * lock).
 */
extern int conn_recv_buffered (struct connection *conn, void *buf,
                               size_t len);
extern int conn_discard_buffered (struct connection *conn, uint64_t len);
extern size_t conn_fill_nowait (struct connection *conn);
extern int conn_send (struct connection *conn, const void *buf, size_t len);
extern int conn_sendv (struct connection *conn, struct iovec *iov, int n);

#endif /* NBDCBT_TRANSPORT_H */
