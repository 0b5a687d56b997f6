/* The QBM sidecar as a bitmap store (bitmap-store.h). */
#ifndef NBDCBT_QBM_STORE_H
#define NBDCBT_QBM_STORE_H

#include "bitmap-store.h"
#include "qbm.h"

/* A store over Q (which stays the caller's).  NULL on ENOMEM. */
extern const struct bitmap_store *qbm_store_new (struct qbm *q);
extern void qbm_store_free (const struct bitmap_store *store);

#endif /* NBDCBT_QBM_STORE_H */
