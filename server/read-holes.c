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

/* The hole-aware READ path: a structured READ that covers zero extents
 * with OFFSET_HOLE chunks.
 *
 * Only tried for large reads, where one extents call is cheap next to
 * the data it may save.  The extents call is not free (two lseeks on the
 * file plugin, about 3 us, 5% of a 64 KiB read) and never pays on a fully
 * allocated image.  So a connection whose probes keep finding no hole
 * backs off: after HOLE_MISSES probes in a row without a hole, it skips
 * the next 16 large reads, then 32, ... up to HOLE_SKIP_MAX; any probe
 * that finds a hole goes back to probing every read.  Workers update
 * these counters without a lock: a lost update only shifts the next
 * probe.
 */
#include <config.h>

#include <stdint.h>
#include <sys/uio.h>

#include "internal.h"
#include "byte-order.h"
#include "minmax.h"

#define HOLE_READ_MIN (64 * 1024)
#define HOLE_MISSES 4
#define HOLE_SKIP_MIN 16
#define HOLE_SKIP_MAX 1024

static bool
hole_probe_due (struct hole_probe *hp)
{
  unsigned skip = __atomic_load_n (&hp->skip, __ATOMIC_RELAXED);

  if (skip == 0)
    return true;
  __atomic_store_n (&hp->skip, skip - 1, __ATOMIC_RELAXED);
  return false;
}

static void
hole_probe_result (struct hole_probe *hp, bool found)
{
  unsigned misses, interval;

  if (found) {
    __atomic_store_n (&hp->misses, 0, __ATOMIC_RELAXED);
    __atomic_store_n (&hp->interval, 0, __ATOMIC_RELAXED);
    return;
  }
  misses = __atomic_add_fetch (&hp->misses, 1, __ATOMIC_RELAXED);
  if (misses < HOLE_MISSES)
    return;
  interval = __atomic_load_n (&hp->interval, __ATOMIC_RELAXED);
  interval = interval == 0 ? HOLE_SKIP_MIN : MIN (2 * interval,
                                                  (unsigned) HOLE_SKIP_MAX);
  __atomic_store_n (&hp->interval, interval, __ATOMIC_RELAXED);
  __atomic_store_n (&hp->skip, interval, __ATOMIC_RELAXED);
}

/* Is this READ (already validated) one to probe for holes? */
bool
read_holes_wanted (struct connection *conn, const struct request *req)
{
  return conn->neg.structured && !(req->flags & NBD_CMD_FLAG_DF)
    && req->count >= HOLE_READ_MIN && conn->top->can_extents
    && !conn->exp->whole_reads
    && hole_probe_due (&conn->holes);
}

/* Read REQ's data extents into the worker's buffer and record the
 * layout (w->layout) for send_read_with_holes.  Returns 1 when that is
 * done, 0 to fall back to a plain read (no hole found, or the extents
 * call failed), -1 if a read failed (*ERR set).
 */
int
read_with_holes (struct worker *w, const struct request *req, int *err)
{
  struct connection *conn = w->conn;
  struct read_layout *l = &w->layout;
  struct nbdcbt_extents *ext;
  uint64_t end = req->offset + req->count, pos;
  bool holes = false;
  int e_err = 0;
  size_t i;

  l->n = 0;
  ext = worker_extents (w, req->offset, end, HOLE_READ_EXTENTS);
  if (ext == NULL)
    return 0;
  if (backend_extents (conn->top, req->count, req->offset, 0, ext,
                       &e_err) == -1)
    return 0;
  l->n = nbdcbt_extents_count (ext);
  for (i = 0, pos = req->offset; i < l->n; ++i) {
    l->e[i] = nbdcbt_get_extent (ext, i);
    pos = l->e[i].offset + l->e[i].length;
    holes |= (l->e[i].type & NBDCBT_EXTENT_ZERO) != 0;
  }
  hole_probe_result (&conn->holes, holes);
  if (!holes) {
    l->n = 0;
    return 0;
  }
  if (pos < end)      /* the rest, not described: read it */
    l->e[l->n++] = (struct nbdcbt_extent) {
      .offset = pos, .length = end - pos
    };

  /* Read every data extent before sending anything. */
  for (i = 0; i < l->n; ++i) {
    if (l->e[i].type & NBDCBT_EXTENT_ZERO)
      continue;
    if (backend_pread (conn->top,
                       REQUEST_DATA (&w->rb) + (l->e[i].offset - req->offset),
                       l->e[i].length, l->e[i].offset, 0, err) == -1) {
      l->n = 0;
      return -1;
    }
  }
  return 1;
}

/* The reply: one OFFSET_HOLE or OFFSET_DATA chunk per extent, in one
 * system call.
 */
int
send_read_with_holes (struct worker *w, const struct request *req)
{
  const struct read_layout *l = &w->layout;
  char hdrs[HOLE_READ_EXTENTS + 1][32];
  struct iovec iov[2 * (HOLE_READ_EXTENTS + 1)];
  size_t i, niov = 0;

  for (i = 0; i < l->n; ++i) {
    const struct nbdcbt_extent *e = &l->e[i];
    uint16_t flags = i == l->n - 1 ? NBD_REPLY_FLAG_DONE : 0;

    if (e->type & NBDCBT_EXTENT_ZERO) {
      reply_chunk_header (hdrs[i], flags, NBD_REPLY_TYPE_OFFSET_HOLE,
                          req->cookie, 12);
      store_be64 (hdrs[i] + 20, e->offset);
      store_be32 (hdrs[i] + 28, e->length);
      iov[niov++] = (struct iovec) { .iov_base = hdrs[i], .iov_len = 32 };
    }
    else {
      reply_chunk_header (hdrs[i], flags, NBD_REPLY_TYPE_OFFSET_DATA,
                          req->cookie, 8 + e->length);
      store_be64 (hdrs[i] + 20, e->offset);
      iov[niov++] = (struct iovec) { .iov_base = hdrs[i], .iov_len = 28 };
      iov[niov++] = (struct iovec) {
        .iov_base = REQUEST_DATA (&w->rb) + (e->offset - req->offset),
        .iov_len = e->length,
      };
    }
  }
  return conn_sendv (w->conn, iov, niov);
}
