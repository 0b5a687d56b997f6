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

/* nbdcbt-backup: a chain under an S3 prefix (store.h).
 *
 * s3://BUCKET/PREFIX: object NAME is the key PREFIX/NAME.  The manifest
 * is replaced by one PUT (atomic in S3).  Uploads are multipart uploads
 * whose first part (the head and the data after it, at least the part
 * size) stays in memory until the commit, so that the head can be given
 * last; the other parts are sent as they fill, by a few threads, while
 * the copy goes on.  A small object (one part) is sent by one PUT at the
 * commit instead.  An interrupted upload is aborted
 * (AbortMultipartUpload); one left by a killed process is found by
 * ListMultipartUploads on the prefix at the next run and aborted.
 *
 * S3 has no lock: two writers into one prefix at once are not detected.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "cleanup.h"
#include "s3.h"
#include "store-impl.h"

#define MIN_PART (5 * 1024 * 1024)      /* S3's minimum (but the last) */
#define DEFAULT_PART (8 * 1024 * 1024)
#define MAX_PARTS 10000
#define DEFAULT_UPLOADS 4               /* parts in flight per upload */
#define DEFAULT_READS 8                 /* ranged GETs in flight */

struct s3_store {
  struct store st;
  struct s3_client *c;
  char *bucket;
  char *prefix;                 /* "" or "dir/sub/" (with the slash) */
};

static char *
key_of (struct s3_store *ss, const char *name)
{
  char *s;

  if (asprintf (&s, "%s%s", ss->prefix, name) == -1)
    return NULL;
  return s;
}

static void
s_close (struct store *st)
{
  struct s3_store *ss = (struct s3_store *) st;

  s3_client_free (ss->c);
  free (ss->bucket);
  free (ss->prefix);
  free (ss);
}

static int
s_lock (struct store *st)
{
  return 0;                     /* S3 has no locks (see above) */
}

/* Abort the multipart uploads under the prefix: only killed runs leave
 * them (a live backup into the same prefix is not supported).
 */
static int
s_cleanup (struct store *st)
{
  struct s3_store *ss = (struct s3_store *) st;
  CLEANUP_FREE char *enc_prefix = s3_uri_encode (ss->prefix, false);
  CLEANUP_FREE char *query = NULL;
  struct s3_response rs;
  const char *pos = NULL;
  char *upload;

  if (enc_prefix == NULL ||
      asprintf (&query, "prefix=%s&uploads=", enc_prefix) == -1)
    return 0;
  if (s3_perform (ss->c, &(struct s3_request) {
        .method = "GET", .query = query }, &rs) != 0) {
    /* The first request: a server we cannot talk to stops here, one
     * that only lacks the call goes on.
     */
    if (s3_client_unreachable (ss->c))
      return -1;
    info ("%s: unfinished uploads cannot be listed here; any left by a "
          "killed backup stay until the bucket's lifecycle rules remove "
          "them", st->location);
    return 0;
  }
  while ((upload = xml_next (rs.body, "Upload", &pos)) != NULL) {
    CLEANUP_FREE char *key = xml_next (upload, "Key", NULL);
    CLEANUP_FREE char *id = xml_next (upload, "UploadId", NULL);
    CLEANUP_FREE char *enc_id = id ? s3_uri_encode (id, false) : NULL;
    CLEANUP_FREE char *q = NULL;
    struct s3_response drs;

    free (upload);
    if (key == NULL || enc_id == NULL ||
        strncmp (key, ss->prefix, strlen (ss->prefix)) != 0 ||
        strchr (key + strlen (ss->prefix), '/') != NULL ||
        asprintf (&q, "uploadId=%s", enc_id) == -1)
      continue;
    if (s3_perform (ss->c, &(struct s3_request) {
          .method = "DELETE", .key = key, .query = q,
          .missing_ok = true }, &drs) >= 0)
      info ("aborted the unfinished upload of s3://%s/%s left by an "
            "interrupted backup", ss->bucket, key);
    s3_response_free (&drs);
  }
  s3_response_free (&rs);
  return 0;
}

static bool
s_unreachable (struct store *st)
{
  return s3_client_unreachable (((struct s3_store *) st)->c);
}

/* Perform RQ on the store's object NAME (RQ's key is set here); the
 * answer in *RS, which the caller frees.
 */
static int
perform_on (struct s3_store *ss, const char *name, struct s3_request rq,
            struct s3_response *rs)
{
  CLEANUP_FREE char *key = key_of (ss, name);

  memset (rs, 0, sizeof *rs);
  if (key == NULL) {
    error_errno ("malloc");
    return -1;
  }
  rq.key = key;
  return s3_perform (ss->c, &rq, rs);
}

static int
s_get (struct store *st, const char *name, char **data, size_t *len)
{
  struct s3_response rs;
  int r = perform_on ((struct s3_store *) st, name, (struct s3_request) {
      .method = "GET", .missing_ok = true }, &rs);

  if (r == 0) {
    *data = rs.body;
    *len = rs.body_len;
    rs.body = NULL;
  }
  s3_response_free (&rs);
  return r;
}

static int
s_put (struct store *st, const char *name, const void *data, size_t len)
{
  struct s3_response rs;
  int r = perform_on ((struct s3_store *) st, name, (struct s3_request) {
      .method = "PUT", .body = data, .body_len = len }, &rs);

  s3_response_free (&rs);
  return r;
}

static int
s_stat (struct store *st, const char *name, uint64_t *size)
{
  struct s3_response rs;
  int r = perform_on ((struct s3_store *) st, name, (struct s3_request) {
      .method = "HEAD", .missing_ok = true }, &rs);

  if (r == 0)
    *size = rs.content_length;
  s3_response_free (&rs);
  return r;
}

/* Ranged GETs, several threads taking the next range. */
struct reads {
  struct s3_store *ss;
  const char *key;
  size_t n;
  void *const *bufs;
  const size_t *counts;
  const uint64_t *offsets;
  pthread_mutex_t lock;
  size_t next;
  bool failed;
};

static void *
read_worker (void *opaque)
{
  struct reads *rd = opaque;

  for (;;) {
    struct s3_response rs;
    size_t i;

    pthread_mutex_lock (&rd->lock);
    i = rd->failed ? rd->n : rd->next++;
    pthread_mutex_unlock (&rd->lock);
    if (i >= rd->n)
      break;
    if (rd->counts[i] == 0)
      continue;
    if (s3_perform (rd->ss->c, &(struct s3_request) {
          .method = "GET", .key = rd->key, .range_offset = rd->offsets[i],
          .range_len = rd->counts[i], .out = rd->bufs[i] }, &rs) != 0) {
      pthread_mutex_lock (&rd->lock);
      rd->failed = true;
      pthread_mutex_unlock (&rd->lock);
    }
    s3_response_free (&rs);
  }
  return NULL;
}

static int
s_pread_many (struct store *st, const char *name, size_t n,
              void *const *bufs, const size_t *counts,
              const uint64_t *offsets)
{
  struct s3_store *ss = (struct s3_store *) st;
  CLEANUP_FREE char *key = key_of (ss, name);
  struct reads rd = {
    .ss = ss, .key = key, .n = n, .bufs = bufs, .counts = counts,
    .offsets = offsets,
  };
  pthread_t threads[DEFAULT_READS];
  size_t i, nthreads = n < DEFAULT_READS ? n : DEFAULT_READS, started;

  if (key == NULL) {
    error_errno ("malloc");
    return -1;
  }
  pthread_mutex_init (&rd.lock, NULL);
  if (nthreads <= 1)
    read_worker (&rd);
  else {
    for (started = 0; started < nthreads; ++started)
      if (pthread_create (&threads[started], NULL, read_worker, &rd) != 0)
        break;
    if (started == 0)
      read_worker (&rd);
    for (i = 0; i < started; ++i)
      pthread_join (threads[i], NULL);
  }
  pthread_mutex_destroy (&rd.lock);
  return rd.failed ? -1 : 0;
}

static int
s_delete (struct store *st, const char *name)
{
  struct s3_response rs;
  int r = perform_on ((struct s3_store *) st, name, (struct s3_request) {
      .method = "DELETE", .missing_ok = true }, &rs);

  s3_response_free (&rs);
  return r < 0 ? -1 : 0;
}

static int
s_list (struct store *st, name_list *names)
{
  struct s3_store *ss = (struct s3_store *) st;
  CLEANUP_FREE char *enc_prefix = s3_uri_encode (ss->prefix, false);
  char *token = NULL;
  int ret = -1;

  if (enc_prefix == NULL) {
    error_errno ("malloc");
    return -1;
  }
  for (;;) {
    CLEANUP_FREE char *query = NULL, *enc_token = NULL, *truncated = NULL;
    struct s3_response rs;
    const char *pos = NULL;
    char *contents;

    if (token && (enc_token = s3_uri_encode (token, false)) == NULL)
      goto out;
    if (asprintf (&query, "%s%s%slist-type=2&prefix=%s",
                  token ? "continuation-token=" : "",
                  token ? enc_token : "", token ? "&" : "",
                  enc_prefix) == -1) {
      query = NULL;
      goto out;
    }
    if (s3_perform (ss->c, &(struct s3_request) {
          .method = "GET", .query = query }, &rs) != 0)
      goto out;
    while ((contents = xml_next (rs.body, "Contents", &pos)) != NULL) {
      char *key = xml_next (contents, "Key", NULL), *name;

      free (contents);
      if (key == NULL)
        continue;
      name = key + strlen (ss->prefix);
      if (strncmp (key, ss->prefix, strlen (ss->prefix)) == 0 &&
          *name && strchr (name, '/') == NULL) {
        char *s = strdup (name);
        if (s == NULL || name_list_append (names, s) == -1) {
          free (s);
          free (key);
          s3_response_free (&rs);
          goto out;
        }
      }
      free (key);
    }
    truncated = xml_next (rs.body, "IsTruncated", NULL);
    free (token);
    token = NULL;
    if (truncated && strcmp (truncated, "true") == 0)
      token = xml_next (rs.body, "NextContinuationToken", NULL);
    s3_response_free (&rs);
    if (token == NULL)
      break;
  }
  ret = 0;
 out:
  if (ret == -1)
    error ("%s: cannot list the objects", st->location);
  free (token);
  return ret;
}

/* --- Multipart uploads ------------------------------------------------ */

struct part {
  int number;
  char *buf;
  size_t len;
  struct part *next;
};

struct s3_upload {
  struct store_upload u;
  struct s3_store *ss;
  char *key;
  char *upload_id;              /* NULL until a second part is needed */
  size_t part_size;
  int max_in_flight;

  /* Part 1: the head and what follows it, sent at the commit. */
  char *first;
  size_t first_cap, first_len;
  /* The part being filled (number next_number). */
  char *cur;
  size_t cur_len;
  int next_number;

  /* The sender threads and their queue. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct part *queue, *queue_tail;
  int in_flight;                /* queued or being sent */
  bool stopping, failed;
  char **etags;                 /* [number], malloc'd strings */
  size_t netags;
  pthread_t *threads;
  int nthreads;
  char **free_bufs;             /* part buffers to reuse */
  int nfree;
};

static int
create_multipart (struct s3_upload *su)
{
  struct s3_response rs;
  int r = s3_perform (su->ss->c, &(struct s3_request) {
      .method = "POST", .key = su->key, .query = "uploads=" }, &rs);

  if (r == 0) {
    su->upload_id = xml_next (rs.body, "UploadId", NULL);
    if (su->upload_id == NULL) {
      error ("s3://%s/%s: CreateMultipartUpload: no UploadId in the answer",
             su->ss->bucket, su->key);
      r = -1;
    }
  }
  s3_response_free (&rs);
  return r;
}

static int
send_part (struct s3_upload *su, int number, const void *buf, size_t len,
           char **etag)
{
  CLEANUP_FREE char *enc_id = s3_uri_encode (su->upload_id, false);
  CLEANUP_FREE char *q = NULL;
  struct s3_response rs;
  int r;

  if (enc_id == NULL ||
      asprintf (&q, "partNumber=%d&uploadId=%s", number, enc_id) == -1) {
    error_errno ("malloc");
    return -1;
  }
  r = s3_perform (su->ss->c, &(struct s3_request) {
      .method = "PUT", .key = su->key, .query = q, .body = buf,
      .body_len = len }, &rs);
  if (r == 0) {
    if (rs.etag[0] == '\0') {
      error ("s3://%s/%s: part %d: no ETag in the answer", su->ss->bucket,
             su->key, number);
      r = -1;
    }
    else if ((*etag = strdup (rs.etag)) == NULL)
      r = -1;
  }
  s3_response_free (&rs);
  return r;
}

static int
record_etag (struct s3_upload *su, int number, char *etag)
{
  if ((size_t) number >= su->netags) {
    size_t n = su->netags ? su->netags : 64;
    char **p;
    while (n <= (size_t) number)
      n *= 2;
    p = realloc (su->etags, n * sizeof *p);
    if (p == NULL)
      return -1;
    memset (p + su->netags, 0, (n - su->netags) * sizeof *p);
    su->etags = p;
    su->netags = n;
  }
  su->etags[number] = etag;
  return 0;
}

static void *
sender (void *opaque)
{
  struct s3_upload *su = opaque;

  pthread_mutex_lock (&su->lock);
  for (;;) {
    struct part *p;
    char *etag = NULL;
    int r;

    while (su->queue == NULL && !su->stopping)
      pthread_cond_wait (&su->cond, &su->lock);
    if (su->queue == NULL)
      break;
    p = su->queue;
    su->queue = p->next;
    if (su->queue == NULL)
      su->queue_tail = NULL;
    pthread_mutex_unlock (&su->lock);

    r = su->failed ? -1 : send_part (su, p->number, p->buf, p->len, &etag);

    pthread_mutex_lock (&su->lock);
    if (r == -1 || record_etag (su, p->number, etag) == -1) {
      free (etag);
      su->failed = true;
    }
    su->free_bufs[su->nfree++] = p->buf;
    free (p);
    su->in_flight--;
    pthread_cond_broadcast (&su->cond);
  }
  pthread_mutex_unlock (&su->lock);
  return NULL;
}

static int
start_senders (struct s3_upload *su)
{
  int i;

  su->threads = calloc (su->max_in_flight, sizeof *su->threads);
  su->free_bufs = calloc (su->max_in_flight + 1, sizeof *su->free_bufs);
  if (su->threads == NULL || su->free_bufs == NULL) {
    error_errno ("calloc");
    return -1;
  }
  for (i = 0; i < su->max_in_flight; ++i) {
    int err = pthread_create (&su->threads[i], NULL, sender, su);
    if (err) {
      errno = err;
      error_errno ("pthread_create");
      return -1;
    }
    su->nthreads++;
  }
  return 0;
}

/* Queue the full part CUR and get a buffer for the next one, waiting
 * while MAX_IN_FLIGHT parts are queued or being sent.
 */
static int
queue_part (struct s3_upload *su)
{
  struct part *p = malloc (sizeof *p);
  char *buf = NULL;

  if (p == NULL) {
    error_errno ("malloc");
    return -1;
  }
  if (su->upload_id == NULL &&
      (create_multipart (su) == -1 || start_senders (su) == -1)) {
    free (p);
    return -1;
  }
  *p = (struct part) { .number = su->next_number++, .buf = su->cur,
                       .len = su->cur_len };
  su->cur = NULL;
  su->cur_len = 0;

  pthread_mutex_lock (&su->lock);
  if (su->queue_tail)
    su->queue_tail->next = p;
  else
    su->queue = p;
  su->queue_tail = p;
  su->in_flight++;
  pthread_cond_broadcast (&su->cond);
  while (su->in_flight >= su->max_in_flight && !su->failed)
    pthread_cond_wait (&su->cond, &su->lock);
  if (su->nfree > 0)
    buf = su->free_bufs[--su->nfree];
  pthread_mutex_unlock (&su->lock);
  if (su->failed) {
    free (buf);
    return -1;
  }
  if (buf == NULL && (buf = malloc (su->part_size)) == NULL) {
    error_errno ("malloc");
    return -1;
  }
  su->cur = buf;
  return 0;
}

static int
su_append (struct store_upload *u, const void *buf, size_t len)
{
  struct s3_upload *su = (struct s3_upload *) u;
  const char *p = buf;

  while (len > 0) {
    size_t n;

    if (su->first_len < su->first_cap) {
      n = su->first_cap - su->first_len;
      if (n > len)
        n = len;
      memcpy (su->first + su->first_len, p, n);
      su->first_len += n;
    }
    else {
      if (su->cur == NULL && (su->cur = malloc (su->part_size)) == NULL) {
        error_errno ("malloc");
        return -1;
      }
      if (su->cur_len == su->part_size && queue_part (su) == -1)
        return -1;
      n = su->part_size - su->cur_len;
      if (n > len)
        n = len;
      memcpy (su->cur + su->cur_len, p, n);
      su->cur_len += n;
    }
    p += n;
    len -= n;
  }
  return 0;
}

static int
su_set_head (struct store_upload *u, const void *buf)
{
  struct s3_upload *su = (struct s3_upload *) u;

  memcpy (su->first, buf, u->head_size);
  return 0;
}

static void
stop_senders (struct s3_upload *su)
{
  int i;

  pthread_mutex_lock (&su->lock);
  su->stopping = true;
  pthread_cond_broadcast (&su->cond);
  pthread_mutex_unlock (&su->lock);
  for (i = 0; i < su->nthreads; ++i)
    pthread_join (su->threads[i], NULL);
  su->nthreads = 0;
}

static void
su_free (struct s3_upload *su)
{
  size_t i;

  while (su->queue) {
    struct part *p = su->queue;
    su->queue = p->next;
    free (p->buf);
    free (p);
  }
  for (i = 0; i < su->netags; ++i)
    free (su->etags[i]);
  free (su->etags);
  for (i = 0; i < (size_t) su->nfree; ++i)
    free (su->free_bufs[i]);
  free (su->free_bufs);
  free (su->threads);
  free (su->first);
  free (su->cur);
  free (su->upload_id);
  free (su->key);
  free (su->u.name);
  pthread_cond_destroy (&su->cond);
  pthread_mutex_destroy (&su->lock);
  free (su);
}

/* AbortMultipartUpload, if one was started. */
static void
abort_remote (struct s3_upload *su)
{
  if (su->upload_id) {
    CLEANUP_FREE char *enc_id = s3_uri_encode (su->upload_id, false);
    CLEANUP_FREE char *q = NULL;
    struct s3_response rs;

    if (enc_id && asprintf (&q, "uploadId=%s", enc_id) != -1 &&
        s3_perform (su->ss->c, &(struct s3_request) {
            .method = "DELETE", .key = su->key, .query = q,
            .missing_ok = true }, &rs) >= 0)
      s3_response_free (&rs);
  }
}

static void
su_abort (struct store_upload *u)
{
  struct s3_upload *su = (struct s3_upload *) u;

  su->failed = true;
  stop_senders (su);
  abort_remote (su);
  su_free (su);
}

static void
su_cancel (struct store_upload *u)
{
  abort_remote ((struct s3_upload *) u);
}

static int
complete (struct s3_upload *su)
{
  CLEANUP_FREE char *enc_id = s3_uri_encode (su->upload_id, false);
  CLEANUP_FREE char *q = NULL, *body = NULL;
  size_t size = 0;
  FILE *fp;
  struct s3_response rs;
  int i, r;

  if (enc_id == NULL || asprintf (&q, "uploadId=%s", enc_id) == -1 ||
      (fp = open_memstream (&body, &size)) == NULL) {
    error_errno ("malloc");
    return -1;
  }
  fputs ("<CompleteMultipartUpload>", fp);
  for (i = 1; i < su->next_number; ++i)
    fprintf (fp, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
             i, su->etags[i]);
  fputs ("</CompleteMultipartUpload>", fp);
  if (fclose (fp) == EOF) {
    error_errno ("open_memstream");
    return -1;
  }
  r = s3_perform (su->ss->c, &(struct s3_request) {
      .method = "POST", .key = su->key, .query = q, .body = body,
      .body_len = size }, &rs);
  /* S3 may answer 200 and still fail, with an <Error> body. */
  if (r == 0 && rs.body && strstr (rs.body, "<Error>")) {
    CLEANUP_FREE char *code = xml_next (rs.body, "Code", NULL);
    CLEANUP_FREE char *msg = xml_next (rs.body, "Message", NULL);
    error ("s3://%s/%s: CompleteMultipartUpload failed: %s%s%s",
           su->ss->bucket, su->key, code ? code : "error",
           msg ? ": " : "", msg ? msg : "");
    r = -1;
  }
  s3_response_free (&rs);
  return r;
}

static int
su_commit (struct store_upload *u)
{
  struct s3_upload *su = (struct s3_upload *) u;
  char *etag = NULL;
  int r;

  if (su->upload_id == NULL && su->cur_len == 0) {
    /* One part: a plain PUT. */
    struct s3_response rs;

    r = s3_perform (su->ss->c, &(struct s3_request) {
        .method = "PUT", .key = su->key, .body = su->first,
        .body_len = su->first_len }, &rs);
    s3_response_free (&rs);
    if (r == -1) {
      su_abort (u);
      return -1;
    }
    su_free (su);
    return 0;
  }
  /* The last part, any size. */
  if (su->cur_len > 0 && queue_part (su) == -1)
    goto fail;
  pthread_mutex_lock (&su->lock);
  while (su->in_flight > 0 && !su->failed)
    pthread_cond_wait (&su->cond, &su->lock);
  pthread_mutex_unlock (&su->lock);
  if (su->failed)
    goto fail;
  stop_senders (su);
  /* Part 1 now that its head is known. */
  if (send_part (su, 1, su->first, su->first_len, &etag) == -1 ||
      record_etag (su, 1, etag) == -1 || complete (su) == -1)
    goto fail;
  su_free (su);
  return 0;

 fail:
  su_abort (u);
  return -1;
}

static void
su_expect (struct store_upload *u, uint64_t bytes)
{
  struct s3_upload *su = (struct s3_upload *) u;
  uint64_t need = bytes / (MAX_PARTS - 100) + 1;

  /* Only before the first part is sent. */
  if (su->upload_id == NULL && su->cur == NULL && need > su->part_size) {
    su->part_size = (need + MIN_PART - 1) / MIN_PART * MIN_PART;
    if (su->first_cap < su->part_size) {
      char *p = realloc (su->first, su->part_size);
      if (p) {
        su->first = p;
        su->first_cap = su->part_size;
      }
    }
  }
}

static const struct upload_ops s3_upload_ops = {
  .append = su_append,
  .set_head = su_set_head,
  .commit = su_commit,
  .abort = su_abort,
  .cancel = su_cancel,
  .expect = su_expect,
};

static struct store_upload *
s_upload_begin (struct store *st, const char *name, size_t head_size)
{
  struct s3_store *ss = (struct s3_store *) st;
  struct s3_upload *su = calloc (1, sizeof *su);

  if (su == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  pthread_mutex_init (&su->lock, NULL);
  pthread_cond_init (&su->cond, NULL);
  su->u.ops = &s3_upload_ops;
  su->u.st = st;
  su->ss = ss;
  su->part_size = s3_opts.part_size ? s3_opts.part_size : DEFAULT_PART;
  su->max_in_flight = s3_opts.uploads > 0 ? s3_opts.uploads
    : DEFAULT_UPLOADS;
  su->first_cap = head_size > su->part_size ? head_size : su->part_size;
  su->first_len = head_size;
  su->next_number = 2;
  su->u.name = strdup (name);
  su->key = key_of (ss, name);
  su->first = calloc (1, su->first_cap);
  if (su->u.name == NULL || su->key == NULL || su->first == NULL) {
    error_errno ("malloc");
    su_free (su);
    return NULL;
  }
  return &su->u;
}

static const struct store_ops s3_ops = {
  .name = "s3",
  .close = s_close,
  .lock = s_lock,
  .cleanup = s_cleanup,
  .unreachable = s_unreachable,
  .get = s_get,
  .put = s_put,
  .stat = s_stat,
  .pread_many = s_pread_many,
  .delete = s_delete,
  .list = s_list,
  .upload_begin = s_upload_begin,
};

struct store *
store_s3_open (const char *url)
{
  struct s3_store *ss;
  const char *b = url + 5, *slash = strchr (b, '/');
  size_t plen;

  if (slash == b || *b == '\0') {
    error ("%s: expected s3://BUCKET/PREFIX", url);
    return NULL;
  }
  ss = calloc (1, sizeof *ss);
  if (ss == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  ss->st.ops = &s3_ops;
  ss->bucket = slash ? strndup (b, slash - b) : strdup (b);
  if (slash) {
    while (*slash == '/')
      slash++;
    plen = strlen (slash);
    while (plen > 0 && slash[plen - 1] == '/')
      plen--;
  }
  else
    plen = 0;
  if (plen > 0) {
    if (asprintf (&ss->prefix, "%.*s/", (int) plen, slash) == -1)
      ss->prefix = NULL;
  }
  else
    ss->prefix = strdup ("");
  if (ss->bucket == NULL || ss->prefix == NULL) {
    error_errno ("malloc");
    s_close (&ss->st);
    return NULL;
  }
  ss->c = s3_client_new (ss->bucket);
  if (ss->c == NULL) {
    s_close (&ss->st);
    return NULL;
  }
  return &ss->st;
}
