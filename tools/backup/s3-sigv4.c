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

/* nbdcbt-backup: AWS Signature Version 4 for S3 requests.
 *
 * canonical request = METHOD \n URI \n QUERY \n HEADERS \n SIGNED \n HASH
 * string to sign    = "AWS4-HMAC-SHA256" \n DATE \n SCOPE \n
 *                     hex(SHA-256(canonical request))
 * signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" SECRET, YYYYMMDD),
 *                     REGION), "s3"), "aws4_request")
 *
 * tests/s3/test-s3-sigv4 checks it against the example of AWS's S3
 * documentation (a ranged GET signed with the example keys).
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "s3.h"

#define SHA256_LEN 32

static void
to_hex (const unsigned char *d, size_t len, char *hex)
{
  static const char digits[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < len; ++i) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[2 * len] = '\0';
}

void
sha256_hex (const void *data, size_t len, char hex[65])
{
  unsigned char d[SHA256_LEN];

  gnutls_hash_fast (GNUTLS_DIG_SHA256, data, len, d);
  to_hex (d, SHA256_LEN, hex);
}

static bool
unreserved (unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

char *
s3_uri_encode (const char *s, bool keep_slash)
{
  char *out = malloc (3 * strlen (s) + 1), *p = out;

  if (out == NULL)
    return NULL;
  for (; *s; ++s) {
    unsigned char c = *s;
    if (unreserved (c) || (keep_slash && c == '/'))
      *p++ = c;
    else
      p += sprintf (p, "%%%02X", c);
  }
  *p = '\0';
  return out;
}

static int
hmac (const void *key, size_t keylen, const char *text,
      unsigned char out[SHA256_LEN])
{
  return gnutls_hmac_fast (GNUTLS_MAC_SHA256, key, keylen, text,
                           strlen (text), out);
}

char *
sigv4_authorization (const struct sigv4_request *r)
{
  char *canonical = NULL, *to_sign = NULL, *secret = NULL, *auth = NULL;
  char date[9], scope[256], creq_hash[65], sig_hex[65];
  const char *signed_headers;
  unsigned char k[SHA256_LEN], sig[SHA256_LEN];

  memcpy (date, r->amz_date, 8);
  date[8] = '\0';
  snprintf (scope, sizeof scope, "%s/%s/%s/aws4_request", date, r->region,
            r->service);

  if (r->range && r->session_token)
    signed_headers =
      "host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token";
  else if (r->range)
    signed_headers = "host;range;x-amz-content-sha256;x-amz-date";
  else if (r->session_token)
    signed_headers =
      "host;x-amz-content-sha256;x-amz-date;x-amz-security-token";
  else
    signed_headers = "host;x-amz-content-sha256;x-amz-date";

  if (asprintf (&canonical,
                "%s\n%s\n%s\n"
                "host:%s\n%s%s%s"
                "x-amz-content-sha256:%s\nx-amz-date:%s\n%s%s%s"
                "\n%s\n%s",
                r->method, r->canonical_uri, r->canonical_query,
                r->host,
                r->range ? "range:" : "", r->range ? r->range : "",
                r->range ? "\n" : "",
                r->payload_sha256, r->amz_date,
                r->session_token ? "x-amz-security-token:" : "",
                r->session_token ? r->session_token : "",
                r->session_token ? "\n" : "",
                signed_headers, r->payload_sha256) == -1) {
    canonical = NULL;
    goto out;
  }
  sha256_hex (canonical, strlen (canonical), creq_hash);
  if (asprintf (&to_sign, "AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date,
                scope, creq_hash) == -1) {
    to_sign = NULL;
    goto out;
  }
  if (asprintf (&secret, "AWS4%s", r->secret_key) == -1) {
    secret = NULL;
    goto out;
  }
  if (hmac (secret, strlen (secret), date, k) < 0 ||
      hmac (k, SHA256_LEN, r->region, k) < 0 ||
      hmac (k, SHA256_LEN, r->service, k) < 0 ||
      hmac (k, SHA256_LEN, "aws4_request", k) < 0 ||
      hmac (k, SHA256_LEN, to_sign, sig) < 0)
    goto out;
  to_hex (sig, SHA256_LEN, sig_hex);
  if (asprintf (&auth, "AWS4-HMAC-SHA256 Credential=%s/%s, "
                "SignedHeaders=%s, Signature=%s", r->access_key, scope,
                signed_headers, sig_hex) == -1)
    auth = NULL;

 out:
  if (secret)
    memset (secret, 0, strlen (secret));
  memset (k, 0, sizeof k);
  free (canonical);
  free (to_sign);
  free (secret);
  return auth;
}
