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

/* Helpers the server exports to plugins and filters (nbdcbt-common.h). */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"
#include "utils.h"

int64_t
nbdcbt_parse_size (const char *str)
{
  const char *err = NULL;
  int64_t r;

  if (str == NULL) {
    nbdcbt_error ("missing size");
    return -1;
  }
  r = parse_human_size (str, &err);
  if (r == -1) {
    nbdcbt_error ("could not parse size '%s': %s", str,
                  err ? err : "invalid size");
    return -1;
  }
  return r;
}

int
nbdcbt_parse_bool (const char *str)
{
  static const char *const yes[] = { "1", "true", "on", "yes", NULL };
  static const char *const no[] = { "0", "false", "off", "no", NULL };
  size_t i;

  if (str == NULL) {
    nbdcbt_error ("missing boolean");
    return -1;
  }
  for (i = 0; yes[i]; ++i)
    if (strcasecmp (str, yes[i]) == 0)
      return 1;
  for (i = 0; no[i]; ++i)
    if (strcasecmp (str, no[i]) == 0)
      return 0;
  nbdcbt_error ("could not parse boolean '%s' "
                "(use on/off, yes/no, true/false or 1/0)", str);
  return -1;
}

static int
parse_unsigned (const char *what, const char *str, uint64_t max,
                uint64_t *r)
{
  char *end;
  unsigned long long v;

  if (str == NULL || *str == '\0' || isspace ((unsigned char) *str)
      || *str == '-' || *str == '+') {
    nbdcbt_error ("%s: could not parse number '%s'", what, str ? str : "");
    return -1;
  }
  errno = 0;
  v = strtoull (str, &end, 0);
  if (errno == ERANGE || v > max) {
    nbdcbt_error ("%s: number '%s' is too large", what, str);
    return -1;
  }
  if (errno != 0 || *end != '\0') {
    nbdcbt_error ("%s: could not parse number '%s'", what, str);
    return -1;
  }
  *r = v;
  return 0;
}

int
nbdcbt_parse_uint32 (const char *what, const char *str, uint32_t *r)
{
  uint64_t v;

  if (parse_unsigned (what, str, UINT32_MAX, &v) == -1)
    return -1;
  *r = v;
  return 0;
}

int
nbdcbt_parse_uint64 (const char *what, const char *str, uint64_t *r)
{
  return parse_unsigned (what, str, UINT64_MAX, r);
}

char *
nbdcbt_absolute_path (const char *filename)
{
  char *cwd, *ret;

  if (filename == NULL || *filename == '\0') {
    nbdcbt_error ("cannot make an absolute path from an empty file name");
    errno = EINVAL;
    return NULL;
  }
  if (*filename == '/') {
    ret = strdup (filename);
    if (ret == NULL)
      nbdcbt_error ("strdup: %m");
    return ret;
  }
  cwd = getcwd (NULL, 0);
  if (cwd == NULL) {
    nbdcbt_error ("getcwd: %m");
    return NULL;
  }
  if (asprintf (&ret, "%s/%s", cwd, filename) == -1) {
    nbdcbt_error ("asprintf: %m");
    ret = NULL;
  }
  free (cwd);
  return ret;
}

const char *
nbdcbt_export_name (void)
{
  struct connection *conn = current_conn;

  if (conn == NULL)
    return NULL;
  return conn->neg.export_name ? conn->neg.export_name : "";
}

bool
nbdcbt_read_only (void)
{
  return read_only;
}

void
nbdcbt_shutdown (void)
{
  set_quit ();
}

const void *
nbdcbt_next_service (nbdcbt_backend *b, const char *name)
{
  return backend_get_service (b, name);
}
