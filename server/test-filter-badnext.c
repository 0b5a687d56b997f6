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

/* A filter for tests that breaks the contract of its calls to the layer
 * below, as a buggy filter might: mistake=range writes past the end,
 * mistake=flags passes a flag the layer below did not advertise,
 * mistake=readonly opens the layer below read-only and still writes to
 * it.  The server must fail such a request with an error and a message,
 * and go on serving.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbdcbt-filter.h"

enum mistake { NONE, RANGE, FLAGS, READONLY };

static void *
badnext_instance_new (void)
{
  return calloc (1, sizeof (enum mistake));
}

static void
badnext_instance_free (void *instance)
{
  free (instance);
}

static int
badnext_config (nbdcbt_next_config *next, nbdcbt_backend *nxdata,
                void *instance, const char *key, const char *value)
{
  enum mistake *m = instance;

  if (strcmp (key, "mistake") != 0)
    return next (nxdata, key, value);
  if (strcmp (value, "range") == 0)
    *m = RANGE;
  else if (strcmp (value, "flags") == 0)
    *m = FLAGS;
  else if (strcmp (value, "readonly") == 0)
    *m = READONLY;
  else {
    nbdcbt_error ("badnext: mistake=%s: unknown", value);
    return -1;
  }
  return 0;
}

struct handle {
  enum mistake m;
};

static void *
badnext_open (nbdcbt_next_open *next, nbdcbt_context *nxdata, void *instance,
              int readonly)
{
  enum mistake *m = instance;
  struct handle *h;

  if (next (nxdata, readonly || *m == READONLY) == -1)
    return NULL;
  h = malloc (sizeof *h);
  if (h)
    h->m = *m;
  return h;
}

static void
badnext_close (void *handle)
{
  free (handle);
}

/* Writable even when the layer below is not (mistake=readonly). */
static int
badnext_can_write (const struct nbdcbt_next_ops *next_ops,
                   nbdcbt_context *nxdata, void *handle)
{
  return 1;
}

static int
badnext_pwrite (const struct nbdcbt_next_ops *next_ops,
                nbdcbt_context *nxdata, void *handle, const void *buf,
                uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;

  if (h->m == RANGE)
    offset += next_ops->get_size (nxdata);
  else if (h->m == FLAGS)
    flags |= NBDCBT_FLAG_FAST_ZERO;
  return next_ops->pwrite (nxdata, buf, count, offset, flags, err);
}

static struct nbdcbt_filter filter = {
  .name = "badnext",
  .instance_new = badnext_instance_new,
  .instance_free = badnext_instance_free,
  .config = badnext_config,
  .open = badnext_open,
  .close = badnext_close,
  .can_write = badnext_can_write,
  .pwrite = badnext_pwrite,
};

NBDCBT_REGISTER_FILTER (filter)
