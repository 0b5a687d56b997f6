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

/* Stopping the server: a flag and a pipe that becomes readable once
 * quitting, so that poll loops wake up.  SIGTERM, SIGINT and SIGQUIT,
 * nbdcbt_shutdown, --exit-with-parent and the control socket's quit all
 * end here.
 */

#include <config.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

int quit;
int quit_fd = -1;
static int quit_write_fd = -1;

void
set_quit (void)
{
  char c = 0;
  ssize_t r;

  __atomic_store_n (&quit, 1, __ATOMIC_SEQ_CST);
  r = write (quit_write_fd, &c, 1);   /* async-signal-safe */
  (void) r;
}

void
quit_init (void)
{
  int fds[2];

  if (pipe2 (fds, O_CLOEXEC | O_NONBLOCK) == -1) {
    perror ("nbdcbt: pipe2");
    exit (EXIT_FAILURE);
  }
  quit_fd = fds[0];
  quit_write_fd = fds[1];
  signal (SIGPIPE, SIG_IGN);
}

static void
handle_quit_signal (int sig)
{
  (void) sig;
  set_quit ();
}

void
quit_on_signals (void)
{
  struct sigaction sa = { .sa_handler = handle_quit_signal };

  sigemptyset (&sa.sa_mask);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGQUIT, &sa, NULL);
}
