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

/* A RAM plugin for tests that has flush but no FUA of its own (no can_fua
 * callback: the server emulates FUA for it) and writes a line for each
 * write, trim, zero and flush to trace=FILE, so a test sees where the
 * emulated flush happens.
 */
#include <config.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nbdcbt-plugin.h"

#define SIZE (1024 * 1024)

struct nofua {
  char *trace;
  char data[SIZE];
};

static void *
nofua_instance_new (void)
{
  return calloc (1, sizeof (struct nofua));
}

static void
nofua_instance_free (void *instance)
{
  struct nofua *n = instance;

  free (n->trace);
  free (n);
}

static int
nofua_config (void *instance, const char *key, const char *value)
{
  struct nofua *n = instance;

  if (strcmp (key, "trace") != 0) {
    nbdcbt_error ("nofua: unknown parameter '%s'", key);
    return -1;
  }
  free (n->trace);
  n->trace = nbdcbt_absolute_path (value);
  return n->trace ? 0 : -1;
}

static void
trace (struct nofua *n, const char *what, uint32_t flags)
{
  char line[64];
  int fd, len;

  if (n->trace == NULL)
    return;
  len = snprintf (line, sizeof line, "%s fua=%d\n", what,
                  !!(flags & NBDCBT_FLAG_FUA));
  fd = open (n->trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (write (fd, line, len) != len)
      nbdcbt_error ("nofua: trace: short write");
    close (fd);
  }
}

static int64_t
nofua_get_size (void *handle)
{
  return SIZE;
}

static int
nofua_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
             uint32_t flags)
{
  struct nofua *n = handle;

  memcpy (buf, n->data + offset, count);
  return 0;
}

static int
nofua_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  struct nofua *n = handle;

  memcpy (n->data + offset, buf, count);
  trace (n, "pwrite", flags);
  return 0;
}

static int
nofua_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  trace (handle, "trim", flags);
  return 0;
}

static int
nofua_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct nofua *n = handle;

  memset (n->data + offset, 0, count);
  trace (n, "zero", flags);
  return 0;
}

static int
nofua_flush (void *handle, uint32_t flags)
{
  trace (handle, "flush", flags);
  return 0;
}

static int
nofua_thread_model (void *instance)
{
  return NBDCBT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

static struct nbdcbt_plugin plugin = {
  .name = "nofua",
  .instance_new = nofua_instance_new,
  .instance_free = nofua_instance_free,
  .config = nofua_config,
  .magic_config_key = "trace",
  .thread_model = nofua_thread_model,
  .get_size = nofua_get_size,
  .pread = nofua_pread,
  .pwrite = nofua_pwrite,
  .trim = nofua_trim,
  .zero = nofua_zero,
  .flush = nofua_flush,
};

NBDCBT_REGISTER_PLUGIN (plugin)
