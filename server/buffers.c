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

/* The request buffer pool of a connection, within --max-in-flight.
 *
 * A request's buffer holds its payload with room for the reply header in
 * front of it, so a READ reply leaves in one system call with no copy.
 * The payload starts on a page boundary (the header sits at the end of
 * the page before it), so a plugin doing O_DIRECT I/O can use it without
 * a bounce buffer.
 *
 * A worker holds a buffer only while it serves a request, and takes the
 * connection's most recently released one: with fewer requests in flight
 * than threads, a few buffers that stay in the CPU caches go round
 * instead of one per thread.
 *
 * All of a connection's buffers, in use or kept, count against
 * --max-in-flight (make_room): a client that floods large WRITEs, or
 * keeps many large READs in flight, holds that much memory at most.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "cleanup.h"

#define DATA_ALIGN 4096
#define KEEP_BUFFER (4 * 1024 * 1024) /* larger buffers are not kept */

void
buffer_pool_init (struct buffer_pool *pool)
{
  pthread_mutex_init (&pool->lock, NULL);
  pthread_cond_init (&pool->released, NULL);
  pool->free = (buffer_vector) empty_vector;
}

void
buffer_pool_free (struct buffer_pool *pool)
{
  size_t i;

  for (i = 0; i < pool->free.len; ++i)
    free (pool->free.ptr[i].buf);
  buffer_vector_reset (&pool->free);
  pthread_cond_destroy (&pool->released);
  pthread_mutex_destroy (&pool->lock);
}

/* Under the pool's lock: make room for NEED more bytes within
 * --max-in-flight.  Buffers kept for reuse go first (the oldest
 * first).  Then a first allocation (MAY_WAIT) waits for the requests
 * in flight to give theirs back: the reader waits with the read lock
 * held, so the client's requests back up in the socket, not in memory.
 * A request alone always gets its buffer, however large (up to the
 * maximum payload), and a buffer that grows (a BLOCK_STATUS reply with
 * several contexts) never waits, since it holds memory already.
 */
static void
make_room (struct buffer_pool *pool, size_t need, bool may_wait)
{
  while (pool->held + need > max_in_flight) {
    if (pool->free.len > 0) {
      struct request_buffer old = pool->free.ptr[0];

      memmove (&pool->free.ptr[0], &pool->free.ptr[1],
               --pool->free.len * sizeof old);
      pool->held -= old.cap;
      free (old.buf);
      continue;
    }
    if (!may_wait || pool->in_use == 0 || is_quitting ())
      return;
    pthread_cond_wait (&pool->released, &pool->lock);
  }
}

/* Make RB hold at least LEN payload bytes, taking the pool's most
 * recently released buffer first.  KEEP: the first KEEP payload bytes
 * survive a reallocation.  -1 = out of memory; RB then holds the buffer
 * it had if KEEP > 0, none otherwise.  Every buffer obtained goes back
 * with buffer_put.
 */
int
buffer_get (struct buffer_pool *pool, struct request_buffer *rb, size_t len,
            size_t keep)
{
  size_t need = HDR_ROOM + len;
  bool first = rb->buf == NULL;
  void *p;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool->lock);

    if (first && pool->free.len > 0) {
      *rb = pool->free.ptr[--pool->free.len];
      pool->in_use++;
      first = false;
    }
    if (need <= rb->cap)
      return 0;
    /* Charge the new buffer now; the old one is uncharged once freed. */
    make_room (pool, need, first);
    pool->held += need;
    if (first)
      pool->in_use++;
  }

  if (posix_memalign (&p, DATA_ALIGN, need) != 0)
    p = NULL;
  else if (keep > 0)
    memcpy ((char *) p + HDR_ROOM, rb->buf + HDR_ROOM, keep);

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool->lock);
  if (p == NULL) {
    pool->held -= need;
    if (keep == 0) {
      pool->held -= rb->cap;
      pool->in_use--;
      free (rb->buf);
      *rb = (struct request_buffer) { 0 };
    }
    pthread_cond_broadcast (&pool->released);
    return -1;
  }
  pool->held -= rb->cap;
  free (rb->buf);
  rb->buf = p;
  rb->cap = need;
  return 0;
}

/* Give RB back: kept for reuse if it is not large and the pool is
 * within its budget, freed otherwise.
 */
void
buffer_put (struct buffer_pool *pool, struct request_buffer *rb)
{
  bool keep;

  if (rb->buf == NULL)
    return;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool->lock);

    pool->in_use--;
    keep = rb->cap <= HDR_ROOM + KEEP_BUFFER && pool->held <= max_in_flight
      && buffer_vector_append (&pool->free, *rb) == 0;
    if (!keep)
      pool->held -= rb->cap;
    pthread_cond_broadcast (&pool->released);
  }
  if (!keep)
    free (rb->buf);
  *rb = (struct request_buffer) { 0 };
}
