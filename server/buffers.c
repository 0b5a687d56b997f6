/* The request buffer pool of a connection.
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
  pool->free = (buffer_vector) empty_vector;
}

void
buffer_pool_free (struct buffer_pool *pool)
{
  size_t i;

  for (i = 0; i < pool->free.len; ++i)
    free (pool->free.ptr[i].buf);
  buffer_vector_reset (&pool->free);
  pthread_mutex_destroy (&pool->lock);
}

/* Make RB hold at least LEN payload bytes, taking the pool's most
 * recently released buffer first.  KEEP: the first KEEP payload bytes
 * survive a reallocation.  -1 = out of memory (RB holds no buffer then,
 * or the old one if KEEP > 0).
 */
int
buffer_get (struct buffer_pool *pool, struct request_buffer *rb, size_t len,
            size_t keep)
{
  void *p;

  if (rb->buf == NULL) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool->lock);
    if (pool->free.len > 0)
      *rb = pool->free.ptr[--pool->free.len];
  }
  if (HDR_ROOM + len <= rb->cap)
    return 0;
  if (posix_memalign (&p, DATA_ALIGN, HDR_ROOM + len) != 0) {
    if (keep == 0) {
      free (rb->buf);
      *rb = (struct request_buffer) { 0 };
    }
    return -1;
  }
  if (keep > 0)
    memcpy ((char *) p + HDR_ROOM, rb->buf + HDR_ROOM, keep);
  free (rb->buf);
  rb->buf = p;
  rb->cap = HDR_ROOM + len;
  return 0;
}

/* Give RB back to the pool (or free it if it is large). */
void
buffer_put (struct buffer_pool *pool, struct request_buffer *rb)
{
  int r = -1;

  if (rb->buf == NULL)
    return;
  if (rb->cap <= HDR_ROOM + KEEP_BUFFER) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool->lock);
    r = buffer_vector_append (&pool->free, *rb);
  }
  if (r == -1)
    free (rb->buf);
  *rb = (struct request_buffer) { 0 };
}
