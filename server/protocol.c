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

/* Transmission phase: receive a request, check it, run it through the
 * chain, reply.
 *
 * protocol_recv_request reads one request (and a WRITE's payload) under
 * the read lock; protocol_serve_request then does the rest in three
 * steps, as nbdkit's server/protocol.c: validate_request (the request
 * against the export and what was negotiated), handle_request (one
 * switch over the commands, returning an errno) and the reply senders
 * (simple, and structured: data, block status, error).  Which thread
 * reads and which serves is workers.c's business; the request buffers
 * are buffers.c's; the hole-aware READ is read-holes.c's.
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
#include "cleanup.h"
#include "minmax.h"

#define EXTENTS_KEEP 4096       /* larger extents lists are not kept */
#define MAX_DISCARD (2 * MAX_REQUEST_SIZE) /* refused WRITE payloads */

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
validate_request (struct connection *conn, const struct request *req)
{
  const struct negotiation *neg = &conn->neg;
  uint16_t type = req->type, flags = req->flags;
  uint64_t offset = req->offset, end;
  uint32_t count = req->count;
  uint16_t allowed = NBD_CMD_FLAG_FUA;
  bool ro = neg->eflags & NBD_FLAG_READ_ONLY;

  switch (type) {
  case NBD_CMD_READ:
    if (neg->eflags & NBD_FLAG_SEND_DF)
      allowed |= NBD_CMD_FLAG_DF;
    break;
  case NBD_CMD_WRITE_ZEROES:
    allowed |= NBD_CMD_FLAG_NO_HOLE;
    if (neg->eflags & NBD_FLAG_SEND_FAST_ZERO)
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
  if (!(neg->eflags & NBD_FLAG_SEND_FUA))
    allowed &= ~NBD_CMD_FLAG_FUA;
  if (flags & ~allowed) {
    nbdcbt_debug ("command %" PRIu16 ": invalid flags 0x%" PRIx16,
                  type, flags);
    return EINVAL;
  }

  switch (type) {
  case NBD_CMD_FLUSH:
    if (!(neg->eflags & NBD_FLAG_SEND_FLUSH) || offset != 0 || count != 0)
      return EINVAL;
    return 0;
  case NBD_CMD_WRITE:
  case NBD_CMD_WRITE_ZEROES:
    if (ro)
      return EPERM;
    if (type == NBD_CMD_WRITE_ZEROES
        && !(neg->eflags & NBD_FLAG_SEND_WRITE_ZEROES))
      return EINVAL;
    break;
  case NBD_CMD_TRIM:
    if (ro)
      return EPERM;
    if (!(neg->eflags & NBD_FLAG_SEND_TRIM))
      return EINVAL;
    break;
  case NBD_CMD_CACHE:
    if (!(neg->eflags & NBD_FLAG_SEND_CACHE))
      return EINVAL;
    break;
  case NBD_CMD_BLOCK_STATUS:
    if (!neg->structured || neg->selected.len == 0)
      return EINVAL;
    break;
  }

  if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE)
      && count > MAX_REQUEST_SIZE)
    return EINVAL;
  if (count == 0)
    return EINVAL;
  if (ADD_OVERFLOW (offset, count, &end) || end > neg->size)
    return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES
      ? ENOSPC : EINVAL;
  if (neg->minimum > 1
      && ((offset | count) & (neg->minimum - 1)) != 0)
    return EINVAL;
  return 0;
}

/* SERIALIZE_ALL_REQUESTS: one request at a time in the whole server. */
static pthread_mutex_t all_requests_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_mutex_t *
lock_request (void)
{
  if (thread_model > NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS)
    return NULL;
  pthread_mutex_lock (&all_requests_lock);
  return &all_requests_lock;
}

static void
unlock_request (pthread_mutex_t **lock)
{
  if (*lock)
    pthread_mutex_unlock (*lock);
}

#define LOCK_REQUEST_FOR_CURRENT_SCOPE()                                \
  __attribute__ ((cleanup (unlock_request)))                            \
  pthread_mutex_t *_request_lock = lock_request ()

/* BLOCK_STATUS: one chunk per selected context, built one after the
 * other in the worker's buffer (w->reply_len bytes of it) and sent
 * together.
 */
static int
block_status (struct worker *w, const struct request *req)
{
  struct connection *conn = w->conn;
  const struct negotiation *neg = &conn->neg;
  bool req_one = req->flags & NBD_CMD_FLAG_REQ_ONE;
  uint32_t f = req_one ? NBDCBT_FLAG_REQ_ONE : 0;
  size_t i, n, len;
  int err = 0, r;

  w->reply_len = 0;
  for (i = 0; i < neg->selected.len; ++i) {
    const struct selected_context *sc = &neg->selected.ptr[i];
    bool last = i == neg->selected.len - 1;
    struct nbdcbt_extents *ext;
    char *hdr;

    ext = worker_extents (w, req->offset, req->offset + req->count,
                          req_one ? 1 : MAX_EXTENTS);
    if (ext == NULL)
      return ENOMEM;
    if (sc->name == NULL)
      r = backend_extents (conn->top, req->count, req->offset, f, ext, &err);
    else
      r = backend_meta_extents (conn->top, sc->name, req->count,
                                req->offset, f, ext, &err);
    if (r == -1)
      return err ? err : EIO;
    n = nbdcbt_extents_count (ext);
    if (n == 0) {
      nbdcbt_error ("%s: no extents returned",
                    sc->name ? sc->name : "base:allocation");
      return EIO;
    }
    len = 24 + 8 * n;
    if (buffer_get (&conn->buffers, &w->rb, w->reply_len + len,
                    w->reply_len) == -1)
      return ENOMEM;
    hdr = REQUEST_DATA (&w->rb) + w->reply_len;
    reply_chunk_header (hdr, last ? NBD_REPLY_FLAG_DONE : 0,
                        NBD_REPLY_TYPE_BLOCK_STATUS, req->cookie, len - 20);
    store_be32 (hdr + 20, sc->id);
    extents_encode (ext, hdr + 24, sc->name ? UINT32_MAX : 3);
    w->reply_len += len;
    if (n > EXTENTS_KEEP) {     /* do not keep a huge array around */
      nbdcbt_extents_free (w->ext);
      w->ext = NULL;
    }
  }
  return 0;
}

/* Run a valid request through the chain.  Returns 0 or the errno to
 * reply with.  The data of READ and WRITE is in the worker's buffer.
 */
static int
handle_request (struct worker *w, const struct request *req)
{
  struct connection *conn = w->conn;
  struct nbdcbt_context *c = conn->top;
  uint32_t f = (req->flags & NBD_CMD_FLAG_FUA) ? NBDCBT_FLAG_FUA : 0;
  uint64_t flush_start;
  int err = 0, r;
  LOCK_REQUEST_FOR_CURRENT_SCOPE ();

  switch (req->type) {
  case NBD_CMD_READ:
    if (read_holes_wanted (conn, req)) {
      r = read_with_holes (w, req, &err);
      if (r != 0)
        break;
    }
    r = backend_pread (c, REQUEST_DATA (&w->rb), req->count, req->offset, 0,
                       &err);
    break;

  case NBD_CMD_WRITE:
    r = backend_pwrite (c, REQUEST_DATA (&w->rb), req->count, req->offset, f,
                        &err);
    unflushed_note_write (conn);
    break;

  case NBD_CMD_FLUSH:
    flush_start = unflushed_flush_start (conn);
    r = backend_flush (c, 0, &err);
    if (r == 0)
      unflushed_flush_done (conn, flush_start);
    break;

  case NBD_CMD_TRIM:
    r = backend_trim (c, req->count, req->offset, f, &err);
    unflushed_note_write (conn);
    break;

  case NBD_CMD_WRITE_ZEROES:
    if (!(req->flags & NBD_CMD_FLAG_NO_HOLE))
      f |= NBDCBT_FLAG_MAY_TRIM;
    if (req->flags & NBD_CMD_FLAG_FAST_ZERO)
      f |= NBDCBT_FLAG_FAST_ZERO;
    r = backend_zero (c, req->count, req->offset, f, &err);
    unflushed_note_write (conn);
    break;

  case NBD_CMD_CACHE:
    r = backend_cache (c, req->count, req->offset, 0, &err);
    break;

  case NBD_CMD_BLOCK_STATUS:
    return block_status (w, req);

  default:
    abort ();                   /* validate_request refused it */
  }
  if (r == -1)
    return err ? err : EIO;
  return 0;
}

/* Replies.  A buffer's reply header goes in the HDR_ROOM bytes in front
 * of its data.
 */

void
reply_chunk_header (char *hdr, uint16_t flags, uint16_t type,
                    uint64_t cookie, uint32_t length)
{
  store_be32 (hdr, NBD_STRUCTURED_REPLY_MAGIC);
  store_be16 (hdr + 4, flags);
  store_be16 (hdr + 6, type);
  store_be64 (hdr + 8, cookie);
  store_be32 (hdr + 16, length);
}

/* A simple reply, with DATALEN bytes of the worker's buffer after it. */
static int
send_simple_reply (struct worker *w, uint64_t cookie, uint32_t error,
                   uint32_t datalen)
{
  char hdrbuf[16];
  char *hdr = datalen ? w->rb.buf + HDR_ROOM - 16 : hdrbuf;

  store_be32 (hdr, NBD_SIMPLE_REPLY_MAGIC);
  store_be32 (hdr + 4, error);
  store_be64 (hdr + 8, cookie);
  return conn_send (w->conn, hdr, 16 + datalen);
}

static int
send_structured_reply_error (struct connection *conn, uint64_t cookie,
                             uint32_t error)
{
  char buf[26];

  reply_chunk_header (buf, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, cookie,
                      6);
  store_be32 (buf + 20, error);
  store_be16 (buf + 24, 0);
  return conn_send (conn, buf, sizeof buf);
}

/* READ data as one OFFSET_DATA chunk, header in front of the data, or as
 * the hole-aware path laid it out.
 */
static int
send_structured_reply_read (struct worker *w, const struct request *req)
{
  char *hdr = w->rb.buf + HDR_ROOM - 28;

  if (w->layout.n > 0)
    return send_read_with_holes (w, req);
  reply_chunk_header (hdr, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                      req->cookie, 8 + req->count);
  store_be64 (hdr + 20, req->offset);
  return conn_send (w->conn, hdr, 28 + req->count);
}

static int
send_structured_reply_block_status (struct worker *w)
{
  return conn_send (w->conn, REQUEST_DATA (&w->rb), w->reply_len);
}

static int
send_reply (struct worker *w, const struct request *req, int err)
{
  struct connection *conn = w->conn;
  bool structured = conn->neg.structured;

  if (err) {
    uint32_t error = nbd_errno (err, req->flags & NBD_CMD_FLAG_FAST_ZERO);

    if (structured && (req->type == NBD_CMD_READ
                       || req->type == NBD_CMD_BLOCK_STATUS))
      return send_structured_reply_error (conn, req->cookie, error);
    return send_simple_reply (w, req->cookie, error, 0);
  }
  switch (req->type) {
  case NBD_CMD_READ:
    return structured ? send_structured_reply_read (w, req)
      : send_simple_reply (w, req->cookie, 0, req->count);
  case NBD_CMD_BLOCK_STATUS:
    return send_structured_reply_block_status (w);
  default:
    return send_simple_reply (w, req->cookie, 0, 0);
  }
}

/* Serve one request already received.  -1 = the connection is dead. */
int
protocol_serve_request (struct worker *w, const struct request *req)
{
  struct connection *conn = w->conn;
  int err;

  w->layout.n = 0;
  err = req->err;
  if (err == 0)
    err = validate_request (conn, req);
  if (err == 0 && req->type == NBD_CMD_READ
      && buffer_get (&conn->buffers, &w->rb, req->count, 0) == -1)
    err = ENOMEM;
  if (err == 0) {
    err = handle_request (w, req);
    if (err)
      nbdcbt_debug ("command %" PRIu16 " at %" PRIu64 "+%" PRIu32
                    " failed: %s", req->type, req->offset, req->count,
                    strerror (err));
  }
  return send_reply (w, req, err);
}

/* Receive one request (and a WRITE's payload) under the read lock.
 * 1 = got one, 0 = stop.
 */
int
protocol_recv_request (struct worker *w, struct request *req)
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
  req->flags = load_be16 (hdr + 4);
  req->type = load_be16 (hdr + 6);
  req->cookie = load_be64 (hdr + 8);
  req->offset = load_be64 (hdr + 16);
  req->count = load_be32 (hdr + 24);

  if (req->type == NBD_CMD_DISC) {
    nbdcbt_debug ("client sent NBD_CMD_DISC");
    return 0;
  }
  req->err = 0;
  if (req->type == NBD_CMD_WRITE) {
    /* The payload follows whether or not the request is valid.  One
     * that is refused is read and dropped, so that the client gets a
     * reply and its next request is read from the right place (closing
     * with its bytes unread would reset the connection under the
     * client).  Beyond twice the maximum, as nbdkit, the client is not
     * speaking NBD: drop it.
     */
    if (req->count > MAX_DISCARD) {
      nbdcbt_error ("write of %" PRIu32 " bytes is far larger than the "
                    "maximum payload (%d), dropping the client",
                    req->count, MAX_REQUEST_SIZE);
      return 0;
    }
    if (req->count > MAX_REQUEST_SIZE) {
      nbdcbt_error ("write of %" PRIu32 " bytes is larger than the "
                    "maximum payload (%d), refused", req->count,
                    MAX_REQUEST_SIZE);
      req->err = EINVAL;
    }
    else if (buffer_get (&conn->buffers, &w->rb, req->count, 0) == -1) {
      nbdcbt_error ("cannot allocate a %" PRIu32 " byte buffer: %m",
                    req->count);
      req->err = ENOMEM;
    }
    if (req->err)
      r = conn_discard_buffered (conn, req->count);
    else
      r = conn_recv_buffered (conn, REQUEST_DATA (&w->rb), req->count);
    if (r != 1) {
      if (!is_quitting ())
        nbdcbt_debug ("client closed the connection in a write payload");
      return 0;
    }
  }
  /* After a large WRITE, read just the next request's header: if it is
   * another large WRITE (a sequential writer), its payload then goes
   * straight into the worker's buffer instead of partly through the
   * input buffer and a copy.
   */
  conn->transport.rfill = req->type == NBD_CMD_WRITE
    && req->count >= RECV_DIRECT_MIN ? sizeof hdr : 0;
  return 1;
}
