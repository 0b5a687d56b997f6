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

/* nbdcbt-backup: the connection to the export being backed up. */
#include <config.h>

#include <stddef.h>
#include <stdio.h>

#include "backup.h"

int
bitmap_context_name (const char *bitmap, char **context)
{
  *context = NULL;
  if (bitmap &&
      asprintf (context, "qemu:dirty-bitmap:%s", bitmap) == -1) {
    *context = NULL;
    error_errno ("asprintf");
    return -1;
  }
  return 0;
}

struct nbd_handle *
connect_source (const char *uri, const char *bitmap_context)
{
  struct nbd_handle *h = nbd_create ();

  /* Full info: the export description, part of the disk's identity. */
  if (h == NULL ||
      nbd_set_full_info (h, true) == -1 ||
      nbd_add_meta_context (h, "base:allocation") == -1 ||
      (bitmap_context && nbd_add_meta_context (h, bitmap_context) == -1)) {
    error ("%s: %s", uri, nbd_get_error ());
    nbd_close (h);
    return NULL;
  }
  if (connect_uri_tls (h, uri, uri) == -1) {
    nbd_close (h);
    return NULL;
  }
  return h;
}
