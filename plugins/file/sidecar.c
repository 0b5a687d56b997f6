/* nbdcbt file plugin: persistent bitmaps of a raw image in its QBM
 * sidecar (common/qbm, docs/qbm.md), offered to the dirty filter as the
 * "bitmap-store" service.
 *
 * The sidecar is IMAGE.qbm for a regular file, or the path given with
 * qbm=PATH (required for a block device: /dev holds no sidecar).  It is
 * opened once, at get_ready, so that a damaged or mismatched sidecar
 * stops the server with its message before any client connects.  A
 * missing one is an empty store, created by the first store that has a
 * bitmap to keep.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nbdcbt-plugin.h"

#include "qbm-store.h"
#include "sidecar.h"

struct file_sidecar {
  struct qbm *q;
  const struct bitmap_store *store;
};

static int
image_size (const char *path, uint64_t *size, bool *is_block)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return -1;
  if (fstat (fd, &st) == -1) {
    close (fd);
    return -1;
  }
  *is_block = S_ISBLK (st.st_mode);
  if (*is_block) {
    if (ioctl (fd, BLKGETSIZE64, size) == -1) {
      close (fd);
      return -1;
    }
  }
  else
    *size = st.st_size;
  close (fd);
  return 0;
}

int
file_sidecar_open (const char *image, const char *qbm_path, bool readonly,
                   struct file_sidecar **ret)
{
  struct file_sidecar *s;
  char *desc;
  uint64_t size;
  bool is_block;

  *ret = NULL;
  if (image_size (image, &size, &is_block) == -1) {
    nbdcbt_error ("file: %s: %m", image);
    return -1;
  }
  if (qbm_path == NULL && is_block) {
    nbdcbt_debug ("file: %s is a block device: persistent bitmaps need "
                  "qbm=PATH", image);
    return 0;
  }
  desc = qbm_path ? strdup (qbm_path) : qbm_default_path (image);
  s = calloc (1, sizeof *s);
  if (desc == NULL || s == NULL) {
    nbdcbt_error ("file: %m");
    free (desc);
    free (s);
    return -1;
  }
  s->q = qbm_open (desc, image, size, readonly ? QBM_OPEN_RDONLY : 0);
  free (desc);
  if (s->q == NULL) {
    nbdcbt_error ("file: %s", qbm_last_error ());
    free (s);
    return -1;
  }
  s->store = qbm_store_new (s->q);
  if (s->store == NULL) {
    nbdcbt_error ("file: %m");
    qbm_close (s->q);
    free (s);
    return -1;
  }
  *ret = s;
  return 0;
}

const struct bitmap_store *
file_sidecar_store (struct file_sidecar *s)
{
  return s ? s->store : NULL;
}

void
file_sidecar_close (struct file_sidecar *s)
{
  if (s == NULL)
    return;
  qbm_store_free (s->store);
  qbm_close (s->q);
  free (s);
}
