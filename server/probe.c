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

/* Which chain serves an image file: the probe behind "nbdcbt FILE" and
 * "--export=NAME=FILE".
 *
 * The formats are a table: what a file starts with, the name that
 * promises it, the plugin that serves it, and the filters that go right
 * above that plugin (change tracking for a format that can keep bitmaps;
 * for raw, the guard against writes that would make it look like another
 * format).  A file no entry matches is raw.  Adding a format is a line
 * here; nothing else in the server names a module.
 */
#include <config.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"

#define MAX_FILTERS 4
#define MAGIC_MAX 16

struct image_format {
  const char *name;                     /* for messages */
  size_t magic_len;                     /* at offset 0 */
  const char magic[MAGIC_MAX];
  const char *suffix;                   /* a file named so must match */
  const char *plugin;
  const char *filters[MAX_FILTERS];     /* innermost last; NULL-ended */
  /* A missing filter: skipped, or (REQUIRED_RW) refused unless the server
   * is read-only.
   */
  bool required_rw;
};

static const struct image_format formats[] = {
  /* qcow2 (QEMU's docs/interop/qcow2.txt): changes tracked in the
   * image's persistent bitmaps, and backup sessions (the fleece filter
   * above the dirty filter: its gate covers the marking of each write).
   */
  { "qcow2", 4, "QFI\xfb", ".qcow2", "qcow2", { "fleece", "dirty", NULL },
    false },
};

/* Anything else (a QBM descriptor too: the file plugin serves the image
 * it describes).  Changes tracked in the QBM sidecar's bitmaps (none is
 * made for an image served without bitmaps).  Like QEMU with a probed raw
 * image: no write may turn its first sector into another format's header
 * (the rawguard filter).
 */
static const struct image_format raw =
  { "raw", 0, "", NULL, "file", { "dirty", "rawguard", NULL }, true };
#define RAW_PLUGIN (raw.plugin)

/* The format FILE's first bytes say (BUF, LEN of them), or NULL for raw. */
static const struct image_format *
match (const unsigned char *buf, size_t len)
{
  size_t i;

  for (i = 0; i < sizeof formats / sizeof formats[0]; ++i)
    if (len >= formats[i].magic_len
        && memcmp (buf, formats[i].magic, formats[i].magic_len) == 0)
      return &formats[i];
  return NULL;
}

static bool
has_suffix (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);

  return n >= m && strcasecmp (s + n - m, suffix) == 0;
}

/* A file whose name promises a format it does not have (a damaged image?):
 * serving it as raw would let clients write over what is left of it.
 */
static const struct image_format *
promised (const char *file)
{
  size_t i;

  for (i = 0; i < sizeof formats / sizeof formats[0]; ++i)
    if (formats[i].suffix && has_suffix (file, formats[i].suffix))
      return &formats[i];
  return NULL;
}

static bool
is_in (const const_string_vector *v, const char *s)
{
  size_t i;

  for (i = 0; i < v->len; ++i)
    if (strcmp (v->ptr[i], s) == 0)
      return true;
  return false;
}

const char *
probe_image (const char *file, const_string_vector *filters)
{
  unsigned char buf[MAGIC_MAX] = { 0 };
  const struct image_format *f;
  ssize_t r;
  size_t i;
  struct stat st;
  char *path;
  int fd;

  /* Not a file or block device we can read (missing, a directory ...):
   * the raw plugin says what is wrong with it.
   */
  if (stat (file, &st) == -1
      || !(S_ISREG (st.st_mode) || S_ISBLK (st.st_mode))) {
    nbdcbt_debug ("%s: not an image file: using the %s plugin", file,
                  RAW_PLUGIN);
    return RAW_PLUGIN;
  }
  fd = open (file, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    nbdcbt_error ("%s: %m", file);
    return NULL;
  }
  r = read (fd, buf, sizeof buf);
  close (fd);
  if (r == -1) {
    nbdcbt_error ("%s: read: %m", file);
    return NULL;
  }
  f = match (buf, r);
  if (f == NULL && (f = promised (file)) != NULL) {
    nbdcbt_error ("%s is named like a %s image but has no %s header "
                  "(damaged or not %s?): refusing to serve it as raw; "
                  "if it is raw, say so: nbdcbt %s file=%s", file, f->name,
                  f->name, f->name, RAW_PLUGIN, file);
    return NULL;
  }
  if (f == NULL)
    f = &raw;

  path = module_find (f->plugin, true);
  if (path == NULL && f != &raw) {
    nbdcbt_error ("%s is a %s image, but the %s plugin is not installed",
                  file, f->name, f->plugin);
    return NULL;
  }
  free (path);
  /* Below the user's filters, each filter once, if it is installed. */
  for (i = 0; i < MAX_FILTERS && f->filters[i]; ++i) {
    path = module_find (f->filters[i], false);
    if (path == NULL && f->required_rw && !read_only) {
      nbdcbt_error ("%s: the %s filter is not installed, and a probed %s "
                    "image is not served writable without it (use -r, or "
                    "name the plugin: nbdcbt %s file=%s)", file,
                    f->filters[i], f->name, f->plugin, file);
      return NULL;
    }
    if (path == NULL) {
      nbdcbt_debug ("%s: the %s filter is not installed", file,
                    f->filters[i]);
      continue;
    }
    free (path);
    if (!is_in (filters, f->filters[i])
        && const_string_vector_append (filters, f->filters[i]) == -1) {
      nbdcbt_error ("%m");
      return NULL;
    }
  }
  nbdcbt_debug ("%s: %s image: using the %s plugin", file, f->name,
                f->plugin);
  return f->plugin;
}
