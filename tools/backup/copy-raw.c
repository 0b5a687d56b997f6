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

/* nbdcbt-backup copy-raw: a plain copy of the export into a raw file
 * (no chain, no checksums), through the same extents and copy engine.
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>

#include "backup.h"

int
do_copy_raw (const char *uri)
{
  struct nbd_handle *h = connect_source (uri, NULL);
  extent_list list = empty_vector;
  struct copy_stats stats = { 0 };
  struct sink *sink = NULL;
  int64_t size;
  int ret = -1;

  if (h == NULL)
    return -1;
  size = nbd_get_size (h);
  if (size == -1) {
    error ("%s: %s", uri, nbd_get_error ());
    goto out;
  }
  if (get_extents (h, size, NULL, &list) == -1)
    goto out;
  sink = sink_raw_create (opts.output, size);
  if (sink == NULL)
    goto out;
  if (copy_extents (uri, h, &list, sink, sink->reads_zero, 0, &stats) == -1)
    goto out;
  ret = sink->ops->close (sink);
  sink = NULL;

 out:
  if (sink)
    sink->ops->close (sink);
  free (list.ptr);
  nbd_close (h);
  return ret;
}
