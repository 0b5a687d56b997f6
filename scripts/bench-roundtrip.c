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

/* The cost of one request/reply round trip on this machine, for the map
 * section of scripts/bench: a server that does nothing but wait in
 * poll(2), then recv(2), for a 28-byte request (the size of an NBD
 * request) and send(2) a reply of REPLY bytes, and a client that waits
 * THINK microseconds between receiving a reply and sending the next
 * request (as nbdinfo formats the extents it got).  The server's CPU per
 * round trip is what sleeping and waking the client cost between two
 * processes, with no work at all.  Not a floor: what a wake-up costs
 * depends on where the scheduler runs the two.
 *
 *   bench-roundtrip [THINK_US [REPLY [N]]]
 *
 * Prints "SERVER_CPU_US WALL_US" per round trip.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define REQUEST 28

static long
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static int
recv_all (int fd, char *buf, size_t n)
{
  while (n > 0) {
    ssize_t r = recv (fd, buf, n, 0);
    if (r <= 0)
      return -1;
    buf += r;
    n -= r;
  }
  return 0;
}

static void
client (int fd, long think_us, size_t reply, long n)
{
  char req[REQUEST] = { 0 };
  char *buf = malloc (reply);
  long i, t;

  if (buf == NULL)
    exit (1);
  for (i = 0; i < n; i++) {
    if (send (fd, req, REQUEST, 0) != REQUEST || recv_all (fd, buf, reply))
      exit (1);
    for (t = now_ns (); now_ns () - t < think_us * 1000;)
      ;
  }
  shutdown (fd, SHUT_WR);
  free (buf);
}

/* Returns the server's CPU time in microseconds. */
static double
server (int fd, size_t reply)
{
  char req[REQUEST];
  char *buf = calloc (1, reply);
  struct rusage ru;

  if (buf == NULL)
    exit (1);
  /* poll(2) first, as nbdcbt's idle connection does: a thread asleep in
   * recv(2) on a Unix socket is also woken each time the client reads a
   * reply (the write-space wake-up), which poll(2) for input filters.
   */
  while (poll (&(struct pollfd) { .fd = fd, .events = POLLIN }, 1, -1) >= 0
         && recv_all (fd, req, REQUEST) == 0)
    if (send (fd, buf, reply, 0) != (ssize_t) reply)
      break;
  free (buf);
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec
    + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

int
main (int argc, char *argv[])
{
  long think_us = argc > 1 ? atol (argv[1]) : 15;
  size_t reply = argc > 2 ? strtoul (argv[2], NULL, 0) : 1300;
  long n = argc > 3 ? atol (argv[3]) : 50000;
  int sv[2], pipefd[2], status;
  double cpu_us = -1;
  long t0, wall;
  pid_t pid;

  if (n <= 0 || reply == 0 || think_us < 0
      || socketpair (AF_UNIX, SOCK_STREAM, 0, sv) == -1 || pipe (pipefd) == -1) {
    perror ("bench-roundtrip");
    return 1;
  }
  t0 = now_ns ();
  pid = fork ();
  if (pid == -1) {
    perror ("fork");
    return 1;
  }
  if (pid == 0) {
    close (sv[0]);
    cpu_us = server (sv[1], reply);
    if (write (pipefd[1], &cpu_us, sizeof cpu_us) != sizeof cpu_us)
      _exit (1);
    _exit (0);
  }
  close (sv[1]);
  client (sv[0], think_us, reply, n);
  if (read (pipefd[0], &cpu_us, sizeof cpu_us) != sizeof cpu_us
      || waitpid (pid, &status, 0) != pid || status != 0) {
    fprintf (stderr, "bench-roundtrip: the server failed\n");
    return 1;
  }
  wall = now_ns () - t0;
  printf ("%.2f %.2f\n", cpu_us / n, wall / 1e3 / n);
  return 0;
}
