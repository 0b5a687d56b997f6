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

/* nbdcbt-backup: a progress bar on stderr (only with -p on a terminal). */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "backup.h"

static const char *what;
static uint64_t total;
static int last_shown = -1;
static bool active;

void
progress_start (const char *name, uint64_t bytes)
{
  what = name;
  total = bytes;
  last_shown = -1;
  active = opts.progress;
  progress_update (0);
}

void
progress_update (uint64_t done)
{
  const int width = 40;
  int permille, filled, i;

  if (!active)
    return;
  permille = total ? (int) (done * 1000 / total) : 1000;
  if (permille > 1000)
    permille = 1000;
  if (permille == last_shown)
    return;
  last_shown = permille;
  filled = permille * width / 1000;
  fprintf (stderr, "\r%s [", what);
  for (i = 0; i < width; ++i)
    fputc (i < filled ? '#' : '-', stderr);
  fprintf (stderr, "] %3d.%d%% %" PRIu64 " MiB", permille / 10, permille % 10,
           done >> 20);
  fflush (stderr);
}

void
progress_end (void)
{
  if (!active)
    return;
  fputc ('\n', stderr);
  active = false;
}
