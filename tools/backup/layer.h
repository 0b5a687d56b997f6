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

/* nbdcbt-backup: a backup layer (a qcow2 object of a chain) opened for
 * reading, wherever the chain is stored.  A directory's layers are read
 * through the qcow2 library (common/qcow2); an object store's through
 * qcow2-remote.c, which reads the tables and the data with ranged reads
 * of the store (several at once).  Both read the backing chain by the
 * backing file names stored in the layers, which name objects of the
 * same store.
 */
#ifndef NBDCBT_BACKUP_LAYER_H
#define NBDCBT_BACKUP_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "qcow2.h"              /* QCOW2_STATUS_* */

struct store;
struct layer;

#define LAYER_NO_BACKING (1 << 0)  /* this layer alone */

/* NULL after an error: the message is then in layer_last_error. */
extern struct layer *layer_open (struct store *st, const char *name,
                                 int flags);
extern void layer_close (struct layer *l);
/* The reason the last failed call of this thread failed. */
extern const char *layer_last_error (void);

extern uint64_t layer_size (struct layer *l);
/* As stored in the header: NULL if none. */
extern const char *layer_backing_file (struct layer *l);
extern const char *layer_backing_format (struct layer *l);

/* Reads through the backing chain (unless LAYER_NO_BACKING). */
extern int layer_pread (struct layer *l, void *buf, uint64_t count,
                        uint64_t offset);
/* As qcow2_block_status (QCOW2_STATUS_*, depth 0 = nowhere). */
extern int layer_block_status (struct layer *l, uint64_t offset,
                               uint64_t count, uint64_t *pnum, int *status,
                               int *depth);

/* The metadata check of verify: 0 with the number of corruptions and
 * leaks found (each reported through MSG), -1 with errno ENOTSUP if it
 * cannot check this layer, other -1 on failure.
 */
extern int layer_check (struct layer *l, uint64_t *corruptions,
                        uint64_t *leaks,
                        void (*msg) (void *opaque, const char *text),
                        void *opaque);

/* An object store's reader (qcow2-remote.c); layer.c dispatches. */
struct remote_qcow2;
extern struct remote_qcow2 *remote_qcow2_open (struct store *st,
                                               const char *name, int flags);
extern void remote_qcow2_close (struct remote_qcow2 *r);
extern uint64_t remote_qcow2_size (struct remote_qcow2 *r);
extern const char *remote_qcow2_backing_file (struct remote_qcow2 *r);
extern const char *remote_qcow2_backing_format (struct remote_qcow2 *r);
extern int remote_qcow2_pread (struct remote_qcow2 *r, void *buf,
                               uint64_t count, uint64_t offset);
extern int remote_qcow2_block_status (struct remote_qcow2 *r,
                                      uint64_t offset, uint64_t count,
                                      uint64_t *pnum, int *status,
                                      int *depth);
extern int remote_qcow2_check (struct remote_qcow2 *r,
                               uint64_t *corruptions, uint64_t *leaks,
                               void (*msg) (void *opaque, const char *text),
                               void *opaque);
/* Set the thread's layer error message (printf-style). */
extern void layer_set_error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

#endif /* NBDCBT_BACKUP_LAYER_H */
