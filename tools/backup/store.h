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

/* nbdcbt-backup: where a chain lives.
 *
 * A chain is a set of named objects: the manifest, the backup layers
 * (qcow2 files) and their checksum lists.  A store holds them either in
 * a local directory (store-dir.c: DIR/NAME) or under a prefix of an S3
 * bucket (store-s3.c: s3://BUCKET/PREFIX/NAME).  Names are flat (no
 * '/'); the chain code never builds paths or URLs itself.
 *
 * The rules every store keeps, which the chain's crash safety rests on:
 *
 * - store_put replaces a small object (the manifest) atomically and
 *   durably: a reader sees the old or the new contents, never a mix.
 * - An upload (store_upload_*) is invisible under its name until
 *   store_upload_commit returns, and store_upload_abort (or a crash)
 *   leaves nothing visible under the name; store_cleanup removes what
 *   crashed uploads left (a directory's .NAME.part files, an S3
 *   prefix's unfinished multipart uploads).
 * - Objects are written once and then only read or deleted, so the
 *   manifest, written last, decides what the chain is.
 *
 * Every function prints its own error (prefixed with the object's
 * location) before returning -1.  Functions are safe to call from
 * several threads on the same store, except store_close.
 */
#ifndef NBDCBT_BACKUP_STORE_H
#define NBDCBT_BACKUP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vector.h"

DEFINE_VECTOR_TYPE (name_list, char *);

struct store;

/* Is LOCATION an object store URL (s3://...) rather than a directory? */
extern bool store_is_url (const char *location);

/* Open the chain at LOCATION: a directory path or s3://BUCKET[/PREFIX].
 * With CREATE a missing directory is created (an S3 prefix needs
 * nothing).  NULL after printing an error.
 */
extern struct store *store_open (const char *location, bool create);
extern void store_close (struct store *st);

/* LOCATION as given, for messages. */
extern const char *store_location (const struct store *st);
/* The directory of a local store, NULL for an object store.  The
 * directory store's layers are written and read through the qcow2
 * library on these paths.
 */
extern const char *store_dir (const struct store *st);
/* "LOCATION/NAME" for messages (and the path of a local object);
 * malloc'd, NULL after an error.
 */
extern char *store_object_path (const struct store *st, const char *name);

/* Only one writer at a time: a directory is flock'd (held until exit);
 * S3 offers no lock, so this does nothing there (documented in the man
 * page: do not run two backups into one prefix at once).
 */
extern int store_lock (struct store *st);

/* Remove what interrupted writes left (we hold the lock).  -1 (after
 * printing why) if the store cannot be reached at all: S3 refusing the
 * TLS session or the credentials, or not answering.
 */
extern int store_cleanup (struct store *st);

/* Has a request to the store failed in a way that every other would
 * (S3: the TLS session or the credentials refused, no answer)?  Then a
 * manifest that could not be loaded is not known to be damaged.
 */
extern bool store_unreachable (struct store *st);

/* A small object, whole, into *DATA (malloc'd, NUL-terminated, length
 * *LEN).  Returns 0, 1 if there is no such object, -1 after an error.
 */
extern int store_get (struct store *st, const char *name,
                      char **data, size_t *len);
/* Replace NAME with DATA atomically and durably. */
extern int store_put (struct store *st, const char *name,
                      const void *data, size_t len);
/* The size of NAME: 0, 1 if there is no such object, -1 after an error. */
extern int store_stat (struct store *st, const char *name, uint64_t *size);
/* COUNT bytes of NAME at OFFSET (all of them, or an error). */
extern int store_pread (struct store *st, const char *name, void *buf,
                        size_t count, uint64_t offset);
/* Several ranges of NAME at once (an object store fetches them in
 * parallel): BUFS[i] gets COUNTS[i] bytes from OFFSETS[i].
 */
extern int store_pread_many (struct store *st, const char *name, size_t n,
                             void *const *bufs, const size_t *counts,
                             const uint64_t *offsets);
/* Delete NAME; an absent object is not an error. */
extern int store_delete (struct store *st, const char *name);
/* Every object name in the chain's location (a directory's files, a
 * prefix's keys without the prefix; unfinished uploads are not
 * objects).  The caller frees the names and the list.
 */
extern int store_list (struct store *st, name_list *names);
extern void name_list_free (name_list *names);

/* --- Streamed uploads ------------------------------------------------ */

/* An object written front to back by store_upload_append, except its
 * first HEAD_SIZE bytes (the head), which are given last by
 * store_upload_set_head: a qcow2 header that describes tables written
 * after the data.  The head's room is part of the object from the
 * start: the first append lands at offset HEAD_SIZE.
 *
 * Memory stays bounded: a directory writes through; S3 keeps the head's
 * part (at least HEAD_SIZE, at least the minimum part size) and a few
 * parts in flight.
 */
struct store_upload;
extern struct store_upload *store_upload_begin (struct store *st,
                                                const char *name,
                                                size_t head_size);
/* Optional: the object will be about BYTES long (an object store picks
 * its part size so that the parts stay under its limit of 10000).
 */
extern void store_upload_expect (struct store_upload *u, uint64_t bytes);
/* Append LEN bytes.  Not thread-safe: one writer per upload. */
extern int store_upload_append (struct store_upload *u, const void *buf,
                                size_t len);
/* The bytes appended so far plus the head. */
extern uint64_t store_upload_size (const struct store_upload *u);
/* The head: exactly HEAD_SIZE bytes. */
extern int store_upload_set_head (struct store_upload *u, const void *buf);
/* Make the object visible under its name, durably.  Frees U (also on
 * failure, after aborting).
 */
extern int store_upload_commit (struct store_upload *u);
/* Drop the upload: nothing becomes visible.  Frees U. */
extern void store_upload_abort (struct store_upload *u);

/* Abort every upload still open (interrupted by a signal: called from
 * the signal-handling thread, not from a handler).
 */
extern void store_abort_all_uploads (void);

#endif /* NBDCBT_BACKUP_STORE_H */
