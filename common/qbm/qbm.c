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

/* QBM sidecar: descriptor, bitmap files, intent record (docs/qbm.md). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>

#include "cleanup.h"
#include "bitmap-store.h"
#include "hbitmap.h"
#include "intent.h"
#include "json-text.h"
#include "qbm.h"
#include "utils.h"

#define DESCRIPTOR_MAX (64 << 20)      /* a descriptor larger is damaged */
#define INTENT_MAGIC "NBCTINTR"
#define INTENT_HEADER 64

struct entry {
  char *name;
  char *file;                   /* as written in the descriptor */
  uint64_t granularity;
  bool recording;
  bool in_use;
  bool inconsistent;            /* in use and not covered by our record */
  char sha256[65];
};

struct qbm {
  char *desc_path;
  char *dir;                    /* the descriptor's directory */
  char *base;                   /* the descriptor's file name */
  char *image_path;
  uint64_t image_size;
  bool rdonly;
  bool exists;
  char uuid[33];
  uint64_t generation;
  struct entry *e;
  size_t n;
  /* The intent record as the descriptor names it and as it was found. */
  char *intent_file;
  uint64_t intent_zone_size;
  bool intent_valid;
  char intent_problem[512];
  uint8_t *intent_bits;         /* at open (recovery) */
  size_t intent_nbytes;
  /* The live record (after qbm_mark_in_use). */
  struct intent *intent;
  int intent_fd;
  int lock_fd;                  /* D.lock, locked while open, or -1 */
  bool force_share;             /* QBM_OPEN_FORCE_SHARE: take no lock */
};

/* --- errors ------------------------------------------------------------ */

static __thread char last_error[1024];

const char *
qbm_last_error (void)
{
  return last_error[0] ? last_error : "no error";
}

static int qbm_error (int errnum, const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 2, 3)));
static int
qbm_error (int errnum, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  vsnprintf (last_error, sizeof last_error, fs, args);
  va_end (args);
  errno = errnum;
  return -1;
}

/* --- small helpers ------------------------------------------------------ */

static char *
join (const char *dir, const char *file)
{
  char *r;

  if (file[0] == '/')
    return strdup (file);
  if (asprintf (&r, "%s/%s", dir, file) == -1)
    return NULL;
  return r;
}

static int
sha256_hex (const void *buf, size_t len, char out[65])
{
  unsigned char d[32];
  int i;

  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, buf, len, d) < 0) {
    errno = EIO;
    return -1;
  }
  for (i = 0; i < 32; i++)
    sprintf (&out[2 * i], "%02x", d[i]);
  return 0;
}

static int
fsync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r;

  if (fd == -1)
    return -1;
  r = fsync (fd);
  close (fd);
  return r;
}

/* Write BUF to PATH atomically: PATH.tmp, fsync, rename, directory fsync. */
static int
replace_file (struct qbm *q, const char *path, const void *buf, size_t len)
{
  CLEANUP_FREE char *tmp = NULL;
  int fd;

  if (asprintf (&tmp, "%s.tmp", path) == -1)
    return qbm_error (ENOMEM, "%s: %m", path);
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1)
    return qbm_error (errno, "%s: cannot create: %m", tmp);
  if (full_write (fd, buf, len) == -1 || fsync (fd) == -1) {
    int e = errno;
    close (fd);
    unlink (tmp);
    return qbm_error (e, "%s: write: %s", tmp, strerror (e));
  }
  if (close (fd) == -1) {
    int e = errno;
    unlink (tmp);
    return qbm_error (e, "%s: close: %s", tmp, strerror (e));
  }
  if (rename (tmp, path) == -1) {
    int e = errno;
    unlink (tmp);
    return qbm_error (e, "%s: rename: %s", path, strerror (e));
  }
  if (fsync_dir (q->dir) == -1)
    return qbm_error (errno, "%s: fsync: %m", q->dir);
  return 0;
}

/* Write BUF to a new file PATH (not replacing anything) and fsync it. */
static int
write_new_file (const char *path, const void *buf, size_t len)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  if (fd == -1)
    return qbm_error (errno, "%s: cannot create: %m", path);
  if (full_write (fd, buf, len) == -1 || fsync (fd) == -1) {
    int e = errno;
    close (fd);
    unlink (path);
    return qbm_error (e, "%s: write: %s", path, strerror (e));
  }
  if (close (fd) == -1)
    return qbm_error (errno, "%s: close: %m", path);
  return 0;
}

/* Open a sidecar file for reading: a regular file, or -1 with errno
 * EINVAL ("not a regular file").  O_NONBLOCK: opening a FIFO put in a
 * file's place must not hang the reader.
 */
static int
open_regular (const char *path, struct stat *st)
{
  int fd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

  if (fd == -1)
    return -1;
  if (fstat (fd, st) == -1) {
    int e = errno;
    close (fd);
    errno = e;
    return -1;
  }
  if (!S_ISREG (st->st_mode)) {
    close (fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

static char *
read_whole (const char *path, size_t max, size_t *len)
{
  struct stat st;
  char *buf;
  int fd = open_regular (path, &st);

  if (fd == -1)
    return NULL;
  if ((uint64_t) st.st_size > max) {
    close (fd);
    errno = EFBIG;
    return NULL;
  }
  buf = malloc (st.st_size + 1);
  if (buf == NULL || full_read (fd, buf, st.st_size) == -1) {
    int e = errno ? errno : EIO;
    free (buf);
    close (fd);
    errno = e;
    return NULL;
  }
  close (fd);
  buf[st.st_size] = '\0';
  *len = st.st_size;
  return buf;
}

/* Read a bitmap file of WANT bytes into HB (new, clean) in pieces,
 * hashing as it goes: *SUM is the file's SHA-256 in hex.  Clean pieces
 * are not deserialized at all, and no buffer of the whole file is made:
 * a sparse bitmap costs reading and hashing its file, not memory for it
 * (hbitmap.c).  -1 with errno: EFBIG if the file is larger than WANT,
 * ESPIPE if smaller (*LEN its size), else the read's.  The caller checks
 * *SUM.
 */
#define READ_PIECE (64 * 1024)       /* below malloc's mmap threshold */

static int
read_bitmap_file (const char *path, uint64_t want, struct hbitmap *hb,
                  size_t *len, char sum[65])
{
  CLEANUP_FREE uint8_t *buf = NULL;
  uint64_t done = 0, granularity = hbitmap_granularity (hb);
  gnutls_hash_hd_t h = NULL;
  unsigned char d[32];
  struct stat st;
  int fd, e, i;

  fd = open_regular (path, &st);
  if (fd == -1)
    return -1;
  *len = st.st_size;
  if ((uint64_t) st.st_size != want) {
    errno = (uint64_t) st.st_size > want ? EFBIG : ESPIPE;
    goto fail;
  }
  buf = malloc (READ_PIECE);
  if (buf == NULL || gnutls_hash_init (&h, GNUTLS_DIG_SHA256) < 0) {
    errno = buf ? EIO : ENOMEM;
    h = NULL;
    goto fail;
  }
  while (done < want) {
    size_t n = want - done < READ_PIECE ? want - done : READ_PIECE;

    if (full_read (fd, buf, n) == -1) {
      /* Shorter than fstat said: changed while being read. */
      if (errno == EPIPE || errno == ENODATA)
        errno = ESPIPE;
      goto fail;
    }
    if (gnutls_hash (h, buf, n) < 0) {
      errno = EIO;
      goto fail;
    }
    /* Into a clean bitmap only the nonzero words are written; the last
     * piece may end inside a byte past the last granule (clipped).
     */
    hbitmap_deserialize_part (hb, buf, done * 8 * granularity,
                              n * 8 * granularity);
    done += n;
  }
  gnutls_hash_deinit (h, d);
  h = NULL;
  close (fd);
  for (i = 0; i < 32; i++)
    sprintf (&sum[2 * i], "%02x", d[i]);
  return 0;

 fail:
  e = errno;
  if (h)
    gnutls_hash_deinit (h, NULL);
  close (fd);
  errno = e;
  return -1;
}

static bool
is_power_of_2 (uint64_t v)
{
  return v && (v & (v - 1)) == 0;
}

static uint64_t
bitmap_file_bytes (uint64_t size, uint64_t granularity)
{
  uint64_t bits = size / granularity + (size % granularity != 0);
  return bits / 8 + (bits % 8 != 0);
}

static void
free_entries (struct entry *e, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++) {
    free (e[i].name);
    free (e[i].file);
  }
  free (e);
}

static struct entry *
find (struct qbm *q, const char *name)
{
  size_t i;

  for (i = 0; i < q->n; i++)
    if (strcmp (q->e[i].name, name) == 0)
      return &q->e[i];
  return NULL;
}

/* PATH made absolute (without resolving links: the descriptor's
 * directory is where the user put it).
 */
static char *
absolute (const char *path)
{
  CLEANUP_FREE char *cwd = NULL;
  char *r;

  if (path[0] == '/')
    return strdup (path);
  cwd = getcwd (NULL, 0);
  if (cwd == NULL || asprintf (&r, "%s/%s", cwd, path) == -1)
    return NULL;
  return r;
}

/* --- descriptor -------------------------------------------------------- */

static json_object *
get (json_object *o, const char *key, json_type type)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, type))
    return NULL;
  return v;
}

/* Same file?  (The descriptor's image, resolved, against the served one.) */
static bool
same_file (const char *a, const char *b)
{
  struct stat sa, sb;

  if (stat (a, &sa) == -1 || stat (b, &sb) == -1)
    return strcmp (a, b) == 0;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    && (sa.st_mode & S_IFMT) == (sb.st_mode & S_IFMT)
    && (!S_ISBLK (sa.st_mode) || sa.st_rdev == sb.st_rdev);
}

/* The files a descriptor names must be plain names in its directory: a
 * damaged or hostile descriptor must not make an update (which unlinks
 * the files it no longer names) reach the image, the descriptor itself
 * or anything outside the directory.
 */
static bool
plain_file_name (struct qbm *q, const char *s)
{
  CLEANUP_FREE char *path = NULL;
  size_t bl = strlen (q->base);

  if (s[0] == '\0' || s[0] == '.' || strchr (s, '/') != NULL
      || strlen (s) > 255)
    return false;
  /* Not the descriptor, its temporary or its lock, nor the temporary
   * of the intent record this writer makes (D.intent.tmp).
   */
  if (strncmp (s, q->base, bl) == 0
      && (s[bl] == '\0' || strcmp (s + bl, ".tmp") == 0
          || strcmp (s + bl, ".lock") == 0
          || strcmp (s + bl, ".intent.tmp") == 0))
    return false;
  if (q->image_path == NULL)    /* qbm_probe: the image is not known yet */
    return true;
  path = join (q->dir, s);
  return path != NULL && !same_file (path, q->image_path);
}

/* D.intent: where qbm_mark_in_use puts the record, whatever the
 * descriptor names now.  Never a bitmap's file.
 */
static bool
record_file_name (struct qbm *q, const char *s)
{
  size_t bl = strlen (q->base);

  return strncmp (s, q->base, bl) == 0 && strcmp (s + bl, ".intent") == 0;
}

/* A bitmap file this library wrote (D.GEN.I.bitmap), the only kind an
 * update deletes.  *GEN (if not NULL) is its GEN, UINT64_MAX if it does
 * not fit.
 */
static bool
own_bitmap_file (struct qbm *q, const char *s, uint64_t *gen)
{
  size_t bl = strlen (q->base), d1, d2;

  if (strncmp (s, q->base, bl) != 0 || s[bl] != '.')
    return false;
  s += bl + 1;
  d1 = strspn (s, "0123456789");
  if (d1 == 0 || s[d1] != '.')
    return false;
  if (gen) {
    errno = 0;
    *gen = strtoull (s, NULL, 10);
    if (errno == ERANGE)
      *gen = UINT64_MAX;
  }
  s += d1 + 1;
  d2 = strspn (s, "0123456789");
  return d2 > 0 && strcmp (s + d2, ".bitmap") == 0;
}

/* The generation of the next descriptor.  Past the descriptor's own and
 * past every GEN in the names of the files it names: new bitmap files
 * are D.GEN.I.bitmap, and a descriptor edited or restored by hand may
 * lag its files; a new file must never take the name of one in use.
 * The generation is a JSON int64: one that cannot grow is an error.
 */
static int
next_generation (struct qbm *q, uint64_t *next)
{
  uint64_t g = q->generation, fg;
  size_t i;

  for (i = 0; i < q->n; i++)
    if (own_bitmap_file (q, q->e[i].file, &fg) && fg > g)
      g = fg;
  if (q->intent_file && own_bitmap_file (q, q->intent_file, &fg) && fg > g)
    g = fg;
  if (g >= INT64_MAX)
    return qbm_error (EOVERFLOW, "%s: the QBM descriptor's generation "
                      "cannot grow past %" PRIu64 " (damaged descriptor?)",
                      q->desc_path, g);
  *next = g + 1;
  return 0;
}

/* An optional boolean KEY of O: DEF when absent, -1 when of another type. */
static int
get_bool (json_object *o, const char *key, bool def, bool *ret)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v)) {
    *ret = def;
    return 0;
  }
  if (!json_object_is_type (v, json_type_boolean))
    return -1;
  *ret = json_object_get_boolean (v);
  return 0;
}

static bool
has_duplicate_keys (json_object *root, const char *text, size_t len)
{
  struct json_text_scan scan;

  json_text_scan_init (&scan);
  json_text_scan_feed (&scan, text, len);
  return json_text_duplicate_keys (&scan, root);
}

#define BAD(...) do { qbm_error (EINVAL, __VA_ARGS__); goto err; } while (0)

static int
parse_descriptor (struct qbm *q, const char *text, size_t len, bool check_image)
{
  json_tokener *tok = json_tokener_new ();
  json_object *root = NULL, *top, *image, *v, *bitmaps, *intent;
  enum json_tokener_error jerr;
  struct entry *e = NULL;
  size_t n = 0;
  const char *p = q->desc_path;

  if (tok == NULL)
    return qbm_error (ENOMEM, "%s: %m", p);
  /* Strict: JSON as RFC 8259 has it (no comments, trailing commas...). */
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT);
  root = json_tokener_parse_ex (tok, text, len);
  jerr = json_tokener_get_error (tok);
  if (root == NULL || jerr != json_tokener_success
      || tok->char_offset != (int) len) {
    /* Trailing whitespace is fine; anything else is not. */
    size_t off = tok->char_offset;
    while (root && off < len && strchr (" \t\r\n", text[off]))
      off++;
    if (root == NULL || jerr != json_tokener_success || off != len) {
      if (root == NULL && jerr == json_tokener_continue)
        BAD ("%s: the QBM descriptor is truncated (incomplete JSON)", p);
      BAD ("%s: the QBM descriptor is not valid JSON: %s", p,
           root ? "trailing garbage" : json_tokener_error_desc (jerr));
    }
  }
  /* JSON lets an object name a key twice, and json-c keeps the last: a
   * descriptor with two entries for one bitmap (or two of any key) is
   * ambiguous, and a reader must not pick one silently.
   */
  if (has_duplicate_keys (root, text, len))
    BAD ("%s: the QBM descriptor is ambiguous: an object in it has the "
         "same key twice", p);
  if (!json_object_is_type (root, json_type_object)
      || (top = get (root, "QBM", json_type_object)) == NULL)
    BAD ("%s: not a QBM descriptor (no \"QBM\" object)", p);
  if ((v = get (top, "version", json_type_int)) == NULL)
    BAD ("%s: QBM descriptor without a version", p);
  if (json_object_get_int64 (v) != 1)
    BAD ("%s: unsupported QBM version %" PRIi64 " (this program reads "
         "version 1)", p, json_object_get_int64 (v));
  if ((image = get (top, "image", json_type_object)) == NULL
      || (v = get (image, "file", json_type_string)) == NULL)
    BAD ("%s: QBM descriptor without image.file", p);
  if (check_image) {
    CLEANUP_FREE char *img = join (q->dir, json_object_get_string (v));
    if (img == NULL)
      BAD ("%s: %m", p);
    if (!same_file (img, q->image_path))
      BAD ("%s: this sidecar belongs to %s, not to %s", p, img,
           q->image_path);
  }
  if ((v = get (image, "format", json_type_string)) == NULL
      || strcmp (json_object_get_string (v), "raw") != 0)
    BAD ("%s: image.format must be \"raw\"", p);
  if ((v = get (image, "size", json_type_int)) == NULL
      || json_object_get_int64 (v) < 0)
    BAD ("%s: QBM descriptor without image.size", p);
  if (check_image && (uint64_t) json_object_get_int64 (v) != q->image_size)
    BAD ("%s: the bitmaps describe an image of %" PRIi64 " bytes, but %s "
         "is %" PRIu64 " bytes (resized without its sidecar?); the "
         "bitmaps cannot be trusted: remove the sidecar or restore the "
         "size", p, json_object_get_int64 (v), q->image_path,
         q->image_size);
  if (!check_image)
    q->image_size = json_object_get_int64 (v);
  if ((v = get (top, "uuid", json_type_string)) == NULL
      || strlen (json_object_get_string (v)) != 32)
    BAD ("%s: QBM descriptor without a valid uuid", p);
  strcpy (q->uuid, json_object_get_string (v));
  if ((v = get (top, "generation", json_type_int)) == NULL
      || json_object_get_int64 (v) < 0)
    BAD ("%s: QBM descriptor without a generation", p);
  q->generation = json_object_get_int64 (v);

  free (q->intent_file);
  q->intent_file = NULL;
  if (json_object_object_get_ex (top, "intent", &v)
      && !json_object_is_type (v, json_type_object))
    BAD ("%s: intent must be an object", p);
  if ((intent = get (top, "intent", json_type_object)) != NULL) {
    if ((v = get (intent, "file", json_type_string)) == NULL)
      BAD ("%s: intent without a file", p);
    if (!plain_file_name (q, json_object_get_string (v)))
      BAD ("%s: intent.file must be a plain file name in the sidecar's "
           "directory, not the image or the descriptor", p);
    q->intent_file = strdup (json_object_get_string (v));
    if ((v = get (intent, "zone-size", json_type_int)) == NULL
        || !intent_zone_size_valid (json_object_get_int64 (v)))
      BAD ("%s: intent.zone-size must be a power of two from 64 KiB to "
           "1 TiB", p);
    q->intent_zone_size = json_object_get_int64 (v);
  }

  if ((bitmaps = get (top, "bitmaps", json_type_object)) == NULL)
    BAD ("%s: QBM descriptor without a bitmaps object", p);
  e = calloc (json_object_object_length (bitmaps) + 1, sizeof *e);
  if (e == NULL)
    BAD ("%s: %m", p);
  {
    json_object_object_foreach (bitmaps, name, b) {
      struct entry *x = &e[n];
      const char *s;
      int64_t g;
      size_t i;

      if (!json_object_is_type (b, json_type_object))
        BAD ("%s: bitmap '%s' is not an object", p, name);
      if (name[0] == '\0' || strlen (name) > 1023)
        BAD ("%s: bitmap name must be 1 to 1023 bytes", p);
      if ((v = get (b, "type", json_type_string)) == NULL
          || strcmp (json_object_get_string (v), "dirty") != 0)
        BAD ("%s: bitmap '%s': type must be \"dirty\"", p, name);
      if ((v = get (b, "file", json_type_string)) == NULL
          || json_object_get_string (v)[0] == '\0')
        BAD ("%s: bitmap '%s' without a file", p, name);
      s = json_object_get_string (v);
      if (!plain_file_name (q, s) || record_file_name (q, s)
          || (q->intent_file && strcmp (s, q->intent_file) == 0))
        BAD ("%s: bitmap '%s': file must be a plain file name in the "
             "sidecar's directory, not the image, the descriptor or the "
             "intent record", p, name);
      for (i = 0; i < n; i++)
        if (strcmp (e[i].file, s) == 0)
          BAD ("%s: bitmaps '%s' and '%s' name the same file", p,
               e[i].name, name);
      x->file = strdup (s);
      if ((v = get (b, "granularity-bytes", json_type_int)) == NULL)
        BAD ("%s: bitmap '%s' without granularity-bytes", p, name);
      g = json_object_get_int64 (v);
      if (g < 512 || g > (INT64_C (1) << 31) || !is_power_of_2 (g))
        BAD ("%s: bitmap '%s': granularity-bytes %" PRIi64 " is not a "
             "power of two from 512 to 2 GiB", p, name, g);
      x->granularity = g;
      if ((v = get (b, "sha256", json_type_string)) == NULL
          || strlen (s = json_object_get_string (v)) != 64
          || strspn (s, "0123456789abcdef") != 64)
        BAD ("%s: bitmap '%s': sha256 must be 64 lowercase hex digits", p,
             name);
      strcpy (x->sha256, s);
      if (get_bool (b, "recording", true, &x->recording) == -1
          || get_bool (b, "in-use", false, &x->in_use) == -1
          || get_bool (b, "inconsistent", false, &x->inconsistent) == -1)
        BAD ("%s: bitmap '%s': recording, in-use and inconsistent must "
             "be true or false", p, name);
      x->name = strdup (name);
      n++;
      if (x->name == NULL || x->file == NULL)
        BAD ("%s: %m", p);
    }
  }
  free_entries (q->e, q->n);
  q->e = e;
  q->n = n;
  json_object_put (root);
  json_tokener_free (tok);
  return 0;

 err:
  if (e)
    free_entries (e, n + 1);    /* e[n] may be half filled */
  json_object_put (root);
  json_tokener_free (tok);
  return -1;
}

static char *
build_descriptor (struct qbm *q, struct entry *e, size_t n, uint64_t gen,
                  const char *intent_file, uint64_t zone_size, size_t *len)
{
  json_object *root = json_object_new_object ();
  json_object *top = json_object_new_object ();
  json_object *image = json_object_new_object ();
  json_object *bitmaps = json_object_new_object ();
  CLEANUP_FREE char *imgrel = NULL;
  const char *img = q->image_path;
  char *r = NULL;
  size_t i, dl = strlen (q->dir);

  /* The image relative to the descriptor when it is beside it. */
  if (strncmp (img, q->dir, dl) == 0 && img[dl] == '/'
      && strchr (img + dl + 1, '/') == NULL)
    img = img + dl + 1;

  json_object_object_add (root, "QBM", top);
  json_object_object_add (top, "version", json_object_new_int (1));
  json_object_object_add (top, "image", image);
  json_object_object_add (image, "file", json_object_new_string (img));
  json_object_object_add (image, "format", json_object_new_string ("raw"));
  json_object_object_add (image, "size",
                          json_object_new_int64 (q->image_size));
  json_object_object_add (top, "uuid", json_object_new_string (q->uuid));
  json_object_object_add (top, "generation", json_object_new_int64 (gen));
  if (intent_file) {
    json_object *in = json_object_new_object ();
    json_object_object_add (in, "file", json_object_new_string (intent_file));
    json_object_object_add (in, "zone-size",
                            json_object_new_int64 (zone_size));
    json_object_object_add (top, "intent", in);
  }
  json_object_object_add (top, "bitmaps", bitmaps);
  for (i = 0; i < n; i++) {
    json_object *b = json_object_new_object ();
    json_object_object_add (b, "type", json_object_new_string ("dirty"));
    json_object_object_add (b, "file", json_object_new_string (e[i].file));
    json_object_object_add (b, "granularity-bytes",
                            json_object_new_int64 (e[i].granularity));
    json_object_object_add (b, "recording",
                            json_object_new_boolean (e[i].recording));
    json_object_object_add (b, "in-use",
                            json_object_new_boolean (e[i].in_use));
    if (e[i].inconsistent)
      json_object_object_add (b, "inconsistent",
                              json_object_new_boolean (true));
    json_object_object_add (b, "sha256", json_object_new_string (e[i].sha256));
    json_object_object_add (bitmaps, e[i].name, b);
  }
  {
    const char *s = json_object_to_json_string_ext (root,
                                                    JSON_C_TO_STRING_PRETTY
                                                    | JSON_C_TO_STRING_SPACED
                                                    | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (s && asprintf (&r, "%s\n", s) != -1)
      *len = strlen (r);
    else
      r = NULL;
  }
  json_object_put (root);
  return r;
}

/* --- intent record file ------------------------------------------------ */

static void
put_be64 (uint8_t *p, uint64_t v)
{
  int i;
  for (i = 0; i < 8; i++)
    p[i] = v >> (56 - 8 * i);
}

static void
header_bytes (struct qbm *q, uint64_t zone_size, uint8_t h[INTENT_HEADER])
{
  memset (h, 0, INTENT_HEADER);
  memcpy (h, INTENT_MAGIC, 8);
  h[11] = 1;                    /* version, big-endian u32 */
  put_be64 (h + 16, zone_size);
  put_be64 (h + 24, q->image_size);
  memcpy (h + 32, q->uuid, 32);
}

/* Read and validate the record the descriptor names. */
static void
read_intent (struct qbm *q)
{
  CLEANUP_FREE char *path = NULL;
  CLEANUP_FREE char *buf = NULL;
  uint8_t want[INTENT_HEADER];
  size_t len, nbytes;

  q->intent_valid = false;
  free (q->intent_bits);
  q->intent_bits = NULL;
  if (q->intent_file == NULL) {
    snprintf (q->intent_problem, sizeof q->intent_problem,
              "the descriptor names no intent record");
    return;
  }
  path = join (q->dir, q->intent_file);
  if (path == NULL || (buf = read_whole (path, DESCRIPTOR_MAX, &len)) == NULL) {
    snprintf (q->intent_problem, sizeof q->intent_problem,
              "intent record %s: %s", path ? path : q->intent_file,
              errno == EINVAL ? "not a regular file" : strerror (errno));
    return;
  }
  header_bytes (q, q->intent_zone_size, want);
  nbytes = intent_bitmap_bytes (q->image_size, q->intent_zone_size);
  if (len != INTENT_HEADER + nbytes || memcmp (buf, want, INTENT_HEADER)) {
    snprintf (q->intent_problem, sizeof q->intent_problem,
              "intent record %s does not belong to this sidecar (or is "
              "damaged)", path);
    return;
  }
  q->intent_bits = malloc (nbytes + 1);
  if (q->intent_bits == NULL) {
    snprintf (q->intent_problem, sizeof q->intent_problem, "out of memory");
    return;
  }
  memcpy (q->intent_bits, buf + INTENT_HEADER, nbytes);
  q->intent_nbytes = nbytes;
  q->intent_valid = true;
  q->intent_problem[0] = '\0';
}

static int
persist_intent (void *opaque, const uint8_t *bits, size_t offset, size_t len)
{
  struct qbm *q = opaque;

  return full_pwrite_dsync (q->intent_fd, bits, len, INTENT_HEADER + offset);
}

/* --- public ------------------------------------------------------------ */

char *
qbm_default_path (const char *image)
{
  char *r;

  if (asprintf (&r, "%s" QBM_SUFFIX, image) == -1)
    return NULL;
  return r;
}

int
qbm_probe (const char *path, char **image)
{
  struct qbm q = { 0 };
  CLEANUP_FREE char *text = NULL;
  CLEANUP_FREE char *copy = NULL;
  size_t len, i;
  int r = 0;
  char *slash;

  text = read_whole (path, DESCRIPTOR_MAX, &len);
  if (text == NULL || len < 2 || strstr (text, "\"QBM\"") == NULL)
    return 0;
  /* A JSON object that names "QBM" is meant as a descriptor: if it cannot
   * be read as one, say why rather than call it an image (served as a
   * disk, clients would overwrite it).
   */
  i = strspn (text, " \t\r\n");
  if (text[i] == '{')
    r = -1;
  copy = realpath (path, NULL);
  if (copy == NULL) {
    if (r == -1)
      qbm_error (errno, "%s: %m", path);
    return r;
  }
  q.desc_path = copy;
  slash = strrchr (copy, '/');
  q.dir = strndup (copy, slash - copy > 0 ? slash - copy : 1);
  q.base = slash + 1;           /* not freed: points into COPY */
  if (q.dir == NULL)
    qbm_error (ENOMEM, "%s: %m", path);
  else if (parse_descriptor (&q, text, len, false) == 0) {
    json_tokener *t = json_tokener_new ();
    json_object *root = t ? json_tokener_parse_ex (t, text, len) : NULL, *top,
      *img, *f;
    if (root && json_object_object_get_ex (root, "QBM", &top)
        && json_object_object_get_ex (top, "image", &img)
        && json_object_object_get_ex (img, "file", &f)) {
      *image = join (q.dir, json_object_get_string (f));
      r = *image != NULL ? 1 : -1;
    }
    if (r != 1)
      qbm_error (ENOMEM, "%s: %m", path);
    json_object_put (root);
    if (t)
      json_tokener_free (t);
  }
  free_entries (q.e, q.n);
  free (q.intent_file);
  free (q.dir);
  return r;
}

static int lock_sidecar (struct qbm *q);

struct qbm *
qbm_open (const char *desc_path, const char *image_path, uint64_t image_size,
          int flags)
{
  struct qbm *q = calloc (1, sizeof *q);
  CLEANUP_FREE char *text = NULL;
  char *slash;
  size_t len;

  if (q == NULL) {
    qbm_error (ENOMEM, "%s: %m", desc_path);
    return NULL;
  }
  q->intent_fd = -1;
  q->lock_fd = -1;
  q->rdonly = flags & QBM_OPEN_RDONLY;
  q->force_share = flags & QBM_OPEN_FORCE_SHARE;
  q->image_size = image_size;
  q->desc_path = absolute (desc_path);
  q->image_path = absolute (image_path);
  slash = q->desc_path ? strrchr (q->desc_path, '/') : NULL;
  if (slash == NULL) {
    q->dir = strdup (".");
    q->base = q->desc_path ? strdup (q->desc_path) : NULL;
  }
  else {
    q->dir = strndup (q->desc_path,
                      slash == q->desc_path ? 1 : slash - q->desc_path);
    q->base = strdup (slash + 1);
  }
  if (!q->desc_path || !q->image_path || !q->dir || !q->base) {
    qbm_error (ENOMEM, "%s: %m", desc_path);
    goto err;
  }
  /* An existing sidecar is locked before it is read (a new one when it
   * is made, in commit).
   */
  if (access (desc_path, F_OK) == 0 && lock_sidecar (q) == -1)
    goto err;
  text = read_whole (desc_path, DESCRIPTOR_MAX, &len);
  if (text == NULL) {
    if (errno == ENOENT) {
      /* No sidecar yet: an empty store with a fresh identity. */
      unsigned char u[16];
      int i;
      if (gnutls_rnd (GNUTLS_RND_NONCE, u, sizeof u) < 0) {
        qbm_error (EIO, "%s: cannot make a uuid", desc_path);
        goto err;
      }
      for (i = 0; i < 16; i++)
        sprintf (&q->uuid[2 * i], "%02x", u[i]);
      return q;
    }
    if (errno == EFBIG)
      qbm_error (EINVAL, "%s: too large to be a QBM descriptor", desc_path);
    else if (errno == EINVAL)
      qbm_error (EINVAL, "%s: not a regular file", desc_path);
    else
      qbm_error (errno, "%s: %m", desc_path);
    goto err;
  }
  if (parse_descriptor (q, text, len, true) == -1)
    goto err;
  q->exists = true;
  read_intent (q);
  return q;

 err:
  qbm_close (q);
  return NULL;
}

void
qbm_close (struct qbm *q)
{
  if (q == NULL)
    return;
  intent_free (q->intent);
  if (q->intent_fd >= 0)
    close (q->intent_fd);
  if (q->lock_fd >= 0)
    close (q->lock_fd);
  free_entries (q->e, q->n);
  free (q->intent_file);
  free (q->intent_bits);
  free (q->desc_path);
  free (q->dir);
  free (q->base);
  free (q->image_path);
  free (q);
}

bool
qbm_exists (const struct qbm *q)
{
  return q->exists;
}

const char *
qbm_path (const struct qbm *q)
{
  return q->desc_path;
}

static bool
recoverable (struct qbm *q, const struct entry *x)
{
  return x->in_use && q->intent_valid && !x->inconsistent;
}

int
qbm_list (struct qbm *q, struct qbm_bitmap_info **list, size_t *n)
{
  size_t i;

  *list = calloc (q->n + 1, sizeof **list);
  if (*list == NULL)
    return qbm_error (ENOMEM, "%m");
  for (i = 0; i < q->n; i++) {
    (*list)[i].name = strdup (q->e[i].name);
    if ((*list)[i].name == NULL) {
      qbm_list_free (*list, i);
      return qbm_error (ENOMEM, "%m");
    }
    (*list)[i].granularity = q->e[i].granularity;
    (*list)[i].recording = q->e[i].recording;
    (*list)[i].in_use = q->e[i].in_use;
    (*list)[i].inconsistent = q->e[i].in_use && !recoverable (q, &q->e[i]);
  }
  *n = q->n;
  return 0;
}

void
qbm_list_free (struct qbm_bitmap_info *list, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    free (list[i].name);
  free (list);
}

struct hbitmap *
qbm_load (struct qbm *q, const char *name)
{
  struct entry *x = find (q, name);
  CLEANUP_FREE char *path = NULL;
  struct hbitmap *hb;
  uint64_t want;
  size_t len = 0;
  char sum[65];

  if (x == NULL) {
    qbm_error (ENOENT, "%s: no bitmap '%s'", q->desc_path, name);
    return NULL;
  }
  if (x->in_use && !recoverable (q, x)) {
    qbm_error (EBUSY, "%s: bitmap '%s' is inconsistent (in use when the "
               "server stopped, and %s); it can only be removed",
               q->desc_path, name, q->intent_problem);
    return NULL;
  }
  path = join (q->dir, x->file);
  if (path == NULL) {
    qbm_error (ENOMEM, "%m");
    return NULL;
  }
  want = bitmap_file_bytes (q->image_size, x->granularity);
  hb = hbitmap_new (q->image_size, x->granularity);
  if (hb == NULL) {
    qbm_error (errno, "bitmap '%s': %m", name);
    return NULL;
  }
  if (read_bitmap_file (path, want, hb, &len, sum) == -1) {
    if (errno == EFBIG)
      qbm_error (EINVAL, "%s: bitmap '%s': the file is larger than the "
                 "%" PRIu64 " bytes a bitmap of this image has", path, name,
                 want);
    else if (errno == EINVAL)
      qbm_error (EINVAL, "%s: bitmap '%s': not a regular file", path, name);
    else if (errno == ESPIPE)
      qbm_error (EINVAL, "%s: bitmap '%s': the file is %zu bytes, a bitmap "
                 "of this image has %" PRIu64 " (truncated or damaged)",
                 path, name, len, want);
    else
      qbm_error (errno, "%s: bitmap '%s': %m", path, name);
    hbitmap_free (hb);
    return NULL;
  }
  if (strcmp (sum, x->sha256) != 0) {
    qbm_error (EINVAL, "%s: bitmap '%s': checksum mismatch (the file is "
               "damaged)", path, name);
    hbitmap_free (hb);
    return NULL;
  }
  if (x->in_use)
    intent_apply (q->intent_bits, q->intent_nbytes, q->intent_zone_size, hb);
  return hb;
}

/* Descriptor file names of the bitmap files: BASE.GEN.I.bitmap. */
static char *
bitmap_file_name (struct qbm *q, uint64_t gen, size_t i)
{
  char *r;

  if (asprintf (&r, "%s.%" PRIu64 ".%zu.bitmap", q->base, gen, i) == -1)
    return NULL;
  return r;
}

static void
unlink_unused (struct qbm *q, struct entry *old, size_t nold)
{
  size_t i, j;

  for (i = 0; i < nold; i++) {
    bool used = false;
    for (j = 0; j < q->n; j++)
      used |= strcmp (old[i].file, q->e[j].file) == 0;
    if (!used && own_bitmap_file (q, old[i].file, NULL)) {
      CLEANUP_FREE char *p = join (q->dir, old[i].file);
      if (p)
        unlink (p);
    }
  }
}

/* The sidecar's lock: an OFD lock on the whole of D.lock, exclusive for
 * a read-write user, shared for a read-only one, held until qbm_close.
 * Two servers, or a server and nbdcbt-img, never write one sidecar at
 * once (the image's own QEMU locks do not cover a sidecar reached
 * through another name of the same disk).  The file is made with the
 * sidecar and never removed: removing a lock file races with its users.
 * A read-only user of a sidecar without one takes no lock.
 */
static int
lock_sidecar (struct qbm *q)
{
  CLEANUP_FREE char *path = NULL;
  struct flock fl = { .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };

  if (q->force_share || q->lock_fd >= 0)
    return 0;
  if (asprintf (&path, "%s.lock", q->desc_path) == -1)
    return qbm_error (ENOMEM, "%m");
  /* O_NONBLOCK: a FIFO in its place must not hang the open. */
  q->lock_fd = q->rdonly ? open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    : open (path, O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
  if (q->lock_fd == -1) {
    if (q->rdonly && (errno == ENOENT || errno == EACCES))
      return 0;
    return qbm_error (errno, "%s: %m", path);
  }
  fl.l_type = q->rdonly ? F_RDLCK : F_WRLCK;
  if (fcntl (q->lock_fd, F_OFD_SETLK, &fl) == 0)
    return 0;
  if (errno == EINVAL || errno == ENOTSUP || errno == ENOLCK
      || errno == ENOSYS)
    return 0;                   /* no OFD locks here: as QEMU, go on */
  if (errno == EAGAIN || errno == EACCES)
    qbm_error (EAGAIN, "%s: Failed to get %s lock on the sidecar: another "
               "process (nbdcbt, nbdcbt-img) is using it%s", q->desc_path,
               q->rdonly ? "a shared" : "the write",
               q->rdonly ? " read-write (use -U to read it anyway)" : "");
  else
    qbm_error (errno, "%s: cannot lock: %m", path);
  close (q->lock_fd);
  q->lock_fd = -1;
  return -1;
}

/* Write descriptor with E (taking ownership on success). */
static int
commit (struct qbm *q, struct entry *e, size_t n, uint64_t gen)
{
  CLEANUP_FREE char *text = NULL;
  struct entry *old = q->e;
  size_t len = 0, nold = q->n;

  /* A new sidecar: its lock first. */
  if (!q->exists && lock_sidecar (q) == -1)
    return -1;

  text = build_descriptor (q, e, n, gen, q->intent_file, q->intent_zone_size,
                           &len);
  if (text == NULL)
    return qbm_error (ENOMEM, "%s: %m", q->desc_path);
  if (replace_file (q, q->desc_path, text, len) == -1)
    return -1;
  q->e = e;
  q->n = n;
  q->generation = gen;
  q->exists = true;
  unlink_unused (q, old, nold);
  free_entries (old, nold);
  return 0;
}

static struct entry *
copy_entries (const struct entry *e, size_t n)
{
  struct entry *c = calloc (n + 1, sizeof *c);
  size_t i;

  if (c == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    c[i] = e[i];
    c[i].name = strdup (e[i].name);
    c[i].file = strdup (e[i].file);
    if (!c[i].name || !c[i].file) {
      free_entries (c, i + 1);
      return NULL;
    }
  }
  return c;
}

int
qbm_store (struct qbm *q, const struct bitmap_store_entry *entries, size_t n,
           const char *const *keep, size_t nkeep)
{
  struct entry *e;
  size_t i, ne = 0, k;
  uint64_t gen;
  CLEANUP_FREE char *written = NULL;    /* new files, to undo on failure */

  if (q->rdonly)
    return qbm_error (EROFS, "%s: opened read-only", q->desc_path);
  if (!q->exists && n == 0 && q->intent_file == NULL)
    return 0;                   /* nothing to keep, nothing to create */
  if (next_generation (q, &gen) == -1)
    return -1;
  e = calloc (n + nkeep + 1, sizeof *e);
  written = calloc (n + 1, 1);
  if (e == NULL || written == NULL) {
    free (e);
    return qbm_error (ENOMEM, "%m");
  }
  for (k = 0; k < nkeep; k++) {
    struct entry *x = find (q, keep[k]);
    if (x == NULL)
      continue;
    e[ne] = *x;
    e[ne].name = strdup (x->name);
    e[ne].file = strdup (x->file);
    if (!e[ne].name || !e[ne].file) {
      ne++;
      goto nomem;
    }
    ne++;
  }
  for (i = 0; i < n; i++) {
    const struct hbitmap *hb = entries[i].bitmap;
    struct entry *x = &e[ne];
    struct entry *prev = find (q, entries[i].name);
    uint64_t len;
    CLEANUP_FREE uint8_t *buf = NULL;

    if (hbitmap_size (hb) != q->image_size) {
      free_entries (e, ne);
      return qbm_error (EINVAL, "%s: bitmap '%s' is %" PRIu64 " bytes, the "
                        "image %" PRIu64, q->desc_path, entries[i].name,
                        hbitmap_size (hb), q->image_size);
    }
    len = bitmap_file_bytes (q->image_size, hbitmap_granularity (hb));
    buf = calloc (len + 1, 1);
    x->name = strdup (entries[i].name);
    if (buf == NULL || x->name == NULL) {
      ne++;
      goto nomem;
    }
    ne++;
    if (q->image_size)
      hbitmap_serialize_part (hb, buf, 0, q->image_size);
    if (sha256_hex (buf, len, x->sha256) == -1) {
      free_entries (e, ne);
      return qbm_error (EIO, "sha256 failed");
    }
    x->granularity = hbitmap_granularity (hb);
    x->recording = entries[i].recording;
    x->in_use = entries[i].in_use;
    if (prev && prev->granularity == x->granularity
        && strcmp (prev->sha256, x->sha256) == 0) {
      /* Same data: the file on disk already holds it. */
      x->file = strdup (prev->file);
      if (x->file == NULL)
        goto nomem;
      continue;
    }
    x->file = bitmap_file_name (q, gen, i);
    if (x->file == NULL)
      goto nomem;
    {
      CLEANUP_FREE char *path = join (q->dir, x->file);
      if (path == NULL)
        goto nomem;
      if (write_new_file (path, buf, len) == -1)
        goto fail;
      written[i] = 1;
    }
  }
  if (commit (q, e, ne, gen) == -1)
    goto fail;
  return 0;

 nomem:
  qbm_error (ENOMEM, "%m");
 fail:
  {
    int err = errno;
    for (i = 0; i < n; i++)
      if (written[i]) {
        CLEANUP_FREE char *f = bitmap_file_name (q, gen, i);
        CLEANUP_FREE char *p = f ? join (q->dir, f) : NULL;
        if (p)
          unlink (p);
      }
    free_entries (e, ne);
    errno = err;
  }
  return -1;
}

int
qbm_mark_in_use (struct qbm *q, uint64_t zone_size, struct intent **ret)
{
  struct intent_backend backend = { .opaque = q, .persist = persist_intent };
  CLEANUP_FREE uint8_t *file = NULL;
  CLEANUP_FREE char *name = NULL;
  CLEANUP_FREE char *path = NULL;
  struct entry *e = NULL;
  struct intent *intent = NULL;
  char *new_file = NULL, *old_file;
  size_t nbytes, i;
  uint64_t z, gen, old_zone_size;
  int fd, err;

  if (q->rdonly)
    return qbm_error (EROFS, "%s: opened read-only", q->desc_path);
  if (next_generation (q, &gen) == -1)
    return -1;
  if (zone_size == 0)
    zone_size = INTENT_DEFAULT_ZONE_SIZE;
  if (!intent_zone_size_valid (zone_size))
    return qbm_error (EINVAL, "zone size %" PRIu64 " is not a power of two "
                      "from 64 KiB to 1 TiB", zone_size);
  /* While the old record recovers a bitmap, the new one keeps its zone
   * size: the new record replaces the file before the new descriptor
   * replaces the old, and a crash in between must leave a record that
   * the old descriptor (which names the old zone size) still reads.
   */
  for (i = 0; i < q->n; i++)
    if (recoverable (q, &q->e[i]))
      zone_size = q->intent_zone_size;

  /* The new record starts with every zone the old one marked, so that
   * recovered bitmaps stay covered until their next store.
   */
  nbytes = intent_bitmap_bytes (q->image_size, zone_size);
  file = calloc (INTENT_HEADER + nbytes + 1, 1);
  if (file == NULL)
    return qbm_error (ENOMEM, "%m");
  header_bytes (q, zone_size, file);
  if (q->intent_valid)
    for (z = 0; z < q->intent_nbytes * 8; z++)
      if (q->intent_bits[z / 8] & (1u << (z % 8))) {
        uint64_t a = z * q->intent_zone_size;
        uint64_t b = a + q->intent_zone_size;
        uint64_t y;
        if (a >= q->image_size)
          break;
        if (b > q->image_size)
          b = q->image_size;
        for (y = a / zone_size; y * zone_size < b; y++)
          file[INTENT_HEADER + y / 8] |= 1u << (y % 8);
      }
  if (asprintf (&name, "%s.intent", q->base) == -1
      || (path = join (q->dir, name)) == NULL)
    return qbm_error (ENOMEM, "%m");
  if (replace_file (q, path, file, INTENT_HEADER + nbytes) == -1)
    return -1;
  /* The new record's fd, object and name become q's only once the
   * descriptor naming them is written: on a failure (a full disk) they
   * are released here, and a retry (the dirty filter tries again at the
   * next persistent bitmap) does not leave the previous ones behind.
   */
  fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd == -1)
    return qbm_error (errno, "%s: %m", path);
  intent = intent_new (q->image_size, zone_size, file + INTENT_HEADER,
                       &backend);
  if (intent == NULL) {
    qbm_error (errno, "intent record: %m");
    goto err;
  }
  new_file = strdup (name);
  e = copy_entries (q->e, q->n);
  if (new_file == NULL || e == NULL) {
    qbm_error (ENOMEM, "%m");
    goto err;
  }
  /* Now the descriptor: every bitmap in use, the new record named.  The
   * recovered ones are marked consistent only at their next store.
   */
  for (i = 0; i < q->n; i++) {
    /* One inconsistent now stays so: the new record does not cover it. */
    if (q->e[i].in_use && !recoverable (q, &q->e[i]))
      e[i].inconsistent = true;
    e[i].in_use = true;
  }
  old_file = q->intent_file;
  old_zone_size = q->intent_zone_size;
  q->intent_file = new_file;
  q->intent_zone_size = zone_size;
  if (commit (q, e, q->n, gen) == -1) {
    q->intent_file = old_file;
    q->intent_zone_size = old_zone_size;
    goto err;
  }
  free (old_file);
  /* A record from an earlier call is replaced: its file is the new one. */
  intent_free (q->intent);
  if (q->intent_fd >= 0)
    close (q->intent_fd);
  q->intent = intent;
  q->intent_fd = fd;
  /* The record on disk is the new one now; recovery reads it. */
  free (q->intent_bits);
  q->intent_bits = malloc (nbytes + 1);
  if (q->intent_bits)
    memcpy (q->intent_bits, file + INTENT_HEADER, nbytes);
  q->intent_nbytes = nbytes;
  q->intent_valid = q->intent_bits != NULL;
  if (ret)
    *ret = q->intent;
  return 0;

 err:
  err = errno;
  if (e)
    free_entries (e, q->n);
  free (new_file);
  intent_free (intent);
  close (fd);
  errno = err;
  return -1;
}

int
qbm_mark_in_use_no_record (struct qbm *q)
{
  struct entry *e;
  char *old_intent = q->intent_file;
  size_t i;
  uint64_t gen;

  if (q->rdonly)
    return qbm_error (EROFS, "%s: opened read-only", q->desc_path);
  if (next_generation (q, &gen) == -1)
    return -1;
  e = copy_entries (q->e, q->n);
  if (e == NULL)
    return qbm_error (ENOMEM, "%m");
  for (i = 0; i < q->n; i++)
    e[i].in_use = true;
  /* The descriptor names no record: nothing can recover them. */
  q->intent_file = NULL;
  if (commit (q, e, q->n, gen) == -1) {
    q->intent_file = old_intent;
    free_entries (e, q->n);
    return -1;
  }
  free (old_intent);
  free (q->intent_bits);
  q->intent_bits = NULL;
  q->intent_valid = false;
  snprintf (q->intent_problem, sizeof q->intent_problem,
            "the server kept no intent record");
  return 0;
}

int
qbm_remove (struct qbm *q, const char *name)
{
  struct entry *e;
  size_t i, j = 0;
  uint64_t gen;

  if (q->rdonly)
    return qbm_error (EROFS, "%s: opened read-only", q->desc_path);
  if (find (q, name) == NULL)
    return qbm_error (ENOENT, "%s: no bitmap '%s'", q->desc_path, name);
  if (next_generation (q, &gen) == -1)
    return -1;
  e = calloc (q->n + 1, sizeof *e);
  if (e == NULL)
    return qbm_error (ENOMEM, "%m");
  for (i = 0; i < q->n; i++) {
    if (strcmp (q->e[i].name, name) == 0)
      continue;
    e[j] = q->e[i];
    e[j].name = strdup (q->e[i].name);
    e[j].file = strdup (q->e[i].file);
    j++;
    if (!e[j - 1].name || !e[j - 1].file) {
      free_entries (e, j);
      return qbm_error (ENOMEM, "%m");
    }
  }
  if (commit (q, e, j, gen) == -1) {
    free_entries (e, j);
    return -1;
  }
  return 0;
}

int
qbm_check (struct qbm *q, void (*report) (void *, const char *), void *opaque)
{
  int problems = 0;
  size_t i;
  char msg[2048];

  for (i = 0; i < q->n; i++) {
    struct hbitmap *hb;

    if (q->e[i].in_use && !recoverable (q, &q->e[i])) {
      snprintf (msg, sizeof msg, "bitmap '%s' is inconsistent: in use, "
                "and %s", q->e[i].name, q->intent_problem);
      report (opaque, msg);
      problems++;
      continue;
    }
    hb = qbm_load (q, q->e[i].name);
    if (hb == NULL) {
      report (opaque, qbm_last_error ());
      problems++;
    }
    hbitmap_free (hb);
  }
  return problems;
}
