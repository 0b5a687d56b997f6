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

/* nbdcbt-backup: the chain-storage interface (store.h), dispatching to
 * a directory (store-dir.c) or an S3 prefix (store-s3.c).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "store-impl.h"

bool
store_is_url (const char *location)
{
  return strncmp (location, "s3://", 5) == 0;
}

struct store *
store_open (const char *location, bool create)
{
  struct store *st;

  if (store_is_url (location))
    st = store_s3_open (location);
  else if (strstr (location, "://") != NULL) {
    error ("%s: unknown kind of location (a directory or s3://BUCKET/PREFIX)",
           location);
    return NULL;
  }
  else
    st = store_dir_open (location, create);
  if (st == NULL)
    return NULL;
  st->location = strdup (location);
  if (st->location == NULL) {
    error_errno ("strdup");
    store_close (st);
    return NULL;
  }
  return st;
}

void
store_close (struct store *st)
{
  char *location, *dir;

  if (st == NULL)
    return;
  location = st->location;
  dir = st->dir;
  st->ops->close (st);
  free (location);
  free (dir);
}

const char *
store_location (const struct store *st)
{
  return st->location;
}

const char *
store_dir (const struct store *st)
{
  return st->dir;
}

char *
store_object_path (const struct store *st, const char *name)
{
  char *s;
  size_t len = strlen (st->location);
  const char *sep = len > 0 && st->location[len - 1] == '/' ? "" : "/";

  if (asprintf (&s, "%s%s%s", st->location, sep, name) == -1) {
    error_errno ("asprintf");
    return NULL;
  }
  return s;
}

int
store_lock (struct store *st)
{
  return st->ops->lock (st);
}

int
store_cleanup (struct store *st)
{
  return st->ops->cleanup (st);
}

bool
store_unreachable (struct store *st)
{
  return st->ops->unreachable && st->ops->unreachable (st);
}

int
store_get (struct store *st, const char *name, char **data, size_t *len)
{
  return st->ops->get (st, name, data, len);
}

int
store_put (struct store *st, const char *name, const void *data, size_t len)
{
  return st->ops->put (st, name, data, len);
}

int
store_stat (struct store *st, const char *name, uint64_t *size)
{
  return st->ops->stat (st, name, size);
}

int
store_pread (struct store *st, const char *name, void *buf, size_t count,
             uint64_t offset)
{
  void *bufs[1] = { buf };

  return st->ops->pread_many (st, name, 1, bufs, &count, &offset);
}

int
store_pread_many (struct store *st, const char *name, size_t n,
                  void *const *bufs, const size_t *counts,
                  const uint64_t *offsets)
{
  if (n == 0)
    return 0;
  return st->ops->pread_many (st, name, n, bufs, counts, offsets);
}

int
store_delete (struct store *st, const char *name)
{
  return st->ops->delete (st, name);
}

int
store_list (struct store *st, name_list *names)
{
  return st->ops->list (st, names);
}

void
name_list_free (name_list *names)
{
  size_t i;

  for (i = 0; i < names->len; ++i)
    free (names->ptr[i]);
  free (names->ptr);
  names->ptr = NULL;
  names->len = names->cap = 0;
}

/* --- Uploads ---------------------------------------------------------- */

static pthread_mutex_t uploads_lock = PTHREAD_MUTEX_INITIALIZER;
static struct store_upload *uploads;

void
store_upload_register (struct store_upload *u)
{
  pthread_mutex_lock (&uploads_lock);
  u->next = uploads;
  uploads = u;
  pthread_mutex_unlock (&uploads_lock);
}

void
store_upload_unregister (struct store_upload *u)
{
  struct store_upload **p;

  pthread_mutex_lock (&uploads_lock);
  for (p = &uploads; *p; p = &(*p)->next)
    if (*p == u) {
      *p = u->next;
      break;
    }
  pthread_mutex_unlock (&uploads_lock);
}

struct store_upload *
store_upload_begin (struct store *st, const char *name, size_t head_size)
{
  struct store_upload *u = st->ops->upload_begin (st, name, head_size);

  if (u == NULL)
    return NULL;
  u->head_size = head_size;
  u->size = head_size;
  store_upload_register (u);
  return u;
}

void
store_upload_expect (struct store_upload *u, uint64_t bytes)
{
  if (u->ops->expect)
    u->ops->expect (u, bytes);
}

int
store_upload_append (struct store_upload *u, const void *buf, size_t len)
{
  if (u->ops->append (u, buf, len) == -1)
    return -1;
  u->size += len;
  return 0;
}

uint64_t
store_upload_size (const struct store_upload *u)
{
  return u->size;
}

int
store_upload_set_head (struct store_upload *u, const void *buf)
{
  return u->ops->set_head (u, buf);
}

int
store_upload_commit (struct store_upload *u)
{
  store_upload_unregister (u);
  return u->ops->commit (u);
}

void
store_upload_abort (struct store_upload *u)
{
  store_upload_unregister (u);
  u->ops->abort (u);
}

void
store_abort_all_uploads (void)
{
  struct store_upload *u;

  pthread_mutex_lock (&uploads_lock);
  u = uploads;
  uploads = NULL;
  pthread_mutex_unlock (&uploads_lock);
  while (u) {
    u->ops->cancel (u);
    u = u->next;
  }
}
