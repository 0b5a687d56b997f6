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

/* nbdcbt nbd plugin: forward every request to another NBD server with
 * libnbd, so that nbdcbt's filters (change tracking, TLS, backup
 * sessions) can sit in front of any NBD server.
 *
 * Upstream connections: by default one per client connection (opened in
 * open, closed in close), so the upstream sees the same connections the
 * clients make.  shared=true uses one upstream connection for every
 * client; connections=N a pool of N, which needs an upstream that
 * advertises multi-conn (otherwise a read on one connection might not see
 * a write made on another).  libnbd handles are thread-safe, so the
 * plugin runs in the parallel thread model.
 *
 * Metadata contexts: base:allocation becomes this plugin's extents; every
 * other context the upstream lists (qemu:dirty-bitmap:NAME,
 * qemu:allocation-depth) becomes one of this plugin's own contexts
 * (list_meta_contexts / meta_extents), so a client of nbdcbt sees the
 * upstream's dirty maps unchanged.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "nbdcbt-plugin.h"

#include "cleanup.h"
#include "minmax.h"

/* One instance per export using the plugin. */
struct nbd_instance {
  /* Parameters. */
  char *uri;
  char *sockname;
  char *hostname;
  char *port;
  char *export;
  bool export_set;
  int tls;                      /* -1 unset, 0 off, 1 allow, 2 require */
  char *tls_certificates;
  int tls_verify;
  char *tls_username;
  char *tls_psk;
  unsigned connections;         /* 0 = one per client connection */
  bool shared;

  /* Upstream metadata contexts other than base:allocation, learnt once
   * (at the first handshake that asks) from the upstream's list.
   */
  pthread_mutex_t contexts_lock;
  char **contexts;
  size_t ncontexts;
  bool contexts_known;

  /* The pool (shared=true is a pool of one). */
  pthread_mutex_t pool_lock;
  struct nbd_handle **pool;
  size_t npool;
  unsigned pool_next;
};

struct handle {
  struct nbd_instance *ni;
  struct nbd_handle *nbd;       /* per-connection mode; NULL with a pool */
};

/* The upstream as the user named it, for error messages. */
static char *
upstream_name (struct nbd_instance *ni)
{
  char *s = NULL;

  if (ni->uri)
    s = strdup (ni->uri);
  else if (ni->sockname) {
    if (asprintf (&s, "unix socket %s", ni->sockname) == -1)
      s = NULL;
  }
  else if (asprintf (&s, "%s:%s", ni->hostname,
                     ni->port ? ni->port : "10809") == -1)
    s = NULL;
  return s;
}

static void *
nbd_instance_new (void)
{
  struct nbd_instance *ni = calloc (1, sizeof *ni);

  if (ni == NULL) {
    nbdcbt_error ("calloc: %m");
    return NULL;
  }
  ni->tls = -1;
  ni->tls_verify = -1;
  pthread_mutex_init (&ni->contexts_lock, NULL);
  pthread_mutex_init (&ni->pool_lock, NULL);
  return ni;
}

static void
nbd_instance_free (void *instance)
{
  struct nbd_instance *ni = instance;
  size_t i;

  for (i = 0; i < ni->npool; ++i)
    nbd_close (ni->pool[i]);
  free (ni->pool);
  for (i = 0; i < ni->ncontexts; ++i)
    free (ni->contexts[i]);
  free (ni->contexts);
  free (ni->uri);
  free (ni->sockname);
  free (ni->hostname);
  free (ni->port);
  free (ni->export);
  free (ni->tls_certificates);
  free (ni->tls_username);
  free (ni->tls_psk);
  pthread_mutex_destroy (&ni->contexts_lock);
  pthread_mutex_destroy (&ni->pool_lock);
  free (ni);
}

static int
set_string (char **dst, const char *key, const char *value)
{
  if (*dst) {
    nbdcbt_error ("nbd: %s given twice", key);
    return -1;
  }
  *dst = strdup (value);
  if (*dst == NULL) {
    nbdcbt_error ("strdup: %m");
    return -1;
  }
  return 0;
}

static int
nbd_config (void *instance, const char *key, const char *value)
{
  struct nbd_instance *ni = instance;
  int r;

  if (strcmp (key, "uri") == 0)
    return set_string (&ni->uri, key, value);
  if (strcmp (key, "socket") == 0) {
    if (ni->sockname) {
      nbdcbt_error ("nbd: socket given twice");
      return -1;
    }
    ni->sockname = nbdcbt_absolute_path (value);
    return ni->sockname ? 0 : -1;
  }
  if (strcmp (key, "hostname") == 0)
    return set_string (&ni->hostname, key, value);
  if (strcmp (key, "port") == 0)
    return set_string (&ni->port, key, value);
  if (strcmp (key, "export") == 0) {
    ni->export_set = true;
    return set_string (&ni->export, key, value);
  }
  if (strcmp (key, "tls") == 0) {
    if (strcmp (value, "require") == 0 || strcmp (value, "required") == 0)
      ni->tls = 2;
    else {
      r = nbdcbt_parse_bool (value);
      if (r == -1) {
        nbdcbt_error ("nbd: tls=%s: expected off, on or require", value);
        return -1;
      }
      ni->tls = r;
    }
    return 0;
  }
  if (strcmp (key, "tls-certificates") == 0) {
    if (ni->tls_certificates) {
      nbdcbt_error ("nbd: tls-certificates given twice");
      return -1;
    }
    ni->tls_certificates = nbdcbt_absolute_path (value);
    return ni->tls_certificates ? 0 : -1;
  }
  if (strcmp (key, "tls-verify") == 0) {
    r = nbdcbt_parse_bool (value);
    if (r == -1)
      return -1;
    ni->tls_verify = r;
    return 0;
  }
  if (strcmp (key, "tls-username") == 0)
    return set_string (&ni->tls_username, key, value);
  if (strcmp (key, "tls-psk") == 0) {
    if (ni->tls_psk) {
      nbdcbt_error ("nbd: tls-psk given twice");
      return -1;
    }
    ni->tls_psk = nbdcbt_absolute_path (value);
    return ni->tls_psk ? 0 : -1;
  }
  if (strcmp (key, "connections") == 0) {
    uint32_t n;

    if (nbdcbt_parse_uint32 ("connections", value, &n) == -1)
      return -1;
    if (n < 1 || n > 64) {
      nbdcbt_error ("nbd: connections=%s: expected 1 to 64", value);
      return -1;
    }
    ni->connections = n;
    return 0;
  }
  if (strcmp (key, "shared") == 0) {
    r = nbdcbt_parse_bool (value);
    if (r == -1)
      return -1;
    ni->shared = r;
    return 0;
  }
  nbdcbt_error ("nbd: unknown parameter '%s' (see nbdcbt-nbd-plugin(1))",
                key);
  return -1;
}

static int
nbd_config_complete (void *instance)
{
  struct nbd_instance *ni = instance;
  int ways = !!ni->uri + !!ni->sockname + !!ni->hostname;

  if (ways == 0) {
    nbdcbt_error ("nbd: say where the upstream server is: uri=, socket= "
                  "or hostname= (for example: nbd uri=nbd://host/disk)");
    return -1;
  }
  if (ways > 1) {
    nbdcbt_error ("nbd: uri=, socket= and hostname= are exclusive");
    return -1;
  }
  if (ni->port && !ni->hostname) {
    nbdcbt_error ("nbd: port= needs hostname=");
    return -1;
  }
  if (ni->uri && ni->export_set) {
    nbdcbt_error ("nbd: the export name is part of uri= "
                  "(nbd://host/EXPORT); export= cannot be combined with it");
    return -1;
  }
  if (ni->tls == 0 && (ni->tls_certificates || ni->tls_psk || ni->tls_username
                   || ni->tls_verify != -1)) {
    nbdcbt_error ("nbd: tls=off contradicts the other tls-* parameters");
    return -1;
  }
  if (ni->tls_certificates && ni->tls_psk) {
    nbdcbt_error ("nbd: tls-certificates and tls-psk are exclusive");
    return -1;
  }
  if (ni->shared && ni->connections > 1) {
    nbdcbt_error ("nbd: shared=true is one upstream connection; "
                  "it cannot be combined with connections=%u",
                  ni->connections);
    return -1;
  }
  if (ni->shared)
    ni->connections = 1;
  /* TLS parameters without tls=: ask for TLS, as nbdkit's nbd plugin. */
  if (ni->tls == -1 && (ni->tls_certificates || ni->tls_psk))
    ni->tls = 2;
  return 0;
}

#define nbd_config_help \
  "uri=URI                 Upstream as an NBD URI (nbd://, nbd+unix://,\n" \
  "                        nbds://, nbds+unix://).\n" \
  "socket=PATH             Upstream's Unix socket.\n" \
  "hostname=HOST [port=P]  Upstream's TCP address (port 10809).\n" \
  "export=NAME             Upstream export name (default \"\").\n" \
  "tls=off|on|require      TLS to the upstream.\n" \
  "tls-certificates=DIR    X.509 certificates directory.\n" \
  "tls-verify=BOOL         Verify the upstream's certificate (default on).\n" \
  "tls-username=NAME       TLS user name (PSK identity).\n" \
  "tls-psk=FILE            TLS pre-shared keys file.\n" \
  "shared=BOOL             One upstream connection for all clients.\n" \
  "connections=N           A pool of N upstream connections (the upstream\n" \
  "                        must advertise multi-conn)."

/* A new upstream connection, or NULL with the error logged.  In option
 * mode (to list contexts) it stops before NBD_OPT_GO; otherwise it asks
 * for base:allocation and every context learnt from the upstream.
 */
static struct nbd_handle *
upstream_connect (struct nbd_instance *ni, bool opt_mode)
{
  struct nbd_handle *nbd;
  CLEANUP_FREE char *name = upstream_name (ni);
  size_t i;
  int r;

  nbd = nbd_create ();
  if (nbd == NULL) {
    nbdcbt_error ("nbd: %s", nbd_get_error ());
    return NULL;
  }
  if (nbd_set_handle_name (nbd, "nbdcbt-nbd") == -1)
    goto err;
  if (!opt_mode) {
    if (nbd_add_meta_context (nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1)
      goto err;
    for (i = 0; i < ni->ncontexts; ++i)
      if (nbd_add_meta_context (nbd, ni->contexts[i]) == -1)
        goto err;
  }
  if (nbd_set_opt_mode (nbd, opt_mode) == -1)
    goto err;
  if (ni->tls != -1
      && nbd_set_tls (nbd, ni->tls == 2 ? LIBNBD_TLS_REQUIRE
                      : ni->tls == 1 ? LIBNBD_TLS_ALLOW
                      : LIBNBD_TLS_DISABLE) == -1)
    goto err;
  if (ni->tls_certificates
      && nbd_set_tls_certificates (nbd, ni->tls_certificates) == -1)
    goto err;
  if (ni->tls_verify != -1
      && nbd_set_tls_verify_peer (nbd, ni->tls_verify) == -1)
    goto err;
  if (ni->tls_username && nbd_set_tls_username (nbd, ni->tls_username) == -1)
    goto err;
  if (ni->tls_psk && nbd_set_tls_psk_file (nbd, ni->tls_psk) == -1)
    goto err;

  if (ni->uri) {
    /* Query parameters such as tls-psk-file name files of this host. */
    if (nbd_set_uri_allow_local_file (nbd, true) == -1)
      goto err;
    r = nbd_connect_uri (nbd, ni->uri);
  }
  else {
    if (nbd_set_export_name (nbd, ni->export ? ni->export : "") == -1)
      goto err;
    if (ni->sockname)
      r = nbd_connect_unix (nbd, ni->sockname);
    else
      r = nbd_connect_tcp (nbd, ni->hostname, ni->port ? ni->port : "10809");
  }
  if (r == -1) {
    nbdcbt_error ("nbd: cannot connect to the upstream server (%s): %s",
                  name ? name : "?", nbd_get_error ());
    nbd_close (nbd);
    return NULL;
  }
  return nbd;

 err:
  nbdcbt_error ("nbd: %s", nbd_get_error ());
  nbd_close (nbd);
  return NULL;
}

static int
collect_context (void *user_data, const char *name)
{
  struct nbd_instance *ni = user_data;
  char **s;

  if (strcmp (name, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0)
    return 0;
  s = realloc (ni->contexts, (ni->ncontexts + 1) * sizeof *ni->contexts);
  if (s == NULL)
    return 0;
  ni->contexts = s;
  ni->contexts[ni->ncontexts] = strdup (name);
  if (ni->contexts[ni->ncontexts])
    ni->ncontexts++;
  return 0;
}

/* Learn the upstream's metadata contexts (once).  An upstream that cannot
 * list them (oldstyle, no structured replies) simply has none.
 */
static int
learn_contexts (struct nbd_instance *ni)
{
  struct nbd_handle *nbd;

  pthread_mutex_lock (&ni->contexts_lock);
  if (ni->contexts_known) {
    pthread_mutex_unlock (&ni->contexts_lock);
    return 0;
  }
  nbd = upstream_connect (ni, true);
  if (nbd == NULL) {
    pthread_mutex_unlock (&ni->contexts_lock);
    return -1;
  }
  /* List with no queries: "every context".  (The base:allocation
   * request added by upstream_connect would narrow it, so this handle
   * is created without it.)  Then finish the handshake, so that a wrong
   * export name or TLS setting shows here, at start-up.
   */
  if (nbd_aio_is_negotiating (nbd)) {
    if (nbd_opt_list_meta_context (nbd, (nbd_context_callback) {
          .callback = collect_context, .user_data = ni }) == -1)
      nbdcbt_debug ("nbd: upstream cannot list metadata contexts: %s",
                    nbd_get_error ());
    if (nbd_opt_go (nbd) == -1) {
      CLEANUP_FREE char *name = upstream_name (ni);

      nbdcbt_error ("nbd: cannot connect to the upstream server (%s): %s",
                    name ? name : "?", nbd_get_error ());
      nbd_close (nbd);
      pthread_mutex_unlock (&ni->contexts_lock);
      return -1;
    }
    nbd_shutdown (nbd, 0);
  }
  nbd_close (nbd);
  ni->contexts_known = true;
  pthread_mutex_unlock (&ni->contexts_lock);
  return 0;
}

static int
nbd_get_ready (void *instance)
{
  /* Find an unreachable upstream at start-up, with a clear message,
   * rather than at the first client.
   */
  return learn_contexts (instance);
}

static int
nbd_thread_model (void *instance)
{
  return NBDCBT_THREAD_MODEL_PARALLEL;
}

static int
nbd_list_meta_contexts (void *instance, const char *export_name,
                        struct nbdcbt_meta_contexts *mc)
{
  struct nbd_instance *ni = instance;
  size_t i;

  if (learn_contexts (ni) == -1)
    return -1;
  for (i = 0; i < ni->ncontexts; ++i)
    if (nbdcbt_add_meta_context (mc, ni->contexts[i]) == -1)
      return -1;
  return 0;
}

static int
pool_open (struct nbd_instance *ni)
{
  size_t i;

  pthread_mutex_lock (&ni->pool_lock);
  if (ni->npool == ni->connections) {
    pthread_mutex_unlock (&ni->pool_lock);
    return 0;
  }
  if (ni->pool == NULL) {
    ni->pool = calloc (ni->connections, sizeof *ni->pool);
    if (ni->pool == NULL) {
      nbdcbt_error ("calloc: %m");
      pthread_mutex_unlock (&ni->pool_lock);
      return -1;
    }
  }
  for (i = ni->npool; i < ni->connections; ++i) {
    ni->pool[i] = upstream_connect (ni, false);
    if (ni->pool[i] == NULL)
      goto fail;
    if (ni->connections > 1 && nbd_can_multi_conn (ni->pool[i]) != 1) {
      nbdcbt_error ("nbd: connections=%u needs an upstream that "
                    "advertises multi-conn, and this one does not "
                    "(use shared=true or one connection per client)",
                    ni->connections);
      nbd_close (ni->pool[i]);
      goto fail;
    }
  }
  ni->npool = ni->connections;
  pthread_mutex_unlock (&ni->pool_lock);
  return 0;

 fail:
  while (i > ni->npool)
    nbd_close (ni->pool[--i]);
  pthread_mutex_unlock (&ni->pool_lock);
  return -1;
}

static void *
nbd_open (void *instance, int readonly)
{
  struct nbd_instance *ni = instance;
  struct handle *h = calloc (1, sizeof *h);

  if (h == NULL) {
    nbdcbt_error ("calloc: %m");
    return NULL;
  }
  h->ni = ni;
  if (learn_contexts (ni) == -1)
    goto fail;
  if (ni->connections) {
    if (pool_open (ni) == -1)
      goto fail;
    return h;
  }
  h->nbd = upstream_connect (ni, false);
  if (h->nbd == NULL)
    goto fail;
  return h;

 fail:
  free (h);
  return NULL;
}

static void
nbd_close_handle (void *handle)
{
  struct handle *h = handle;

  if (h->nbd) {
    nbd_shutdown (h->nbd, 0);
    nbd_close (h->nbd);
  }
  free (h);
}

/* The connection a request goes to. */
static struct nbd_handle *
upstream (struct handle *h)
{
  struct nbd_instance *ni = h->ni;

  if (h->nbd)
    return h->nbd;
  return ni->pool[__atomic_fetch_add (&ni->pool_next, 1, __ATOMIC_RELAXED)
                  % ni->npool];
}

/* Capabilities come from any one connection: they are the upstream's. */
static struct nbd_handle *
any (struct handle *h)
{
  return h->nbd ? h->nbd : h->ni->pool[0];
}

/* A failed libnbd call on NBD: pass its errno on and log its message.
 * A connection that is gone fails every later call with EINVAL ("invalid
 * state"); the client gets EIO for that, and the operator a message.
 */
static int
upstream_error (struct nbd_handle *nbd, const char *what)
{
  int err = nbd_get_errno ();

  if (nbd && (nbd_aio_is_dead (nbd) > 0 || nbd_aio_is_closed (nbd) > 0)) {
    nbdcbt_error ("nbd: %s: the upstream connection is lost: %s", what,
                  nbd_get_error ());
    nbdcbt_set_error (EIO);
    return -1;
  }
  nbdcbt_debug ("nbd: %s: %s", what, nbd_get_error ());
  nbdcbt_set_error (err ? err : EIO);
  return -1;
}

static int
check_bool (int r, const char *what)
{
  if (r == -1)
    return upstream_error (NULL, what);
  return r;
}

static int64_t
nbd_get_size_cb (void *handle)
{
  int64_t r = nbd_get_size (any (handle));

  if (r == -1)
    return upstream_error (NULL, "get_size");
  return r;
}

static int
nbd_block_size_cb (void *handle, uint32_t *minimum, uint32_t *preferred,
                   uint32_t *maximum)
{
  struct nbd_handle *nbd = any (handle);
  int64_t mn = nbd_get_block_size (nbd, LIBNBD_SIZE_MINIMUM);
  int64_t pr = nbd_get_block_size (nbd, LIBNBD_SIZE_PREFERRED);
  int64_t mx = nbd_get_block_size (nbd, LIBNBD_SIZE_MAXIMUM);

  if (mn == -1 || pr == -1 || mx == -1)
    return upstream_error (NULL, "block_size");
  /* 0: the upstream did not say; keep the server's defaults. */
  if (mn > 0)
    *minimum = mn;
  if (pr > 0)
    *preferred = pr;
  if (mx > 0)
    *maximum = mx;
  return 0;
}

static int
nbd_can_write_cb (void *handle)
{
  int r = nbd_is_read_only (any (handle));

  if (r == -1)
    return upstream_error (NULL, "can_write");
  return !r;
}

static int
nbd_can_flush_cb (void *handle)
{
  return check_bool (nbd_can_flush (any (handle)), "can_flush");
}

static int
nbd_is_rotational_cb (void *handle)
{
  return check_bool (nbd_is_rotational (any (handle)), "is_rotational");
}

static int
nbd_can_trim_cb (void *handle)
{
  return check_bool (nbd_can_trim (any (handle)), "can_trim");
}

static int
nbd_can_zero_cb (void *handle)
{
  int r = nbd_can_zero (any (handle));

  if (r == -1)
    return upstream_error (NULL, "can_zero");
  /* Without the upstream's WRITE_ZEROES the server writes zero buffers. */
  return r ? NBDCBT_ZERO_NATIVE : NBDCBT_ZERO_EMULATE;
}

static int
nbd_can_fast_zero_cb (void *handle)
{
  struct nbd_handle *nbd = any (handle);
  int r = nbd_can_zero (nbd);

  if (r == -1)
    return upstream_error (NULL, "can_fast_zero");
  if (r == 0)
    return 1;  /* emulated: the server fails fast requests itself */
  return check_bool (nbd_can_fast_zero (nbd), "can_fast_zero");
}

static int
nbd_can_extents_cb (void *handle)
{
  return check_bool (nbd_can_meta_context (any (handle),
                                           LIBNBD_CONTEXT_BASE_ALLOCATION),
                     "can_extents");
}

static int
nbd_can_fua_cb (void *handle)
{
  int r = nbd_can_fua (any (handle));

  if (r == -1)
    return upstream_error (NULL, "can_fua");
  return r ? NBDCBT_FUA_NATIVE : NBDCBT_FUA_EMULATE;
}

static int
nbd_can_multi_conn_cb (void *handle)
{
  struct handle *h = handle;

  /* With one shared connection, every client's flush reaches the
   * connection every client wrote through.  A pool exists only over an
   * upstream with multi-conn.
   */
  if (h->nbd == NULL)
    return 1;
  return check_bool (nbd_can_multi_conn (h->nbd), "can_multi_conn");
}

static int
nbd_can_cache_cb (void *handle)
{
  int r = nbd_can_cache (any (handle));

  if (r == -1)
    return upstream_error (NULL, "can_cache");
  return r ? NBDCBT_CACHE_NATIVE : NBDCBT_CACHE_EMULATE;
}

/* Largest payload the upstream takes in one request. */
static uint32_t
max_payload (struct nbd_handle *nbd)
{
  int64_t mx = nbd_get_block_size (nbd, LIBNBD_SIZE_MAXIMUM);

  if (mx <= 0 || mx > 32 * 1024 * 1024)
    return 32 * 1024 * 1024;
  return mx;
}

static int
nbd_pread_cb (void *handle, void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  struct nbd_handle *nbd = upstream (handle);
  uint32_t max = max_payload (nbd), n;

  while (count > 0) {
    n = MIN (count, max);
    if (nbd_pread (nbd, buf, n, offset, 0) == -1)
      return upstream_error (nbd, "pread");
    buf = (char *) buf + n;
    count -= n;
    offset += n;
  }
  return 0;
}

static int
nbd_pwrite_cb (void *handle, const void *buf, uint32_t count,
               uint64_t offset, uint32_t flags)
{
  struct nbd_handle *nbd = upstream (handle);
  uint32_t max = max_payload (nbd), n;

  while (count > 0) {
    n = MIN (count, max);
    if (nbd_pwrite (nbd, buf, n, offset,
                    flags & NBDCBT_FLAG_FUA ? LIBNBD_CMD_FLAG_FUA : 0) == -1)
      return upstream_error (nbd, "pwrite");
    buf = (const char *) buf + n;
    count -= n;
    offset += n;
  }
  return 0;
}

static int
nbd_flush_cb (void *handle, uint32_t flags)
{
  struct handle *h = handle;
  struct nbd_handle *nbd = h->nbd ? h->nbd : h->ni->pool[0];

  /* Over a pool (multi-conn upstream) one flush covers every
   * connection's completed writes.
   */
  if (nbd_flush (nbd, 0) == -1)
    return upstream_error (nbd, "flush");
  return 0;
}

static int
nbd_trim_cb (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct nbd_handle *nbd = upstream (handle);

  if (nbd_trim (nbd, count, offset,
                flags & NBDCBT_FLAG_FUA ? LIBNBD_CMD_FLAG_FUA : 0) == -1)
    return upstream_error (nbd, "trim");
  return 0;
}

static int
nbd_zero_cb (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct nbd_handle *nbd = upstream (handle);
  uint32_t f = 0;

  if (flags & NBDCBT_FLAG_FUA)
    f |= LIBNBD_CMD_FLAG_FUA;
  if (!(flags & NBDCBT_FLAG_MAY_TRIM))
    f |= LIBNBD_CMD_FLAG_NO_HOLE;
  if (flags & NBDCBT_FLAG_FAST_ZERO)
    f |= LIBNBD_CMD_FLAG_FAST_ZERO;
  if (nbd_zero (nbd, count, offset, f) == -1)
    return upstream_error (nbd, "zero");
  return 0;
}

static int
nbd_cache_cb (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct nbd_handle *nbd = upstream (handle);

  if (nbd_cache (nbd, count, offset, 0) == -1)
    return upstream_error (nbd, "cache");
  return 0;
}

/* Block status: the upstream answers every context it negotiated; only
 * the one asked for goes into EXTENTS.
 */
struct status_request {
  const char *context;
  struct nbdcbt_extents *extents;
  bool seen;
  int err;
};

static int
status_entries (void *user_data, const char *metacontext, uint64_t offset,
                uint32_t *entries, size_t nr_entries, int *error)
{
  struct status_request *req = user_data;
  size_t i;

  if (strcmp (metacontext, req->context) != 0 || req->seen)
    return 0;
  req->seen = true;
  for (i = 0; i + 1 < nr_entries; i += 2) {
    if (entries[i] == 0)
      break;
    if (nbdcbt_add_extent (req->extents, offset, entries[i],
                           entries[i + 1]) == -1) {
      req->err = errno ? errno : EIO;
      return -1;
    }
    offset += entries[i];
    if (nbdcbt_extents_full (req->extents))
      break;
  }
  return 0;
}

static int
block_status (struct handle *h, const char *context, uint32_t count,
              uint64_t offset, uint32_t flags,
              struct nbdcbt_extents *extents)
{
  struct status_request req = { .context = context, .extents = extents };
  struct nbd_handle *nbd = upstream (h);

  if (nbd_block_status (nbd, count, offset, (nbd_extent_callback) {
        .callback = status_entries, .user_data = &req },
      flags & NBDCBT_FLAG_REQ_ONE ? LIBNBD_CMD_FLAG_REQ_ONE : 0) == -1) {
    if (req.err) {
      nbdcbt_set_error (req.err);
      return -1;
    }
    return upstream_error (nbd, "block_status");
  }
  if (!req.seen) {
    nbdcbt_error ("nbd: the upstream answered block status without "
                  "context %s", context);
    nbdcbt_set_error (EIO);
    return -1;
  }
  return 0;
}

static int
nbd_extents_cb (void *handle, uint32_t count, uint64_t offset,
                uint32_t flags, struct nbdcbt_extents *extents)
{
  return block_status (handle, LIBNBD_CONTEXT_BASE_ALLOCATION, count,
                       offset, flags, extents);
}

static int
nbd_meta_extents_cb (void *handle, const char *context, uint32_t count,
                     uint64_t offset, uint32_t flags,
                     struct nbdcbt_extents *extents)
{
  int r = nbd_can_meta_context (any (handle), context);

  if (r == -1)
    return upstream_error (NULL, "meta_extents");
  if (r == 0) {
    /* Listed by the upstream before, gone now (a bitmap removed). */
    nbdcbt_error ("nbd: the upstream did not agree to context %s",
                  context);
    nbdcbt_set_error (EINVAL);
    return -1;
  }
  return block_status (handle, context, count, offset, flags, extents);
}

static struct nbdcbt_plugin plugin = {
  .name = "nbd",
  .longname = "nbdcbt nbd plugin",
  .version = PACKAGE_VERSION,
  .description = "Forward to another NBD server, with its metadata "
                 "contexts.",
  .config_help = nbd_config_help,
  .magic_config_key = "uri",
  .instance_new = nbd_instance_new,
  .instance_free = nbd_instance_free,
  .config = nbd_config,
  .config_complete = nbd_config_complete,
  .thread_model = nbd_thread_model,
  .get_ready = nbd_get_ready,
  .open = nbd_open,
  .close = nbd_close_handle,
  .get_size = nbd_get_size_cb,
  .block_size = nbd_block_size_cb,
  .can_write = nbd_can_write_cb,
  .can_flush = nbd_can_flush_cb,
  .is_rotational = nbd_is_rotational_cb,
  .can_trim = nbd_can_trim_cb,
  .can_zero = nbd_can_zero_cb,
  .can_fast_zero = nbd_can_fast_zero_cb,
  .can_extents = nbd_can_extents_cb,
  .can_fua = nbd_can_fua_cb,
  .can_multi_conn = nbd_can_multi_conn_cb,
  .can_cache = nbd_can_cache_cb,
  .pread = nbd_pread_cb,
  .pwrite = nbd_pwrite_cb,
  .flush = nbd_flush_cb,
  .trim = nbd_trim_cb,
  .zero = nbd_zero_cb,
  .cache = nbd_cache_cb,
  .extents = nbd_extents_cb,
  .list_meta_contexts = nbd_list_meta_contexts,
  .meta_extents = nbd_meta_extents_cb,
};

NBDCBT_REGISTER_PLUGIN (plugin)
