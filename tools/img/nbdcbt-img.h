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

/* nbdcbt-img: shared declarations of the subcommands. */
#ifndef NBDCBT_IMG_H
#define NBDCBT_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROGNAME "nbdcbt-img"

/* Print "nbdcbt-img: MESSAGE" on stderr (%m allowed). */
extern void img_error (const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));

/* The library's last error, without the "PATH: " it may start with
 * (the callers name the file themselves).
 */
extern const char *lib_error (const char *path);

/* The image formats the tool knows. */
enum img_format { FMT_UNKNOWN = 0, FMT_QCOW2, FMT_RAW };

/* Parse "qcow2" / "raw"; prints an error and returns FMT_UNKNOWN otherwise. */
extern enum img_format parse_format (const char *name);
/* The format of PATH: FMT if given, else probed from the magic.  Prints an
 * error and returns FMT_UNKNOWN if the file cannot be opened.
 */
extern enum img_format probe_format (const char *path, enum img_format fmt);
extern const char *format_name (enum img_format fmt);

/* --output=human|json: sets *JSON; prints qemu-img's error and returns -1
 * for anything else.
 */
extern int parse_output_format (const char *arg, bool *json);

/* The options the image commands share, as qemu-img spells them: -f
 * FMT, --output=human|json, -U (--force-share), --sidecar=PATH, -h.
 * A command lists IMG_COMMON_LONG_OPTIONS in its long options (-f, -U in
 * its short ones as it takes them) and passes what getopt returns to
 * img_common_option first.
 */
#define IMG_COMMON_LONG_OPTIONS                                 \
  { "help", no_argument, NULL, 'h' },                           \
  { "force-share", no_argument, NULL, 'U' },                    \
  { "output", required_argument, NULL, 'O' },                   \
  { "format", required_argument, NULL, 'f' },                   \
  { "sidecar", required_argument, NULL, 'S' }
struct img_common_opts {
  enum img_format fmt;          /* -f, or FMT_UNKNOWN: probe */
  bool json;                    /* --output=json */
  bool force_share;             /* -U */
};
/* 1 if C was a shared option (handled), 0 if not, -1 after printing an
 * error for a bad value.
 */
extern int img_common_option (int c, const char *arg,
                              struct img_common_opts *o);

/* The one FILENAME argument left after the options, and its format
 * (FMT if -f gave one, else probed).  Prints an error and returns -1 if
 * there is not exactly one or the file cannot be opened.
 */
extern int image_argument (int argc, char *argv[], enum img_format fmt,
                           const char **filename, enum img_format *fmt_ret);

struct qcow2;
struct hbitmap;

/* qcow2_open, printing "Could not open 'PATH': REASON" on failure. */
extern struct qcow2 *open_qcow2 (const char *path, unsigned flags);
/* qcow2_close, printing "PATH: REASON" on failure; returns -1 then. */
extern int close_qcow2 (struct qcow2 *q, const char *path);

/* BACKING as seen from the image FILENAME: a relative name is relative
 * to the image's directory (QEMU's bdrv_get_full_backing_filename).
 * Returns NULL with errno set if out of memory.
 */
extern char *backing_path (const char *filename, const char *backing);

/* QEMU's size_to_str: "10 MiB", "1.5 GiB", "224 KiB". */
extern void size_to_str (uint64_t val, char *buf, size_t len);

/* Print STR as a JSON string literal (with quotes). */
extern void json_print_string (const char *str);

/* The default bitmap granularity QEMU picks for a cluster size. */
extern uint64_t default_bitmap_granularity (uint32_t cluster_size);

/* Raw images: persistent bitmaps in the QBM sidecar (sidecar.c). */
struct qbm;
struct qcow2_bitmap_info;

/* --sidecar=PATH of the command, or NULL for IMAGE.qbm. */
extern const char *img_sidecar_path;
/* -U: read-only sidecar opens take no lock. */
extern bool img_sidecar_force_share;


/* Size of a file or block device. */
extern int image_size_of (const char *path, uint64_t *size);
/* The sidecar of the raw image PATH (or PATH is the descriptor itself;
 * *IMAGE_RET, if not NULL, is then the image it describes).  Prints the
 * error and returns NULL on failure; a missing sidecar is an empty one.
 */
extern struct qbm *open_sidecar (const char *path, bool rdonly,
                                 char **image_ret);
/* The sidecar's bitmaps as qcow2_bitmap_list reports qcow2's (in-use and
 * auto flags), for info.
 */
extern int sidecar_bitmap_list (struct qbm *q,
                                struct qcow2_bitmap_info **list, size_t *n);
/* The bitmap NAME of a --merge source (qcow2, or raw with a sidecar). */
extern struct hbitmap *load_source_bitmap (const char *path,
                                           enum img_format fmt,
                                           const char *name,
                                           char *err, size_t errlen);
/* nbdcbt-img check of a raw image's sidecar: the exit status. */
extern int sidecar_check (const char *path, bool quiet, bool json);

/* The persistent bitmaps of an image, in its qcow2 bitmaps extension or
 * in the QBM sidecar of a raw image (image-bitmaps.c).  Operations that
 * fail return -1 with qemu-img's message in ERR.
 */
struct image_bitmaps {
  const char *filename;         /* as the user named it */
  struct qcow2 *q;              /* a qcow2 image, or NULL */
  struct qbm *qbm;              /* the sidecar of a raw image, or NULL */
  char *image;                  /* raw: the image the sidecar describes */
  uint64_t default_granularity; /* for --add without -g, as QEMU picks */
};
struct image_bitmap {
  char *name;
  bool recording;               /* the auto flag */
  bool in_use;                  /* a store keeps it on disk as it is */
  bool usable;                  /* consistent, or recoverable by nbdcbt */
};
/* Open FILENAME (of format FMT) for its bitmaps; QCOW2_FLAGS are
 * qcow2_open's (QCOW2_OPEN_RDONLY also opens a sidecar read-only).
 * Prints the error and returns -1 on failure.
 */
extern int image_bitmaps_open (struct image_bitmaps *ib, const char *filename,
                               enum img_format fmt, unsigned qcow2_flags);
/* Close; prints the error and returns -1 if the image could not be
 * closed cleanly.
 */
extern int image_bitmaps_close (struct image_bitmaps *ib);
extern int image_bitmaps_list (struct image_bitmaps *ib,
                               struct image_bitmap **list, size_t *n,
                               char *err, size_t errlen);
extern void image_bitmap_list_free (struct image_bitmap *list, size_t n);
/* 1 and *INFO (name left NULL) if NAME exists, 0 if not, -1 on error. */
extern int image_bitmaps_lookup (struct image_bitmaps *ib, const char *name,
                                 struct image_bitmap *info,
                                 char *err, size_t errlen);
/* Bitmap NAME, which must exist and be usable. */
extern struct hbitmap *image_bitmaps_load_usable (struct image_bitmaps *ib,
                                                  const char *name,
                                                  char *err, size_t errlen);
/* A new empty recording bitmap (GRANULARITY 0: the default). */
extern int image_bitmaps_add (struct image_bitmaps *ib, const char *name,
                              uint64_t granularity, char *err, size_t errlen);
extern int image_bitmaps_remove (struct image_bitmaps *ib, const char *name,
                                 char *err, size_t errlen);
/* Store NAME with DATA and RECORDING; the other bitmaps are kept. */
extern int image_bitmaps_replace (struct image_bitmaps *ib, const char *name,
                                  const struct hbitmap *data, bool recording,
                                  char *err, size_t errlen);

extern int cmd_create (int argc, char *argv[]);
extern int cmd_info (int argc, char *argv[]);
extern int cmd_check (int argc, char *argv[]);
extern int cmd_bitmap (int argc, char *argv[]);
extern int cmd_map (int argc, char *argv[]);

#endif /* NBDCBT_IMG_H */
