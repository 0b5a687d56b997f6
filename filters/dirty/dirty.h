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

/* The dirty filter: what its files share.
 *
 *   dirty.c   configuration, the model's creation at the first prepare, the
 *             write path (marking) and the qemu:dirty-bitmap:NAME contexts;
 *   store.c   persistence through the bitmap store of the layer below:
 *             loading at get_ready, in-use marking, storing on flush and
 *             at cleanup, and when the control socket adds or removes a
 *             persistent bitmap;
 *   control.c the "dirty-bitmaps" service the control socket manages the
 *             bitmaps through (dirty-bitmaps-service.h).
 *
 * One struct dirty_instance per export whose chain has the filter; it is
 * also the per-connection handle (the filter has no open callback).
 */
#ifndef NBDCBT_DIRTY_H
#define NBDCBT_DIRTY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nbdcbt-filter.h>

#include "bitmap-store.h"
#include "dirty-bitmap.h"
#include "dirty-bitmaps-service.h"

/* A bitmap known before the model exists: from bitmap= or the store. */
struct dirty_pending {
  char *name;
  uint64_t granularity;   /* 0 = default (bitmap=NAME without one) */
  bool persistent;        /* kept in the store */
  bool disabled;          /* stored without "auto" */
  bool inconsistent;      /* stored with in_use */
  struct hbitmap *data;   /* loaded from the store, or NULL */
};

struct dirty_instance {
  /* Configuration (config, get_ready); read-only once clients come. */
  struct dirty_pending *pending;
  size_t npending;
  bool store_on_flush;
  const struct bitmap_store *store; /* NULL: bitmaps live in memory only */

  /* Guards the creation of BITMAPS, MARKED_IN_USE and the store calls. */
  pthread_mutex_t lock;
  /* The model, written once under LOCK at the first prepare; every data
   * callback of a connection runs after its prepare, so they read it
   * without the lock.  The model has its own locks for its bitmaps.
   */
  struct dirty_bitmaps *bitmaps;
  bool marked_in_use;

  /* The control socket's service (control.c), and the lock that holds
   * the write path while a transaction runs: each write, zero and trim
   * holds it shared from its mark until it is done (write_begin,
   * write_end in dirty.c).
   */
  struct dirty_bitmaps_service service;
  pthread_rwlock_t quiesce;

  /* Crash safety (store.c, docs/persistence.md): the store's intent
   * record, driven from the write path, and the lazy stores.
   */
  bool no_intent;               /* intent=false */
  bool recovered;               /* a stored bitmap came back from a crash */
  uint64_t zone_size;           /* zone-size=, 0: the store's default */
  unsigned store_interval;      /* store-interval= seconds, 0: never */
  struct intent *intent;        /* set under LOCK at the first read-write
                                 * prepare, before any write */
  bool unstored;                /* a bitmap= one is not in the store yet */
  pthread_t store_thread;       /* every STORE_INTERVAL seconds, and the
                                 * first store of the record */
  bool store_thread_started;
  bool store_requested;         /* under LOCK: the thread must store */
  bool stopping;                /* under LOCK: the thread must end */
  pthread_cond_t stop_cond;     /* signals STOPPING and STORE_REQUESTED */
};

/* dirty.c */
extern struct dirty_pending *dirty_pending_find (struct dirty_instance *d,
                                                 const char *name);
/* A new pending bitmap NAME, zeroed but for its name; NULL on ENOMEM. */
extern struct dirty_pending *dirty_pending_append (struct dirty_instance *d,
                                                   const char *name);

/* control.c: fill D->service. */
extern void dirty_control_init (struct dirty_instance *d);

/* store.c */
#define DIRTY_DEFAULT_STORE_INTERVAL 30
/* intent=, zone-size=, store-interval=: 1 if KEY is one of them (and
 * VALUE valid), 0 if not ours, -1 after an error.
 */
extern int dirty_store_config (struct dirty_instance *d, const char *key,
                               const char *value);
/* Before a write, trim or zero goes down (fine bitmaps marked already):
 * its zones durably in the intent record.  -1 with *ERR on failure.
 */
extern int dirty_store_before_write (struct dirty_instance *d,
                                     uint64_t offset, uint64_t count,
                                     int *err);
/* get_ready: take the store below (if any) and load its bitmaps. */
extern int dirty_store_get_ready (struct dirty_instance *d,
                                  nbdcbt_backend *nxdata);
/* A read-write connection is prepared: mark the stored bitmaps in use
 * before anything is written (once).  LOCK held.
 */
extern int dirty_store_mark_in_use (struct dirty_instance *d);
/* After a successful flush, with store-on-flush=true. */
extern int dirty_store_on_flush (struct dirty_instance *d);
/* cleanup: store every persistent bitmap, in-use marks cleared. */
extern void dirty_store_cleanup (struct dirty_instance *d);
/* The control socket added or changed a persistent bitmap: store every
 * persistent bitmap now (in use if a read-write connection marked them
 * so).  0 without a store.  Takes LOCK.
 */
extern int dirty_store_now (struct dirty_instance *d, char **errp);
/* The control socket removed persistent bitmap NAME: delete it from the
 * store now.  0 without a store.  Takes LOCK.
 */
extern int dirty_store_remove (struct dirty_instance *d, const char *name,
                               char **errp);

#endif /* NBDCBT_DIRTY_H */
