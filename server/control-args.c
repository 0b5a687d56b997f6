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

/* nbdcbt server: checking a command's arguments as QEMU's input visitor
 * does (qapi/qobject-input-visitor.c), with its messages:
 *
 *   Parameter 'x' is missing
 *   Invalid parameter type for 'x', expected: string
 *   Parameter 'x' expects uint64            (not an integer)
 *   Parameter 'x' expects uint32_t          (an integer out of range)
 *   Parameter 'x' is unexpected
 *
 * Members are checked in schema order, the first problem wins, and
 * unexpected members are reported only once every known one is fine.
 * Negative integers are taken modulo 2^64 before the range check, as QEMU
 * does for compatibility (so -1 is "expects uint32_t").
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

static char *
full_name (const char *prefix, const char *name)
{
  char *s;

  if (prefix == NULL || prefix[0] == '\0')
    return strdup (name);
  if (asprintf (&s, "%s.%s", prefix, name) == -1)
    return NULL;
  return s;
}

static int
type_error (struct qmp_error *err, const char *full, const char *expected)
{
  qmp_error_set (err, QMP_GENERIC_ERROR,
                 "Invalid parameter type for '%s', expected: %s", full,
                 expected);
  return -1;
}

/* An integer as QEMU's uint64 visitor reads it, or -1. */
static int
get_uint (json_object *v, uint64_t *out)
{
  int64_t i;

  if (!json_object_is_type (v, json_type_int))
    return -1;
  i = json_object_get_int64 (v);
  /* json-c saturates what does not fit in 64 bits: QEMU parses that as a
   * double, which is no integer.
   */
  if (i == INT64_MIN || (i == INT64_MAX
                         && json_object_get_uint64 (v) == UINT64_MAX))
    return -1;
  if (i < 0)
    *out = (uint64_t) i;        /* QEMU accepts negatives, modulo 2^64 */
  else
    *out = json_object_get_uint64 (v);
  return 0;
}

static int
check_sources (json_object *v, const char *full, struct qmp_error *err)
{
  static const struct control_arg source_spec[] = {
    { "node", ARG_STR, false },
    { "name", ARG_STR, false },
    CONTROL_ARGS_END
  };
  size_t i, n;

  if (!json_object_is_type (v, json_type_array))
    return type_error (err, full, "array");
  n = json_object_array_length (v);
  for (i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (v, i);
    char elem[64 + 32];

    snprintf (elem, sizeof elem, "%.64s[%zu]", full, i);
    if (json_object_is_type (e, json_type_string)) {
      /* "b0\u0000x" must not name b0. */
      if (strlen (json_object_get_string (e))
          != (size_t) json_object_get_string_len (e)) {
        qmp_error_set (err, QMP_GENERIC_ERROR,
                       "Parameter '%s' contains a NUL character", elem);
        return -1;
      }
      continue;
    }
    if (!json_object_is_type (e, json_type_object))
      /* QEMU 7.2 names no member here. */
      return type_error (err, "null", "BlockDirtyBitmapOrStr");
    if (control_args_check (e, source_spec, elem, err) == -1)
      return -1;
  }
  return 0;
}

int
control_args_check (json_object *args, const struct control_arg *spec,
                    const char *prefix, struct qmp_error *err)
{
  const struct control_arg *a;

  for (a = spec; a->name; a++) {
    json_object *v;
    char *full;
    uint64_t u;
    int r = 0;

    if (!json_object_object_get_ex (args, a->name, &v)) {
      if (a->optional)
        continue;
      full = full_name (prefix, a->name);
      qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter '%s' is missing",
                     full ? full : a->name);
      free (full);
      return -1;
    }
    full = full_name (prefix, a->name);
    if (full == NULL) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "out of memory");
      return -1;
    }
    switch (a->type) {
    case ARG_STR:
      if (!json_object_is_type (v, json_type_string))
        r = type_error (err, full, "string");
      else if (strlen (json_object_get_string (v))
               != (size_t) json_object_get_string_len (v)) {
        qmp_error_set (err, QMP_GENERIC_ERROR,
                       "Parameter '%s' contains a NUL character", full);
        r = -1;
      }
      break;
    case ARG_BOOL:
      if (!json_object_is_type (v, json_type_boolean))
        r = type_error (err, full, "boolean");
      break;
    case ARG_UINT32:
      if (get_uint (v, &u) == -1) {
        qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter '%s' expects "
                       "uint64", full);
        r = -1;
      }
      else if (u > UINT32_MAX) {
        qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter '%s' expects "
                       "uint32_t", full);
        r = -1;
      }
      break;
    case ARG_OBJECT:
      if (!json_object_is_type (v, json_type_object))
        r = type_error (err, full, "object");
      break;
    case ARG_ARRAY:
      if (!json_object_is_type (v, json_type_array))
        r = type_error (err, full, "array");
      break;
    case ARG_BITMAP_SOURCES:
      r = check_sources (v, full, err);
      break;
    }
    free (full);
    if (r == -1)
      return -1;
  }

  /* Then anything the schema does not know. */
  json_object_object_foreach (args, key, val) {
    bool known = false;

    (void) val;
    for (a = spec; a->name; a++)
      if (strcmp (a->name, key) == 0) {
        known = true;
        break;
      }
    if (!known) {
      char *full = full_name (prefix, key);

      qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter '%s' is unexpected",
                     full ? full : key);
      free (full);
      return -1;
    }
  }
  return 0;
}

const char *
control_arg_str (json_object *args, const char *name)
{
  json_object *v;

  if (!json_object_object_get_ex (args, name, &v))
    return NULL;
  return json_object_get_string (v);
}

bool
control_arg_bool (json_object *args, const char *name, bool def)
{
  json_object *v;

  if (!json_object_object_get_ex (args, name, &v))
    return def;
  return json_object_get_boolean (v);
}

uint64_t
control_arg_uint (json_object *args, const char *name, uint64_t def)
{
  json_object *v;
  uint64_t u;

  if (!json_object_object_get_ex (args, name, &v) || get_uint (v, &u) == -1)
    return def;
  return u;
}

bool
control_arg_has (json_object *args, const char *name)
{
  return json_object_object_get_ex (args, name, NULL);
}
