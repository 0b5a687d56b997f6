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

/* nbdcbt-backup list: print the chain's identity and its backups. */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>

#include "backup.h"
#include "store.h"

int
do_list (const char *location)
{
  struct store *st = store_open (location, false);
  struct manifest m;
  size_t i;
  int r;

  if (st == NULL)
    return -1;
  r = manifest_load (st, &m);
  store_close (st);
  if (r == -1)
    return -1;
  if (r == 1) {
    error ("%s holds no backup chain", location);
    return -1;
  }
  printf ("chain:        %s\n", m.chain_id);
  printf ("virtual size: %" PRIu64 "\n", m.virtual_size);
  printf ("bitmap:       %s\n", m.bitmap ? m.bitmap : "(none)");
  printf ("export name:  \"%s\"\n", m.export_name);
  if (m.export_description)
    printf ("description:  \"%s\"\n", m.export_description);
  printf ("disk id:      %s\n", m.disk_id ? m.disk_id : "(none)");
  printf ("%-5s %-11s %-20s %-20s %14s %14s\n", "N", "TYPE", "FILE",
          "FINISHED", "DATA", "FILE SIZE");
  for (i = 0; i < m.backups.len; ++i) {
    const struct backup_entry *b = &m.backups.ptr[i];
    printf ("%-5" PRIi64 " %-11s %-20s %-20s %14" PRIu64 " %14" PRIu64 "\n",
            b->index, b->full ? "full" : "incremental", b->file, b->finished,
            b->data_bytes, b->file_size);
  }
  if (m.merge)
    printf ("an interrupted prune is pending: %s holds backups up to %"
            PRIi64 " (the next prune finishes it)\n", m.merge->file,
            m.merge->index);
  manifest_free (&m);
  return 0;
}
