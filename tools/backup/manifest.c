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

/* nbdcbt-backup: the chain manifest (DIR/manifest.json).
 *
 * {
 *   "format": "nbdcbt-backup", "version": 1,
 *   "chain-id": "UUID", "virtual-size": N, "export-name": "...",
 *   "export-description": "..." or null, "disk-id": "..." or null,
 *   "bitmap": "NAME" or null,
 *   "backups": [
 *     { "index": 0, "type": "full", "file": "backup-0000.qcow2",
 *       "backing": null, "started": "...", "finished": "...",
 *       "data-bytes": N, "zero-bytes": N, "file-size": N,
 *       "sums": "backup-0000.sums", "sums-sha256": "HEX" }, ...
 *   ]
 * }
 *
 * "sums" names the checksum list of the file's contents (sums.c) and
 * "sums-sha256" is the SHA-256 of that list.  Entries written before the
 * checksum lists have instead "sha256", the SHA-256 of the whole file;
 * both kinds are read and checked.  Manifests written before
 * "export-description" and "disk-id" existed lack them: read as null.
 *
 * "index" is the backup's number; it grows along the chain.  After a
 * prune the full backup keeps the index of the newest backup merged into
 * it, so the indexes of a pruned chain start above 0 and restore --until
 * keeps meaning the same point.  While a prune is under way the manifest
 * also holds "prune-pending", an entry like those of "backups" for the
 * merged full backup already written (see prune.c).
 *
 * It is replaced atomically by store_put (store.h): in a directory a
 * temporary file, fsync'd and renamed over the old one; in S3 one PUT.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "backup.h"
#include "store.h"
#include "cleanup.h"
#include "utils.h"

#define FORMAT_NAME "nbdcbt-backup"
#define FORMAT_VERSION 1

char *
new_uuid (void)
{
  unsigned char b[16];
  char *s;

  if (gnutls_rnd (GNUTLS_RND_NONCE, b, sizeof b) < 0) {
    error ("gnutls_rnd failed");
    return NULL;
  }
  b[6] = (b[6] & 0x0f) | 0x40;  /* version 4 */
  b[8] = (b[8] & 0x3f) | 0x80;  /* RFC 4122 variant */
  if (asprintf (&s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                "%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
                b[10], b[11], b[12], b[13], b[14], b[15]) == -1) {
    error_errno ("asprintf");
    return NULL;
  }
  return s;
}

char *
now_iso8601 (void)
{
  time_t t = time (NULL);
  struct tm tm;
  char buf[64];

  gmtime_r (&t, &tm);
  strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return strdup (buf);
}

void
backup_entry_free (struct backup_entry *b)
{
  free (b->file);
  free (b->backing);
  free (b->started);
  free (b->finished);
  free (b->sha256);
  free (b->sums_file);
  free (b->sums_sha256);
  memset (b, 0, sizeof *b);
}

ssize_t
manifest_find (const struct manifest *m, int64_t index)
{
  size_t i;

  for (i = 0; i < m->backups.len; ++i)
    if (m->backups.ptr[i].index == index)
      return i;
  return -1;
}

void
manifest_free (struct manifest *m)
{
  size_t i;

  free (m->chain_id);
  free (m->export_name);
  free (m->export_description);
  free (m->disk_id);
  free (m->bitmap);
  for (i = 0; i < m->backups.len; ++i)
    backup_entry_free (&m->backups.ptr[i]);
  free (m->backups.ptr);
  if (m->merge) {
    backup_entry_free (m->merge);
    free (m->merge);
  }
  memset (m, 0, sizeof *m);
}

/* --- Loading ---------------------------------------------------------- */

static const char *where;       /* path for messages */

static json_object *
get (json_object *o, const char *key, json_type type, bool nullable)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v) ||
      (v == NULL && !nullable) ||
      (v != NULL && !json_object_is_type (v, type))) {
    error ("%s: damaged manifest: \"%s\" is missing or not a%s %s", where,
           key, type == json_type_int || type == json_type_object ||
           type == json_type_array ? "n" : "",
           json_type_to_name (type));
    errno = EINVAL;
    return NULL;
  }
  return v;
}

static int
get_u64 (json_object *o, const char *key, uint64_t *ret)
{
  json_object *v = get (o, key, json_type_int, false);
  int64_t i;

  if (!v)
    return -1;
  i = json_object_get_int64 (v);
  if (i < 0) {
    error ("%s: damaged manifest: \"%s\" is negative", where, key);
    return -1;
  }
  /* json-c saturates a number past INT64_MAX to INT64_MAX. */
  if (i == INT64_MAX && json_object_get_uint64 (v) != (uint64_t) INT64_MAX) {
    error ("%s: damaged manifest: \"%s\" is too large", where, key);
    return -1;
  }
  *ret = i;
  return 0;
}

static int
get_str (json_object *o, const char *key, bool nullable, char **ret)
{
  json_object *v = get (o, key, json_type_string, nullable);

  if (!v) {
    *ret = NULL;
    if (nullable && json_object_object_get_ex (o, key, &v) && v == NULL)
      return 0;
    return -1;
  }
  *ret = strdup (json_object_get_string (v));
  if (*ret == NULL) {
    error_errno ("strdup");
    return -1;
  }
  return 0;
}

/* Backup files live directly in the directory. */
static bool
safe_file_name (const char *s)
{
  return s[0] != '\0' && s[0] != '.' && strchr (s, '/') == NULL &&
    strlen (s) < 256;
}

static bool
is_hex64 (const char *s)
{
  size_t i;

  for (i = 0; i < 64; ++i)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return s[64] == '\0';
}

/* The chain id names files and objects (chain-UUID/, the first 8
 * digits in an S3 chain's object names): only the form new_uuid makes.
 */
static bool
is_uuid (const char *s)
{
  size_t i;

  for (i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return false;
    }
    else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  }
  return s[36] == '\0';
}

/* Fill E from the object O; WHAT names it in messages.  E is owned by
 * the caller even on error.
 */
static int
load_entry_fields (json_object *o, const char *what, struct backup_entry *e)
{
  if (get_str (o, "file", false, &e->file) == -1 ||
      get_str (o, "backing", true, &e->backing) == -1 ||
      get_str (o, "started", false, &e->started) == -1 ||
      get_str (o, "finished", false, &e->finished) == -1 ||
      get_u64 (o, "data-bytes", &e->data_bytes) == -1 ||
      get_u64 (o, "zero-bytes", &e->zero_bytes) == -1 ||
      get_u64 (o, "file-size", &e->file_size) == -1)
    return -1;
  if (json_object_object_get_ex (o, "sums", NULL)) {
    if (get_str (o, "sums", false, &e->sums_file) == -1 ||
        get_str (o, "sums-sha256", false, &e->sums_sha256) == -1)
      return -1;
  }
  else if (get_str (o, "sha256", false, &e->sha256) == -1)
    return -1;
  if (!safe_file_name (e->file) ||
      (e->backing && !safe_file_name (e->backing)) ||
      (e->sums_file && !safe_file_name (e->sums_file))) {
    error ("%s: damaged manifest: %s has a bad file name", where, what);
    return -1;
  }
  if (!is_hex64 (e->sums_file ? e->sums_sha256 : e->sha256)) {
    error ("%s: damaged manifest: %s has a bad %s", where, what,
           e->sums_file ? "sums-sha256" : "sha256");
    return -1;
  }
  return 0;
}

/* Entry POS of the list.  Indexes grow along the chain but need not be
 * consecutive: prune merges the oldest backups into a new full one that
 * keeps the index of the last backup it holds.
 */
static int
load_entry (json_object *o, int64_t pos, struct manifest *m)
{
  struct backup_entry b = { 0 };
  json_object *v;
  const char *type;
  uint64_t index;
  char what[64];

  if (!json_object_is_type (o, json_type_object)) {
    error ("%s: damaged manifest: entry %" PRIi64 " is not an object",
           where, pos);
    return -1;
  }
  if (get_u64 (o, "index", &index) == -1)
    return -1;
  /* The next backup takes index + 1: INT64_MAX leaves it no room. */
  if (index >= INT64_MAX ||
      (pos > 0 && (int64_t) index <= m->backups.ptr[pos - 1].index)) {
    error ("%s: damaged manifest: entry %" PRIi64 " has index %" PRIu64
           " (the indexes must grow along the chain)", where, pos, index);
    return -1;
  }
  b.index = index;
  if ((v = get (o, "type", json_type_string, false)) == NULL)
    return -1;
  type = json_object_get_string (v);
  if (strcmp (type, "full") == 0)
    b.full = true;
  else if (strcmp (type, "incremental") != 0) {
    error ("%s: damaged manifest: backup %" PRIi64 " has unknown type "
           "\"%s\"", where, b.index, type);
    return -1;
  }
  if (b.full != (pos == 0)) {
    error ("%s: damaged manifest: backup %" PRIi64 " must be %s", where,
           b.index, pos == 0 ? "full" : "incremental");
    return -1;
  }
  if (backup_list_append (&m->backups, b) == -1) {
    error_errno ("malloc");
    return -1;
  }
  /* From here on the entry is owned by M (freed by manifest_free). */
  struct backup_entry *e = &m->backups.ptr[m->backups.len - 1];
  snprintf (what, sizeof what, "backup %" PRIi64, e->index);
  if (load_entry_fields (o, what, e) == -1)
    return -1;
  if (pos == 0 ? e->backing != NULL
      : (e->backing == NULL ||
         strcmp (e->backing, m->backups.ptr[pos - 1].file) != 0)) {
    error ("%s: damaged manifest: backup %" PRIi64 " is not backed by the "
           "previous one", where, e->index);
    return -1;
  }
  return 0;
}

/* "prune-pending": the new full backup of an interrupted prune (see
 * prune.c), which the backup after the one of the same index may
 * already name as its backing file.
 */
static int
load_merge (json_object *o, struct manifest *m)
{
  uint64_t index;
  ssize_t pos;

  if (!json_object_is_type (o, json_type_object)) {
    error ("%s: damaged manifest: \"prune-pending\" is not an object", where);
    return -1;
  }
  m->merge = calloc (1, sizeof *m->merge);
  if (m->merge == NULL) {
    error_errno ("calloc");
    return -1;
  }
  if (get_u64 (o, "index", &index) == -1 ||
      load_entry_fields (o, "the pending prune", m->merge) == -1)
    return -1;
  m->merge->index = index;
  m->merge->full = true;
  pos = manifest_find (m, m->merge->index);
  if (pos == -1 || m->merge->backing != NULL) {
    error ("%s: damaged manifest: the pending prune does not fit the chain",
           where);
    return -1;
  }
  return 0;
}

int
manifest_load (struct store *st, struct manifest *m)
{
  CLEANUP_FREE char *path = store_object_path (st, MANIFEST_NAME);
  CLEANUP_FREE char *text = NULL;
  json_object *root = NULL, *v, *list;
  json_tokener *tok;
  uint64_t version;
  size_t i, n, len;
  int r, ret = -1;

  memset (m, 0, sizeof *m);
  if (path == NULL)
    return -1;
  where = path;
  r = store_get (st, MANIFEST_NAME, &text, &len);
  if (r != 0)
    return r;

  tok = json_tokener_new ();
  if (tok == NULL) {
    error_errno ("json_tokener_new");
    return -1;
  }
  root = json_tokener_parse_ex (tok, text, len);
  if (root == NULL) {
    enum json_tokener_error e = json_tokener_get_error (tok);
    error ("%s: damaged manifest: %s", path,
           e == json_tokener_continue ? "unexpected end of file"
           : json_tokener_error_desc (e));
    json_tokener_free (tok);
    return -1;
  }
  /* Only white space may follow the object: anything else is damage
   * (a manifest written over an older, longer one, say).
   */
  for (i = json_tokener_get_parse_end (tok); i < len; ++i)
    if (!strchr (" \t\r\n", text[i])) {
      error ("%s: damaged manifest: trailing data after the JSON object",
             path);
      json_tokener_free (tok);
      json_object_put (root);
      return -1;
    }
  json_tokener_free (tok);
  if (!json_object_is_type (root, json_type_object)) {
    error ("%s: damaged manifest: not a JSON object", path);
    goto out;
  }
  if ((v = get (root, "format", json_type_string, false)) == NULL)
    goto out;
  if (strcmp (json_object_get_string (v), FORMAT_NAME) != 0) {
    error ("%s: not an %s manifest", path, PROG);
    goto out;
  }
  if (get_u64 (root, "version", &version) == -1)
    goto out;
  if (version != FORMAT_VERSION) {
    error ("%s: manifest version %" PRIu64 " is not supported (this is "
           "version %d)", path, version, FORMAT_VERSION);
    goto out;
  }
  if (get_str (root, "chain-id", false, &m->chain_id) == -1 ||
      get_u64 (root, "virtual-size", &m->virtual_size) == -1 ||
      get_str (root, "export-name", false, &m->export_name) == -1 ||
      get_str (root, "bitmap", true, &m->bitmap) == -1)
    goto out;
  if (!is_uuid (m->chain_id)) {
    error ("%s: damaged manifest: \"chain-id\" is not a UUID", path);
    goto out;
  }
  m->description_known =
    json_object_object_get_ex (root, "export-description", NULL);
  if ((m->description_known &&
       get_str (root, "export-description", true,
                &m->export_description) == -1) ||
      (json_object_object_get_ex (root, "disk-id", NULL) &&
       get_str (root, "disk-id", true, &m->disk_id) == -1))
    goto out;
  if ((list = get (root, "backups", json_type_array, false)) == NULL)
    goto out;
  n = json_object_array_length (list);
  if (n == 0) {
    error ("%s: damaged manifest: the chain holds no backup", path);
    goto out;
  }
  for (i = 0; i < n; ++i)
    if (load_entry (json_object_array_get_idx (list, i), i, m) == -1)
      goto out;
  if (json_object_object_get_ex (root, "prune-pending", &v) && v != NULL &&
      load_merge (v, m) == -1)
    goto out;
  ret = 0;

 out:
  json_object_put (root);
  if (ret == -1)
    manifest_free (m);
  return ret;
}

/* --- Saving ----------------------------------------------------------- */

static json_object *
str_or_null (const char *s)
{
  return s ? json_object_new_string (s) : NULL;
}

static json_object *
entry_object (const struct backup_entry *b)
{
  json_object *o = json_object_new_object ();

  json_object_object_add (o, "index", json_object_new_int64 (b->index));
  json_object_object_add (o, "type", json_object_new_string
                          (b->full ? "full" : "incremental"));
  json_object_object_add (o, "file", json_object_new_string (b->file));
  json_object_object_add (o, "backing", str_or_null (b->backing));
  json_object_object_add (o, "started", json_object_new_string (b->started));
  json_object_object_add (o, "finished",
                          json_object_new_string (b->finished));
  json_object_object_add (o, "data-bytes",
                          json_object_new_int64 (b->data_bytes));
  json_object_object_add (o, "zero-bytes",
                          json_object_new_int64 (b->zero_bytes));
  json_object_object_add (o, "file-size",
                          json_object_new_int64 (b->file_size));
  if (b->sums_file) {
    json_object_object_add (o, "sums",
                            json_object_new_string (b->sums_file));
    json_object_object_add (o, "sums-sha256",
                            json_object_new_string (b->sums_sha256));
  }
  else
    json_object_object_add (o, "sha256",
                            json_object_new_string (b->sha256));
  return o;
}

int
manifest_save (struct store *st, const struct manifest *m)
{
  return manifest_save_as (st, MANIFEST_NAME, m);
}

int
manifest_save_as (struct store *st, const char *name,
                  const struct manifest *m)
{
  CLEANUP_FREE char *buf = NULL;
  json_object *root, *list;
  const char *text;
  size_t i;
  int ret;

  root = json_object_new_object ();
  json_object_object_add (root, "format",
                          json_object_new_string (FORMAT_NAME));
  json_object_object_add (root, "version",
                          json_object_new_int (FORMAT_VERSION));
  json_object_object_add (root, "chain-id",
                          json_object_new_string (m->chain_id));
  json_object_object_add (root, "virtual-size",
                          json_object_new_int64 (m->virtual_size));
  json_object_object_add (root, "export-name",
                          json_object_new_string (m->export_name
                                                  ? m->export_name : ""));
  json_object_object_add (root, "export-description",
                          str_or_null (m->export_description));
  json_object_object_add (root, "disk-id", str_or_null (m->disk_id));
  json_object_object_add (root, "bitmap", str_or_null (m->bitmap));
  list = json_object_new_array ();
  for (i = 0; i < m->backups.len; ++i)
    json_object_array_add (list, entry_object (&m->backups.ptr[i]));
  json_object_object_add (root, "backups", list);
  if (m->merge)
    json_object_object_add (root, "prune-pending", entry_object (m->merge));

  text = json_object_to_json_string_ext (root, JSON_C_TO_STRING_PRETTY |
                                         JSON_C_TO_STRING_SPACED);
  /* The file ends with a newline, as a text file should. */
  if (asprintf (&buf, "%s\n", text) == -1) {
    error_errno ("asprintf");
    json_object_put (root);
    return -1;
  }
  ret = store_put (st, name, buf, strlen (buf));
  json_object_put (root);
  return ret;
}
