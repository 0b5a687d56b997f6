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

/* nbdcbt file plugin: serve a raw file or block device.
 *
 * This file holds configuration, opening and the capability answers; the
 * data path is in rw.c, zero.c and extents.c.  The instance (one per
 * export) holds the configuration; every connection opens the file
 * itself, so there is no shared state and no lock on the hot path.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "nbdcbt-plugin.h"

#include "file.h"
#include "image-lock.h"
#include "qbm.h"
#include "sidecar.h"
#include "minmax.h"
#include "rounding.h"

struct file_instance {
  char *filename;
  char *qbm_path;               /* qbm=: the sidecar, else FILENAME.qbm */
  struct file_sidecar *sidecar; /* the bitmap store (get_ready..cleanup) */
  int lock_fd;                  /* holds QEMU's image locks, or -1 */
  bool cache_none;              /* cache=none: O_DIRECT */
  int fadvise_mode;
};

static bool load_failed;

static void
file_load (void)
{
  if (file_rw_load () == -1)
    load_failed = true;
}

static void
file_unload (void)
{
  file_rw_unload ();
}

static void *
file_instance_new (void)
{
  struct file_instance *fi = calloc (1, sizeof *fi);

  if (fi == NULL) {
    nbdcbt_error ("file: calloc: %m");
    return NULL;
  }
  fi->fadvise_mode = POSIX_FADV_NORMAL;
  fi->lock_fd = -1;
  return fi;
}

static void
file_instance_free (void *instance)
{
  struct file_instance *fi = instance;

  free (fi->filename);
  free (fi->qbm_path);
  free (fi);
}

static int
file_config (void *instance, const char *key, const char *value)
{
  struct file_instance *fi = instance;

  if (strcmp (key, "file") == 0) {
    free (fi->filename);
    fi->filename = nbdcbt_absolute_path (value);
    if (fi->filename == NULL)
      return -1;
  }
  else if (strcmp (key, "qbm") == 0) {
    free (fi->qbm_path);
    fi->qbm_path = nbdcbt_absolute_path (value);
    if (fi->qbm_path == NULL)
      return -1;
  }
  else if (strcmp (key, "cache") == 0) {
    if (strcmp (value, "default") == 0)
      fi->cache_none = false;
    else if (strcmp (value, "none") == 0)
      fi->cache_none = true;
    else {
      nbdcbt_error ("file: cache=%s: expected cache=default or cache=none",
                    value);
      return -1;
    }
  }
  else if (strcmp (key, "fadvise") == 0) {
    if (strcmp (value, "normal") == 0)
      fi->fadvise_mode = POSIX_FADV_NORMAL;
    else if (strcmp (value, "random") == 0)
      fi->fadvise_mode = POSIX_FADV_RANDOM;
    else if (strcmp (value, "sequential") == 0)
      fi->fadvise_mode = POSIX_FADV_SEQUENTIAL;
    else {
      nbdcbt_error ("file: fadvise=%s: expected normal, random "
                    "or sequential", value);
      return -1;
    }
  }
  else {
    nbdcbt_error ("file: unknown parameter '%s' "
                  "(known: file, qbm, cache, fadvise)", key);
    return -1;
  }
  return 0;
}

/* Check the file at startup so that a typo fails now, with a short
 * message, rather than on every connection.
 */
static int
file_config_complete (void *instance)
{
  struct file_instance *fi = instance;
  const char *filename = fi->filename;
  struct stat st;
  int fd;

  if (load_failed) {
    nbdcbt_error ("file: cannot create the bounce buffer key");
    return -1;
  }
  if (filename == NULL) {
    nbdcbt_error ("file: no file given, for example: nbdcbt file disk.img");
    return -1;
  }
  /* A QBM descriptor stands for the image it describes (as in QBM):
   * serve the image, with the descriptor as its sidecar.
   */
  {
    char *image;
    int r = fi->qbm_path == NULL ? qbm_probe (filename, &image) : 0;
    if (r == -1) {
      nbdcbt_error ("file: %s", qbm_last_error ());
      return -1;
    }
    if (r == 1) {
      nbdcbt_debug ("file: %s is a QBM descriptor: serving %s", filename,
                    image);
      fi->qbm_path = fi->filename;
      fi->filename = image;
      filename = image;
    }
  }
  if (stat (filename, &st) == -1) {
    nbdcbt_error ("file: %s: %m", filename);
    return -1;
  }
  if (S_ISDIR (st.st_mode)) {
    nbdcbt_error ("file: %s: is a directory, not a file or block device",
                  filename);
    return -1;
  }
  if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode)) {
    nbdcbt_error ("file: %s: not a regular file or block device", filename);
    return -1;
  }
  fd = open (filename,
             O_RDONLY | O_CLOEXEC | (fi->cache_none ? O_DIRECT : 0));
  if (fd == -1) {
    if (errno == EINVAL && fi->cache_none)
      nbdcbt_error ("file: %s: cache=none needs O_DIRECT, which this "
                    "file system does not support", filename);
    else
      nbdcbt_error ("file: cannot open %s: %m", filename);
    return -1;
  }
  close (fd);
  return 0;
}

/* The QBM sidecar, opened now so that a damaged one stops the server
 * before any client connects.
 */
/* QEMU's image locks (common/utils/image-lock.h) for the life of the
 * export: QEMU, qemu-img and qemu-nbd refuse the image while we write
 * it, a second nbdcbt too, and we refuse an image they write.
 */
static int
lock_image (struct file_instance *fi)
{
  const char *perm;
  bool shared;

  fi->lock_fd = open (fi->filename, O_RDONLY | O_CLOEXEC);
  if (fi->lock_fd == -1) {
    nbdcbt_error ("file: cannot open %s: %m", fi->filename);
    return -1;
  }
  if (image_lock (fi->lock_fd, !nbdcbt_read_only (), false, &perm,
                  &shared) == 0)
    return 0;
  if (errno == EAGAIN && perm)
    nbdcbt_error ("file: %s: Failed to get %s\"%s\" lock: is another "
                  "process (QEMU, qemu-img, qemu-nbd, nbdcbt) using the "
                  "image?", fi->filename, shared ? "shared " : "", perm);
  else if (errno == EAGAIN)
    nbdcbt_error ("file: %s: the image is locked exclusively by another "
                  "process", fi->filename);
  else
    nbdcbt_error ("file: %s: cannot lock the image: %m", fi->filename);
  close (fi->lock_fd);
  fi->lock_fd = -1;
  return -1;
}

static int
file_get_ready (void *instance)
{
  struct file_instance *fi = instance;

  if (lock_image (fi) == -1)
    return -1;
  return file_sidecar_open (fi->filename, fi->qbm_path, nbdcbt_read_only (),
                            &fi->sidecar);
}

static void
file_cleanup (void *instance)
{
  struct file_instance *fi = instance;

  file_sidecar_close (fi->sidecar);
  fi->sidecar = NULL;
  if (fi->lock_fd >= 0)
    close (fi->lock_fd);
  fi->lock_fd = -1;
}

static const void *
file_get_service (void *instance, const char *name)
{
  struct file_instance *fi = instance;

  if (strcmp (name, BITMAP_STORE_SERVICE) == 0)
    return file_sidecar_store (fi->sidecar);
  return NULL;
}

static int
file_thread_model (void *instance)
{
  return NBDCBT_THREAD_MODEL_PARALLEL;
}

static int
file_dump_plugin (void)
{
  printf ("file_cache_none=yes\n");
  printf ("file_fadvise=yes\n");
  printf ("file_extents=yes\n");
  return 0;
}

/* Read a small integer from a block device's sysfs queue directory (for
 * a partition, its parent's).  -1 if not found.
 */
static int64_t
read_sysfs_queue (dev_t dev, const char *attr)
{
  static const char *const where[] = { "queue", "../queue" };
  char path[128];
  size_t i;

  for (i = 0; i < sizeof where / sizeof where[0]; ++i) {
    FILE *fp;
    long long v;
    int ok;

    snprintf (path, sizeof path, "/sys/dev/block/%u:%u/%s/%s",
              major (dev), minor (dev), where[i], attr);
    fp = fopen (path, "re");
    if (fp == NULL)
      continue;
    ok = fscanf (fp, "%lld", &v) == 1;
    fclose (fp);
    if (ok)
      return v;
  }
  return -1;
}

/* The O_DIRECT alignments: statx when the kernel knows them, the logical
 * sector size for devices, else a safe 4096.
 */
static int
find_direct_alignment (struct handle *h)
{
  uint32_t offset_align = 0, mem_align = 0;
#ifdef STATX_DIOALIGN
  struct statx stx;

  if (statx (h->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0
      && (stx.stx_mask & STATX_DIOALIGN)) {
    offset_align = stx.stx_dio_offset_align;
    mem_align = stx.stx_dio_mem_align;
  }
#endif
  if (h->is_block_device)
    offset_align = MAX (offset_align, h->sector_size);
  if (offset_align == 0)
    offset_align = 4096;
  if (mem_align == 0)
    mem_align = 4096;
  if (!is_power_of_2 (offset_align) || !is_power_of_2 (mem_align)
      || offset_align > MAX_DIRECT_ALIGN || mem_align > MAX_DIRECT_ALIGN) {
    nbdcbt_error ("file: %s: unsupported O_DIRECT alignment "
                  "(offset %" PRIu32 ", memory %" PRIu32 ")",
                  h->filename, offset_align, mem_align);
    return -1;
  }
  h->align = offset_align;
  h->mem_align = mem_align;
  return 0;
}

/* Can we punch holes?  Probing past the end of the file (the size is
 * kept) touches no data.
 */
static bool
probe_punch_hole (int fd, off_t size)
{
  if (fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 size, 1) == 0)
    return true;
  return errno != EOPNOTSUPP && errno != ENOSYS;
}

static void *
file_open (void *instance, int readonly)
{
  struct file_instance *fi = instance;
  const char *filename = fi->filename;
  struct handle *h;
  struct stat st;
  int flags = O_CLOEXEC | (fi->cache_none ? O_DIRECT : 0);

  h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdcbt_error ("file: calloc: %m");
    return NULL;
  }
  h->filename = filename;
  h->can_write = !readonly;
  h->direct = fi->cache_none;
  h->align = h->mem_align = h->sector_size = 1;
  h->fd_buffered = -1;
  h->fd = open (filename, flags | (readonly ? O_RDONLY : O_RDWR));
  if (h->fd == -1 && !readonly
      && (errno == EACCES || errno == EROFS || errno == EPERM)) {
    nbdcbt_debug ("file: %s: cannot open for writing (%m), "
                  "serving it read-only", filename);
    h->can_write = false;
    h->fd = open (filename, flags | O_RDONLY);
  }
  if (h->fd == -1) {
    nbdcbt_error ("file: cannot open %s: %m", filename);
    goto err;
  }
  if (fstat (h->fd, &st) == -1) {
    nbdcbt_error ("file: fstat: %s: %m", filename);
    goto err;
  }
  h->is_block_device = S_ISBLK (st.st_mode);

  if (h->is_block_device) {
    int ss;

    if (ioctl (h->fd, BLKSSZGET, &ss) == 0 && ss > 0)
      h->sector_size = ss;
    else
      h->sector_size = 512;
    h->rotational = read_sysfs_queue (st.st_rdev, "rotational") == 1;
    h->can_extents = false;
    h->can_trim = h->can_write
      && read_sysfs_queue (st.st_rdev, "discard_max_bytes") > 0;
  }
  else {
    h->rotational = read_sysfs_queue (st.st_dev, "rotational") == 1;
    h->can_extents = lseek (h->fd, 0, SEEK_DATA) >= 0 || errno == ENXIO;
    h->can_trim = h->can_write && probe_punch_hole (h->fd, st.st_size);
  }
  h->can_punch_hole = h->can_trim;
  h->can_zero_range = true;
  h->can_fallocate = true;
  h->can_blkzeroout = h->is_block_device;
  h->can_rwf_dsync = true;

  h->fd_buffered = h->fd;
  if (h->direct) {
    if (find_direct_alignment (h) == -1)
      goto err;
    h->fd_buffered = open (filename, O_CLOEXEC
                           | (h->can_write ? O_RDWR : O_RDONLY));
    if (h->fd_buffered == -1) {
      nbdcbt_error ("file: cannot open %s: %m", filename);
      goto err;
    }
  }

  if (fi->fadvise_mode != POSIX_FADV_NORMAL)
    posix_fadvise (h->fd, 0, 0, fi->fadvise_mode); /* advice only */

  return h;

 err:
  if (h->fd_buffered >= 0 && h->fd_buffered != h->fd)
    close (h->fd_buffered);
  if (h->fd >= 0)
    close (h->fd);
  free (h);
  return NULL;
}

static void
file_close (void *handle)
{
  struct handle *h = handle;

  if (h->fd_buffered != h->fd)
    close (h->fd_buffered);
  close (h->fd);
  free (h);
}

static int64_t
file_get_size (void *handle)
{
  struct handle *h = handle;
  struct stat st;

  if (h->is_block_device) {
    uint64_t size;

    if (ioctl (h->fd, BLKGETSIZE64, &size) == -1) {
      nbdcbt_error ("file: %s: BLKGETSIZE64: %m", h->filename);
      return -1;
    }
    return size;
  }
  if (fstat (h->fd, &st) == -1) {
    nbdcbt_error ("file: fstat: %s: %m", h->filename);
    return -1;
  }
  return st.st_size;
}

static int
file_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                 uint32_t *maximum)
{
  struct handle *h = handle;
  uint32_t pref = MAX (h->sector_size, (uint32_t) 4096);

  *minimum = h->align;
  *preferred = MAX (h->align, pref);
  *maximum = 0xffffffff;
  return 0;
}

static int
file_can_write (void *handle)
{
  struct handle *h = handle;

  return h->can_write;
}

static int
file_can_flush (void *handle)
{
  return 1;
}

static int
file_is_rotational (void *handle)
{
  struct handle *h = handle;

  return h->rotational;
}

static int
file_can_trim (void *handle)
{
  struct handle *h = handle;

  return h->can_trim;
}

/* Zeroing always works: when the file system cannot do it quickly we
 * write zeroes ourselves (or refuse a fast zero).
 */
static int
file_can_zero (void *handle)
{
  struct handle *h = handle;

  return h->can_write ? NBDCBT_ZERO_NATIVE : NBDCBT_ZERO_NONE;
}

static int
file_can_fast_zero (void *handle)
{
  struct handle *h = handle;

  return h->can_write;
}

static int
file_can_extents (void *handle)
{
  struct handle *h = handle;

  return h->can_extents;
}

static int
file_can_fua (void *handle)
{
  struct handle *h = handle;

  return h->can_write ? NBDCBT_FUA_NATIVE : NBDCBT_FUA_NONE;
}

/* Every connection's file descriptor reaches the same page cache, and
 * fdatasync on one flushes the writes of all.
 */
static int
file_can_multi_conn (void *handle)
{
  return 1;
}

static int
file_can_cache (void *handle)
{
  struct handle *h = handle;

  return h->direct ? NBDCBT_CACHE_NONE : NBDCBT_CACHE_NATIVE;
}

static struct nbdcbt_plugin plugin = {
  .name = "file",
  .longname = "nbdcbt file plugin",
  .version = PACKAGE_VERSION,
  .description = "Serve a raw file or block device",
  .config_help =
    "[file=]FILENAME             The file or block device to serve.\n"
    "qbm=PATH                    Persistent bitmaps' sidecar (FILENAME.qbm).\n"
    "cache=default|none          none: bypass the page cache (O_DIRECT).\n"
    "fadvise=normal|random|sequential  Access pattern hint.",
  .magic_config_key = "file",
  .load = file_load,
  .unload = file_unload,
  .instance_new = file_instance_new,
  .instance_free = file_instance_free,
  .config = file_config,
  .config_complete = file_config_complete,
  .thread_model = file_thread_model,
  .get_ready = file_get_ready,
  .cleanup = file_cleanup,
  .get_service = file_get_service,
  .dump_plugin = file_dump_plugin,
  .open = file_open,
  .close = file_close,
  .get_size = file_get_size,
  .block_size = file_block_size,
  .can_write = file_can_write,
  .can_flush = file_can_flush,
  .is_rotational = file_is_rotational,
  .can_trim = file_can_trim,
  .can_zero = file_can_zero,
  .can_fast_zero = file_can_fast_zero,
  .can_extents = file_can_extents,
  .can_fua = file_can_fua,
  .can_multi_conn = file_can_multi_conn,
  .can_cache = file_can_cache,
  .pread = file_pread,
  .pwrite = file_pwrite,
  .flush = file_flush,
  .trim = file_trim,
  .zero = file_zero,
  .extents = file_extents,
  .cache = file_cache,
};

NBDCBT_REGISTER_PLUGIN (plugin)
