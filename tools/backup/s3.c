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

/* nbdcbt-backup: S3 requests over libcurl, signed with SigV4
 * (s3-sigv4.c), retried with exponential backoff.
 *
 * HTTPS checks the server's certificate and name against the system's
 * CAs (or --s3-ca-bundle); plain HTTP only when the endpoint says
 * http://.  Each request takes an idle curl handle from the client's
 * pool (keeping its connection alive), so that several threads can
 * upload parts and fetch ranges at once.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "backup.h"
#include "s3.h"

#define EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_client {
  struct s3_config cfg;
  char *bucket;
  char *host;                   /* Host: of every request */
  pthread_mutex_t lock;
  CURL **idle;                  /* the pool */
  size_t nidle, idle_cap;
  bool unreachable;             /* see s3_client_unreachable */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once (void)
{
  curl_global_init (CURL_GLOBAL_DEFAULT);
}

struct s3_client *
s3_client_new (const char *bucket)
{
  struct s3_client *c = calloc (1, sizeof *c);

  if (c == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  pthread_once (&curl_once, curl_init_once);
  pthread_mutex_init (&c->lock, NULL);
  if (s3_config_load (bucket, &c->cfg) == -1) {
    free (c);
    return NULL;
  }
  c->bucket = strdup (bucket);
  if (c->cfg.path_style)
    c->host = strdup (c->cfg.host);
  else if (asprintf (&c->host, "%s.%s", bucket, c->cfg.host) == -1)
    c->host = NULL;
  if (c->bucket == NULL || c->host == NULL) {
    error_errno ("malloc");
    s3_client_free (c);
    return NULL;
  }
  return c;
}

void
s3_client_free (struct s3_client *c)
{
  size_t i;

  if (c == NULL)
    return;
  for (i = 0; i < c->nidle; ++i)
    curl_easy_cleanup (c->idle[i]);
  free (c->idle);
  s3_config_free (&c->cfg);
  free (c->bucket);
  free (c->host);
  pthread_mutex_destroy (&c->lock);
  free (c);
}

const char *
s3_client_bucket (const struct s3_client *c)
{
  return c->bucket;
}

bool
s3_client_unreachable (const struct s3_client *c)
{
  return __atomic_load_n (&c->unreachable, __ATOMIC_RELAXED);
}

static CURL *
get_handle (struct s3_client *c)
{
  CURL *h = NULL;

  pthread_mutex_lock (&c->lock);
  if (c->nidle > 0)
    h = c->idle[--c->nidle];
  pthread_mutex_unlock (&c->lock);
  if (h == NULL)
    h = curl_easy_init ();
  return h;
}

static void
put_handle (struct s3_client *c, CURL *h)
{
  pthread_mutex_lock (&c->lock);
  if (c->nidle == c->idle_cap) {
    size_t n = c->idle_cap ? 2 * c->idle_cap : 8;
    CURL **p = realloc (c->idle, n * sizeof *p);
    if (p == NULL) {
      pthread_mutex_unlock (&c->lock);
      curl_easy_cleanup (h);
      return;
    }
    c->idle = p;
    c->idle_cap = n;
  }
  c->idle[c->nidle++] = h;
  pthread_mutex_unlock (&c->lock);
}

void
s3_response_free (struct s3_response *rs)
{
  free (rs->body);
  rs->body = NULL;
  rs->body_len = 0;
}

/* --- XML (the few answers we read are flat) ---------------------------- */

static void
decode_entities (char *s)
{
  static const struct { const char *e; char c; } ents[] = {
    { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
    { "&apos;", '\'' },
  };
  char *r = s, *w = s;
  size_t i;

  while (*r) {
    if (*r == '&') {
      for (i = 0; i < sizeof ents / sizeof ents[0]; ++i) {
        size_t n = strlen (ents[i].e);
        if (strncmp (r, ents[i].e, n) == 0) {
          *w++ = ents[i].c;
          r += n;
          goto next;
        }
      }
    }
    *w++ = *r++;
  next: ;
  }
  *w = '\0';
}

char *
xml_next (const char *xml, const char *tag, const char **pos)
{
  char open[128], close[128];
  const char *start = pos && *pos ? *pos : xml, *a, *b;
  char *s;

  if (xml == NULL)
    return NULL;
  snprintf (open, sizeof open, "<%s>", tag);
  snprintf (close, sizeof close, "</%s>", tag);
  a = strstr (start, open);
  if (a == NULL)
    return NULL;
  a += strlen (open);
  b = strstr (a, close);
  if (b == NULL)
    return NULL;
  s = strndup (a, b - a);
  if (s)
    decode_entities (s);
  if (pos)
    *pos = b + strlen (close);
  return s;
}

/* --- Requests ---------------------------------------------------------- */

struct transfer {
  const struct s3_request *rq;
  struct s3_response *rs;
  size_t got;                   /* into rq->out */
  bool overflow;
  /* The body received, for errors and small answers. */
  char *buf;
  size_t len, cap;
};

static size_t
write_cb (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct transfer *t = opaque;
  size_t n = size * nmemb;

  if (t->rq->out && t->rs->status / 100 == 2) {
    if (t->got + n > t->rq->range_len) {
      t->overflow = true;
      return 0;
    }
    memcpy ((char *) t->rq->out + t->got, data, n);
    t->got += n;
    return n;
  }
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 4096;
    char *p;
    while (cap < t->len + n + 1)
      cap *= 2;
    if (cap > (64 << 20))       /* no answer we read is that large */
      return 0;
    p = realloc (t->buf, cap);
    if (p == NULL)
      return 0;
    t->buf = p;
    t->cap = cap;
  }
  memcpy (t->buf + t->len, data, n);
  t->len += n;
  t->buf[t->len] = '\0';
  return n;
}

static size_t
header_cb (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct transfer *t = opaque;
  size_t n = size * nmemb;

  if (n > 5 && strncmp (data, "HTTP/", 5) == 0) {
    /* A new answer (after a 100 Continue, or a redirect). */
    long code = 0;
    const char *sp = memchr (data, ' ', n);
    if (sp)
      code = strtol (sp + 1, NULL, 10);
    t->rs->status = code;
    t->got = 0;
    t->len = 0;
  }
  else if (n > 5 && strncasecmp (data, "etag:", 5) == 0) {
    size_t i = 5, j = 0;
    while (i < n && (data[i] == ' ' || data[i] == '\t'))
      i++;
    while (i < n && data[i] != '\r' && data[i] != '\n' &&
           j < sizeof t->rs->etag - 1)
      t->rs->etag[j++] = data[i++];
    t->rs->etag[j] = '\0';
  }
  else if (n > 15 && strncasecmp (data, "content-length:", 15) == 0)
    t->rs->content_length = strtoull (data + 15, NULL, 10);
  return n;
}

static void
amz_date (char out[17])
{
  time_t now = time (NULL);
  struct tm tm;

  gmtime_r (&now, &tm);
  strftime (out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static char *
object_name (const struct s3_client *c, const char *key)
{
  char *s;

  if (asprintf (&s, "s3://%s/%s", c->bucket, key ? key : "") == -1)
    return NULL;
  return s;
}

/* The length of HOST[:PORT] without the port. */
static size_t
host_name_len (const char *host)
{
  const char *end;

  if (host[0] == '[' && (end = strchr (host, ']')) != NULL)
    return end - host + 1;
  return strcspn (host, ":");
}

/* Is this failure worth another try? */
static bool
retryable (CURLcode cc, long status, const char *body)
{
  if (cc != CURLE_OK)
    return cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_COULDNT_CONNECT ||
      cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR ||
      cc == CURLE_GOT_NOTHING || cc == CURLE_PARTIAL_FILE ||
      cc == CURLE_WEIRD_SERVER_REPLY ||
      cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_SSL_CONNECT_ERROR ||
      cc == CURLE_HTTP2 || cc == CURLE_HTTP2_STREAM;
  if (status >= 500 || status == 429)
    return true;
  /* S3 answers an idle connection with 400 RequestTimeout. */
  return status == 400 && body && strstr (body, "<Code>RequestTimeout<");
}

/* One attempt.  Returns the curl code; RS->status is the HTTP status. */
static CURLcode
attempt (struct s3_client *c, CURL *h, const struct s3_request *rq,
         const char *url, const char *canonical_uri,
         const char *payload_sha256, struct s3_response *rs,
         struct transfer *t, char *errbuf)
{
  struct curl_slist *hdrs = NULL;
  char date[17], range[64], *auth, *line = NULL;
  const char *q = rq->query ? rq->query : "";
  struct sigv4_request sr;
  CURLcode cc;

  amz_date (date);
  if (rq->range_len)
    snprintf (range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64,
              rq->range_offset, rq->range_offset + rq->range_len - 1);
  sr = (struct sigv4_request) {
    .method = rq->method, .canonical_uri = canonical_uri,
    .canonical_query = q, .host = c->host,
    .range = rq->range_len ? range : NULL,
    .payload_sha256 = payload_sha256, .amz_date = date,
    .region = c->cfg.region, .service = "s3",
    .access_key = c->cfg.access_key, .secret_key = c->cfg.secret_key,
    .session_token = c->cfg.session_token,
  };
  auth = sigv4_authorization (&sr);
  if (auth == NULL)
    return CURLE_OUT_OF_MEMORY;

#define ADD_HEADER(...)                                         \
  do {                                                          \
    if (asprintf (&line, __VA_ARGS__) == -1)                    \
      goto oom;                                                 \
    hdrs = curl_slist_append (hdrs, line);                      \
    free (line);                                                \
    line = NULL;                                                \
  } while (0)
  ADD_HEADER ("Authorization: %s", auth);
  ADD_HEADER ("x-amz-date: %s", date);
  ADD_HEADER ("x-amz-content-sha256: %s", payload_sha256);
  if (c->cfg.session_token)
    ADD_HEADER ("x-amz-security-token: %s", c->cfg.session_token);
  if (rq->range_len)
    ADD_HEADER ("Range: %s", range);
  hdrs = curl_slist_append (hdrs, "Expect:");
  hdrs = curl_slist_append (hdrs, "Content-Type:");
  hdrs = curl_slist_append (hdrs, "Accept:");
#undef ADD_HEADER

  curl_easy_reset (h);
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, (long) c->cfg.timeout);
  /* A transfer that stalls (under 1 KiB/s for TIMEOUT seconds) fails
   * and is retried; a slow but moving one is left alone.
   */
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, (long) c->cfg.timeout);
  curl_easy_setopt (h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (c->cfg.ca_bundle)
    curl_easy_setopt (h, CURLOPT_CAINFO, c->cfg.ca_bundle);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, t);
  if (strcmp (rq->method, "HEAD") == 0)
    curl_easy_setopt (h, CURLOPT_NOBODY, 1L);
  else if (strcmp (rq->method, "GET") != 0) {
    curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, rq->method);
    if (strcmp (rq->method, "DELETE") != 0) {
      curl_easy_setopt (h, CURLOPT_POSTFIELDS,
                        rq->body ? (const char *) rq->body : "");
      curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE_LARGE,
                        (curl_off_t) rq->body_len);
    }
  }
  cc = curl_easy_perform (h);
  if (cc == CURLE_WRITE_ERROR && t->overflow)
    snprintf (errbuf, CURL_ERROR_SIZE, "the server sent more than asked");
  curl_slist_free_all (hdrs);
  free (auth);
  return cc;

 oom:
  curl_slist_free_all (hdrs);
  free (auth);
  return CURLE_OUT_OF_MEMORY;
}

int
s3_perform (struct s3_client *c, const struct s3_request *rq,
            struct s3_response *rs)
{
  char *enc_key = NULL, *canonical_uri = NULL, *url = NULL, *what = NULL;
  char payload[65], errbuf[CURL_ERROR_SIZE];
  struct transfer t = { .rq = rq, .rs = rs };
  CURL *h = NULL;
  int tries, ret = -1;
  double delay = 0.25;

  memset (rs, 0, sizeof *rs);
  what = object_name (c, rq->key);
  enc_key = s3_uri_encode (rq->key ? rq->key : "", true);
  if (what == NULL || enc_key == NULL)
    goto oom;
  if (c->cfg.path_style) {
    if (asprintf (&canonical_uri, "/%s%s%s", c->bucket,
                  rq->key ? "/" : "", enc_key) == -1)
      canonical_uri = NULL;
  }
  else if (asprintf (&canonical_uri, "/%s", enc_key) == -1)
    canonical_uri = NULL;
  if (canonical_uri == NULL ||
      asprintf (&url, "%s://%s%s%s%s", c->cfg.scheme, c->host, canonical_uri,
                rq->query ? "?" : "", rq->query ? rq->query : "") == -1)
    goto oom;

  if (rq->payload_sha256)
    memcpy (payload, rq->payload_sha256, 65);
  else if (rq->body_len)
    sha256_hex (rq->body, rq->body_len, payload);
  else
    memcpy (payload, EMPTY_SHA256, 65);

  h = get_handle (c);
  if (h == NULL)
    goto oom;
  for (tries = 0; ; ++tries) {
    CURLcode cc;
    char *code = NULL, *msg = NULL;
    const char *why;
    char whybuf[512];

    errbuf[0] = '\0';
    t.got = t.len = 0;
    t.overflow = false;
    rs->status = 0;
    rs->etag[0] = '\0';
    cc = attempt (c, h, rq, url, canonical_uri, payload, rs, &t, errbuf);
    if (cc == CURLE_OK && rs->status / 100 == 2 &&
        (!rq->out || t.got == rq->range_len)) {
      ret = 0;
      break;
    }
    if (cc == CURLE_OK && rs->status == 404 && rq->missing_ok &&
        !(t.buf && strstr (t.buf, "<Code>NoSuchBucket<"))) {
      ret = 1;
      break;
    }
    if (cc == CURLE_OK && rs->status / 100 == 2) {
      /* A short ranged read: past the end of the object. */
      error ("%s: %s of %zu bytes at %" PRIu64 " got %zu (the object is "
             "shorter)", what, rq->method, rq->range_len, rq->range_offset,
             t.got);
      break;
    }
    if (cc != CURLE_OK) {
      snprintf (whybuf, sizeof whybuf, "%s",
                errbuf[0] ? errbuf : curl_easy_strerror (cc));
      why = whybuf;
    }
    else {
      code = xml_next (t.buf, "Code", NULL);
      msg = xml_next (t.buf, "Message", NULL);
      snprintf (whybuf, sizeof whybuf, "HTTP %ld%s%s%s%s", rs->status,
                code ? " " : "", code ? code : "",
                msg && *msg ? ": " : "", msg && *msg ? msg : "");
      why = whybuf;
    }
    if (tries < c->cfg.retries && retryable (cc, rs->status, t.buf)) {
      /* Full jitter keeps parallel uploads from retrying in step. */
      double d = delay * (0.5 + (double) (rand () % 1000) / 2000.0);
      info ("%s: %s failed (%s); retrying in %.1f s (%d of %d)", what,
            rq->method, why, d, tries + 1, c->cfg.retries);
      free (code);
      free (msg);
      usleep ((useconds_t) (d * 1e6));
      if (delay < 8)
        delay *= 2;
      /* A broken connection is not reused. */
      if (cc != CURLE_OK) {
        curl_easy_cleanup (h);
        h = curl_easy_init ();
        if (h == NULL)
          goto oom;
      }
      continue;
    }
    /* Every later request would fail the same way (AccessDenied may be
     * about this call only).
     */
    if (cc != CURLE_OK ||
        (code && (strcmp (code, "InvalidAccessKeyId") == 0 ||
                  strcmp (code, "SignatureDoesNotMatch") == 0 ||
                  strcmp (code, "ExpiredToken") == 0 ||
                  strcmp (code, "InvalidToken") == 0 ||
                  strcmp (code, "AuthorizationHeaderMalformed") == 0 ||
                  strcmp (code, "NoSuchBucket") == 0)))
      __atomic_store_n (&c->unreachable, true, __ATOMIC_RELAXED);
    if (cc == CURLE_OK && (rs->status == 403 || rs->status == 400) && code &&
        (strcmp (code, "InvalidAccessKeyId") == 0 ||
         strcmp (code, "SignatureDoesNotMatch") == 0 ||
         strcmp (code, "AccessDenied") == 0 ||
         strcmp (code, "ExpiredToken") == 0 ||
         strcmp (code, "InvalidToken") == 0 ||
         strcmp (code, "AuthorizationHeaderMalformed") == 0))
      error ("%s: %s refused: %s\n(the S3 credentials are wrong or lack "
             "this permission: check AWS_ACCESS_KEY_ID and "
             "AWS_SECRET_ACCESS_KEY, or the profile in ~/.aws/credentials, "
             "and the region '%s')", what, rq->method, why, c->cfg.region);
    else if (cc == CURLE_OK && rs->status == 404 && code &&
             strcmp (code, "NoSuchBucket") == 0)
      error ("%s: the bucket '%s' does not exist (%s)", what, c->bucket, why);
    else if (cc == CURLE_PEER_FAILED_VERIFICATION)
      error ("%s: %s refused: %s\n(the server's certificate is not "
             "trusted: it is not signed by %s%s, or not issued for "
             "'%.*s'; give its CA's certificate with --s3-ca-bundle FILE, "
             "AWS_CA_BUNDLE or ca_bundle in ~/.aws/config)",
             what, rq->method, why,
             c->cfg.ca_bundle ? "a CA in " : "a CA the system trusts",
             c->cfg.ca_bundle ? c->cfg.ca_bundle : "",
             (int) host_name_len (c->host), c->host);
    else if (cc == CURLE_SSL_CACERT_BADFILE)
      error ("%s: %s failed: %s\n(the CA bundle '%s' holds no usable PEM "
             "certificate)", what, rq->method, why,
             c->cfg.ca_bundle ? c->cfg.ca_bundle : "(the system's)");
    else if (cc == CURLE_SSL_CONNECT_ERROR)
      error ("%s: %s failed: %s%s\n(no TLS session with %s: is it an "
             "HTTPS server?  An unencrypted endpoint must be given as "
             "http://)", what, rq->method, why,
             tries ? " (after retries)" : "", c->host);
    else
      error ("%s: %s failed: %s%s", what, rq->method, why,
             tries ? " (after retries)" : "");
    free (code);
    free (msg);
    break;
  }
  if (ret >= 0 && !rq->out) {
    rs->body = t.buf;
    rs->body_len = t.len;
    t.buf = NULL;
    if (rs->body == NULL && (rs->body = strdup ("")) == NULL)
      goto oom;
  }
  goto out;

 oom:
  error ("out of memory");
  ret = -1;
 out:
  if (h)
    put_handle (c, h);
  free (t.buf);
  free (enc_key);
  free (canonical_uri);
  free (url);
  free (what);
  return ret;
}
