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

/* nbdcbt-backup: a chain in a local directory (store.h).
 *
 * DIR/NAME for each object.  Small objects are replaced through a
 * temporary file (fsync, rename, fsync of DIR); uploads are written as
 * DIR/.NAME.part and renamed when committed, so that an interrupted
 * one leaves only a .part file, which store_cleanup removes.  DIR/.lock
 * is flock'd by the writer.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "cleanup.h"
#include "store-impl.h"
#include "utils.h"

static char *
path_of (struct store *st, const char *name)
{
  return dir_file (st->dir, name);
}

static int
fsync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd == -1 || fsync (fd) == -1) {
    error_errno ("%s: fsync", dir);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  close (fd);
  return 0;
}

static void
d_close (struct store *st)
{
  free (st);
}

/* Only one backup at a time writes into a directory. */
static int
d_lock (struct store *st)
{
  CLEANUP_FREE char *path = path_of (st, ".lock");
  int fd;

  if (path == NULL)
    return -1;
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd == -1) {
    error_errno ("%s", path);
    return -1;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      error ("%s: another backup is running in this directory", st->dir);
    else
      error_errno ("%s: flock", path);
    close (fd);
    return -1;
  }
  return 0;                     /* held until exit */
}

/* Leftovers of interrupted runs (we hold the lock, so none is live). */
static int
d_cleanup (struct store *st)
{
  DIR *d = opendir (st->dir);
  struct dirent *ent;

  if (d == NULL)
    return 0;
  while ((ent = readdir (d)) != NULL) {
    size_t len = strlen (ent->d_name);
    if (strncmp (ent->d_name, ".backup-", 8) == 0 && len > 5 &&
        strcmp (ent->d_name + len - 5, ".part") == 0) {
      CLEANUP_FREE char *p = path_of (st, ent->d_name);
      if (p && unlink (p) == 0)
        info ("removed %s left by an interrupted backup", p);
    }
  }
  closedir (d);
  return 0;
}

static int
d_get (struct store *st, const char *name, char **data, size_t *len)
{
  CLEANUP_FREE char *path = path_of (st, name);
  struct stat s;
  char *buf;
  int fd;

  if (path == NULL)
    return -1;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENOENT)
      return 1;
    error_errno ("%s", path);
    return -1;
  }
  if (fstat (fd, &s) == -1 || (buf = malloc (s.st_size + 1)) == NULL) {
    error_errno ("%s", path);
    close (fd);
    return -1;
  }
  if (full_pread (fd, buf, s.st_size, 0) == -1) {
    error_errno ("%s: read", path);
    free (buf);
    close (fd);
    return -1;
  }
  close (fd);
  buf[s.st_size] = '\0';
  *data = buf;
  *len = s.st_size;
  return 0;
}

static int
d_put (struct store *st, const char *name, const void *data, size_t len)
{
  CLEANUP_FREE char *path = path_of (st, name);
  CLEANUP_FREE char *tmp = NULL;
  int fd;

  if (path == NULL)
    return -1;
  if (asprintf (&tmp, "%s/.%s.tmp", st->dir, name) == -1) {
    error_errno ("asprintf");
    return -1;
  }
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1) {
    error_errno ("%s", tmp);
    return -1;
  }
  if (full_write (fd, data, len) == -1 || fsync (fd) == -1) {
    error_errno ("%s: write", tmp);
    close (fd);
    unlink (tmp);
    return -1;
  }
  if (close (fd) == -1) {
    error_errno ("%s: close", tmp);
    unlink (tmp);
    return -1;
  }
  if (rename (tmp, path) == -1) {
    error_errno ("rename %s to %s", tmp, path);
    unlink (tmp);
    return -1;
  }
  return fsync_dir (st->dir);
}

static int
d_stat (struct store *st, const char *name, uint64_t *size)
{
  CLEANUP_FREE char *path = path_of (st, name);
  struct stat s;

  if (path == NULL)
    return -1;
  if (stat (path, &s) == -1) {
    if (errno == ENOENT)
      return 1;
    error_errno ("%s", path);
    return -1;
  }
  *size = s.st_size;
  return 0;
}

static int
d_pread_many (struct store *st, const char *name, size_t n,
              void *const *bufs, const size_t *counts,
              const uint64_t *offsets)
{
  CLEANUP_FREE char *path = path_of (st, name);
  size_t i;
  int fd;

  if (path == NULL)
    return -1;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    error_errno ("%s", path);
    return -1;
  }
  for (i = 0; i < n; ++i) {
    if (full_pread (fd, bufs[i], counts[i], offsets[i]) == -1) {
      error ("%s: read of %zu bytes at %" PRIu64 ": %s", path, counts[i],
             offsets[i], errno ? strerror (errno) : "end of file");
      close (fd);
      return -1;
    }
  }
  close (fd);
  return 0;
}

static int
d_delete (struct store *st, const char *name)
{
  CLEANUP_FREE char *path = path_of (st, name);

  if (path == NULL)
    return -1;
  if (unlink (path) == -1 && errno != ENOENT) {
    error_errno ("%s: unlink", path);
    return -1;
  }
  return 0;
}

static int
d_list (struct store *st, name_list *names)
{
  DIR *d = opendir (st->dir);
  struct dirent *ent;

  if (d == NULL) {
    error_errno ("%s", st->dir);
    return -1;
  }
  while ((errno = 0, ent = readdir (d)) != NULL) {
    char *s;

    if (ent->d_name[0] == '.')
      continue;
    if (ent->d_type != DT_REG && ent->d_type != DT_UNKNOWN)
      continue;
    s = strdup (ent->d_name);
    if (s == NULL || name_list_append (names, s) == -1) {
      error_errno ("malloc");
      free (s);
      closedir (d);
      return -1;
    }
  }
  closedir (d);
  return 0;
}

/* --- Uploads: DIR/.NAME.part, renamed at commit ----------------------- */

struct dir_upload {
  struct store_upload u;
  int fd;
  char *part, *final;
};

static int
du_append (struct store_upload *u, const void *buf, size_t len)
{
  struct dir_upload *du = (struct dir_upload *) u;

  if (full_pwrite (du->fd, buf, len, u->size) == -1) {
    error_errno ("%s: write", du->part);
    return -1;
  }
  return 0;
}

static int
du_set_head (struct store_upload *u, const void *buf)
{
  struct dir_upload *du = (struct dir_upload *) u;

  if (full_pwrite (du->fd, buf, u->head_size, 0) == -1) {
    error_errno ("%s: write", du->part);
    return -1;
  }
  return 0;
}

static void
du_free (struct dir_upload *du)
{
  if (du->fd >= 0)
    close (du->fd);
  free (du->part);
  free (du->final);
  free (du->u.name);
  free (du);
}

static void
du_abort (struct store_upload *u)
{
  struct dir_upload *du = (struct dir_upload *) u;

  unlink (du->part);
  du_free (du);
}

static void
du_cancel (struct store_upload *u)
{
  struct dir_upload *du = (struct dir_upload *) u;

  unlink (du->part);
}

static int
du_commit (struct store_upload *u)
{
  struct dir_upload *du = (struct dir_upload *) u;

  if (fsync (du->fd) == -1) {
    error_errno ("%s: fsync", du->part);
    du_abort (u);
    return -1;
  }
  if (rename (du->part, du->final) == -1) {
    error_errno ("rename %s to %s", du->part, du->final);
    du_abort (u);
    return -1;
  }
  if (fsync_dir (u->st->dir) == -1) {
    du_free (du);
    return -1;
  }
  du_free (du);
  return 0;
}

static const struct upload_ops dir_upload_ops = {
  .append = du_append,
  .set_head = du_set_head,
  .commit = du_commit,
  .abort = du_abort,
  .cancel = du_cancel,
};

static struct store_upload *
d_upload_begin (struct store *st, const char *name, size_t head_size)
{
  struct dir_upload *du = calloc (1, sizeof *du);

  if (du == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  du->fd = -1;
  du->u.ops = &dir_upload_ops;
  du->u.st = st;
  if ((du->u.name = strdup (name)) == NULL ||
      asprintf (&du->part, "%s/.%s.part", st->dir, name) == -1 ||
      (du->final = path_of (st, name)) == NULL) {
    error_errno ("malloc");
    du->part = NULL;
    du_free (du);
    return NULL;
  }
  du->fd = open (du->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (du->fd == -1) {
    error_errno ("%s", du->part);
    du_free (du);
    return NULL;
  }
  if (head_size > 0 && ftruncate (du->fd, head_size) == -1) {
    error_errno ("%s: ftruncate", du->part);
    du_abort (&du->u);
    return NULL;
  }
  return &du->u;
}

static const struct store_ops dir_ops = {
  .name = "directory",
  .close = d_close,
  .lock = d_lock,
  .cleanup = d_cleanup,
  .get = d_get,
  .put = d_put,
  .stat = d_stat,
  .pread_many = d_pread_many,
  .delete = d_delete,
  .list = d_list,
  .upload_begin = d_upload_begin,
};

struct store *
store_dir_open (const char *path, bool create)
{
  struct store *st;

  /* Without CREATE a missing directory is found by the first read (the
   * manifest's absence says "no chain here").
   */
  if (create && mkdir (path, 0755) == -1 && errno != EEXIST) {
    error_errno ("mkdir %s", path);
    return NULL;
  }
  st = calloc (1, sizeof *st);
  if (st == NULL || (st->dir = strdup (path)) == NULL) {
    error_errno ("malloc");
    free (st);
    return NULL;
  }
  st->ops = &dir_ops;
  return st;
}
