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

/* Registry of metadata contexts.
 *
 * The server itself owns base:allocation (answered through the chain's
 * extents callbacks).  Every other context comes from the chain's
 * list_meta_contexts: any layer may add names in its own namespace, and
 * block status for them goes down the chain's meta_extents to the owner.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void
meta_contexts_free (struct nbdcbt_meta_contexts *mc)
{
  size_t i;

  for (i = 0; i < mc->names.len; ++i)
    free (mc->names.ptr[i]);
  string_vector_reset (&mc->names);
}

/* A valid context name: "namespace:leaf", non-empty namespace of
 * printable non-space characters without a colon, at most 4096 bytes.
 */
static bool
valid_context_name (const char *name)
{
  const char *colon = strchr (name, ':');
  const char *p;

  if (colon == NULL || colon == name || strlen (name) > NBD_MAX_STRING)
    return false;
  for (p = name; p < colon; ++p)
    if (*p <= ' ' || *p == 0x7f)
      return false;
  return true;
}

int
nbdcbt_add_meta_context (struct nbdcbt_meta_contexts *mc, const char *name)
{
  char *copy;
  size_t i;

  if (mc == NULL || name == NULL || !valid_context_name (name)) {
    nbdcbt_error ("nbdcbt_add_meta_context: invalid context name '%s'",
                  name ? name : "(null)");
    errno = EINVAL;
    return -1;
  }
  if (strncmp (name, "base:", 5) == 0) {
    nbdcbt_error ("nbdcbt_add_meta_context: the base: namespace belongs "
                  "to the server");
    errno = EINVAL;
    return -1;
  }
  for (i = 0; i < mc->names.len; ++i)
    if (strcmp (mc->names.ptr[i], name) == 0)
      return 0;
  copy = strdup (name);
  if (copy == NULL || string_vector_append (&mc->names, copy) == -1) {
    nbdcbt_error ("nbdcbt_add_meta_context: %m");
    free (copy);
    return -1;
  }
  return 0;
}

/* Every context of EXP (asked for as EXPORT_NAME): base:allocation, then
 * its chain's.
 */
int
meta_contexts_for_export (struct export *exp, const char *export_name,
                          struct nbdcbt_meta_contexts *mc)
{
  char *base = strdup ("base:allocation");

  if (base == NULL || string_vector_append (&mc->names, base) == -1) {
    free (base);
    return -1;
  }
  return backend_list_meta_contexts (exp->top, export_name, mc);
}

/* Does QUERY (not NUL-terminated) select NAME?  LIST treats a query that
 * ends in ':' ("qemu:", "qemu:dirty-bitmap:", "base:") as a prefix
 * wildcard; SET selects exact names only.
 */
bool
meta_query_matches (const char *query, size_t qlen, const char *name,
                    bool list)
{
  size_t nlen = strlen (name);

  if (qlen == nlen && memcmp (query, name, qlen) == 0)
    return true;
  if (list && qlen > 0 && query[qlen - 1] == ':' && qlen < nlen
      && memcmp (query, name, qlen) == 0)
    return true;
  return false;
}

void
selected_reset (selected_vector *v)
{
  size_t i;

  for (i = 0; i < v->len; ++i)
    free (v->ptr[i].name);
  selected_vector_reset (v);
}
