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

/* nbdcbt-backup: connecting to an NBD server, with TLS when asked. */
#include <config.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"

/* Parse a --tls mode as libnbd numbers it. */
int
parse_tls_mode (const char *arg)
{
  if (strcmp (arg, "off") == 0)
    return LIBNBD_TLS_DISABLE;
  if (strcmp (arg, "on") == 0)
    return LIBNBD_TLS_ALLOW;
  if (strcmp (arg, "require") == 0)
    return LIBNBD_TLS_REQUIRE;
  return -1;
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* This libnbd knows tls-certificates= and tls-psk-file= but not
 * tls-username= (the NBD URI's authority carries the user): the URI
 * without it (malloc'd) for libnbd, and its value, percent-decoded, in
 * *USERNAME (NULL if absent).  NULL after an error.
 */
static char *
take_tls_username (const char *uri, char **username)
{
  const char *q = strchr (uri, '?'), *p, *end;
  char *out, *o, *v;
  bool first = true;

  *username = NULL;
  out = malloc (strlen (uri) + 1);
  if (out == NULL) {
    error_errno ("malloc");
    return NULL;
  }
  if (q == NULL) {
    strcpy (out, uri);
    return out;
  }
  memcpy (out, uri, q - uri);
  o = out + (q - uri);
  for (p = q + 1; *p; p = *end ? end + 1 : end) {
    end = p + strcspn (p, "&");
    if (strncmp (p, "tls-username=", 13) != 0) {
      *o++ = first ? '?' : '&';
      memcpy (o, p, end - p);
      o += end - p;
      first = false;
      continue;
    }
    free (*username);
    *username = v = malloc (end - p);
    if (v == NULL) {
      error_errno ("malloc");
      free (out);
      return NULL;
    }
    for (p += 13; p < end; ++p) {
      if (*p == '%' && end - p >= 3 && hexval (p[1]) >= 0
          && hexval (p[2]) >= 0) {
        *v++ = hexval (p[1]) * 16 + hexval (p[2]);
        p += 2;
      }
      else
        *v++ = *p;
    }
    *v = '\0';
  }
  *o = '\0';
  return out;
}

static bool
uri_has_user (const char *uri)
{
  const char *a = strstr (uri, "://"), *slash;

  if (a == NULL)
    return false;
  a += 3;
  slash = a + strcspn (a, "/?");
  return memchr (a, '@', slash - a) != NULL;
}

/* nbd_connect_uri with the --tls* options and tls-username=.  On error
 * prints "WHAT: reason" and returns -1.
 */
int
connect_uri_tls (struct nbd_handle *h, const char *uri, const char *what)
{
  char *username = NULL, *u;
  int r = -1;

  u = take_tls_username (uri, &username);
  if (u == NULL)
    return -1;
  if (username == NULL && opts.tls_username
      && (username = strdup (opts.tls_username)) == NULL) {
    error_errno ("strdup");
    goto out;
  }
  if (username == NULL && !uri_has_user (u)
      && (opts.tls_psk_file || strstr (u, "tls-psk-file="))) {
    /* libnbd would ask getlogin (), which fails without a terminal. */
    error ("%s: a pre-shared key needs a username: --tls-username=USER, "
           "tls-username=USER or USER@ in the URI", what);
    goto out;
  }
  /* The user's own command line may name local files (certificates, key
   * files) in the URI, as nbdinfo and nbdcopy allow.
   */
  if (nbd_set_uri_allow_local_file (h, true) == -1
      || (opts.tls != -1 && nbd_set_tls (h, opts.tls) == -1)
      || (opts.tls_certificates
          && nbd_set_tls_certificates (h, opts.tls_certificates) == -1)
      || (opts.tls_psk_file
          && nbd_set_tls_psk_file (h, opts.tls_psk_file) == -1)
      || (username && nbd_set_tls_username (h, username) == -1)
      || nbd_connect_uri (h, u) == -1) {
    error ("%s: %s", what, nbd_get_error ());
    goto out;
  }
  r = 0;
 out:
  free (username);
  free (u);
  return r;
}
