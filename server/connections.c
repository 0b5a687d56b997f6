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

/* Connections: life cycle, the threads that serve them, the list used
 * at shutdown, and the flush at disconnect.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "cleanup.h"

__thread struct connection *current_conn;

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conns_cond = PTHREAD_COND_INITIALIZER;
static struct connection *conns;
static unsigned nr_conns;
static unsigned nr_evicted;     /* of NR_CONNS, shut down and leaving */

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

/* The handshake is over: the connection can no longer be evicted (if
 * it was, its socket is shut down and it stops here).
 */
static bool
entered_transmission (struct connection *conn)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conns_lock);

  conn->list.in_handshake = false;
  if (conn->list.evicted)
    return false;
  transport_start_transmission (&conn->transport);
  return true;
}

/* At the connection limit, a new client takes the place of the oldest
 * connection still in the handshake: clients that connect and never
 * finish negotiating (a slow-loris flood) cannot lock out one that
 * does, while a handshake that works takes milliseconds.  The evicted
 * connection is shut down and leaves on its own thread.  Under
 * conns_lock; false if every connection is past the handshake.
 */
static bool
evict_one_in_handshake (void)
{
  struct connection *c, *oldest = NULL;

  for (c = conns; c; c = c->list.next)     /* newest first */
    if (c->list.in_handshake && !c->list.evicted)
      oldest = c;
  if (oldest == NULL)
    return false;
  nbdcbt_debug ("connection limit reached: evicting a client that has "
                "not finished its handshake");
  oldest->list.evicted = true;
  nr_evicted++;
  transport_shutdown (&oldest->transport, SHUT_RDWR);
  return true;
}

static void
run_connection (struct connection *conn)
{
  bool serialize = thread_model == NBDCBT_THREAD_MODEL_SERIALIZE_CONNECTIONS;

  current_conn = conn;
  if (serialize)
    pthread_mutex_lock (&connection_lock);
  transport_start_handshake (&conn->transport);
  if (handshake (conn) == 0 && entered_transmission (conn))
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

  if (conn->list.prev)
    conn->list.prev->list.next = conn->list.next;
  else
    conns = conn->list.next;
  if (conn->list.next)
    conn->list.next->list.prev = conn->list.prev;
  nr_conns--;
  if (conn->list.evicted)
    nr_evicted--;
  pthread_cond_broadcast (&conns_cond);
}

/* Idle connection threads.  A thread whose connection ended waits up to
 * IDLE_SECONDS for the next one (at most MAX_IDLE threads wait), since
 * starting a thread is a third of the server's CPU for a connection
 * that only negotiates (nbdinfo --size: 330 us with a new thread, 210
 * us with a waiting one; clone(2) and the kernel stack, and glibc's
 * madvise of the stack at exit).  The accept loop hands a connection to
 * a waiting thread through the HANDED queue.
 */
#define MAX_IDLE 8
#define IDLE_SECONDS 10

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t idle_gone_cond = PTHREAD_COND_INITIALIZER;
static unsigned nr_idle; /* threads waiting in next_connection */
static bool idle_stopping; /* connections_wait: no more waiting */
static struct connection *handed, *handed_tail; /* FIFO for them */
static unsigned nr_handed;

/* Give CONN to an idle thread; false if none is free to take it. */
static bool
hand_to_idle_thread (struct connection *conn)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&idle_lock);

  if (nr_idle <= nr_handed || idle_stopping)
    return false;
  conn->handoff_next = NULL;
  if (handed_tail)
    handed_tail->handoff_next = conn;
  else
    handed = conn;
  handed_tail = conn;
  nr_handed++;
  pthread_cond_signal (&idle_cond);
  return true;
}

/* The next connection for a thread whose connection ended, or NULL
 * for the thread to exit.
 */
static struct connection *
next_connection (void)
{
  struct connection *conn = NULL;
  struct timespec deadline;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&idle_lock);

  if (idle_stopping || nr_idle >= MAX_IDLE)
    return NULL;
  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += IDLE_SECONDS;
  nr_idle++;
  while (handed == NULL && !idle_stopping)
    if (pthread_cond_timedwait (&idle_cond, &idle_lock, &deadline) == ETIMEDOUT)
      break;
  if (handed) {
    conn = handed;
    handed = conn->handoff_next;
    if (handed == NULL)
      handed_tail = NULL;
    nr_handed--;
  }
  nr_idle--;
  if (nr_idle == 0)
    pthread_cond_broadcast (&idle_gone_cond);
  return conn;
}

/* Connection threads are joined, not detached: the server unloads the
 * modules once connections_wait returns, and a thread that has left its
 * loop may still be running its thread-local destructors (libnbd's, in
 * the nbd plugin, would find its key deleted and leak the thread's
 * error record).  A thread that ends puts itself on FINISHED; the
 * accept loop joins those before it starts another thread, and
 * connections_wait joins them all.
 */
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t threads_cond = PTHREAD_COND_INITIALIZER;
static unsigned nr_threads; /* started and not joined */
static pthread_t *finished; /* ended, to be joined */
static size_t nr_finished, finished_cap;

static void
join_finished_locked (void)
{
  size_t i;

  for (i = 0; i < nr_finished; ++i)
    pthread_join (finished[i], NULL);
  nr_threads -= nr_finished;
  nr_finished = 0;
}

/* The calling connection thread is about to return. */
static void
thread_finished (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&threads_lock);

  if (nr_finished == finished_cap) {
    size_t cap = finished_cap ? 2 * finished_cap : 16;
    pthread_t *p = realloc (finished, cap * sizeof *p);

    if (p == NULL) {
      /* Nobody can join it then: it cleans up after itself. */
      pthread_detach (pthread_self ());
      nr_threads--;
      pthread_cond_broadcast (&threads_cond);
      return;
    }
    finished = p;
    finished_cap = cap;
  }
  finished[nr_finished++] = pthread_self ();
  pthread_cond_broadcast (&threads_cond);
}

static void *
connection_thread (void *arg)
{
  struct connection *conn = arg;

  do {
    run_connection (conn);
    unregister (conn);
    conn_free (conn);
  } while ((conn = next_connection ()) != NULL);
  thread_finished ();
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
  if (nr_conns - nr_evicted >= max_connections
      && !evict_one_in_handshake ()) {
    nbdcbt_error ("too many connections (--max-connections=%u), "
                  "closing a new one", max_connections);
    return NULL;
  }
  conn = conn_new (fd, is_socket, outfd);
  if (conn == NULL) {
    nbdcbt_error ("calloc: %m");
    return NULL;
  }
  conn->list.in_handshake = true;
  conn->list.next = conns;
  if (conns)
    conns->list.prev = conn;
  conns = conn;
  nr_conns++;
  return conn;
}

/* Takes ownership of FD (and OUTFD). */
void
accept_connection (int fd, bool is_socket, int outfd)
{
  struct connection *conn;
  pthread_t tid;

  conn = register_connection (fd, is_socket, outfd);
  if (conn == NULL) {
    close (fd);
    if (outfd != fd)
      close (outfd);
    return;
  }
  if (hand_to_idle_thread (conn))
    return;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&threads_lock);
    join_finished_locked ();
    nr_threads++;
  }
  errno = pthread_create (&tid, NULL, connection_thread, conn);
  if (errno != 0) {
    nbdcbt_error ("pthread_create: %m");
    {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&threads_lock);
      nr_threads--;
    }
    unregister (conn);
    conn_free (conn);
  }
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

/* Drop the connections (of EXP, or all) whose reply has made no
 * progress for STOP_STALL_MS: a client that stopped reading must not
 * hold up the server's stop or an export's removal (the send timeout
 * alone would take SEND_TIMEOUT seconds).  conns_lock held.
 */
static void
drop_stalled_locked (struct export *exp)
{
  struct connection *conn;

  for (conn = conns; conn; conn = conn->list.next)
    if ((exp == NULL
         || __atomic_load_n (&conn->exp, __ATOMIC_ACQUIRE) == exp)
        && transport_send_stalled (&conn->transport, STOP_STALL_MS)) {
      nbdcbt_debug ("stopping: a client read none of its replies for %d ms, "
                    "dropping it", STOP_STALL_MS);
      transport_abort (&conn->transport);
    }
}

/* Stop reading new requests on every connection; requests in flight
 * finish and send their replies (but a client that stopped reading them
 * is dropped once stalled for STOP_STALL_MS: call again to check).
 */
void
connections_shutdown (struct export *exp)
{
  struct connection *conn;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conns_lock);

  for (conn = conns; conn; conn = conn->list.next)
    if (exp == NULL
        || __atomic_load_n (&conn->exp, __ATOMIC_ACQUIRE) == exp)
      transport_shutdown (&conn->transport, SHUT_RD);
  drop_stalled_locked (exp);
}

void
connections_wait (void)
{
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&idle_lock);
    idle_stopping = true;
    pthread_cond_broadcast (&idle_cond);
    while (nr_idle > 0)
      pthread_cond_wait (&idle_gone_cond, &idle_lock);
  }
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conns_lock);

    while (nr_conns > 0) {
      struct timespec ts;

      clock_gettime (CLOCK_REALTIME, &ts);
      ts.tv_nsec += 250 * 1000 * 1000;
      if (ts.tv_nsec >= 1000 * 1000 * 1000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000 * 1000 * 1000;
      }
      pthread_cond_timedwait (&conns_cond, &conns_lock, &ts);
      drop_stalled_locked (NULL);
    }
  }
  /* Every connection has ended; so do their threads, now or after an
   * idle wait that idle_stopping cut short.
   */
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&threads_lock);
  while (nr_finished < nr_threads)
    pthread_cond_wait (&threads_cond, &threads_lock);
  join_finished_locked ();
}
