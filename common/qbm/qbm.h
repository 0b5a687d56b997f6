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

/* QBM sidecar: persistent bitmaps beside a raw image (or block device).
 *
 * The sidecar is a JSON descriptor (IMAGE.qbm by default) plus one plain
 * bitmap file per bitmap, in the qcow2 bit order, each with its SHA-256
 * in the descriptor, plus an intent record file.  The format is
 * specified in docs/qbm.md.  Every replacement is crash-safe: new bitmap
 * files get new names, the descriptor is replaced by temp file + fsync +
 * rename + directory fsync, old files are removed afterwards.
 *
 * Errors: -1 (or NULL) with errno set; qbm_last_error () has a message
 * naming the file (thread-local).
 */
#ifndef NBDCBT_QBM_H
#define NBDCBT_QBM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hbitmap;
struct intent;

#define QBM_SUFFIX ".qbm"

extern const char *qbm_last_error (void);

/* Is PATH a QBM descriptor (a JSON file with a "QBM" object)?  1: yes,
 * *IMAGE is the image it describes (absolute path, malloc'd); 0: no (an
 * image); -1: a JSON object naming "QBM" that is not a valid descriptor
 * (damaged, or of another version): qbm_last_error () says why, and the
 * caller must not take it for an image.
 */
extern int qbm_probe (const char *path, char **image);

/* The default descriptor path of IMAGE: IMAGE.qbm (malloc'd). */
extern char *qbm_default_path (const char *image);

#define QBM_OPEN_RDONLY (1 << 0)
/* Take no lock on the sidecar (nbdcbt-img -U: read a sidecar another
 * process writes; what is read may be inconsistent).
 */
#define QBM_OPEN_FORCE_SHARE (1 << 1)

struct qbm;

/* Open the sidecar DESC_PATH of IMAGE_PATH (IMAGE_SIZE bytes).  A
 * missing descriptor is an empty store (created by the first qbm_store
 * that has something to keep).  A descriptor that is damaged, describes
 * another image, or another size, fails with a message.
 */
extern struct qbm *qbm_open (const char *desc_path, const char *image_path,
                             uint64_t image_size, int flags);
extern void qbm_close (struct qbm *q);
extern bool qbm_exists (const struct qbm *q);
extern const char *qbm_path (const struct qbm *q);

struct qbm_bitmap_info {
  char *name;
  uint64_t granularity;
  bool recording;
  /* In use on disk (a server had it open) ... */
  bool in_use;
  /* ... and not recoverable from the intent record: inconsistent. */
  bool inconsistent;
};

extern int qbm_list (struct qbm *q, struct qbm_bitmap_info **list,
                     size_t *n);
extern void qbm_list_free (struct qbm_bitmap_info *list, size_t n);

/* NAME's data, checksum verified; for a bitmap in use with a valid
 * intent record: the stored data plus every zone marked in the record.
 */
extern struct hbitmap *qbm_load (struct qbm *q, const char *name);

/* Replace the stored set by ENTRIES (bitmap-store.h's entries); stored
 * bitmaps named in KEEP stay as they are; any other is removed.
 */
struct bitmap_store_entry;
extern int qbm_store (struct qbm *q, const struct bitmap_store_entry *entries,
                      size_t n, const char *const *keep, size_t nkeep);

/* Set in_use on every stored bitmap and start a fresh intent record
 * (zone size ZONE_SIZE; 0 = the default), durably, before the first
 * write.  *INTENT (if not NULL) is the record to drive; it belongs to Q.
 * Bitmaps recovered from a previous record are carried over: the new
 * record starts with the old one's zones.
 */
extern int qbm_mark_in_use (struct qbm *q, uint64_t zone_size,
                            struct intent **intent);

/* Set in_use on every stored bitmap without an intent record, as QEMU
 * marks its bitmaps (the dirty filter's intent=false, or no room for a
 * record): after a crash they are inconsistent, never recovered from a
 * record that nobody kept up to date.
 */
extern int qbm_mark_in_use_no_record (struct qbm *q);

extern int qbm_remove (struct qbm *q, const char *name);

/* Verify everything: descriptor, every bitmap file's size and checksum,
 * the intent record.  Returns the number of problems found (each printed
 * by REPORT), or -1 if the descriptor cannot be read at all.
 */
extern int qbm_check (struct qbm *q, void (*report) (void *opaque,
                                                      const char *msg),
                      void *opaque);

#endif /* NBDCBT_QBM_H */
