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

/* The worker threads of a connection in the transmission phase.
 *
 * nbdkit's model: each worker thread of a connection takes the read lock,
 * receives one request and its payload, releases the lock, executes the
 * request and sends its reply.  Replies therefore go out of order.
 * Unlike nbdkit, the lock passes to another worker only when the client
 * is pipelining (see reader_should_hand_off), and workers start as the
 * client's queue depth needs them (maybe_add_worker).
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "cleanup.h"

/* Checked once per request: an atomic flag, not a lock. */
void
conn_set_closing (struct connection *conn)
{
  __atomic_store_n (&conn->sched.closing, true, __ATOMIC_RELEASE);
}

bool
conn_is_closing (struct connection *conn)
{
  return __atomic_load_n (&conn->sched.closing, __ATOMIC_ACQUIRE);
}

/* The worker's extents list, emptied for [START, END). */
struct nbdcbt_extents *
worker_extents (struct worker *w, uint64_t start, uint64_t end, size_t max)
{
  if (w->ext == NULL) {
    w->ext = extents_new_limited (start, end, max);
    return w->ext;
  }
  return extents_reuse (w->ext, start, end, max) == 0 ? w->ext : NULL;
}

/* Should the reader let another worker read the next request while it
 * serves this one?  Only when the client is pipelining: more input is
 * already buffered, or other requests are in flight (their replies will
 * prompt more requests).  Otherwise it keeps the read lock and serves
 * the request itself, so a client that waits for each reply (nbdinfo
 * --map: 256 synchronous BLOCK_STATUS calls) is read, served and answered
 * by one thread, with no hand-off per request (a futex wake and two
 * context switches, about a quarter of the round trip on 2 cores).  The
 * workers waiting for the lock stay asleep: unlocking a contended mutex
 * would wake one each time.  A request such a client sends before the
 * reply waits at most for the one in flight.
 */
static bool
reader_should_hand_off (struct connection *conn, unsigned in_flight)
{
  struct transport *t = &conn->transport;

  if (t->rpos < t->rlen || in_flight > 1)
    return true;
  /* A large WRITE's payload went straight into the worker's buffer, so
   * the input buffer says nothing about what follows it (a sequential
   * writer keeps several in flight): look, without waiting.  One system
   * call per large write; the bytes it reads are the next request's.
   */
  if (t->rfill != 0)
    return conn_fill_nowait (conn) > 0;
  return false;
}

static void *worker_thread (void *arg);

/* The reader has just handed the read lock off with IN_FLIGHT requests
 * being served: if that is every worker, none is left to read the next
 * request, so start one more (up to -t).  Threads are started only as a
 * client's queue depth needs them: a connection that sends one request
 * at a time (nbdinfo, most of the handshake-only probes) costs one
 * thread instead of creating and joining sixteen, about 0.8 ms of CPU
 * per connection.
 */
static void
maybe_add_worker (struct connection *conn, unsigned in_flight)
{
  struct scheduling *s = &conn->sched;
  unsigned n = __atomic_load_n (&s->nworkers, __ATOMIC_RELAXED);
  pthread_t tid;
  int err;

  if (in_flight < n
      || n >= __atomic_load_n (&s->max_workers, __ATOMIC_RELAXED))
    return;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->workers_lock);
  if (s->nworkers >= s->max_workers || conn_is_closing (conn))
    return;
  err = pthread_create (&tid, NULL, worker_thread, conn);
  if (err == 0) {
    s->worker_tids[s->nworkers - 1] = tid;
    __atomic_store_n (&s->nworkers, s->nworkers + 1, __ATOMIC_RELAXED);
  }
  else {
    nbdcbt_debug ("pthread_create: %s (running with %u threads)",
                  strerror (err), s->nworkers);
    __atomic_store_n (&s->max_workers, s->nworkers, __ATOMIC_RELAXED);
  }
}

/* Serve a request received by this worker.  -1 = the connection is
 * closing.
 */
static int
serve (struct worker *w, const struct request *req)
{
  struct connection *conn = w->conn;
  int r;

  r = protocol_serve_request (w, req);
  __atomic_sub_fetch (&conn->sched.in_flight, 1, __ATOMIC_RELAXED);
  buffer_put (&conn->buffers, &w->rb);
  if (r == -1) {
    nbdcbt_debug ("sending reply: %m");
    conn_set_closing (conn);
  }
  return r;
}

/* Take the read lock and read requests.  A request the client sent
 * without pipelining is served right here, the lock kept; the first
 * one to hand off is returned (1, with *REQ and *IN_FLIGHT) to be
 * served after the lock is released.  0 = the connection is closing.
 */
static int
read_requests (struct worker *w, struct request *req, unsigned *in_flight)
{
  struct connection *conn = w->conn;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&conn->transport.read_lock);

  for (;;) {
    if (protocol_recv_request (w, req) != 1) {
      /* Before the lock goes: no other worker reads after this. */
      conn_set_closing (conn);
      return 0;
    }
    *in_flight = __atomic_add_fetch (&conn->sched.in_flight, 1,
                                     __ATOMIC_RELAXED);
    if (reader_should_hand_off (conn, *in_flight))
      return 1;
    if (serve (w, req) == -1)
      return 0;
  }
}

static void *
worker_thread (void *arg)
{
  struct worker w = { .conn = arg };
  struct connection *conn = w.conn;
  struct request req;
  unsigned in_flight;

  current_conn = conn;
  while (read_requests (&w, &req, &in_flight) == 1) {
    maybe_add_worker (conn, in_flight);
    if (serve (&w, &req) == -1)
      break;
  }
  buffer_put (&conn->buffers, &w.rb);
  nbdcbt_extents_free (w.ext);
  return NULL;
}

/* Serve the transmission phase in this thread and the workers it
 * starts; return once all of them have stopped.
 */
void
workers_serve (struct connection *conn)
{
  struct scheduling *s = &conn->sched;
  unsigned i;

  pthread_mutex_init (&s->workers_lock, NULL);
  s->max_workers = thread_model == NBDCBT_THREAD_MODEL_PARALLEL
    ? threads : 1;
  s->nworkers = 1;
  if (s->max_workers > 1) {
    s->worker_tids = calloc (s->max_workers - 1, sizeof *s->worker_tids);
    if (s->worker_tids == NULL) {
      nbdcbt_debug ("calloc: %m (running with 1 thread)");
      s->max_workers = 1;
    }
  }
  worker_thread (conn);

  /* Every worker stops once the connection is closing, and none is
   * started after that.
   */
  for (i = 0;; ++i) {
    pthread_t tid;
    {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->workers_lock);
      if (i + 1 >= s->nworkers)
        break;
      tid = s->worker_tids[i];
    }
    pthread_join (tid, NULL);
  }
  free (s->worker_tids);
  s->worker_tids = NULL;
  pthread_mutex_destroy (&s->workers_lock);
}
