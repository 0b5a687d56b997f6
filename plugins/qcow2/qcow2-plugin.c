/* nbdcbt qcow2 plugin: serves a qcow2 image through common/qcow2.
 *
 * The image is opened once (get_ready) and shared by every connection;
 * the library is thread-safe, so requests run in parallel.  It is opened
 * read-only at first and reopened read-write when the first writable
 * connection arrives, so that a read-only server (-r) never writes to the
 * file (a file that cannot be opened for writing is served read-only).
 * The persistent bitmaps are not touched by the plugin itself: it
 * hands the image's bitmaps extension to the dirty filter as the
 * "bitmap-store" service (common/bitmap/bitmap-store.h).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbdcbt-plugin.h"
#include "bitmap-store.h"
#include "cleanup.h"
#include "qcow2.h"

static char *filename;

/* The open image.  I/O callbacks hold the read lock; the upgrade to
 * read-write (close + reopen) holds the write lock.
 */
static struct qcow2 *image;
static bool image_writable;
static bool write_refused;         /* the file cannot be opened rw */
static pthread_rwlock_t image_lock = PTHREAD_RWLOCK_INITIALIZER;

/* Persistent bitmaps (see before_write). */
static size_t bitmaps_at_open;     /* from get_ready */
static bool bitmaps_unsupported;   /* the library cannot read them */
static bool bitmaps_safe;          /* marked in use: writes may proceed */
static pthread_mutex_t bitmaps_lock = PTHREAD_MUTEX_INITIALIZER;

static void
qcow2_plugin_unload (void)
{
  free (filename);
}

static int
qcow2_plugin_config (const char *key, const char *value)
{
  if (strcmp (key, "file") == 0) {
    free (filename);
    filename = nbdcbt_absolute_path (value);
    if (filename == NULL)
      return -1;
    return 0;
  }
  nbdcbt_error ("qcow2: unknown parameter '%s'", key);
  return -1;
}

static int
qcow2_plugin_config_complete (void)
{
  if (filename == NULL) {
    nbdcbt_error ("qcow2: you must supply the file=IMAGE parameter");
    return -1;
  }
  return 0;
}

#define qcow2_plugin_config_help \
  "file=<IMAGE>     (required) The qcow2 image to serve."

static int
qcow2_plugin_thread_model (void)
{
  return NBDCBT_THREAD_MODEL_PARALLEL;
}

/* Bitmaps are managed by the dirty filter through the bitmap store, not
 * marked in use by the library at open.
 */
#define OPEN_FLAGS QCOW2_OPEN_NO_BITMAP_IN_USE

static int
qcow2_plugin_get_ready (void)
{
  struct qcow2_bitmap_info *list;
  size_t n;

  /* The library's messages name the file. */
  image = qcow2_open (filename, OPEN_FLAGS | QCOW2_OPEN_RDONLY);
  if (image == NULL) {
    nbdcbt_error ("qcow2: %s", qcow2_last_error ());
    return -1;
  }
  image_writable = false;

  /* A broken bitmap directory makes the image unusable, as in QEMU, even
   * when no filter asks for the bitmaps.
   */
  if (qcow2_bitmap_list (image, &list, &n) == -1) {
    if (errno == ENOTSUP) {
      /* The library cannot read bitmaps at all: serve the data. */
      nbdcbt_debug ("qcow2: bitmaps not available: %s", qcow2_last_error ());
      bitmaps_unsupported = true;
      return 0;
    }
    nbdcbt_error ("qcow2: %s", qcow2_last_error ());
    qcow2_close (image);
    image = NULL;
    return -1;
  }
  qcow2_bitmap_list_free (list, n);
  bitmaps_at_open = n;
  return 0;
}

static void
qcow2_plugin_cleanup (void)
{
  if (image && qcow2_close (image) == -1)
    nbdcbt_error ("qcow2: %s: close: %s", filename, qcow2_last_error ());
  image = NULL;
}

/* Reopen the image read-write, once, for the first writable connection.
 * A file the server may not write (permissions, a read-only mount) is
 * served read-only instead, as the file plugin does: *REFUSED is set.
 */
static int
make_writable (bool *refused)
{
  struct qcow2 *rw;
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&image_lock);

  *refused = write_refused;
  if (image_writable)
    return 0;
  if (write_refused)
    return -1;

  /* Open the second handle first: on failure the read-only one stays. */
  rw = qcow2_open (filename, OPEN_FLAGS);
  if (rw == NULL) {
    int err = errno;

    if (err == EACCES || err == EROFS || err == EPERM) {
      /* The library's message names the file. */
      nbdcbt_error ("qcow2: warning: cannot open for writing: %s; "
                    "serving it read-only", qcow2_last_error ());
      write_refused = *refused = true;
    }
    else
      nbdcbt_error ("qcow2: cannot open for writing: %s",
                    qcow2_last_error ());
    errno = err;
    return -1;
  }
  if (qcow2_close (image) == -1)
    nbdcbt_debug ("qcow2: %s: closing the read-only handle: %s", filename,
                  qcow2_last_error ());
  image = rw;
  image_writable = true;
  return 0;
}

/* Writes must never leave persistent bitmaps on disk that look valid but
 * missed them.  With the dirty filter above, the bitmaps are marked in use
 * (bitmap store mark_in_use) before the first write.  Without it, the
 * plugin marks them in use itself at the first write, so that they are
 * inconsistent afterwards (only removable), as QEMU would leave them.
 */

static int
before_write (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&bitmaps_lock);

  if (bitmaps_safe)
    return 0;
  if (bitmaps_at_open > 0 && !bitmaps_unsupported) {
    if (qcow2_bitmaps_mark_in_use (image) == -1) {
      nbdcbt_error ("qcow2: cannot mark the persistent bitmaps in use "
                    "before writing: %s", qcow2_last_error ());
      nbdcbt_set_error (EIO);
      return -1;
    }
    nbdcbt_error ("qcow2: warning: no filter records writes into the "
                  "persistent bitmaps of %s; they are now marked in use "
                  "(inconsistent).  Serve the image with --filter=dirty "
                  "to keep them.", filename);
  }
  bitmaps_safe = true;
  return 0;
}

/* The handle only records whether this connection may write. */
struct handle {
  int readonly;
};

static void *
qcow2_plugin_open (int readonly)
{
  struct handle *h;
  bool refused;

  if (!readonly && make_writable (&refused) == -1) {
    if (!refused)
      return NULL;
    readonly = 1;
  }
  h = malloc (sizeof *h);
  if (h == NULL) {
    nbdcbt_error ("malloc: %m");
    return NULL;
  }
  h->readonly = readonly;
  return h;
}

static void
qcow2_plugin_close (void *handle)
{
  free (handle);
}

static int64_t
qcow2_plugin_get_size (void *handle)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);
  return qcow2_get_size (image);
}

static int
qcow2_plugin_can_write (void *handle)
{
  struct handle *h = handle;

  return !h->readonly && image_writable;
}

static int
qcow2_plugin_can_true (void *handle)
{
  return 1;
}

static int
qcow2_plugin_can_zero (void *handle)
{
  return NBDCBT_ZERO_NATIVE;
}

static int
qcow2_plugin_can_fua (void *handle)
{
  return NBDCBT_FUA_NATIVE;
}

/* Report a library failure as the request's error. */
static int
io_error (const char *what)
{
  int err = errno ? errno : EIO;

  nbdcbt_error ("qcow2: %s: %s", what, qcow2_last_error ());
  nbdcbt_set_error (err);
  return -1;
}

static int
qcow2_plugin_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                    uint32_t flags)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);
  if (qcow2_pread (image, buf, count, offset) == -1)
    return io_error ("read");
  return 0;
}

static int
qcow2_plugin_pwrite (void *handle, const void *buf, uint32_t count,
                     uint64_t offset, uint32_t flags)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);
  if (before_write () == -1)
    return -1;
  if (qcow2_pwrite (image, buf, count, offset,
                    flags & NBDCBT_FLAG_FUA ? QCOW2_WRITE_FUA : 0) == -1)
    return io_error ("write");
  return 0;
}

static int
qcow2_plugin_zero (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  int qflags = 0;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);

  if (flags & NBDCBT_FLAG_FUA)
    qflags |= QCOW2_WRITE_FUA;
  if (flags & NBDCBT_FLAG_MAY_TRIM)
    qflags |= QCOW2_ZERO_MAY_UNMAP;
  if (before_write () == -1)
    return -1;
  if (qcow2_zero (image, count, offset, qflags) == -1)
    return io_error ("zero");
  return 0;
}

static int
qcow2_plugin_trim (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);
  if (before_write () == -1)
    return -1;
  if (qcow2_discard (image, count, offset,
                     flags & NBDCBT_FLAG_FUA ? QCOW2_WRITE_FUA : 0) == -1)
    return io_error ("trim");
  return 0;
}

static int
qcow2_plugin_flush (void *handle, uint32_t flags)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);
  if (qcow2_flush (image) == -1)
    return io_error ("flush");
  return 0;
}

/* base:allocation as QEMU reports it: a hole where no host cluster
 * backs the data, zero where it reads as zeroes.
 */
static uint32_t
allocation_type (int status, int depth)
{
  uint32_t type = 0;

  if (!(status & QCOW2_STATUS_DATA))
    type |= NBDCBT_EXTENT_HOLE;
  if (status & QCOW2_STATUS_ZERO)
    type |= NBDCBT_EXTENT_ZERO;
  return type;
}

/* qemu:allocation-depth: 0 unallocated, 1 this image, 2 its backing ... */
static uint32_t
depth_type (int status, int depth)
{
  return depth;
}

static int
walk_block_status (uint32_t count, uint64_t offset, uint32_t flags,
                   struct nbdcbt_extents *extents,
                   uint32_t (*type_of) (int status, int depth))
{
  uint64_t end = offset + count;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);

  while (offset < end) {
    uint64_t pnum;
    int status, depth;

    if (qcow2_block_status (image, offset, end - offset, &pnum, &status,
                            &depth) == -1)
      return io_error ("block status");
    if (pnum == 0 || pnum > end - offset) {
      nbdcbt_error ("qcow2: block status returned a bad length");
      nbdcbt_set_error (EIO);
      return -1;
    }
    if (nbdcbt_add_extent (extents, offset, pnum,
                           type_of (status, depth)) == -1)
      return -1;
    offset += pnum;
    if ((flags & NBDCBT_FLAG_REQ_ONE) || nbdcbt_extents_full (extents))
      break;
  }
  return 0;
}

static int
qcow2_plugin_extents (void *handle, uint32_t count, uint64_t offset,
                      uint32_t flags, struct nbdcbt_extents *extents)
{
  return walk_block_status (count, offset, flags, extents, allocation_type);
}

#define ALLOCATION_DEPTH "qemu:allocation-depth"

static int
qcow2_plugin_list_meta_contexts (const char *export_name,
                                 struct nbdcbt_meta_contexts *contexts)
{
  return nbdcbt_add_meta_context (contexts, ALLOCATION_DEPTH);
}

static int
qcow2_plugin_meta_extents (void *handle, const char *context, uint32_t count,
                           uint64_t offset, uint32_t flags,
                           struct nbdcbt_extents *extents)
{
  if (strcmp (context, ALLOCATION_DEPTH) != 0) {
    nbdcbt_error ("qcow2: unknown metadata context %s", context);
    nbdcbt_set_error (EINVAL);
    return -1;
  }
  return walk_block_status (count, offset, flags, extents, depth_type);
}

/* --- The bitmap store: the image's bitmaps extension ------------------- */

static void
store_list_free (void *opaque, struct bitmap_store_info *list, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    free (list[i].name);
  free (list);
}

static int
store_list (void *opaque, struct bitmap_store_info **list, size_t *n)
{
  struct qcow2_bitmap_info *qlist;
  size_t i, qn;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);

  if (qcow2_bitmap_list (image, &qlist, &qn) == -1)
    return -1;
  *list = calloc (qn ? qn : 1, sizeof **list);
  if (*list == NULL) {
    qcow2_bitmap_list_free (qlist, qn);
    return -1;
  }
  for (i = 0; i < qn; i++) {
    (*list)[i].name = strdup (qlist[i].name);
    if ((*list)[i].name == NULL) {
      store_list_free (opaque, *list, i);
      qcow2_bitmap_list_free (qlist, qn);
      return -1;
    }
    (*list)[i].granularity = qlist[i].granularity;
    (*list)[i].recording = (qlist[i].flags & QCOW2_BME_AUTO) != 0;
    (*list)[i].in_use = (qlist[i].flags & QCOW2_BME_IN_USE) != 0;
  }
  qcow2_bitmap_list_free (qlist, qn);
  *n = qn;
  return 0;
}

static struct hbitmap *
store_load (void *opaque, const char *name)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);
  return qcow2_bitmap_load (image, name);
}

static int
store_mark_in_use (void *opaque)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&bitmaps_lock);

  /* Served read-only (the file is not writable): nothing will be
   * written, so the bitmaps stay valid as they are.
   */
  if (!image_writable)
    return 0;
  if (qcow2_bitmaps_mark_in_use (image) == -1)
    return -1;
  bitmaps_safe = true;
  return 0;
}

static int
store_store (void *opaque, const struct bitmap_store_entry *entries,
             size_t n, const char *const *keep, size_t nkeep)
{
  CLEANUP_FREE struct qcow2_bitmap_store_entry *set = NULL;
  size_t i;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);

  if (!image_writable) {
    nbdcbt_error ("qcow2: warning: %s is not writable: the persistent "
                  "bitmaps are left as they were", filename);
    return 0;
  }

  set = calloc (n ? n : 1, sizeof *set);
  if (set == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    set[i].name = entries[i].name;
    set[i].bitmap = entries[i].bitmap;
    set[i].recording = entries[i].recording;
    set[i].in_use = entries[i].in_use;
  }
  return qcow2_bitmaps_store (image, set, n, keep, nkeep);
}

static int
store_remove (void *opaque, const char *name)
{
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&image_lock);
  return qcow2_bitmap_remove (image, name);
}

static const char *
store_last_error (void *opaque)
{
  return qcow2_last_error ();
}

static const struct bitmap_store qcow2_bitmap_store = {
  .name = "qcow2",
  .list = store_list,
  .list_free = store_list_free,
  .load = store_load,
  .mark_in_use = store_mark_in_use,
  .store = store_store,
  .remove = store_remove,
  .last_error = store_last_error,
};

static const void *
qcow2_plugin_get_service (const char *name)
{
  if (strcmp (name, BITMAP_STORE_SERVICE) == 0)
    return &qcow2_bitmap_store;
  return NULL;
}

static struct nbdcbt_plugin plugin = {
  .name = "qcow2",
  .longname = "nbdcbt qcow2 plugin",
  .version = PACKAGE_VERSION,
  .description = "Serve a qcow2 image (with its backing chain and "
                 "persistent bitmaps)",
  .config_help = qcow2_plugin_config_help,
  .magic_config_key = "file",
  .unload = qcow2_plugin_unload,
  .config = qcow2_plugin_config,
  .config_complete = qcow2_plugin_config_complete,
  .thread_model = qcow2_plugin_thread_model,
  .get_ready = qcow2_plugin_get_ready,
  .cleanup = qcow2_plugin_cleanup,
  .get_service = qcow2_plugin_get_service,
  .open = qcow2_plugin_open,
  .close = qcow2_plugin_close,
  .get_size = qcow2_plugin_get_size,
  .can_write = qcow2_plugin_can_write,
  .can_flush = qcow2_plugin_can_true,
  .can_trim = qcow2_plugin_can_true,
  .can_zero = qcow2_plugin_can_zero,
  .can_extents = qcow2_plugin_can_true,
  .can_fua = qcow2_plugin_can_fua,
  .can_multi_conn = qcow2_plugin_can_true,
  .pread = qcow2_plugin_pread,
  .pwrite = qcow2_plugin_pwrite,
  .flush = qcow2_plugin_flush,
  .trim = qcow2_plugin_trim,
  .zero = qcow2_plugin_zero,
  .extents = qcow2_plugin_extents,
  .list_meta_contexts = qcow2_plugin_list_meta_contexts,
  .meta_extents = qcow2_plugin_meta_extents,
};

NBDCBT_REGISTER_PLUGIN (plugin)
