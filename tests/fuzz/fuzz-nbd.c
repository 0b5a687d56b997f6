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

/* libFuzzer harness for the NBD protocol: each input is the byte stream
 * a client sends, from the greeting on (client flags, options, then
 * requests).  It goes over a socketpair into the real server code
 * (every server file but main.c) serving the memory plugin under the dirty
 * filter, one connection per input, as -s serves one; a second thread
 * feeds the input and another reads and drops whatever the server
 * answers.  The modules are loaded as the server loads them
 * (NBDCBT_PLUGIN_PATH, NBDCBT_FILTER_PATH: clang-built copies, see
 * Makefile.am).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  static const char *const filters[] = { "dirty" };
  struct nbdcbt_backend *top;
  struct export *exp;

  (void) argc;
  (void) argv;
  threads = 4;
  program_name = "fuzz-nbd";
  quit_init ();             /* no signal handlers: libFuzzer has its own */
  top = backend_chain_new ("memory", filters, 1);
  if (top == NULL
      || backend_config (top, "size", "1M") == -1
      || backend_config (top, "bitmap", "b0:512") == -1
      || backend_config (top, "bitmap", "b1") == -1
      || backend_config_complete (top) == -1)
    abort ();
  exp = export_new ("", "node0", "fuzz", top, false);
  if (exp == NULL || backend_thread_model (exp->top) == -1)
    abort ();
  exp->default_alias = true;
  if (exports_add (exp) == -1)
    abort ();
  exports_start ();
  return 0;
}

struct client {
  int fd;
  const uint8_t *data;
  size_t size;
};

static void *
feed (void *arg)
{
  struct client *c = arg;
  size_t done = 0;
  ssize_t r;

  while (done < c->size) {
    r = send (c->fd, c->data + done, c->size - done, MSG_NOSIGNAL);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      break;                    /* the server hung up */
    done += r;
  }
  shutdown (c->fd, SHUT_WR);
  return NULL;
}

static void *
drain (void *arg)
{
  struct client *c = arg;
  char buf[65536];
  ssize_t r;

  do
    r = recv (c->fd, buf, sizeof buf, 0);
  while (r > 0 || (r == -1 && errno == EINTR));
  return NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct client c = { .data = data, .size = size };
  pthread_t feeder, drainer;
  int sv[2];

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
    abort ();
  c.fd = sv[1];
  if (pthread_create (&feeder, NULL, feed, &c) != 0
      || pthread_create (&drainer, NULL, drain, &c) != 0)
    abort ();
  handle_single_connection (sv[0], sv[0]);
  close (sv[0]);                /* left open by handle_single_connection */
  pthread_join (feeder, NULL);
  pthread_join (drainer, NULL);
  close (sv[1]);
  return 0;
}
