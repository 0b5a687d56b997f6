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

/* nbdcbt log filter: one line per request in a log file.
 *
 * Each line is built in a local buffer and written with a single write(2)
 * to a file opened O_APPEND, so lines from parallel requests never mix
 * and no lock is needed.  Each instance (export) has its own log file and
 * numbers its connections from 1.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nbdcbt-filter.h"

struct log_instance {
  char *logfile;
  int logfd;
  uint64_t connections;  /* atomic counter */
};

struct handle {
  struct log_instance *li;
  uint64_t connection;
  uint64_t next_id;      /* atomic */
};

/* A log line under construction. */
struct line {
  char buf[4096];
  size_t len;
  bool truncated;
};

static void line_add (struct line *l, const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 2, 3)));

static void
line_vadd (struct line *l, const char *fs, va_list args)
{
  size_t room = sizeof l->buf - 1 - l->len; /* keep one byte for '\n' */
  int n;

  if (l->truncated)
    return;
  n = vsnprintf (l->buf + l->len, room, fs, args);
  if (n < 0 || (size_t) n >= room) {
    l->len = sizeof l->buf - 1;
    l->truncated = true;
  }
  else
    l->len += n;
}

static void
line_add (struct line *l, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  line_vadd (l, fs, args);
  va_end (args);
}

static void
line_start (struct line *l, const struct handle *h)
{
  struct timespec ts;
  struct tm tm;
  char when[32];

  l->len = 0;
  l->truncated = false;
  clock_gettime (CLOCK_REALTIME, &ts);
  localtime_r (&ts.tv_sec, &tm);
  strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  line_add (l, "%s.%06ld connection=%" PRIu64 " ",
            when, ts.tv_nsec / 1000, h->connection);
}

static void
line_write (struct line *l, const struct handle *h)
{
  ssize_t r;

  if (h->li->logfd == -1)
    return;
  l->buf[l->len++] = '\n';
  /* A failing log must not fail the request: the line is lost. */
  do
    r = write (h->li->logfd, l->buf, l->len);
  while (r == -1 && errno == EINTR);
}

/* "return=0" or "return=-1 (EIO)".  *ERR is only set when R is -1. */
static void
line_result (struct line *l, int r, const int *err)
{
  if (r == -1) {
    const char *name = strerrorname_np (*err);

    if (name)
      line_add (l, " return=-1 (%s)", name);
    else
      line_add (l, " return=-1 (errno %d)", *err);
  }
  else
    line_add (l, " return=%d", r);
}

/* The extents found, as (offset, length, type) triples. */
static void
line_extents (struct line *l, const struct nbdcbt_extents *extents)
{
  size_t i, n = nbdcbt_extents_count (extents);

  line_add (l, " extents=[");
  for (i = 0; i < n; ++i) {
    struct nbdcbt_extent e = nbdcbt_get_extent (extents, i);

    line_add (l, "%s(0x%" PRIx64 ", 0x%" PRIx64 ", %" PRIu32 ")",
              i ? ", " : "", e.offset, e.length, e.type);
  }
  line_add (l, "]");
}

/* The line of one request: "NAME id=ID DETAILS return=R", and the extents
 * found when EXTENTS is given and the request succeeded.
 */
static void log_request (const struct handle *h, const char *name,
                         uint64_t id, int r, const int *err,
                         const struct nbdcbt_extents *extents,
                         const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 7, 8)));

static void
log_request (const struct handle *h, const char *name, uint64_t id,
             int r, const int *err, const struct nbdcbt_extents *extents,
             const char *fs, ...)
{
  struct line l;
  va_list args;

  line_start (&l, h);
  line_add (&l, "%s id=%" PRIu64, name, id);
  va_start (args, fs);
  line_vadd (&l, fs, args);
  va_end (args);
  line_result (&l, r, err);
  if (r == 0 && extents)
    line_extents (&l, extents);
  line_write (&l, h);
}

static uint64_t
new_id (struct handle *h)
{
  return __atomic_add_fetch (&h->next_id, 1, __ATOMIC_RELAXED);
}

static void *
log_instance_new (void)
{
  struct log_instance *li = calloc (1, sizeof *li);

  if (li == NULL) {
    nbdcbt_error ("log: calloc: %m");
    return NULL;
  }
  li->logfd = -1;
  return li;
}

static void
log_instance_free (void *instance)
{
  struct log_instance *li = instance;

  free (li->logfile);
  free (li);
}

static int
log_config (nbdcbt_next_config *next, nbdcbt_backend *nxdata,
            void *instance, const char *key, const char *value)
{
  struct log_instance *li = instance;

  if (strcmp (key, "logfile") == 0) {
    free (li->logfile);
    li->logfile = nbdcbt_absolute_path (value);
    return li->logfile ? 0 : -1;
  }
  return next (nxdata, key, value);
}

static int
log_config_complete (nbdcbt_next_config_complete *next,
                     nbdcbt_backend *nxdata, void *instance)
{
  struct log_instance *li = instance;

  if (li->logfile == NULL) {
    nbdcbt_error ("log: the logfile=FILE parameter is required");
    return -1;
  }
  return next (nxdata);
}

static int
log_get_ready (nbdcbt_backend *nxdata, void *instance)
{
  struct log_instance *li = instance;

  li->logfd = open (li->logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                    0644);
  if (li->logfd == -1) {
    nbdcbt_error ("log: cannot open %s: %m", li->logfile);
    return -1;
  }
  return 0;
}

static void
log_cleanup (nbdcbt_backend *nxdata, void *instance)
{
  struct log_instance *li = instance;

  if (li->logfd >= 0)
    close (li->logfd);
  li->logfd = -1;
}

static void *
log_open (nbdcbt_next_open *next, nbdcbt_context *nxdata, void *instance,
          int readonly)
{
  struct log_instance *li = instance;
  struct handle *h;

  if (next (nxdata, readonly) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdcbt_error ("log: calloc: %m");
    return NULL;
  }
  h->li = li;
  h->connection = __atomic_add_fetch (&li->connections, 1, __ATOMIC_RELAXED);
  return h;
}

static void
log_close (void *handle)
{
  free (handle);
}

static int
log_prepare (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
             void *handle, int readonly)
{
  struct handle *h = handle;
  const char *export = nbdcbt_export_name ();
  struct line l;

  line_start (&l, h);
  line_add (&l, "Connect export='%s' readonly=%d size=0x%" PRIx64
            " write=%d flush=%d trim=%d zero=%d fast_zero=%d fua=%d"
            " extents=%d cache=%d multi_conn=%d",
            export ? export : "", readonly, next_ops->get_size (nxdata),
            next_ops->can_write (nxdata), next_ops->can_flush (nxdata),
            next_ops->can_trim (nxdata), next_ops->can_zero (nxdata),
            next_ops->can_fast_zero (nxdata), next_ops->can_fua (nxdata),
            next_ops->can_extents (nxdata), next_ops->can_cache (nxdata),
            next_ops->can_multi_conn (nxdata));
  line_write (&l, h);
  return 0;
}

static int
log_finalize (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
              void *handle)
{
  struct handle *h = handle;
  struct line l;

  line_start (&l, h);
  line_add (&l, "Disconnect transactions=%" PRIu64,
            __atomic_load_n (&h->next_id, __ATOMIC_RELAXED));
  line_write (&l, h);
  return 0;
}

/* " offset=0x... count=0x..." of the requests on a range. */
#define RANGE_FMT " offset=0x%" PRIx64 " count=0x%" PRIx32

static int
log_pread (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
           void *handle, void *buf, uint32_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint64_t id = new_id (h);
  int r = next_ops->pread (nxdata, buf, count, offset, flags, err);

  log_request (h, "Read", id, r, err, NULL, RANGE_FMT, offset, count);
  return r;
}

static int
log_pwrite (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
            void *handle, const void *buf, uint32_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint64_t id = new_id (h);
  int r = next_ops->pwrite (nxdata, buf, count, offset, flags, err);

  log_request (h, "Write", id, r, err, NULL, RANGE_FMT " fua=%d",
               offset, count, !!(flags & NBDCBT_FLAG_FUA));
  return r;
}

static int
log_flush (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
           void *handle, uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint64_t id = new_id (h);
  int r = next_ops->flush (nxdata, flags, err);

  log_request (h, "Flush", id, r, err, NULL, "%s", "");
  return r;
}

static int
log_trim (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
          void *handle, uint32_t count, uint64_t offset, uint32_t flags,
          int *err)
{
  struct handle *h = handle;
  uint64_t id = new_id (h);
  int r = next_ops->trim (nxdata, count, offset, flags, err);

  log_request (h, "Trim", id, r, err, NULL, RANGE_FMT " fua=%d",
               offset, count, !!(flags & NBDCBT_FLAG_FUA));
  return r;
}

static int
log_zero (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
          void *handle, uint32_t count, uint64_t offset, uint32_t flags,
          int *err)
{
  struct handle *h = handle;
  uint64_t id = new_id (h);
  int r = next_ops->zero (nxdata, count, offset, flags, err);

  log_request (h, "Zero", id, r, err, NULL,
               RANGE_FMT " trim=%d fua=%d fast=%d", offset, count,
               !!(flags & NBDCBT_FLAG_MAY_TRIM), !!(flags & NBDCBT_FLAG_FUA),
               !!(flags & NBDCBT_FLAG_FAST_ZERO));
  return r;
}

static int
log_cache (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
           void *handle, uint32_t count, uint64_t offset, uint32_t flags,
           int *err)
{
  struct handle *h = handle;
  uint64_t id = new_id (h);
  int r = next_ops->cache (nxdata, count, offset, flags, err);

  log_request (h, "Cache", id, r, err, NULL, RANGE_FMT, offset, count);
  return r;
}

static int
log_extents (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
             void *handle, uint32_t count, uint64_t offset, uint32_t flags,
             struct nbdcbt_extents *extents, int *err)
{
  struct handle *h = handle;
  uint64_t id = new_id (h);
  int r = next_ops->extents (nxdata, count, offset, flags, extents, err);

  log_request (h, "Extents", id, r, err, extents, RANGE_FMT " req_one=%d",
               offset, count, !!(flags & NBDCBT_FLAG_REQ_ONE));
  return r;
}

static int
log_meta_extents (const struct nbdcbt_next_ops *next_ops,
                  nbdcbt_context *nxdata, void *handle, const char *context,
                  uint32_t count, uint64_t offset, uint32_t flags,
                  struct nbdcbt_extents *extents, int *err)
{
  struct handle *h = handle;
  uint64_t id = new_id (h);
  int r = next_ops->meta_extents (nxdata, context, count, offset, flags,
                                  extents, err);

  log_request (h, "BlockStatus", id, r, err, extents,
               " context=%s" RANGE_FMT " req_one=%d", context, offset, count,
               !!(flags & NBDCBT_FLAG_REQ_ONE));
  return r;
}

static struct nbdcbt_filter filter = {
  .name = "log",
  .longname = "nbdcbt log filter",
  .version = PACKAGE_VERSION,
  .description = "Log every request to a file",
  .config_help = "logfile=FILE (required)  The file to append log lines to.",
  .instance_new = log_instance_new,
  .instance_free = log_instance_free,
  .config = log_config,
  .config_complete = log_config_complete,
  .get_ready = log_get_ready,
  .cleanup = log_cleanup,
  .open = log_open,
  .close = log_close,
  .prepare = log_prepare,
  .finalize = log_finalize,
  .pread = log_pread,
  .pwrite = log_pwrite,
  .flush = log_flush,
  .trim = log_trim,
  .zero = log_zero,
  .extents = log_extents,
  .cache = log_cache,
  .meta_extents = log_meta_extents,
};

NBDCBT_REGISTER_FILTER (filter)
