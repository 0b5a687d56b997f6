/* nbdcbt file plugin: the QBM sidecar store (sidecar.c). */
#ifndef NBDCBT_FILE_SIDECAR_H
#define NBDCBT_FILE_SIDECAR_H

#include <stdbool.h>

#include "bitmap-store.h"

struct file_sidecar;

/* Open the sidecar of IMAGE (QBM_PATH, or IMAGE.qbm for a regular file).
 * 0 with *RET NULL when there is none to offer (a block device without
 * qbm=); -1 after logging the error.
 */
extern int file_sidecar_open (const char *image, const char *qbm_path,
                              bool readonly, struct file_sidecar **ret);
extern const struct bitmap_store *file_sidecar_store (struct file_sidecar *s);
extern void file_sidecar_close (struct file_sidecar *s);

#endif /* NBDCBT_FILE_SIDECAR_H */
