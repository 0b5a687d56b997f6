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

/* Listening sockets: Unix, TCP, systemd socket activation; the accept loop. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define FIRST_SOCKET_ACTIVATION_FD 3

int *listen_fds;
size_t nr_listen_fds;

static int
add_listen_fd (int fd)
{
  int *p = realloc (listen_fds, (nr_listen_fds + 1) * sizeof *p);

  if (p == NULL) {
    nbdcbt_error ("realloc: %m");
    return -1;
  }
  listen_fds = p;
  listen_fds[nr_listen_fds++] = fd;
  return 0;
}

/* LISTEN_PID / LISTEN_FDS (sd_listen_fds(3)).  Returns the number of
 * sockets taken, 0 if not socket activated, -1 on error.
 */
int
sockets_socket_activation (void)
{
  const char *spid = getenv ("LISTEN_PID");
  const char *sfds = getenv ("LISTEN_FDS");
  long pid, n, i;
  char *end;

  if (spid == NULL || sfds == NULL)
    return 0;
  errno = 0;
  pid = strtol (spid, &end, 10);
  if (errno || *end || pid != (long) getpid ())
    return 0;
  n = strtol (sfds, &end, 10);
  if (errno || *end || n < 1 || n > 64) {
    nbdcbt_error ("socket activation: invalid LISTEN_FDS=%s", sfds);
    return -1;
  }
  unsetenv ("LISTEN_PID");
  unsetenv ("LISTEN_FDS");
  unsetenv ("LISTEN_FDNAMES");
  for (i = 0; i < n; ++i) {
    int fd = FIRST_SOCKET_ACTIVATION_FD + i;
    int flags = fcntl (fd, F_GETFD);
    if (flags == -1) {
      nbdcbt_error ("socket activation: fd %d: %m", fd);
      return -1;
    }
    fcntl (fd, F_SETFD, flags | FD_CLOEXEC);
    if (add_listen_fd (fd) == -1)
      return -1;
  }
  return n;
}

/* Refuse to replace anything but a stale socket at PATH. */
static bool
socket_in_use (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct stat st;
  int fd, r;

  if (lstat (path, &st) == -1)
    return false;
  if (!S_ISSOCK (st.st_mode)) {
    nbdcbt_error ("%s: exists and is not a socket", path);
    return true;
  }
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return false;
  strcpy (addr.sun_path, path);
  r = connect (fd, (struct sockaddr *) &addr, sizeof addr);
  close (fd);
  if (r == 0) {
    nbdcbt_error ("%s: another server is listening on this socket", path);
    return true;
  }
  return false;                 /* stale: replace it */
}

/* The socket appears under PATH only once it accepts: bind a temporary
 * name beside it, listen, then rename.
 */
int
sockets_unix (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  char *tmp = NULL;
  int fd;

  if (strlen (path) >= sizeof addr.sun_path) {
    nbdcbt_error ("%s: Unix socket path too long (limit %zu bytes)",
                  path, sizeof addr.sun_path - 1);
    return -1;
  }
  if (asprintf (&tmp, "%s.%ld~", path, (long) getpid ()) == -1) {
    nbdcbt_error ("asprintf: %m");
    return -1;
  }
  if (strlen (tmp) >= sizeof addr.sun_path) {
    free (tmp);
    tmp = NULL;        /* too long for a temporary name: bind directly */
  }
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    nbdcbt_error ("socket: %m");
    free (tmp);
    return -1;
  }
  strcpy (addr.sun_path, tmp ? tmp : path);
  if (tmp)
    unlink (tmp);
  if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    nbdcbt_error ("bind: %s: %m", addr.sun_path);
    goto err;
  }
  if (listen (fd, SOMAXCONN) == -1) {
    nbdcbt_error ("listen: %s: %m", addr.sun_path);
    goto err;
  }
  if (tmp && socket_in_use (path))
    goto err;
  if (tmp && rename (tmp, path) == -1) {
    nbdcbt_error ("rename %s to %s: %m", tmp, path);
    unlink (tmp);
    goto err;
  }
  free (tmp);
  return add_listen_fd (fd);

 err:
  if (tmp)
    unlink (tmp);
  free (tmp);
  close (fd);
  return -1;
}

int
sockets_tcp (const char *ipaddr, const char *port)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC,
    .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_PASSIVE | AI_ADDRCONFIG,
  };
  struct addrinfo *ai, *a;
  int r, fd, one = 1, found = 0;

  r = getaddrinfo (ipaddr, port, &hints, &ai);
  if (r != 0) {
    nbdcbt_error ("getaddrinfo: %s:%s: %s", ipaddr ? ipaddr : "*", port,
                  gai_strerror (r));
    return -1;
  }
  for (a = ai; a; a = a->ai_next) {
    fd = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd == -1) {
      if (errno == EAFNOSUPPORT)
        continue;
      nbdcbt_error ("socket: %m");
      goto err;
    }
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ai_family == AF_INET6)
      setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind (fd, a->ai_addr, a->ai_addrlen) == -1) {
      if (errno == EADDRNOTAVAIL) {
        close (fd);
        continue;
      }
      nbdcbt_error ("bind: %s:%s: %m", ipaddr ? ipaddr : "*", port);
      close (fd);
      goto err;
    }
    if (listen (fd, SOMAXCONN) == -1) {
      nbdcbt_error ("listen: %m");
      close (fd);
      goto err;
    }
    if (add_listen_fd (fd) == -1) {
      close (fd);
      goto err;
    }
    found++;
  }
  freeaddrinfo (ai);
  if (found == 0) {
    nbdcbt_error ("no address to listen on for %s:%s",
                  ipaddr ? ipaddr : "*", port);
    return -1;
  }
  return 0;

 err:
  freeaddrinfo (ai);
  return -1;
}

/* TCP_NODELAY is for TCP sockets (on a Unix socket the call fails):
 * whether listening socket FD, ours or socket activation's, is one.
 */
static bool
is_tcp_socket (int fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;

  return getsockname (fd, (struct sockaddr *) &ss, &len) == 0
    && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

void
sockets_accept_loop (void)
{
  struct pollfd *fds = calloc (nr_listen_fds + 1, sizeof *fds);
  bool *tcp = calloc (nr_listen_fds + 1, sizeof *tcp);
  size_t i;

  if (fds == NULL || tcp == NULL) {
    nbdcbt_error ("calloc: %m");
    free (fds);
    free (tcp);
    return;
  }
  for (i = 0; i < nr_listen_fds; ++i) {
    fds[i] = (struct pollfd) { .fd = listen_fds[i], .events = POLLIN };
    tcp[i] = is_tcp_socket (listen_fds[i]);
  }
  fds[nr_listen_fds] = (struct pollfd) { .fd = quit_fd, .events = POLLIN };

  while (!is_quitting ()) {
    if (poll (fds, nr_listen_fds + 1, -1) == -1) {
      if (errno == EINTR)
        continue;
      nbdcbt_error ("poll: %m");
      break;
    }
    if (is_quitting () || fds[nr_listen_fds].revents)
      break;
    for (i = 0; i < nr_listen_fds; ++i) {
      int fd, one = 1;

      if (!(fds[i].revents & POLLIN))
        continue;
      fd = accept4 (listen_fds[i], NULL, NULL, SOCK_CLOEXEC);
      if (fd == -1) {
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
          nbdcbt_error ("accept: %m");
        if (errno == EMFILE || errno == ENFILE)
          usleep (100000);
        continue;
      }
      if (tcp[i])
        setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      accept_connection (fd, true, fd);
    }
  }
  free (fds);
  free (tcp);
}

void
sockets_close (void)
{
  size_t i;

  for (i = 0; i < nr_listen_fds; ++i)
    close (listen_fds[i]);
  free (listen_fds);
  listen_fds = NULL;
  nr_listen_fds = 0;
}
