/* Transmission phase: read requests, run them through the chain, reply.
 *
 * nbdkit's model: each worker thread of a connection takes the read lock,
 * receives one request and its payload, releases the lock, executes the
 * request and sends its reply under the write lock.  Replies therefore go
 * out of order.  Unlike nbdkit, the lock passes to another worker only
 * when the client is pipelining (see reader_should_hand_off), and workers
 * start as the client's queue depth needs them (maybe_add_worker).
 *
 * A request's buffer (from a per-connection pool) holds its payload with
 * room for the reply header in front of it, so a READ reply leaves in one
 * system call with no copy.  The payload starts on a page
 * boundary (the header sits at the end of the page before it), so a
 * plugin doing O_DIRECT I/O can use it without a bounce buffer.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "byte-order.h"
#include "checked-overflow.h"
#include "minmax.h"

/* Where the payload starts in a worker's buffer: a page, so that the
 * data is 4096-aligned; the reply header (at most 32 bytes) goes right
 * before it.
 */
#define HDR_ROOM 4096
#define DATA_ALIGN 4096
#define KEEP_BUFFER (4 * 1024 * 1024) /* larger buffers are not kept */
#define EXTENTS_KEEP 4096             /* nor larger extents lists */

struct worker {
  struct connection *conn;
  char *buf;                         /* HDR_ROOM + payload, aligned, or
                                        NULL between requests */
  size_t cap;
  struct nbdcbt_extents *ext;        /* reused by every BLOCK_STATUS */
};

static pthread_mutex_t all_requests_lock = PTHREAD_MUTEX_INITIALIZER;

/* A worker holds a buffer only while it serves a request, and takes the
 * connection's most recently released one: with fewer requests in flight
 * than threads, a few buffers that stay in the CPU caches go round
 * instead of one per thread.
 */
static int
worker_buffer (struct worker *w, size_t len)
{
  struct connection *conn = w->conn;
  void *p;

  if (w->buf == NULL) {
    pthread_mutex_lock (&conn->pool_lock);
    if (conn->pool.len > 0) {
      struct pooled_buffer *pb = &conn->pool.ptr[--conn->pool.len];
      w->buf = pb->buf;
      w->cap = pb->cap;
    }
    pthread_mutex_unlock (&conn->pool_lock);
  }
  if (HDR_ROOM + len <= w->cap)
    return 0;
  free (w->buf);
  w->buf = NULL;
  w->cap = 0;
  if (posix_memalign (&p, DATA_ALIGN, HDR_ROOM + len) != 0)
    return -1;
  w->buf = p;
  w->cap = HDR_ROOM + len;
  return 0;
}

static void
worker_release_buffer (struct worker *w)
{
  struct connection *conn = w->conn;
  struct pooled_buffer pb = { .buf = w->buf, .cap = w->cap };
  int r = -1;

  if (w->buf == NULL)
    return;
  if (w->cap <= HDR_ROOM + KEEP_BUFFER) {
    pthread_mutex_lock (&conn->pool_lock);
    r = buffer_vector_append (&conn->pool, pb);
    pthread_mutex_unlock (&conn->pool_lock);
  }
  if (r == -1)
    free (w->buf);
  w->buf = NULL;
  w->cap = 0;
}

static uint32_t
nbd_errno (int err, bool fast_zero)
{
  switch (err) {
  case 0: return NBD_SUCCESS;
  case EROFS:
  case EPERM: return NBD_EPERM;
  case EIO: return NBD_EIO;
  case ENOMEM: return NBD_ENOMEM;
#ifdef EDQUOT
  case EDQUOT:
#endif
  case EFBIG:
  case ENOSPC: return NBD_ENOSPC;
  case EOVERFLOW: return NBD_EOVERFLOW;
#if ENOTSUP != EOPNOTSUPP
  case EOPNOTSUPP:
#endif
  case ENOTSUP: return fast_zero ? NBD_ENOTSUP : NBD_EINVAL;
  case ESHUTDOWN: return NBD_ESHUTDOWN;
  case EINVAL:
  default:
    return err == EINVAL ? NBD_EINVAL : NBD_EIO;
  }
}

/* Check a request against the export and the negotiated flags.  Returns 0
 * or the errno to reply with.
 */
static int
validate_request (struct connection *conn, uint16_t type, uint16_t flags,
                  uint64_t offset, uint32_t count)
{
  uint16_t allowed = NBD_CMD_FLAG_FUA;
  bool ro = conn->eflags & NBD_FLAG_READ_ONLY;
  uint64_t end;

  switch (type) {
  case NBD_CMD_READ:
    if (conn->eflags & NBD_FLAG_SEND_DF)
      allowed |= NBD_CMD_FLAG_DF;
    break;
  case NBD_CMD_WRITE_ZEROES:
    allowed |= NBD_CMD_FLAG_NO_HOLE;
    if (conn->eflags & NBD_FLAG_SEND_FAST_ZERO)
      allowed |= NBD_CMD_FLAG_FAST_ZERO;
    break;
  case NBD_CMD_BLOCK_STATUS:
    allowed |= NBD_CMD_FLAG_REQ_ONE;
    break;
  case NBD_CMD_WRITE: case NBD_CMD_FLUSH: case NBD_CMD_TRIM:
  case NBD_CMD_CACHE:
    break;
  default:
    nbdcbt_debug ("unknown command %" PRIu16, type);
    return EINVAL;
  }
  if (!(conn->eflags & NBD_FLAG_SEND_FUA))
    allowed &= ~NBD_CMD_FLAG_FUA;
  if (flags & ~allowed) {
    nbdcbt_debug ("command %" PRIu16 ": invalid flags 0x%" PRIx16,
                  type, flags);
    return EINVAL;
  }

  switch (type) {
  case NBD_CMD_FLUSH:
    if (!(conn->eflags & NBD_FLAG_SEND_FLUSH) || offset != 0 || count != 0)
      return EINVAL;
    return 0;
  case NBD_CMD_WRITE:
  case NBD_CMD_WRITE_ZEROES:
    if (ro)
      return EPERM;
    if (type == NBD_CMD_WRITE_ZEROES
        && !(conn->eflags & NBD_FLAG_SEND_WRITE_ZEROES))
      return EINVAL;
    break;
  case NBD_CMD_TRIM:
    if (ro)
      return EPERM;
    if (!(conn->eflags & NBD_FLAG_SEND_TRIM))
      return EINVAL;
    break;
  case NBD_CMD_CACHE:
    if (!(conn->eflags & NBD_FLAG_SEND_CACHE))
      return EINVAL;
    break;
  case NBD_CMD_BLOCK_STATUS:
    if (!conn->structured || conn->selected.len == 0)
      return EINVAL;
    break;
  }

  if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE)
      && count > MAX_REQUEST_SIZE)
    return EINVAL;
  if (count == 0)
    return EINVAL;
  if (ADD_OVERFLOW (offset, count, &end) || end > conn->size)
    return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES
      ? ENOSPC : EINVAL;
  if (conn->minimum > 1
      && ((offset | count) & (conn->minimum - 1)) != 0)
    return EINVAL;
  return 0;
}

/* Replies.  HDR points at HDR_ROOM bytes in front of the data. */

static int
send_simple_reply (struct worker *w, uint64_t cookie, uint32_t error,
                   uint32_t datalen)
{
  struct connection *conn = w->conn;
  char hdrbuf[16];
  char *hdr = datalen ? w->buf + HDR_ROOM - 16 : hdrbuf;
  int r;

  store_be32 (hdr, NBD_SIMPLE_REPLY_MAGIC);
  store_be32 (hdr + 4, error);
  store_be64 (hdr + 8, cookie);
  pthread_mutex_lock (&conn->write_lock);
  r = conn_send (conn, hdr, 16 + datalen);
  pthread_mutex_unlock (&conn->write_lock);
  return r;
}

static void
chunk_header (char *hdr, uint16_t flags, uint16_t type, uint64_t cookie,
              uint32_t length)
{
  store_be32 (hdr, NBD_STRUCTURED_REPLY_MAGIC);
  store_be16 (hdr + 4, flags);
  store_be16 (hdr + 6, type);
  store_be64 (hdr + 8, cookie);
  store_be32 (hdr + 16, length);
}

static int
send_error_chunk (struct connection *conn, uint64_t cookie, uint32_t error)
{
  char buf[26];
  int r;

  chunk_header (buf, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, cookie, 6);
  store_be32 (buf + 20, error);
  store_be16 (buf + 24, 0);
  pthread_mutex_lock (&conn->write_lock);
  r = conn_send (conn, buf, sizeof buf);
  pthread_mutex_unlock (&conn->write_lock);
  return r;
}

/* READ data as one OFFSET_DATA chunk, header in front of the data. */
static int
send_read_chunk (struct worker *w, uint64_t cookie, uint64_t offset,
                 uint32_t count)
{
  struct connection *conn = w->conn;
  char *hdr = w->buf + HDR_ROOM - 28;
  int r;

  chunk_header (hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                cookie, 8 + count);
  store_be64 (hdr + 20, offset);
  pthread_mutex_lock (&conn->write_lock);
  r = conn_send (conn, hdr, 28 + count);
  pthread_mutex_unlock (&conn->write_lock);
  return r;
}

/* A structured READ that covers zero extents with OFFSET_HOLE chunks.
 * Only tried for large reads, where one extents call is cheap next to
 * the data it may save.  Returns 1 if it sent the reply (or failed to),
 * with *R the send result; 0 to fall back to a plain read.
 *
 * The extents call is not free (two lseeks on the file plugin, about
 * 3 us, 5% of a 64 KiB read) and never pays on a fully allocated image.
 * So a connection whose probes keep finding no hole backs off: after
 * HOLE_MISSES probes in a row without a hole, it skips the next 16 large
 * reads, then 32, ... up to HOLE_SKIP_MAX; any probe that finds a hole
 * goes back to probing every read.  Workers update these counters
 * without a lock: a lost update only shifts the next probe.
 */
#define HOLE_READ_MIN (64 * 1024)
#define HOLE_READ_EXTENTS 16
#define HOLE_MISSES 4
#define HOLE_SKIP_MIN 16
#define HOLE_SKIP_MAX 1024

static bool
hole_probe_due (struct connection *conn)
{
  unsigned skip = __atomic_load_n (&conn->hole_skip, __ATOMIC_RELAXED);

  if (skip == 0)
    return true;
  __atomic_store_n (&conn->hole_skip, skip - 1, __ATOMIC_RELAXED);
  return false;
}

static void
hole_probe_result (struct connection *conn, bool found)
{
  unsigned misses, interval;

  if (found) {
    __atomic_store_n (&conn->hole_misses, 0, __ATOMIC_RELAXED);
    __atomic_store_n (&conn->hole_interval, 0, __ATOMIC_RELAXED);
    return;
  }
  misses = __atomic_add_fetch (&conn->hole_misses, 1, __ATOMIC_RELAXED);
  if (misses < HOLE_MISSES)
    return;
  interval = __atomic_load_n (&conn->hole_interval, __ATOMIC_RELAXED);
  interval = interval == 0 ? HOLE_SKIP_MIN : MIN (2 * interval,
                                                  (unsigned) HOLE_SKIP_MAX);
  __atomic_store_n (&conn->hole_interval, interval, __ATOMIC_RELAXED);
  __atomic_store_n (&conn->hole_skip, interval, __ATOMIC_RELAXED);
}

/* The worker's extents list, emptied for [START, END). */
static struct nbdcbt_extents *
worker_extents (struct worker *w, uint64_t start, uint64_t end, size_t max)
{
  if (w->ext == NULL) {
    w->ext = extents_new_limited (start, end, max);
    return w->ext;
  }
  return extents_reuse (w->ext, start, end, max) == 0 ? w->ext : NULL;
}

static int
read_with_holes (struct worker *w, uint64_t cookie, uint64_t offset,
                 uint32_t count, int *err, int *r)
{
  struct connection *conn = w->conn;
  struct nbdcbt_extents *ext;
  struct nbdcbt_extent e[HOLE_READ_EXTENTS + 1];
  char hdrs[HOLE_READ_EXTENTS + 1][32];
  struct iovec iov[2 * (HOLE_READ_EXTENTS + 1)];
  size_t i, n, niov = 0;
  uint64_t end = offset + count, pos;
  bool holes = false;
  int e_err = 0;

  ext = worker_extents (w, offset, end, HOLE_READ_EXTENTS);
  if (ext == NULL)
    return 0;
  if (backend_extents (conn->top, count, offset, 0, ext, &e_err) == -1)
    return 0;
  n = nbdcbt_extents_count (ext);
  for (i = 0, pos = offset; i < n; ++i) {
    e[i] = nbdcbt_get_extent (ext, i);
    pos = e[i].offset + e[i].length;
    holes |= (e[i].type & NBDCBT_EXTENT_ZERO) != 0;
  }
  hole_probe_result (conn, holes);
  if (!holes)
    return 0;
  if (pos < end)      /* the rest, not described: read it */
    e[n++] = (struct nbdcbt_extent) { .offset = pos, .length = end - pos };

  /* Read every data extent before sending anything. */
  for (i = 0; i < n; ++i) {
    if (e[i].type & NBDCBT_EXTENT_ZERO)
      continue;
    if (backend_pread (conn->top, w->buf + HDR_ROOM + (e[i].offset - offset),
                       e[i].length, e[i].offset, 0, err) == -1) {
      *r = -1;
      return 1;
    }
  }
  for (i = 0; i < n; ++i) {
    uint16_t flags = i == n - 1 ? NBD_REPLY_FLAG_DONE : 0;
    if (e[i].type & NBDCBT_EXTENT_ZERO) {
      chunk_header (hdrs[i], flags, NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12);
      store_be64 (hdrs[i] + 20, e[i].offset);
      store_be32 (hdrs[i] + 28, e[i].length);
      iov[niov++] = (struct iovec) { .iov_base = hdrs[i], .iov_len = 32 };
    }
    else {
      chunk_header (hdrs[i], flags, NBD_REPLY_TYPE_OFFSET_DATA, cookie,
                    8 + e[i].length);
      store_be64 (hdrs[i] + 20, e[i].offset);
      iov[niov++] = (struct iovec) { .iov_base = hdrs[i], .iov_len = 28 };
      iov[niov++] = (struct iovec) {
        .iov_base = w->buf + HDR_ROOM + (e[i].offset - offset),
        .iov_len = e[i].length,
      };
    }
  }
  pthread_mutex_lock (&conn->write_lock);
  *r = conn_sendv (conn, iov, niov);
  pthread_mutex_unlock (&conn->write_lock);
  *r = *r == -1 ? -2 : 0;
  return 1;
}

/* BLOCK_STATUS: one chunk per selected context. */
static int
block_status (struct worker *w, uint64_t cookie, uint16_t flags,
              uint64_t offset, uint32_t count)
{
  struct connection *conn = w->conn;
  bool req_one = flags & NBD_CMD_FLAG_REQ_ONE;
  size_t i, n;
  int err = 0, r;

  for (i = 0; i < conn->selected.len; ++i) {
    const struct selected_context *sc = &conn->selected.ptr[i];
    bool last = i == conn->selected.len - 1;
    struct nbdcbt_extents *ext;
    char *hdr;

    ext = worker_extents (w, offset, offset + count,
                          req_one ? 1 : MAX_EXTENTS);
    if (ext == NULL)
      return send_error_chunk (conn, cookie, NBD_ENOMEM);
    if (sc->name == NULL)
      r = backend_extents (conn->top, count, offset,
                           req_one ? NBDCBT_FLAG_REQ_ONE : 0, ext, &err);
    else
      r = backend_meta_extents (conn->top, sc->name, count, offset,
                                req_one ? NBDCBT_FLAG_REQ_ONE : 0, ext,
                                &err);
    n = nbdcbt_extents_count (ext);
    if (r == 0 && n == 0) {
      nbdcbt_error ("%s: no extents returned",
                    sc->name ? sc->name : "base:allocation");
      r = -1;
      err = EIO;
    }
    if (r == -1)
      return send_error_chunk (conn, cookie, nbd_errno (err, false));
    if (worker_buffer (w, 4 + 8 * n) == -1)
      return send_error_chunk (conn, cookie, NBD_ENOMEM);
    hdr = w->buf + HDR_ROOM - 20;
    chunk_header (hdr, last ? NBD_REPLY_FLAG_DONE : 0,
                  NBD_REPLY_TYPE_BLOCK_STATUS, cookie, 4 + 8 * n);
    store_be32 (hdr + 20, sc->id);
    extents_encode (ext, hdr + 24, sc->name ? UINT32_MAX : 3);
    pthread_mutex_lock (&conn->write_lock);
    r = conn_send (conn, hdr, 24 + 8 * n);
    pthread_mutex_unlock (&conn->write_lock);
    if (n > EXTENTS_KEEP) {     /* do not keep a huge array around */
      nbdcbt_extents_free (w->ext);
      w->ext = NULL;
    }
    if (r == -1)
      return -1;
  }
  return 0;
}

/* Record that a flush covered the first DONE writes. */
static void
note_flushed (struct connection *conn, uint64_t done)
{
  uint64_t cur = __atomic_load_n (&conn->writes_flushed, __ATOMIC_RELAXED);

  while (cur < done
         && !__atomic_compare_exchange_n (&conn->writes_flushed, &cur, done,
                                          false, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED))
    ;
}

static int
execute (struct worker *w, uint16_t type, uint16_t flags, uint64_t offset,
         uint32_t count, int *err)
{
  struct connection *conn = w->conn;
  struct nbdcbt_context *top_ctx = conn->top;
  uint32_t f = (flags & NBD_CMD_FLAG_FUA) ? NBDCBT_FLAG_FUA : 0;
  char *data = w->buf ? w->buf + HDR_ROOM : NULL; /* READ, WRITE only */
  uint64_t done;
  int r;

  switch (type) {
  case NBD_CMD_READ:
    return backend_pread (top_ctx, data, count, offset, 0, err);
  case NBD_CMD_WRITE:
    r = backend_pwrite (top_ctx, data, count, offset, f, err);
    break;
  case NBD_CMD_FLUSH:
    /* A flush covers every write completed before it started. */
    done = __atomic_load_n (&conn->writes_done, __ATOMIC_ACQUIRE);
    r = backend_flush (top_ctx, 0, err);
    if (r == 0)
      note_flushed (conn, done);
    return r;
  case NBD_CMD_TRIM:
    r = backend_trim (top_ctx, count, offset, f, err);
    break;
  case NBD_CMD_WRITE_ZEROES:
    if (!(flags & NBD_CMD_FLAG_NO_HOLE))
      f |= NBDCBT_FLAG_MAY_TRIM;
    if (flags & NBD_CMD_FLAG_FAST_ZERO)
      f |= NBDCBT_FLAG_FAST_ZERO;
    r = backend_zero (top_ctx, count, offset, f, err);
    break;
  case NBD_CMD_CACHE:
    return backend_cache (top_ctx, count, offset, 0, err);
  default:
    *err = EINVAL;
    return -1;
  }
  /* WRITE, TRIM, WRITE_ZEROES: counted even when they failed part-way. */
  __atomic_add_fetch (&conn->writes_done, 1, __ATOMIC_RELEASE);
  return r;
}

/* Serve one request already received.  -1 = the connection is dead. */
static int
serve_request (struct worker *w, uint16_t type, uint16_t flags,
               uint64_t cookie, uint64_t offset, uint32_t count)
{
  struct connection *conn = w->conn;
  bool serialize = thread_model <= NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
  int err, r;

  err = validate_request (conn, type, flags, offset, count);
  if (err == 0 && type == NBD_CMD_READ && worker_buffer (w, count) == -1)
    err = ENOMEM;
  if (err == 0) {
    if (serialize)
      pthread_mutex_lock (&all_requests_lock);
    if (type == NBD_CMD_BLOCK_STATUS)
      r = block_status (w, cookie, flags, offset, count);
    else if (type == NBD_CMD_READ && conn->structured
             && !(flags & NBD_CMD_FLAG_DF) && count >= HOLE_READ_MIN
             && conn->top->can_extents && hole_probe_due (conn)
             && read_with_holes (w, cookie, offset, count, &err, &r)) {
      if (serialize)
        pthread_mutex_unlock (&all_requests_lock);
      if (r == -2)
        return -1;        /* sending failed */
      if (r == 0)
        return 0;         /* reply sent */
      goto error;
    }
    else
      r = execute (w, type, flags, offset, count, &err);
    if (serialize)
      pthread_mutex_unlock (&all_requests_lock);
    if (type == NBD_CMD_BLOCK_STATUS)
      return r;
    if (r == 0)
      err = 0;
    else if (err == 0)
      err = EIO;
    if (err)
      nbdcbt_debug ("command %" PRIu16 " at %" PRIu64 "+%" PRIu32
                    " failed: %s", type, offset, count, strerror (err));
  }
 error:

  if (err)
    return conn->structured && (type == NBD_CMD_READ
                                || type == NBD_CMD_BLOCK_STATUS)
      ? send_error_chunk (conn, cookie,
                          nbd_errno (err, flags & NBD_CMD_FLAG_FAST_ZERO))
      : send_simple_reply (w, cookie,
                           nbd_errno (err, flags & NBD_CMD_FLAG_FAST_ZERO),
                           0);
  if (type == NBD_CMD_READ)
    return conn->structured ? send_read_chunk (w, cookie, offset, count)
      : send_simple_reply (w, cookie, 0, count);
  return send_simple_reply (w, cookie, 0, 0);
}

/* Receive one request (and a WRITE's payload) under the read lock.
 * 1 = got one, 0 = stop.
 */
static int
recv_request (struct worker *w, uint16_t *type, uint16_t *flags,
              uint64_t *cookie, uint64_t *offset, uint32_t *count)
{
  struct connection *conn = w->conn;
  char hdr[28];
  int r;

  if (conn_is_closing (conn))
    return 0;
  r = conn_recv_buffered (conn, hdr, sizeof hdr);
  if (r == 0) {
    nbdcbt_debug ("client closed the connection");
    return 0;
  }
  if (r == -1) {
    if (!is_quitting ())
      nbdcbt_debug ("reading request: %m");
    return 0;
  }
  if (load_be32 (hdr) != NBD_REQUEST_MAGIC) {
    nbdcbt_error ("bad request magic 0x%08" PRIx32 ", dropping the client",
                  load_be32 (hdr));
    return 0;
  }
  *flags = load_be16 (hdr + 4);
  *type = load_be16 (hdr + 6);
  *cookie = load_be64 (hdr + 8);
  *offset = load_be64 (hdr + 16);
  *count = load_be32 (hdr + 24);

  if (*type == NBD_CMD_DISC) {
    nbdcbt_debug ("client sent NBD_CMD_DISC");
    return 0;
  }
  if (*type == NBD_CMD_WRITE) {
    /* The payload follows whether or not the request is valid. */
    if (*count > MAX_REQUEST_SIZE) {
      nbdcbt_error ("write of %" PRIu32 " bytes is larger than the "
                    "maximum payload, dropping the client", *count);
      return 0;
    }
    if (worker_buffer (w, *count) == -1) {
      nbdcbt_error ("cannot allocate a %" PRIu32 " byte buffer, "
                    "dropping the client", *count);
      return 0;
    }
    r = conn_recv_buffered (conn, w->buf + HDR_ROOM, *count);
    if (r != 1) {
      nbdcbt_debug ("client closed the connection in a write payload");
      return 0;
    }
  }
  /* After a large WRITE, read just the next request's header: if it is
   * another large WRITE (a sequential writer), its payload then goes
   * straight into the worker's buffer instead of partly through the
   * input buffer and a copy.
   */
  conn->rfill = *type == NBD_CMD_WRITE && *count >= RECV_DIRECT_MIN
    ? sizeof hdr : 0;
  return 1;
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
  if (conn->rpos < conn->rlen || in_flight > 1)
    return true;
  /* A large WRITE's payload went straight into the worker's buffer, so
   * the input buffer says nothing about what follows it (a sequential
   * writer keeps several in flight): look, without waiting.  One system
   * call per large write; the bytes it reads are the next request's.
   */
  if (conn->rfill != 0)
    return conn_fill_nowait (conn) > 0;
  return false;
}

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
  unsigned n = __atomic_load_n (&conn->nworkers, __ATOMIC_RELAXED);
  pthread_t tid;
  int err;

  if (in_flight < n
      || n >= __atomic_load_n (&conn->max_workers, __ATOMIC_RELAXED))
    return;
  pthread_mutex_lock (&conn->workers_lock);
  if (conn->nworkers < conn->max_workers && !conn_is_closing (conn)) {
    err = pthread_create (&tid, NULL, worker_thread, conn);
    if (err == 0) {
      conn->worker_tids[conn->nworkers - 1] = tid;
      __atomic_store_n (&conn->nworkers, conn->nworkers + 1,
                        __ATOMIC_RELAXED);
    }
    else {
      nbdcbt_debug ("pthread_create: %s (running with %u threads)",
                    strerror (err), conn->nworkers);
      __atomic_store_n (&conn->max_workers, conn->nworkers,
                        __ATOMIC_RELAXED);
    }
  }
  pthread_mutex_unlock (&conn->workers_lock);
}

void *
worker_thread (void *arg)
{
  struct worker w = { .conn = arg };
  struct connection *conn = w.conn;
  bool locked = false;

  current_conn = conn;
  for (;;) {
    uint16_t type = 0, flags = 0;
    uint64_t cookie = 0, offset = 0;
    uint32_t count = 0;
    unsigned in_flight;
    int r;

    if (!locked)
      pthread_mutex_lock (&conn->read_lock);
    r = recv_request (&w, &type, &flags, &cookie, &offset, &count);
    if (r != 1) {
      conn_set_closing (conn);
      pthread_mutex_unlock (&conn->read_lock);
      break;
    }
    in_flight = __atomic_add_fetch (&conn->in_flight, 1, __ATOMIC_RELAXED);
    locked = !reader_should_hand_off (conn, in_flight);
    if (!locked) {
      pthread_mutex_unlock (&conn->read_lock);
      maybe_add_worker (conn, in_flight);
    }

    r = serve_request (&w, type, flags, cookie, offset, count);
    __atomic_sub_fetch (&conn->in_flight, 1, __ATOMIC_RELAXED);
    if (r == -1) {
      nbdcbt_debug ("sending reply: %m");
      conn_set_closing (conn);
      if (locked)
        pthread_mutex_unlock (&conn->read_lock);
      break;
    }
    worker_release_buffer (&w);
  }
  worker_release_buffer (&w);
  nbdcbt_extents_free (w.ext);
  return NULL;
}

void
protocol_serve (struct connection *conn)
{
  unsigned i;

  conn->max_workers = thread_model == NBDCBT_THREAD_MODEL_PARALLEL
    ? threads : 1;
  conn->nworkers = 1;
  if (conn->max_workers > 1) {
    conn->worker_tids = calloc (conn->max_workers - 1,
                                sizeof *conn->worker_tids);
    if (conn->worker_tids == NULL) {
      nbdcbt_debug ("calloc: %m (running with 1 thread)");
      conn->max_workers = 1;
    }
  }
  worker_thread (conn);
  /* Every worker stops once the connection is closing, and none is
   * started after that.
   */
  pthread_mutex_lock (&conn->workers_lock);
  for (i = 0; i + 1 < conn->nworkers; ++i) {
    pthread_t tid = conn->worker_tids[i];

    pthread_mutex_unlock (&conn->workers_lock);
    pthread_join (tid, NULL);
    pthread_mutex_lock (&conn->workers_lock);
  }
  pthread_mutex_unlock (&conn->workers_lock);
  free (conn->worker_tids);
  conn->worker_tids = NULL;
}
