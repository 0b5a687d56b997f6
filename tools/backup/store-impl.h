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

/* nbdcbt-backup: what a kind of store implements (store.c dispatches). */
#ifndef NBDCBT_BACKUP_STORE_IMPL_H
#define NBDCBT_BACKUP_STORE_IMPL_H

#include "store.h"

struct store_ops {
  const char *name;
  void (*close) (struct store *st);
  int (*lock) (struct store *st);
  int (*cleanup) (struct store *st);
  /* NULL: always reachable (a directory). */
  bool (*unreachable) (struct store *st);
  int (*get) (struct store *st, const char *name, char **data, size_t *len);
  int (*put) (struct store *st, const char *name, const void *data,
              size_t len);
  int (*stat) (struct store *st, const char *name, uint64_t *size);
  int (*pread_many) (struct store *st, const char *name, size_t n,
                     void *const *bufs, const size_t *counts,
                     const uint64_t *offsets);
  int (*delete) (struct store *st, const char *name);
  int (*list) (struct store *st, name_list *names);
  struct store_upload *(*upload_begin) (struct store *st, const char *name,
                                        size_t head_size);
};

struct store {
  const struct store_ops *ops;
  char *location;               /* as given */
  char *dir;                    /* a directory store's path, else NULL */
};

struct upload_ops {
  int (*append) (struct store_upload *u, const void *buf, size_t len);
  int (*set_head) (struct store_upload *u, const void *buf);
  int (*commit) (struct store_upload *u);
  void (*abort) (struct store_upload *u);  /* frees U */
  /* Abort without freeing or waiting for other threads: the process
   * exits next (a signal).
   */
  void (*cancel) (struct store_upload *u);
  void (*expect) (struct store_upload *u, uint64_t bytes); /* or NULL */
};

struct store_upload {
  const struct upload_ops *ops;
  struct store *st;
  char *name;
  size_t head_size;
  uint64_t size;                /* head + appended */
  struct store_upload *next;    /* in the list of open uploads */
};

/* Each returns the store with ops, dir set (location is set by
 * store_open), or NULL after an error.
 */
extern struct store *store_dir_open (const char *path, bool create);
extern struct store *store_s3_open (const char *url);

/* The open uploads, for store_abort_all_uploads. */
extern void store_upload_register (struct store_upload *u);
extern void store_upload_unregister (struct store_upload *u);

#endif /* NBDCBT_BACKUP_STORE_IMPL_H */
