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

/* Logging for the server and its modules (nbdcbt_error, nbdcbt_debug). */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "internal.h"

bool log_to_syslog;

/* The error a failing plugin callback reports (nbdcbt_set_error). */
static __thread int thread_error;

void
clear_thread_error (void)
{
  thread_error = 0;
}

int
get_thread_error (void)
{
  return thread_error;
}

void
nbdcbt_set_error (int err)
{
  thread_error = err;
}

bool
nbdcbt_verbose (void)
{
  return verbose;
}

static void
vlog (int priority, const char *kind, const char *fs, va_list args)
{
  int saved_errno = errno;
  char *msg = NULL;

  /* Format first so that one message is one write (threads interleave). */
  errno = saved_errno;
  if (vasprintf (&msg, fs, args) == -1)
    msg = NULL;
  if (log_to_syslog)
    syslog (priority, "%s%s", kind, msg ? msg : fs);
  else
    fprintf (stderr, "%s: %s%s\n", program_name, kind, msg ? msg : fs);
  free (msg);
  errno = saved_errno;
}

/* Errors logged so far: main turns errors during shutdown (a bitmap
 * store that failed, a flush at disconnect) into a failing exit status.
 */
static unsigned long error_count;

unsigned long
log_error_count (void)
{
  return __atomic_load_n (&error_count, __ATOMIC_RELAXED);
}

void
nbdcbt_verror (const char *fs, va_list args)
{
  __atomic_add_fetch (&error_count, 1, __ATOMIC_RELAXED);
  vlog (LOG_ERR, "error: ", fs, args);
}

void
nbdcbt_warning (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  vlog (LOG_WARNING, "warning: ", fs, args);
  va_end (args);
}

void
nbdcbt_error (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  nbdcbt_verror (fs, args);
  va_end (args);
}

void
nbdcbt_debug (const char *fs, ...)
{
  va_list args;

  if (!verbose)
    return;
  va_start (args, fs);
  vlog (LOG_DEBUG, "debug: ", fs, args);
  va_end (args);
}
