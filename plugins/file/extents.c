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

/* nbdcbt file plugin: block status from SEEK_DATA / SEEK_HOLE.
 *
 * Holes read as zeroes and are reported HOLE|ZERO; everything else is
 * data.  lseek moves the shared file position, which nothing else uses
 * (all I/O is positioned), so no lock is needed.
 */
#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "file.h"

int
file_extents (void *handle, uint32_t count, uint64_t offset,
              uint32_t flags, struct nbdcbt_extents *extents)
{
  struct handle *h = handle;
  const uint64_t end = offset + count;
  const uint32_t hole = NBDCBT_EXTENT_HOLE | NBDCBT_EXTENT_ZERO;
  uint64_t pos = offset;

  while (pos < end && !nbdcbt_extents_full (extents)) {
    off_t data, next_hole;

    data = lseek (h->fd, pos, SEEK_DATA);
    if (data == -1) {
      if (errno != ENXIO) {
        nbdcbt_error ("file: %s: lseek: SEEK_DATA: %m", h->filename);
        return -1;
      }
      /* No data from here to the end of the file. */
      return nbdcbt_add_extent (extents, pos, end - pos, hole);
    }
    if ((uint64_t) data > pos) {
      if (nbdcbt_add_extent (extents, pos, data - pos, hole) == -1)
        return -1;
      pos = data;
      if (pos >= end)
        break;
    }

    next_hole = lseek (h->fd, pos, SEEK_HOLE);
    if (next_hole == -1) {
      if (errno != ENXIO) {
        nbdcbt_error ("file: %s: lseek: SEEK_HOLE: %m", h->filename);
        return -1;
      }
      /* The file shrank under us: the rest reads as end of file. */
      return nbdcbt_add_extent (extents, pos, end - pos, hole);
    }
    if ((uint64_t) next_hole <= pos) /* raced with a write: call it data */
      next_hole = end;
    if (nbdcbt_add_extent (extents, pos, next_hole - pos, 0) == -1)
      return -1;
    pos = next_hole;
  }
  return 0;
}
