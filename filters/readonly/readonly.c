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

/* nbdcbt readonly filter: serve whatever is below read-only.
 *
 * The layer below is opened read-only and every capability that implies
 * writing is switched off, so clients see a read-only export.  Should a
 * write still arrive it is refused with EPERM.
 */
#include <config.h>

#include <errno.h>
#include <stdint.h>

#include "nbdcbt-filter.h"

/* The filter keeps no state, per instance or per connection. */
static int handle_token;

static void *
readonly_open (nbdcbt_next_open *next, nbdcbt_context *nxdata,
               void *instance, int readonly)
{
  if (next (nxdata, 1) == -1)
    return NULL;
  return &handle_token;
}

static int
readonly_can_write (const struct nbdcbt_next_ops *next_ops,
                    nbdcbt_context *nxdata, void *handle)
{
  return 0;
}

static int
readonly_can_trim (const struct nbdcbt_next_ops *next_ops,
                   nbdcbt_context *nxdata, void *handle)
{
  return 0;
}

static int
readonly_can_zero (const struct nbdcbt_next_ops *next_ops,
                   nbdcbt_context *nxdata, void *handle)
{
  return NBDCBT_ZERO_NONE;
}

static int
readonly_can_fast_zero (const struct nbdcbt_next_ops *next_ops,
                        nbdcbt_context *nxdata, void *handle)
{
  return 0;
}

static int
readonly_can_fua (const struct nbdcbt_next_ops *next_ops,
                  nbdcbt_context *nxdata, void *handle)
{
  return NBDCBT_FUA_NONE;
}

static int
refuse (int *err)
{
  *err = EPERM;
  return -1;
}

static int
readonly_pwrite (const struct nbdcbt_next_ops *next_ops,
                 nbdcbt_context *nxdata, void *handle, const void *buf,
                 uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return refuse (err);
}

static int
readonly_trim (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  return refuse (err);
}

static int
readonly_zero (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  return refuse (err);
}

static struct nbdcbt_filter filter = {
  .name = "readonly",
  .longname = "nbdcbt readonly filter",
  .version = PACKAGE_VERSION,
  .description = "Make the export read-only",
  .open = readonly_open,
  .can_write = readonly_can_write,
  .can_trim = readonly_can_trim,
  .can_zero = readonly_can_zero,
  .can_fast_zero = readonly_can_fast_zero,
  .can_fua = readonly_can_fua,
  .pwrite = readonly_pwrite,
  .trim = readonly_trim,
  .zero = readonly_zero,
};

NBDCBT_REGISTER_FILTER (filter)
