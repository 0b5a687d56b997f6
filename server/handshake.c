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

/* Fixed newstyle handshake: option haggling up to GO or EXPORT_NAME. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "byte-order.h"
#include "minmax.h"
#include "tls.h"

#define MAX_PAYLOAD_ADVERTISED (32 * 1024 * 1024)

static int
send_option_reply (struct connection *conn, uint32_t option, uint32_t reply,
                   const void *data, uint32_t len)
{
  char hdr[20];
  struct iovec iov[2] = {
    { .iov_base = hdr, .iov_len = sizeof hdr },
    { .iov_base = (void *) data, .iov_len = len },
  };

  store_be64 (hdr, NBD_REP_MAGIC);
  store_be32 (hdr + 8, option);
  store_be32 (hdr + 12, reply);
  store_be32 (hdr + 16, len);
  return conn_sendv (conn, iov, len ? 2 : 1);
}

static int
send_error (struct connection *conn, uint32_t option, uint32_t reply,
            const char *msg)
{
  nbdcbt_debug ("option %" PRIu32 ": replying 0x%" PRIx32 ": %s",
                option, reply, msg);
  return send_option_reply (conn, option, reply, msg, strlen (msg));
}

static int
send_ack (struct connection *conn, uint32_t option)
{
  return send_option_reply (conn, option, NBD_REP_ACK, NULL, 0);
}

static bool
has_nul (const char *s, uint32_t len)
{
  return memchr (s, '\0', len) != NULL;
}

/* Open EXP's chain (the connection takes the reference) and work out
 * what to advertise.  On failure the reference is dropped.
 */
static int
open_export (struct connection *conn, struct export *exp)
{
  struct nbdcbt_context *c;
  uint16_t eflags = NBD_FLAG_HAS_FLAGS;
  bool ro = read_only || exp->read_only;
  uint32_t min;

  c = backend_open (exp->top, ro);
  if (c == NULL) {
    export_put (exp);
    return -1;
  }
  if (ro || !c->can_write)
    eflags |= NBD_FLAG_READ_ONLY;
  else {
    if (c->can_trim)
      eflags |= NBD_FLAG_SEND_TRIM;
    if (c->can_zero != NBDCBT_ZERO_NONE) {
      eflags |= NBD_FLAG_SEND_WRITE_ZEROES;
      if (c->can_fast_zero)
        eflags |= NBD_FLAG_SEND_FAST_ZERO;
    }
    if (c->can_fua != NBDCBT_FUA_NONE)
      eflags |= NBD_FLAG_SEND_FUA;
  }
  if (c->can_flush)
    eflags |= NBD_FLAG_SEND_FLUSH;
  if (c->is_rotational)
    eflags |= NBD_FLAG_ROTATIONAL;
  if (c->can_multi_conn)
    eflags |= NBD_FLAG_CAN_MULTI_CONN;
  if (c->can_cache != NBDCBT_CACHE_NONE)
    eflags |= NBD_FLAG_SEND_CACHE;
  if (conn->neg.structured)
    eflags |= NBD_FLAG_SEND_DF;

  min = c->minimum;
  if (min == 0 || min > 65536 || (min & (min - 1)) != 0) {
    nbdcbt_error ("%s: invalid minimum block size %" PRIu32 ", using 1",
                  c->b->name, min);
    min = 1;
  }
  conn->neg.minimum = min;
  conn->neg.eflags = eflags;
  conn->neg.size = c->size;
  conn->top = c;
  __atomic_store_n (&conn->exp, exp, __ATOMIC_RELEASE);
  return 0;
}

static void
close_export (struct connection *conn)
{
  connection_close_chain (conn);
}

void
negotiation_free (struct negotiation *neg)
{
  selected_reset (&neg->selected);
  free (neg->meta_export);
  free (neg->export_name);
  neg->meta_export = neg->export_name = NULL;
}

static int
send_info_export (struct connection *conn, uint32_t option)
{
  char buf[12];

  store_be16 (buf, NBD_INFO_EXPORT);
  store_be64 (buf + 2, conn->neg.size);
  store_be16 (buf + 10, conn->neg.eflags);
  return send_option_reply (conn, option, NBD_REP_INFO, buf, sizeof buf);
}

static int
send_info_block_size (struct connection *conn, uint32_t option)
{
  char buf[14];
  uint32_t min = conn->neg.minimum;
  uint32_t preferred = conn->top->preferred;
  uint32_t max = MAX_PAYLOAD_ADVERTISED;

  /* The chain's preferred size when it is a sane one (a power of two
   * from the minimum to 32 MiB), else 4 KiB.
   */
  if (preferred < min || preferred > MAX_PAYLOAD_ADVERTISED
      || (preferred & (preferred - 1)) != 0)
    preferred = MAX (4096u, min);

  if (conn->top->maximum < max && conn->top->maximum >= preferred)
    max = conn->top->maximum / min * min;
  store_be16 (buf, NBD_INFO_BLOCK_SIZE);
  store_be32 (buf + 2, min);
  store_be32 (buf + 6, preferred);
  store_be32 (buf + 10, max);
  return send_option_reply (conn, option, NBD_REP_INFO, buf, sizeof buf);
}

static int
send_info_name (struct connection *conn, uint32_t option, const char *name,
                uint32_t len)
{
  char buf[2 + NBD_MAX_STRING];

  store_be16 (buf, NBD_INFO_NAME);
  memcpy (buf + 2, name, len);
  return send_option_reply (conn, option, NBD_REP_INFO, buf, 2 + len);
}

static int
send_info_description (struct connection *conn, uint32_t option)
{
  char buf[2 + NBD_MAX_STRING];
  const char *description = conn->exp->description;
  size_t len = strlen (description);

  store_be16 (buf, NBD_INFO_DESCRIPTION);
  memcpy (buf + 2, description, len);
  return send_option_reply (conn, option, NBD_REP_INFO, buf, 2 + len);
}

/* The selection of meta contexts belongs to the export of the last SET. */
static void
check_meta_export (struct connection *conn, const char *name, uint32_t len)
{
  if (conn->neg.meta_set
      && (strlen (conn->neg.meta_export) != len
          || memcmp (conn->neg.meta_export, name, len) != 0)) {
    nbdcbt_debug ("meta contexts were set for another export: dropped");
    selected_reset (&conn->neg.selected);
  }
}

/* INFO and GO.  Returns 1 for "go to transmission", 0 to keep haggling,
 * -1 to drop the connection.
 */
static int
opt_info_go (struct connection *conn, uint32_t option, const char *data,
             uint32_t len)
{
  uint32_t namelen, i;
  uint16_t nreq;
  const char *name;
  bool want_name = false, want_description = false;
  struct export *exp;

  if (len < 6)
    return send_error (conn, option, NBD_REP_ERR_INVALID, "option too short");
  namelen = load_be32 (data);
  if (namelen > len - 6)
    return send_error (conn, option, NBD_REP_ERR_INVALID,
                       "export name length exceeds the option");
  name = data + 4;
  nreq = load_be16 (data + 4 + namelen);
  if (len != 4 + namelen + 2 + 2 * (uint32_t) nreq)
    return send_error (conn, option, NBD_REP_ERR_INVALID,
                       "information request count does not match the "
                       "option length");
  if (namelen > NBD_MAX_STRING)
    return send_error (conn, option, NBD_REP_ERR_INVALID,
                       "export name too long");
  if (has_nul (name, namelen))
    return send_error (conn, option, NBD_REP_ERR_INVALID,
                       "export name contains NUL");
  for (i = 0; i < nreq; ++i) {
    uint16_t info = load_be16 (data + 4 + namelen + 2 + 2 * i);
    if (info == NBD_INFO_NAME)
      want_name = true;
    else if (info == NBD_INFO_DESCRIPTION)
      want_description = true;
  }

  if (is_quitting ())
    return send_error (conn, option, NBD_REP_ERR_SHUTDOWN,
                       "server is shutting down");
  exp = export_get (name, namelen);
  if (exp == NULL)
    return send_error (conn, option, NBD_REP_ERR_UNKNOWN, "unknown export");
  want_description &= exp->description != NULL;
  /* nbdcbt_export_name () answers the requested name from open on. */
  free (conn->neg.export_name);
  conn->neg.export_name = strndup (name, namelen);
  if (conn->neg.export_name == NULL) {
    export_put (exp);
    return -1;
  }
  if (open_export (conn, exp) == -1) {
    free (conn->neg.export_name);
    conn->neg.export_name = NULL;
    return send_error (conn, option, NBD_REP_ERR_UNKNOWN,
                       "export could not be opened");
  }

  if (send_info_export (conn, option) == -1
      || (want_name && send_info_name (conn, option, name, namelen) == -1)
      || (want_description
          && send_info_description (conn, option) == -1)
      || send_info_block_size (conn, option) == -1
      || send_ack (conn, option) == -1) {
    close_export (conn);
    return -1;
  }
  if (option == NBD_OPT_INFO) {
    close_export (conn);
    free (conn->neg.export_name);
    conn->neg.export_name = NULL;
    return 0;
  }
  check_meta_export (conn, name, namelen);
  return 1;
}

static int
opt_export_name (struct connection *conn, const char *data, uint32_t len,
                 bool no_zeroes)
{
  char buf[8 + 2 + 124];
  struct export *exp;

  if (len > NBD_MAX_STRING || has_nul (data, len)) {
    nbdcbt_error ("NBD_OPT_EXPORT_NAME: invalid export name");
    return -1;
  }
  exp = export_get (data, len);
  if (exp == NULL) {
    nbdcbt_error ("NBD_OPT_EXPORT_NAME: unknown export '%.*s'",
                  (int) len, data);
    return -1;
  }
  conn->neg.export_name = strndup (data, len);
  if (conn->neg.export_name == NULL || is_quitting ()) {
    export_put (exp);
    return -1;
  }
  if (open_export (conn, exp) == -1)
    return -1;
  check_meta_export (conn, data, len);
  memset (buf, 0, sizeof buf);
  store_be64 (buf, conn->neg.size);
  store_be16 (buf + 8, conn->neg.eflags);
  return conn_send (conn, buf, no_zeroes ? 10 : sizeof buf);
}

/* NBD_OPT_LIST: the replies are built under the registry lock and sent
 * after it, so a slow client holds up no one.
 */
DEFINE_VECTOR_TYPE (reply_vector, char *);

/* One NBD_REP_SERVER payload: the export name, then (as qemu-nbd does)
 * the description in the rest of the reply; its length in front.
 */
static int
list_one (struct export *exp, void *opaque)
{
  reply_vector *v = opaque;
  uint32_t n = strlen (exp->name);
  uint32_t d = exp->description ? strlen (exp->description) : 0;
  char *buf = malloc (4 + 4 + n + d);

  if (buf == NULL)
    return -1;
  store_be32 (buf, 4 + n + d);
  store_be32 (buf + 4, n);
  memcpy (buf + 8, exp->name, n);
  memcpy (buf + 8 + n, exp->description ? exp->description : "", d);
  if (reply_vector_append (v, buf) == -1) {
    free (buf);
    return -1;
  }
  return 0;
}

static int
opt_list (struct connection *conn, uint32_t len)
{
  reply_vector v = empty_vector;
  size_t i;
  int r;

  if (len != 0)
    return send_error (conn, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                       "NBD_OPT_LIST takes no data");
  r = exports_foreach (list_one, &v);
  for (i = 0; r == 0 && i < v.len; ++i)
    r = send_option_reply (conn, NBD_OPT_LIST, NBD_REP_SERVER,
                           v.ptr[i] + 4, load_be32 (v.ptr[i]));
  for (i = 0; i < v.len; ++i)
    free (v.ptr[i]);
  reply_vector_reset (&v);
  if (r == -1)
    return -1;
  return send_ack (conn, NBD_OPT_LIST);
}

static int
send_meta_context (struct connection *conn, uint32_t option, uint32_t id,
                   const char *name)
{
  size_t n = strlen (name);
  char buf[4 + NBD_MAX_STRING];

  if (n > NBD_MAX_STRING)
    return 0;
  store_be32 (buf, id);
  memcpy (buf + 4, name, n);
  return send_option_reply (conn, option, NBD_REP_META_CONTEXT, buf, 4 + n);
}

static int
opt_meta_context (struct connection *conn, uint32_t option, const char *data,
                  uint32_t len)
{
  bool set = option == NBD_OPT_SET_META_CONTEXT;
  struct nbdcbt_meta_contexts mc = { .names = empty_vector };
  struct export *exp;
  uint32_t namelen, nq, pos, qlen, i;
  const char *name;
  bool *sent = NULL;
  size_t j;
  int r = -1;

  if (set) {
    /* SET replaces the selection, even when it fails. */
    selected_reset (&conn->neg.selected);
    free (conn->neg.meta_export);
    conn->neg.meta_export = NULL;
    conn->neg.meta_set = false;
  }
  if (!conn->neg.structured)
    return send_error (conn, option, NBD_REP_ERR_INVALID,
                       "structured replies were not negotiated");
  if (len < 8)
    return send_error (conn, option, NBD_REP_ERR_INVALID, "option too short");
  namelen = load_be32 (data);
  if (namelen > len - 8)
    return send_error (conn, option, NBD_REP_ERR_INVALID,
                       "export name length exceeds the option");
  name = data + 4;
  nq = load_be32 (data + 4 + namelen);
  for (pos = 8 + namelen, i = 0; i < nq; ++i) {
    if (len - pos < 4)
      return send_error (conn, option, NBD_REP_ERR_INVALID,
                         "query count exceeds the option");
    qlen = load_be32 (data + pos);
    if (qlen > len - pos - 4)
      return send_error (conn, option, NBD_REP_ERR_INVALID,
                         "query length exceeds the option");
    if (qlen > NBD_MAX_STRING)
      return send_error (conn, option, NBD_REP_ERR_INVALID,
                         "query too long");
    pos += 4 + qlen;
  }
  if (pos != len)
    return send_error (conn, option, NBD_REP_ERR_INVALID,
                       "trailing data after the queries");
  if (namelen > NBD_MAX_STRING || has_nul (name, namelen))
    return send_error (conn, option, NBD_REP_ERR_INVALID,
                       "invalid export name");
  exp = export_get (name, namelen);
  if (exp == NULL)
    return send_error (conn, option, NBD_REP_ERR_UNKNOWN, "unknown export");

  {
    char *ename = strndup (name, namelen);
    if (ename == NULL) {
      export_put (exp);
      return -1;
    }
    r = meta_contexts_for_export (exp, ename, &mc);
    export_put (exp);
    if (set && r == 0) {
      conn->neg.meta_export = ename;
      conn->neg.meta_set = true;
    }
    else
      free (ename);
  }
  if (r == -1) {
    meta_contexts_free (&mc);
    return send_error (conn, option, NBD_REP_ERR_PLATFORM,
                       "could not list metadata contexts");
  }
  sent = calloc (mc.names.len + 1, sizeof *sent);
  if (sent == NULL) {
    meta_contexts_free (&mc);
    return -1;
  }

  r = 0;
  if (!set && nq == 0) {
    for (j = 0; r == 0 && j < mc.names.len; ++j)
      r = send_meta_context (conn, option, 0, mc.names.ptr[j]);
  }
  for (pos = 8 + namelen, i = 0; r == 0 && i < nq; ++i) {
    const char *q = data + pos + 4;
    qlen = load_be32 (data + pos);
    pos += 4 + qlen;
    for (j = 0; r == 0 && j < mc.names.len; ++j) {
      if (sent[j] || !meta_query_matches (q, qlen, mc.names.ptr[j], !set))
        continue;
      sent[j] = true;
      if (set) {
        struct selected_context sc = { .id = j, .name = NULL };
        if (j > 0 && (sc.name = strdup (mc.names.ptr[j])) == NULL) {
          r = -1;
          break;
        }
        if (selected_vector_append (&conn->neg.selected, sc) == -1) {
          free (sc.name);
          r = -1;
          break;
        }
      }
      r = send_meta_context (conn, option, set ? j : 0, mc.names.ptr[j]);
    }
  }
  free (sent);
  meta_contexts_free (&mc);
  if (r == -1)
    return -1;
  return send_ack (conn, option);
}

/* The client's TLS handshake follows the ACK.  Whatever was negotiated
 * in plaintext is forgotten (the NBD spec): a man in the middle could
 * have chosen it.
 */
static int
opt_starttls (struct connection *conn, uint32_t len)
{
  int ms;

  if (tls_mode == TLS_MODE_OFF)
    return send_error (conn, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
                       "TLS is not enabled on this server");
  if (len != 0)
    return send_error (conn, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                       "NBD_OPT_STARTTLS takes no data");
  if (tls_active (&conn->transport))
    return send_error (conn, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                       "TLS is already negotiated");
  if (send_ack (conn, NBD_OPT_STARTTLS) == -1)
    return -1;
  /* The TLS handshake has what is left of --handshake-limit: none left
   * means the limit passed (0 would mean no limit to gnutls).
   */
  ms = transport_handshake_ms_left (&conn->transport);
  if (ms == 0) {
    nbdcbt_error ("client did not finish the handshake within %u seconds "
                  "(--handshake-limit), dropping it", handshake_limit);
    return -1;
  }
  if (tls_start (&conn->transport, ms < 0 ? 0 : ms) == -1)
    return -1;
  conn->neg.structured = false;
  selected_reset (&conn->neg.selected);
  free (conn->neg.meta_export);
  conn->neg.meta_export = NULL;
  conn->neg.meta_set = false;
  return 0;
}

/* --tls=require: before STARTTLS, every option but STARTTLS and ABORT is
 * refused without looking at it, so that nothing about the exports
 * (names, sizes, whether a name exists) reaches a plaintext client.
 */
static bool
tls_required (struct connection *conn, uint32_t option)
{
  return tls_mode == TLS_MODE_REQUIRE && !tls_active (&conn->transport)
    && option != NBD_OPT_STARTTLS && option != NBD_OPT_ABORT;
}

int
handshake (struct connection *conn)
{
  char greeting[18];
  char opthdr[16];
  char flagsbuf[4];
  uint32_t cflags, option, len;
  bool no_zeroes;
  unsigned n;
  int r;

  store_be64 (greeting, NBD_MAGIC);
  store_be64 (greeting + 8, NBD_NEW_VERSION);
  store_be16 (greeting + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  if (conn_send (conn, greeting, sizeof greeting) == -1)
    return -1;
  if (conn_recv (conn, flagsbuf, 4, true) != 1)
    return -1;
  cflags = load_be32 (flagsbuf);
  if (cflags & ~(uint32_t) (NBD_FLAG_C_FIXED_NEWSTYLE
                            | NBD_FLAG_C_NO_ZEROES)) {
    nbdcbt_error ("client sent unknown flags 0x%" PRIx32
                  ", dropping the client", cflags);
    return -1;
  }
  no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

  for (n = 0; n < MAX_OPTIONS; ++n) {
    char *data = NULL;

    r = conn_recv (conn, opthdr, sizeof opthdr, true);
    if (r != 1) {
      if (r == 0)
        nbdcbt_debug ("client closed the connection in the handshake");
      return -1;
    }
    if (load_be64 (opthdr) != NBD_NEW_VERSION) {
      nbdcbt_error ("bad option magic, dropping the client");
      return -1;
    }
    option = load_be32 (opthdr + 8);
    len = load_be32 (opthdr + 12);
    if (len > MAX_OPTION_LENGTH) {
      nbdcbt_error ("option %" PRIu32 " has %" PRIu32 " bytes of data "
                    "(more than %d), dropping the client",
                    option, len, MAX_OPTION_LENGTH);
      return -1;
    }
    data = malloc (len + 1);
    if (data == NULL)
      return -1;
    if (len && conn_recv (conn, data, len, true) != 1) {
      free (data);
      return -1;
    }
    data[len] = '\0';
    nbdcbt_debug ("option %" PRIu32 " length %" PRIu32, option, len);

    if (tls_required (conn, option)) {
      free (data);
      if (option == NBD_OPT_EXPORT_NAME) {
        /* No error reply exists for it: the spec says to hang up. */
        nbdcbt_error ("a client asked for an export without TLS "
                      "(--tls=require): dropping it");
        return -1;
      }
      if (send_error (conn, option, NBD_REP_ERR_TLS_REQD,
                      "TLS is required: use NBD_OPT_STARTTLS first") == -1)
        return -1;
      continue;
    }

    switch (option) {
    case NBD_OPT_EXPORT_NAME:
      r = opt_export_name (conn, data, len, no_zeroes);
      free (data);
      if (r == 0)
        tls_handshake_over (&conn->transport);
      return r;
    case NBD_OPT_ABORT:
      send_ack (conn, option);   /* the client may be gone already */
      free (data);
      return -1;
    case NBD_OPT_LIST:
      r = opt_list (conn, len);
      break;
    case NBD_OPT_STARTTLS:
      r = opt_starttls (conn, len);
      break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
      r = opt_info_go (conn, option, data, len);
      if (r == 1) {
        free (data);
        tls_handshake_over (&conn->transport);
        return 0;
      }
      break;
    case NBD_OPT_STRUCTURED_REPLY:
      if (len != 0)
        r = send_error (conn, option, NBD_REP_ERR_INVALID,
                        "NBD_OPT_STRUCTURED_REPLY takes no data");
      else if (conn->neg.structured)
        r = send_error (conn, option, NBD_REP_ERR_INVALID,
                        "structured replies already negotiated");
      else {
        conn->neg.structured = true;
        r = send_ack (conn, option);
      }
      break;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
      r = opt_meta_context (conn, option, data, len);
      break;
    default:
      r = send_error (conn, option, NBD_REP_ERR_UNSUP, "unknown option");
      break;
    }
    free (data);
    if (r == -1)
      return -1;
  }
  nbdcbt_error ("too many options in the handshake, dropping the client");
  return -1;
}
