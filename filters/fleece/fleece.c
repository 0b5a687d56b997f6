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

/* The fleece filter: point-in-time views of a disk that keeps being
 * written, by copy-before-write.
 *
 * On its own export the filter passes every request down; around each
 * write, write-zeroes and trim it runs the copy-before-write engine
 * (cbw.c): while a backup session is open, the first write into a
 * granule the session still needs copies the granule's old data into
 * the session's store before the write goes on.  The sessions themselves
 * are begun and ended by the server (backup-begin and backup-end on the
 * control socket), which finds the engine through the "fleece" service
 * and serves each session's views as exports of their own.
 *
 * Placement: the filter must be above the dirty filter (--filter=fleece
 * --filter=dirty), so that a write is marked in the bitmaps inside the
 * same window the engine's gate covers: a session and its frozen bitmap
 * then begin at one instant between two writes.
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
#include <sys/stat.h>

#include <nbdcbt-filter.h>

#include "cbw.h"
#include "cleanup.h"
#include "fleece-service.h"

/* The instance: one per export whose chain has the filter.  It is also
 * every connection's handle (the filter keeps nothing per connection).
 */
struct fleece {
  char *session_dir;            /* NULL until config_complete resolves it */
  struct cbw_disk *disk;        /* made at config_complete, sized later */
  struct fleece_service service;
};

static const struct fleece_service service_template;

static void *
fleece_instance_new (void)
{
  struct fleece *f = calloc (1, sizeof *f);

  if (f == NULL) {
    nbdcbt_error ("fleece: %m");
    return NULL;
  }
  f->service = service_template;
  f->service.fleece = f;
  return f;
}

static void
fleece_instance_free (void *instance)
{
  struct fleece *f = instance;

  free (f->session_dir);
  cbw_disk_free (f->disk);
  free (f);
}

static int
fleece_config (nbdcbt_next_config *next, nbdcbt_backend *nxdata,
               void *instance, const char *key, const char *value)
{
  struct fleece *f = instance;

  if (strcmp (key, "session-dir") == 0) {
    free (f->session_dir);
    f->session_dir = nbdcbt_absolute_path (value);
    return f->session_dir ? 0 : -1;
  }
  return next (nxdata, key, value);
}

#define fleece_config_help \
  "session-dir=DIR   Where backup sessions keep their stores (default\n" \
  "                  $TMPDIR, else /var/tmp)."

static int
fleece_config_complete (nbdcbt_next_config_complete *next,
                        nbdcbt_backend *nxdata, void *instance)
{
  struct fleece *f = instance;
  struct stat sb;

  if (f->session_dir == NULL) {
    const char *t = getenv ("TMPDIR");

    f->session_dir = strdup (t && *t ? t : "/var/tmp");
    if (f->session_dir == NULL) {
      nbdcbt_error ("fleece: %m");
      return -1;
    }
  }
  if (stat (f->session_dir, &sb) == -1) {
    nbdcbt_error ("fleece: session-dir=%s: %m", f->session_dir);
    return -1;
  }
  if (!S_ISDIR (sb.st_mode)) {
    nbdcbt_error ("fleece: session-dir=%s: not a directory",
                  f->session_dir);
    return -1;
  }
  /* The size comes with the first connection (or the first session). */
  f->disk = cbw_disk_new (0);
  if (f->disk == NULL) {
    nbdcbt_error ("fleece: %m");
    return -1;
  }
  return next (nxdata);
}

/* The engine, now of SIZE bytes. */
static struct cbw_disk *
get_disk (struct fleece *f, uint64_t size, char **errp)
{
  if (cbw_disk_set_size (f->disk, size) == -1) {
    if (asprintf (errp, "fleece: the disk has %" PRIu64 " bytes, not %"
                  PRIu64 " (it cannot change size under the filter)",
                  cbw_disk_size (f->disk), size) == -1)
      *errp = NULL;
    return NULL;
  }
  return f->disk;
}

static struct cbw_disk *
service_disk (void *fleece, uint64_t size, char **errp)
{
  *errp = NULL;
  return get_disk (fleece, size, errp);
}

static void
service_quiesce (void *fleece)
{
  cbw_quiesce (((struct fleece *) fleece)->disk);
}

static void
service_resume (void *fleece)
{
  cbw_resume (((struct fleece *) fleece)->disk);
}

static const char *
service_session_dir (void *fleece)
{
  return ((struct fleece *) fleece)->session_dir;
}

static const struct fleece_service service_template = {
  .disk = service_disk,
  .session_dir = service_session_dir,
  .quiesce = service_quiesce,
  .resume = service_resume,
  .session_new = cbw_session_new,
  .session_detach = cbw_session_detach,
  .session_ref = cbw_session_ref,
  .session_unref = cbw_session_unref,
  .session_read = cbw_session_read,
  .session_map = cbw_session_map,
  .session_hold = cbw_session_hold,
  .session_unhold = cbw_session_unhold,
  .session_stats = cbw_session_stats,
  .session_failed = cbw_session_failed,
  .session_unread = cbw_session_unread,
  .unread_free = cbw_unread_free,
};

static const void *
fleece_get_service (nbdcbt_backend *nxdata, void *instance, const char *name)
{
  struct fleece *f = instance;

  if (strcmp (name, FLEECE_SERVICE) == 0)
    return &f->service;
  return nbdcbt_next_service (nxdata, name);
}

static void *
fleece_open (nbdcbt_next_open *next, nbdcbt_context *nxdata, void *instance,
             int readonly)
{
  if (next (nxdata, readonly) == -1)
    return NULL;
  return instance;
}

static int
fleece_prepare (const struct nbdcbt_next_ops *next_ops,
                nbdcbt_context *nxdata, void *handle, int readonly)
{
  struct fleece *f = handle;
  CLEANUP_FREE char *msg = NULL;
  int64_t size;

  if (cbw_disk_size (f->disk) != 0)
    return 0;
  size = next_ops->get_size (nxdata);
  if (size == -1)
    return -1;
  if (get_disk (f, size, &msg) == NULL) {
    nbdcbt_error ("%s", msg ? msg : "fleece: out of memory");
    return -1;
  }
  return 0;
}

/* The old data is read from the layer below, on the writer's own
 * connection.
 */
struct below {
  const struct nbdcbt_next_ops *next_ops;
  nbdcbt_context *nxdata;
};

static int
read_below (void *opaque, void *buf, uint32_t count, uint64_t offset,
            int *err)
{
  struct below *b = opaque;

  return b->next_ops->pread (b->nxdata, buf, count, offset, 0, err);
}

enum change { CHANGE_WRITE, CHANGE_ZERO, CHANGE_TRIM };

static int
change (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
        struct fleece *f, enum change what, const void *buf, uint32_t count,
        uint64_t offset, uint32_t flags, int *err)
{
  struct cbw_disk *d = f->disk;
  struct below b = { next_ops, nxdata };
  int r;

  cbw_write_enter (d);
  cbw_before_write (d, offset, count, read_below, &b);
  switch (what) {
  case CHANGE_WRITE:
    r = next_ops->pwrite (nxdata, buf, count, offset, flags, err);
    break;
  case CHANGE_ZERO:
    r = next_ops->zero (nxdata, count, offset, flags, err);
    break;
  default:
    r = next_ops->trim (nxdata, count, offset, flags, err);
  }
  cbw_write_leave (d);
  return r;
}

static int
fleece_pwrite (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, const void *buf,
               uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return change (next_ops, nxdata, handle, CHANGE_WRITE, buf, count, offset, flags,
                 err);
}

static int
fleece_zero (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
             void *handle, uint32_t count, uint64_t offset, uint32_t flags,
             int *err)
{
  return change (next_ops, nxdata, handle, CHANGE_ZERO, NULL, count, offset, flags,
                 err);
}

static int
fleece_trim (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
             void *handle, uint32_t count, uint64_t offset, uint32_t flags,
             int *err)
{
  return change (next_ops, nxdata, handle, CHANGE_TRIM, NULL, count, offset, flags,
                 err);
}

static struct nbdcbt_filter filter = {
  .name = "fleece",
  .longname = "nbdcbt fleece filter",
  .version = PACKAGE_VERSION,
  .description = "point-in-time views by copy-before-write",
  .config_help = fleece_config_help,
  .instance_new = fleece_instance_new,
  .instance_free = fleece_instance_free,
  .config = fleece_config,
  .config_complete = fleece_config_complete,
  .get_service = fleece_get_service,
  .open = fleece_open,
  .prepare = fleece_prepare,
  .pwrite = fleece_pwrite,
  .zero = fleece_zero,
  .trim = fleece_trim,
};

NBDCBT_REGISTER_FILTER (filter)
