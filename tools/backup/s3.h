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

/* nbdcbt-backup: a small S3 client (libcurl, AWS Signature Version 4
 * computed here with gnutls's HMAC; see docs/s3.md for why).
 */
#ifndef NBDCBT_BACKUP_S3_H
#define NBDCBT_BACKUP_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- Where and who (s3-config.c) --------------------------------------- */

/* What the command line said (NULL / 0: not given). */
struct s3_options {
  const char *endpoint;         /* --s3-endpoint URL */
  const char *region;           /* --s3-region */
  const char *profile;          /* --s3-profile */
  const char *addressing_style; /* --s3-addressing-style path|virtual|auto */
  const char *ca_bundle;        /* --s3-ca-bundle FILE */
  int retries;                  /* --s3-retries, -1 = default */
  int timeout;                  /* --s3-timeout SECONDS, 0 = default */
  int uploads;                  /* --s3-uploads (parts in flight), 0 = default */
  uint64_t part_size;           /* --s3-part-size, 0 = default */
};
extern struct s3_options s3_opts;

struct s3_config {
  char *scheme;                 /* "https" or "http" */
  char *host;                   /* host[:port] of the endpoint */
  bool custom_endpoint;         /* not AWS's own */
  char *region;
  char *access_key, *secret_key, *session_token; /* token may be NULL */
  bool path_style;
  char *ca_bundle;              /* or NULL: the system's CAs */
  int retries;
  int timeout;
};

/* The endpoint and region from --s3-* options, else AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION, the profile's
 * endpoint_url and region in ~/.aws/config; the credentials from
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else
 * the profile in ~/.aws/credentials (the profile: --s3-profile, else
 * AWS_PROFILE, else "default").  BUCKET decides the addressing style in
 * "auto".  -1 after printing an error.
 */
extern int s3_config_load (const char *bucket, struct s3_config *cfg);
extern void s3_config_free (struct s3_config *cfg);

/* --- Signing (s3-sigv4.c) ---------------------------------------------- */

/* RFC 3986 percent-encoding as SigV4 wants it: unreserved characters
 * kept, everything else %XX; '/' kept if KEEP_SLASH.  Malloc'd.
 */
extern char *s3_uri_encode (const char *s, bool keep_slash);

struct sigv4_request {
  const char *method;
  const char *canonical_uri;    /* encoded path, starting with '/' */
  const char *canonical_query;  /* sorted, encoded; "" if none */
  const char *host;
  const char *range;            /* "bytes=A-B", or NULL */
  const char *payload_sha256;   /* lowercase hex */
  const char *amz_date;         /* YYYYMMDDTHHMMSSZ */
  const char *region;
  const char *service;          /* "s3" */
  const char *access_key, *secret_key, *session_token;
};
/* The Authorization header's value (malloc'd; NULL after an error).
 * The signed headers: host, range (if any), x-amz-content-sha256,
 * x-amz-date, x-amz-security-token (if any).
 */
extern char *sigv4_authorization (const struct sigv4_request *r);
/* SHA-256 of DATA as lowercase hex into HEX[65]. */
extern void sha256_hex (const void *data, size_t len, char hex[65]);

/* --- Requests (s3.c) --------------------------------------------------- */

struct s3_client;
/* NULL after printing an error. */
extern struct s3_client *s3_client_new (const char *bucket);
extern void s3_client_free (struct s3_client *c);
extern const char *s3_client_bucket (const struct s3_client *c);
/* Has a request failed in a way no other request will fix (the TLS
 * session or the credentials refused, no answer after the retries, no
 * such bucket)?
 */
extern bool s3_client_unreachable (const struct s3_client *c);

struct s3_request {
  const char *method;           /* GET PUT POST DELETE HEAD */
  const char *key;              /* the object's key (not encoded), or
                                 * NULL for the bucket */
  const char *query;            /* canonical query string, or NULL */
  const void *body;             /* request body */
  size_t body_len;
  const char *payload_sha256;   /* of BODY if the caller has it, or NULL */
  uint64_t range_offset;        /* with RANGE_LEN > 0: a ranged GET */
  size_t range_len;
  void *out;                    /* ranged GET: exactly RANGE_LEN bytes */
  bool missing_ok;              /* 404 returns 1 instead of an error */
};
struct s3_response {
  long status;
  char *body;                   /* malloc'd, NUL-terminated (not for OUT) */
  size_t body_len;
  char etag[128];
  uint64_t content_length;
};
/* Perform RQ with retries (backoff on 5xx, 429, timeouts and broken
 * connections).  0 on a 2xx answer, 1 for a 404 when MISSING_OK, -1
 * after printing an error naming the object and S3's Code and Message.
 * Thread-safe (a pool of connections).
 */
extern int s3_perform (struct s3_client *c, const struct s3_request *rq,
                       struct s3_response *rs);
extern void s3_response_free (struct s3_response *rs);

/* The text of the first <TAG>...</TAG> at or after *POS in XML (entities
 * decoded), malloc'd, and *POS moved past it; NULL if there is none.
 */
extern char *xml_next (const char *xml, const char *tag, const char **pos);

#endif /* NBDCBT_BACKUP_S3_H */
