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

/* TLS with gnutls: credentials loaded at startup, one session per
 * connection after STARTTLS, record I/O for the connection's transport.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "internal.h"
#include "tls.h"
#include "transport.h"

int tls_mode = TLS_MODE_UNSET;
const char *tls_certificates_dir;
const char *tls_psk_file;
bool tls_verify_peer;

static gnutls_certificate_credentials_t x509_creds;
static gnutls_psk_server_credentials_t psk_creds;
static gnutls_priority_t priority;
static char *psk_path;

/* Smaller pieces of a reply are gathered into one record; larger ones are
 * sent as they are (a 32 MiB READ payload is not copied into the cork).
 */
#define CORK_MAX (16 * 1024)

/* The transport's PRIV after STARTTLS. */
struct tls_session {
  gnutls_session_t session;
  int in, out;
  bool is_socket;
  bool nowait;     /* the next pull must not block (reader thread only) */
  bool closing;    /* pushes must not block (the close notify) */
};

int
tls_parse_mode (const char *arg)
{
  if (strcmp (arg, "off") == 0 || strcmp (arg, "no") == 0)
    tls_mode = TLS_MODE_OFF;
  else if (strcmp (arg, "on") == 0 || strcmp (arg, "yes") == 0)
    tls_mode = TLS_MODE_ON;
  else if (strcmp (arg, "require") == 0 || strcmp (arg, "required") == 0
           || strcmp (arg, "force") == 0)
    tls_mode = TLS_MODE_REQUIRE;
  else {
    nbdcbt_error ("--tls=%s: expected off, on or require", arg);
    return -1;
  }
  return 0;
}

static char *
path_in (const char *dir, const char *name)
{
  char *p;

  if (asprintf (&p, "%s/%s", dir, name) == -1) {
    nbdcbt_error ("asprintf: %m");
    return NULL;
  }
  return p;
}

/* The server's own certificate: a clear word at startup when it has
 * expired or is not valid yet, since every client will refuse it.
 */
static void
check_server_cert_dates (const char *file)
{
  gnutls_datum_t data = { NULL, 0 };
  gnutls_x509_crt_t crt;
  time_t now = time (NULL), t;
  char when[64];

  if (gnutls_load_file (file, &data) < 0)
    return;
  if (gnutls_x509_crt_init (&crt) < 0) {
    gnutls_free (data.data);
    return;
  }
  if (gnutls_x509_crt_import (crt, &data, GNUTLS_X509_FMT_PEM) >= 0) {
    t = gnutls_x509_crt_get_expiration_time (crt);
    if (t != (time_t) -1 && t < now) {
      strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime (&t));
      nbdcbt_warning ("%s expired on %s: clients will refuse it", file, when);
    }
    t = gnutls_x509_crt_get_activation_time (crt);
    if (t != (time_t) -1 && t > now) {
      strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime (&t));
      nbdcbt_warning ("%s is not valid before %s: clients will refuse it",
                      file, when);
    }
  }
  gnutls_x509_crt_deinit (crt);
  gnutls_free (data.data);
}

static int
load_x509 (const char *dir)
{
  char *ca = NULL, *crl = NULL, *cert = NULL, *key = NULL;
  int r, ret = -1;

  ca = path_in (dir, "ca-cert.pem");
  crl = path_in (dir, "ca-crl.pem");
  cert = path_in (dir, "server-cert.pem");
  key = path_in (dir, "server-key.pem");
  if (!ca || !crl || !cert || !key)
    goto out;
  /* gnutls says only "Error while reading file": name the file. */
  if (access (cert, R_OK) == -1 || access (key, R_OK) == -1) {
    nbdcbt_error ("--tls-certificates: %s: %m (the directory must hold "
                  "server-cert.pem and server-key.pem)",
                  access (cert, R_OK) == -1 ? cert : key);
    goto out;
  }
  r = gnutls_certificate_allocate_credentials (&x509_creds);
  if (r < 0) {
    nbdcbt_error ("gnutls_certificate_allocate_credentials: %s",
                  gnutls_strerror (r));
    goto out;
  }
  if (access (ca, R_OK) == 0) {
    r = gnutls_certificate_set_x509_trust_file (x509_creds, ca,
                                                GNUTLS_X509_FMT_PEM);
    if (r < 0) {
      nbdcbt_error ("%s: cannot load the CA certificate: %s", ca,
                    gnutls_strerror (r));
      goto out;
    }
    nbdcbt_debug ("loaded %d CA certificate(s) from %s", r, ca);
  }
  else if (tls_verify_peer) {
    nbdcbt_error ("--tls-verify-peer: %s: %m (client certificates are "
                  "checked against this CA)", ca);
    goto out;
  }
  if (access (crl, F_OK) == 0) {
    r = gnutls_certificate_set_x509_crl_file (x509_creds, crl,
                                              GNUTLS_X509_FMT_PEM);
    if (r < 0) {
      nbdcbt_error ("%s: cannot load the certificate revocation list: %s",
                    crl, gnutls_strerror (r));
      goto out;
    }
    nbdcbt_debug ("loaded %d revocation list(s) from %s", r, crl);
  }
  r = gnutls_certificate_set_x509_key_file (x509_creds, cert, key,
                                            GNUTLS_X509_FMT_PEM);
  if (r < 0) {
    nbdcbt_error ("%s, %s: cannot load the server certificate and key: %s",
                  cert, key, gnutls_strerror (r));
    goto out;
  }
  check_server_cert_dates (cert);
  gnutls_certificate_set_known_dh_params (x509_creds,
                                          GNUTLS_SEC_PARAM_MEDIUM);
  ret = 0;
 out:
  free (ca);
  free (crl);
  free (cert);
  free (key);
  return ret;
}

/* psktool writes "username:hexkey" lines.  gnutls reads the file only
 * when a client connects; a broken file is refused here instead.
 */
static int
check_psk_file (const char *file)
{
  FILE *fp = fopen (file, "r");
  char *line = NULL;
  size_t cap = 0, n = 0, lineno = 0, i;
  ssize_t len;
  int ret = 0;

  if (fp == NULL) {
    nbdcbt_error ("--tls-psk: %s: %m", file);
    return -1;
  }
  while ((len = getline (&line, &cap, fp)) != -1) {
    char *colon;

    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    if (len == 0)
      continue;
    colon = strchr (line, ':');
    if (colon == NULL || colon == line || colon[1] == '\0') {
      nbdcbt_error ("--tls-psk: %s:%zu: expected USERNAME:HEXKEY "
                    "(as psktool writes)", file, lineno);
      ret = -1;
      break;
    }
    for (i = 1; colon[i]; ++i)
      if (!((colon[i] >= '0' && colon[i] <= '9')
            || (colon[i] >= 'a' && colon[i] <= 'f')
            || (colon[i] >= 'A' && colon[i] <= 'F')))
        break;
    if (colon[i] != '\0' || (i - 1) % 2 != 0) {
      nbdcbt_error ("--tls-psk: %s:%zu: the key is not hexadecimal bytes",
                    file, lineno);
      ret = -1;
      break;
    }
    n++;
  }
  free (line);
  fclose (fp);
  if (ret == 0 && n == 0) {
    nbdcbt_error ("--tls-psk: %s: no keys in the file", file);
    ret = -1;
  }
  return ret;
}

static int
load_psk (const char *file)
{
  int r;

  if (check_psk_file (file) == -1)
    return -1;
  /* gnutls reads the file at every handshake: after the daemon's chdir,
   * a relative path would name another file.
   */
  psk_path = nbdcbt_absolute_path (file);
  if (psk_path == NULL)
    return -1;
  file = psk_path;
  r = gnutls_psk_allocate_server_credentials (&psk_creds);
  if (r < 0) {
    nbdcbt_error ("gnutls_psk_allocate_server_credentials: %s",
                  gnutls_strerror (r));
    return -1;
  }
  r = gnutls_psk_set_server_credentials_file (psk_creds, file);
  if (r < 0) {
    nbdcbt_error ("--tls-psk: %s: %s", file, gnutls_strerror (r));
    return -1;
  }
  gnutls_psk_set_server_known_dh_params (psk_creds, GNUTLS_SEC_PARAM_MEDIUM);
  return 0;
}

/* An external PSK binds TLS 1.3 to its SHA-256 suites, AES-128-GCM and
 * ChaCha20-Poly1305 (AES-256-GCM needs SHA-384), and the default order
 * leaves ChaCha20 first of the two, so clients get it.  Where gnutls
 * itself ranks AES-GCM above ChaCha20 (the CPU has AES instructions),
 * AES-128-GCM is several times cheaper for both ends: the server then
 * chooses, in that order, and prefers ECDHE-PSK (forward secrecy).
 */
static bool
aes_preferred (void)
{
  gnutls_priority_t p;
  const unsigned *list;
  bool aes = false;
  int i, n;

  if (gnutls_priority_init (&p, NULL, NULL) < 0)
    return false;
  n = gnutls_priority_cipher_list (p, &list);
  for (i = 0; i < n; ++i) {
    if (list[i] == GNUTLS_CIPHER_AES_256_GCM
        || list[i] == GNUTLS_CIPHER_AES_128_GCM) {
      aes = true;
      break;
    }
    if (list[i] == GNUTLS_CIPHER_CHACHA20_POLY1305)
      break;
  }
  gnutls_priority_deinit (p);
  return aes;
}

int
tls_init (void)
{
  const char *err = NULL;
  bool have_creds = tls_certificates_dir || tls_psk_file;
  int r;

  if (tls_mode == TLS_MODE_UNSET)
    /* As qemu-nbd with --tls-creds: credentials mean TLS is wanted. */
    tls_mode = have_creds ? TLS_MODE_REQUIRE : TLS_MODE_OFF;
  if (tls_mode == TLS_MODE_OFF) {
    if (have_creds || tls_verify_peer) {
      nbdcbt_error ("--tls=off cannot be used with --tls-certificates, "
                    "--tls-psk or --tls-verify-peer");
      return -1;
    }
    return 0;
  }
  if (!have_creds) {
    nbdcbt_error ("--tls=%s needs --tls-certificates=DIR or --tls-psk=FILE",
                  tls_mode == TLS_MODE_ON ? "on" : "require");
    return -1;
  }
  if (tls_certificates_dir && tls_psk_file) {
    nbdcbt_error ("--tls-certificates and --tls-psk cannot be used together");
    return -1;
  }
  if (tls_verify_peer && !tls_certificates_dir) {
    nbdcbt_error ("--tls-verify-peer needs --tls-certificates (it checks "
                  "X.509 client certificates)");
    return -1;
  }
  r = gnutls_global_init ();
  if (r < 0) {
    nbdcbt_error ("gnutls_global_init: %s", gnutls_strerror (r));
    return -1;
  }
  if (tls_certificates_dir ? load_x509 (tls_certificates_dir) == -1
                           : load_psk (tls_psk_file) == -1)
    return -1;
  /* The system's defaults (TLS 1.3 first where both sides have it); PSK
   * key exchanges are off by default and must be added.
   */
  if (tls_psk_file)
    r = gnutls_priority_init2 (&priority,
                               aes_preferred ()
                               ? "+ECDHE-PSK:+DHE-PSK:+PSK:"
                                 "-CHACHA20-POLY1305:+CHACHA20-POLY1305:"
                                 "%SERVER_PRECEDENCE"
                               : "+ECDHE-PSK:+DHE-PSK:+PSK",
                               &err, GNUTLS_PRIORITY_INIT_DEF_APPEND);
  else
    r = gnutls_priority_init (&priority, NULL, &err);
  if (r < 0) {
    nbdcbt_error ("TLS priority: %s%s%s", gnutls_strerror (r),
                  err ? " at " : "", err ? err : "");
    return -1;
  }
  nbdcbt_debug ("TLS %s with %s", tls_mode == TLS_MODE_ON ? "on" : "required",
                tls_psk_file ? "PSK" : "X.509 certificates");
  return 0;
}

void
tls_cleanup (void)
{
  if (priority)
    gnutls_priority_deinit (priority);
  if (x509_creds)
    gnutls_certificate_free_credentials (x509_creds);
  if (psk_creds)
    gnutls_psk_free_server_credentials (psk_creds);
  if (priority || x509_creds || psk_creds)
    gnutls_global_deinit ();
  free (psk_path);
  psk_path = NULL;
  priority = NULL;
  x509_creds = NULL;
  psk_creds = NULL;
}

/* Wait until the input is readable, the server quits or MS pass. */
static int
wait_input (struct tls_session *s, int ms)
{
  struct pollfd fds[2] = {
    { .fd = s->in, .events = POLLIN },
    { .fd = quit_fd, .events = POLLIN },
  };
  int r;

  do
    r = poll (fds, 2, ms);
  while (r == -1 && errno == EINTR);
  if (r > 0 && fds[1].revents) {
    errno = ESHUTDOWN;
    return -1;
  }
  return r;
}

static ssize_t
pull (gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
  struct tls_session *s = ptr;
  ssize_t r;

  for (;;) {
    if (s->is_socket)
      r = recv (s->in, buf, len, s->nowait ? MSG_DONTWAIT : 0);
    else {
      /* A pipe (-s): wait here so that stopping the server wakes it. */
      r = wait_input (s, s->nowait ? 0 : -1);
      if (r == 0) {
        errno = EAGAIN;
        r = -1;
      }
      else if (r > 0)
        r = read (s->in, buf, len);
    }
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      gnutls_transport_set_errno (s->session, errno);
    return r;
  }
}

/* Used by the TLS handshake and by reads with a record timeout. */
static int
pull_timeout (gnutls_transport_ptr_t ptr, unsigned ms)
{
  struct tls_session *s = ptr;
  int r;

  if (s->nowait)
    ms = 0;
  r = wait_input (s, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int) ms);

  if (r == -1)
    gnutls_transport_set_errno (s->session, errno);
  return r;
}

static ssize_t
push_vec (gnutls_transport_ptr_t ptr, const giovec_t *iov, int n)
{
  struct tls_session *s = ptr;
  ssize_t r;

  do {
    if (s->is_socket) {
      struct msghdr msg = { .msg_iov = (struct iovec *) iov,
                            .msg_iovlen = n };
      r = sendmsg (s->out, &msg,
                   MSG_NOSIGNAL | (s->closing ? MSG_DONTWAIT : 0));
    }
    else
      r = writev (s->out, (const struct iovec *) iov, n);
  } while (r == -1 && errno == EINTR);
  if (r == -1)
    gnutls_transport_set_errno (s->session, errno);
  return r;
}

static void
log_handshake_failure (struct tls_session *s, int r)
{
  gnutls_datum_t out = { NULL, 0 };
  unsigned status;

  switch (r) {
  case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
    status = gnutls_session_get_verify_cert_status (s->session);
    if (gnutls_certificate_verification_status_print (status,
                                                      GNUTLS_CRT_X509,
                                                      &out, 0) == 0) {
      nbdcbt_error ("TLS handshake: client certificate refused: %s",
                    out.data);
      gnutls_free (out.data);
      return;
    }
    break;
  case GNUTLS_E_NO_CERTIFICATE_FOUND:
  case GNUTLS_E_CERTIFICATE_REQUIRED:
    nbdcbt_error ("TLS handshake: the client sent no certificate signed "
                  "by the CA in %s/ca-cert.pem (--tls-verify-peer requires "
                  "one)", tls_certificates_dir);
    return;
  case GNUTLS_E_PREMATURE_TERMINATION:
  case GNUTLS_E_PUSH_ERROR:
  case GNUTLS_E_PULL_ERROR:
    if (errno == ETIMEDOUT || r == GNUTLS_E_TIMEDOUT)
      break;
    nbdcbt_error ("TLS handshake: the client closed the connection "
                  "(it may have refused the server's credentials)");
    return;
  case GNUTLS_E_DECRYPTION_FAILED:
  case GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER:
  case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
    if (tls_psk_file) {
      nbdcbt_error ("TLS handshake: the client's username or pre-shared "
                    "key does not match %s (%s)", tls_psk_file,
                    gnutls_strerror (r));
      return;
    }
    break;
  case GNUTLS_E_TIMEDOUT:
    nbdcbt_error ("TLS handshake: the client did not complete it within "
                  "%u seconds (--handshake-limit)", handshake_limit);
    return;
  }
  nbdcbt_error ("TLS handshake: %s", gnutls_strerror (r));
}

static void
log_session (struct tls_session *s)
{
  const char *version, *kx;
  char *desc;

  if (!verbose)
    return;
  version = gnutls_protocol_get_name (gnutls_protocol_get_version (s->session));
  kx = gnutls_kx_get_name (gnutls_kx_get (s->session));
  desc = gnutls_session_get_desc (s->session);
  if (tls_psk_file) {
    const char *user = gnutls_psk_server_get_username (s->session);
    nbdcbt_debug ("TLS session: %s, PSK user '%s', key exchange %s, %s",
                  version ? version : "?", user ? user : "",
                  kx ? kx : "?", desc ? desc : "");
  }
  else {
    const gnutls_datum_t *peer;
    unsigned n = 0;
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = { NULL, 0 };

    peer = gnutls_certificate_get_peers (s->session, &n);
    if (peer && n > 0 && gnutls_x509_crt_init (&crt) == 0) {
      if (gnutls_x509_crt_import (crt, &peer[0], GNUTLS_X509_FMT_DER) == 0)
        gnutls_x509_crt_get_dn3 (crt, &dn, 0);
      gnutls_x509_crt_deinit (crt);
    }
    nbdcbt_debug ("TLS session: %s, X.509, client %s, %s",
                  version ? version : "?",
                  dn.data ? (char *) dn.data : "without a certificate",
                  desc ? desc : "");
    gnutls_free (dn.data);
  }
  gnutls_free (desc);
}

static const struct transport_ops tls_transport_ops;

bool
tls_active (struct transport *t)
{
  return t->ops == &tls_transport_ops;
}

int
tls_start (struct transport *t, int timeout_ms)
{
  struct tls_session *s = calloc (1, sizeof *s);
  int r;

  if (s == NULL) {
    nbdcbt_error ("calloc: %m");
    return -1;
  }
  s->in = t->sockin;
  s->out = t->sockout;
  s->is_socket = t->is_socket;
  r = gnutls_init (&s->session, GNUTLS_SERVER);
  if (r < 0) {
    nbdcbt_error ("gnutls_init: %s", gnutls_strerror (r));
    free (s);
    return -1;
  }
  r = gnutls_priority_set (s->session, priority);
  if (r >= 0)
    r = x509_creds
      ? gnutls_credentials_set (s->session, GNUTLS_CRD_CERTIFICATE,
                                x509_creds)
      : gnutls_credentials_set (s->session, GNUTLS_CRD_PSK, psk_creds);
  if (r < 0) {
    nbdcbt_error ("TLS session setup: %s", gnutls_strerror (r));
    goto fail;
  }
  if (x509_creds && tls_verify_peer) {
    gnutls_certificate_server_set_request (s->session, GNUTLS_CERT_REQUIRE);
    /* Checked in the handshake against the CA and the CRL. */
    gnutls_session_set_verify_cert (s->session, NULL, 0);
  }
  gnutls_transport_set_ptr (s->session, s);
  gnutls_transport_set_pull_function (s->session, pull);
  gnutls_transport_set_pull_timeout_function (s->session, pull_timeout);
  gnutls_transport_set_vec_push_function (s->session, push_vec);
  gnutls_handshake_set_timeout (s->session, timeout_ms);

  do
    r = gnutls_handshake (s->session);
  while (r < 0 && !gnutls_error_is_fatal (r) && r != GNUTLS_E_TIMEDOUT);
  if (r < 0) {
    log_handshake_failure (s, r);
    /* The client hears why (a bad certificate, ...), if it still listens. */
    s->closing = true;
    gnutls_alert_send_appropriate (s->session, r);
    goto fail;
  }
  log_session (s);
  /* The rest of the NBD handshake has the same time limit, even for a
   * client that trickles a TLS record byte by byte.
   */
  gnutls_record_set_timeout (s->session, timeout_ms);
  t->priv = s;
  t->ops = &tls_transport_ops;
  return 0;

 fail:
  gnutls_deinit (s->session);
  free (s);
  return -1;
}

void
tls_handshake_over (struct transport *t)
{
  struct tls_session *s = t->priv;

  if (tls_active (t))
    gnutls_record_set_timeout (s->session, 0);
}

static ssize_t
tls_recv (struct transport *t, void *buf, size_t len, int flags)
{
  struct tls_session *s = t->priv;
  ssize_t r;

  s->nowait = flags & TRANSPORT_NOWAIT;
  for (;;) {
    r = gnutls_record_recv (s->session, buf, len);
    if (r >= 0)
      break;
    switch (r) {
    case GNUTLS_E_INTERRUPTED:
      continue;
    case GNUTLS_E_AGAIN:
      /* Nothing yet (TRANSPORT_NOWAIT), or the socket's receive timeout
       * passed: the caller decides.  gnutls resumes the record later.
       */
      errno = EAGAIN;
      r = -1;
      break;
    case GNUTLS_E_PREMATURE_TERMINATION:
      /* The peer (or our own shutdown (SHUT_RD)) closed the socket
       * without a TLS close notify: an end of input all the same.
       */
      r = 0;
      break;
    case GNUTLS_E_TIMEDOUT:
      nbdcbt_error ("client did not finish the handshake within %u "
                    "seconds (--handshake-limit), dropping it",
                    handshake_limit);
      errno = ETIMEDOUT;
      r = -1;
      break;
    case GNUTLS_E_PULL_ERROR:
      /* errno from the pull function (ESHUTDOWN when quitting). */
      r = -1;
      break;
    default:
      nbdcbt_debug ("TLS receive: %s", gnutls_strerror ((int) r));
      errno = EIO;
      r = -1;
      break;
    }
    break;
  }
  s->nowait = false;
  return r;
}

static bool
tls_pending (struct transport *t)
{
  struct tls_session *s = t->priv;

  return gnutls_record_check_pending (s->session) > 0;
}

static int
send_all (struct tls_session *s, const char *p, size_t len)
{
  ssize_t r;

  while (len > 0) {
    r = gnutls_record_send (s->session, p, len);
    if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN)
      continue;
    if (r < 0) {
      nbdcbt_debug ("TLS send: %s", gnutls_strerror ((int) r));
      errno = EIO;
      return -1;
    }
    p += r;
    len -= r;
  }
  return 0;
}

static int
uncork (struct tls_session *s)
{
  int r;

  do
    r = gnutls_record_uncork (s->session, GNUTLS_RECORD_WAIT);
  while (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN);
  if (r < 0) {
    nbdcbt_debug ("TLS send: %s", gnutls_strerror (r));
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Small pieces (a reply header, a block status chunk) are gathered into
 * one record; large ones (READ data) are encrypted from where they are.
 */
static int
tls_sendv (struct transport *t, struct iovec *iov, int n)
{
  struct tls_session *s = t->priv;
  bool corked = false;
  int i;

  for (i = 0; i < n; ++i) {
    if (iov[i].iov_len == 0)
      continue;
    if (iov[i].iov_len < CORK_MAX && !corked) {
      gnutls_record_cork (s->session);
      corked = true;
    }
    else if (iov[i].iov_len >= CORK_MAX && corked) {
      corked = false;
      if (uncork (s) == -1)
        return -1;
    }
    if (send_all (s, iov[i].iov_base, iov[i].iov_len) == -1) {
      if (corked)
        gnutls_record_uncork (s->session, 0);
      return -1;
    }
  }
  if (corked && uncork (s) == -1)
    return -1;
  return 0;
}

/* Tell the client the stream ends here, without waiting for its answer
 * (it may be gone, or not reading).
 */
static void
send_close_notify (struct tls_session *s)
{
  if (!s->closing) {
    s->closing = true;
    gnutls_bye (s->session, GNUTLS_SHUT_WR);
  }
}

static void
tls_shutdown (struct transport *t, int how)
{
  struct tls_session *s = t->priv;

  if (how != SHUT_RD)
    send_close_notify (s);
  if (s->is_socket)
    shutdown (s->in, how);
}

static void
tls_close (struct transport *t)
{
  struct tls_session *s = t->priv;

  send_close_notify (s);
  gnutls_deinit (s->session);
  free (s);
  t->priv = NULL;
}

static const struct transport_ops tls_transport_ops = {
  .name = "tls",
  .recv = tls_recv,
  .sendv = tls_sendv,
  .pending = tls_pending,
  .shutdown = tls_shutdown,
  .close = tls_close,
};
