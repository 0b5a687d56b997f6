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

/* nbdcbt-backup print-extents (undocumented): print the work list, to
 * test the crossing of the dirty bitmap with base:allocation on its own.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "backup.h"
#include "cleanup.h"

int
do_print_extents (const char *uri)
{
  CLEANUP_FREE char *ctx = NULL;
  struct nbd_handle *h;
  extent_list list = empty_vector;
  static const char *const names[] = { "data", "zero", "clean" };
  int64_t size;
  size_t i;
  int ret = -1;

  if (bitmap_context_name (opts.bitmap, &ctx) == -1)
    return -1;
  h = connect_source (uri, ctx);
  if (h == NULL)
    return -1;
  size = nbd_get_size (h);
  if (size == -1)
    error ("%s: %s", uri, nbd_get_error ());
  else if (get_extents (h, size, ctx, &list) == 0) {
    for (i = 0; i < list.len; ++i)
      printf ("%" PRIu64 " %" PRIu64 " %s\n", list.ptr[i].offset,
              list.ptr[i].length, names[list.ptr[i].kind]);
    ret = 0;
  }
  free (list.ptr);
  nbd_close (h);
  return ret;
}
