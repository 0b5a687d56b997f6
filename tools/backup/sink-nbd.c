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

/* nbdcbt-backup: sink writing to an NBD export (restore -o URI). */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>

#include "backup.h"

struct nbd_sink {
  struct sink s;
  struct nbd_handle *h;
};

/* Each request stays well under the 32 bit protocol limit. */
#define MAX_ZERO (UINT64_C (1) << 30)

static int
n_pwrite (struct sink *s, const void *buf, uint64_t count, uint64_t offset)
{
  struct nbd_sink *ns = (struct nbd_sink *) s;

  if (nbd_pwrite (ns->h, buf, count, offset, 0) == -1) {
    error ("write at offset %" PRIu64 ": %s", offset, nbd_get_error ());
    return -1;
  }
  return 0;
}

static int
n_zero (struct sink *s, uint64_t count, uint64_t offset)
{
  struct nbd_sink *ns = (struct nbd_sink *) s;
  static const char zeroes[1024 * 1024];

  while (count > 0) {
    uint64_t n;
    int r;

    if (nbd_can_zero (ns->h) == 1) {
      n = count < MAX_ZERO ? count : MAX_ZERO;
      r = nbd_zero (ns->h, n, offset, 0);
    }
    else {
      n = count < sizeof zeroes ? count : sizeof zeroes;
      r = nbd_pwrite (ns->h, zeroes, n, offset, 0);
    }
    if (r == -1) {
      error ("zero at offset %" PRIu64 ": %s", offset, nbd_get_error ());
      return -1;
    }
    count -= n;
    offset += n;
  }
  return 0;
}

static int
n_flush (struct sink *s)
{
  struct nbd_sink *ns = (struct nbd_sink *) s;

  if (nbd_can_flush (ns->h) == 1 && nbd_flush (ns->h, 0) == -1) {
    error ("flush: %s", nbd_get_error ());
    return -1;
  }
  return 0;
}

static int
n_close (struct sink *s)
{
  struct nbd_sink *ns = (struct nbd_sink *) s;
  int r = 0;

  if (nbd_shutdown (ns->h, 0) == -1) {
    error ("shutdown: %s", nbd_get_error ());
    r = -1;
  }
  nbd_close (ns->h);
  free (ns);
  return r;
}

static const struct sink_ops nbd_ops = {
  .name = "nbd",
  .pwrite = n_pwrite,
  .zero = n_zero,
  .flush = n_flush,
  .close = n_close,
};

struct sink *
sink_nbd_open (const char *uri, uint64_t size)
{
  struct nbd_sink *ns;
  struct nbd_handle *h;
  int64_t tsize;

  h = nbd_create ();
  if (h == NULL) {
    error ("%s: %s", uri, nbd_get_error ());
    return NULL;
  }
  if (connect_uri_tls (h, uri, uri) == -1) {
    nbd_close (h);
    return NULL;
  }
  if (nbd_is_read_only (h) == 1) {
    error ("%s: the export is read-only", uri);
    nbd_close (h);
    return NULL;
  }
  tsize = nbd_get_size (h);
  if (tsize == -1) {
    error ("%s: %s", uri, nbd_get_error ());
    nbd_close (h);
    return NULL;
  }
  if ((uint64_t) tsize < size) {
    error ("%s: the export (%" PRIi64 " bytes) is smaller than the disk "
           "(%" PRIu64 " bytes)", uri, tsize, size);
    nbd_close (h);
    return NULL;
  }
  ns = calloc (1, sizeof *ns);
  if (ns == NULL) {
    error_errno ("calloc");
    nbd_close (h);
    return NULL;
  }
  ns->s.ops = &nbd_ops;
  ns->h = h;
  return &ns->s;
}
