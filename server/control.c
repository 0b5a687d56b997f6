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

/* nbdcbt server: the control socket (--control=PATH).
 *
 * A Unix socket, mode 0600, speaking QMP (control-qmp.c).  One thread
 * accepts; each client gets a thread of its own that reads, parses and
 * answers, so a client that never speaks, sends a huge message slowly or
 * never reads its answers holds only its own thread.  At most
 * CONTROL_MAX_CLIENTS clients at once; more are closed at accept.  The NBD
 * side shares nothing with these threads but the command lock around the
 * bitmaps, which NBD requests never take.
 *
 * Answers are sent with a send timeout (a client that stops reading is
 * dropped); events go to every negotiated client without waiting (a
 * client whose socket buffer is full is dropped rather than slowing the
 * server).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "control.h"
#include "jobs.h"
#include "sessions.h"

#define SEND_TIMEOUT_SECONDS 30

struct client {
  int fd;
  pthread_t thread;
  struct qmp_session *session;
  pthread_mutex_t write_lock;
  bool done;                    /* the thread has finished (under LOCK) */
  struct client *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *clients;  /* under LOCK */
static unsigned nclients;       /* under LOCK */
static int listen_fd = -1;
static int stop_pipe[2] = { -1, -1 };
static pthread_t accept_thread;
static bool started;
static char *socket_path;

/* Why the server stops, for the SHUTDOWN event. */
static bool quit_by_command;

void
control_request_quit (void)
{
  __atomic_store_n (&quit_by_command, true, __ATOMIC_SEQ_CST);
  set_quit ();
}

/* Send all of BUF; -1 if the client is gone or too slow. */
static int
send_all (int fd, const char *buf, size_t len, int flags)
{
  while (len > 0) {
    ssize_t r = send (fd, buf, len, MSG_NOSIGNAL | flags);

    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    buf += r;
    len -= r;
  }
  return 0;
}

static int
client_output (void *opaque, const char *msg, size_t len)
{
  struct client *c = opaque;
  int r;

  pthread_mutex_lock (&c->write_lock);
  r = send_all (c->fd, msg, len, 0);
  if (r == 0)
    r = send_all (c->fd, "\r\n", 2, 0);
  pthread_mutex_unlock (&c->write_lock);
  return r;
}

static void *
client_thread (void *arg)
{
  struct client *c = arg;
  char buf[16384];

  if (qmp_session_greet (c->session) == 0) {
    for (;;) {
      ssize_t r = recv (c->fd, buf, sizeof buf, 0);

      if (r == -1 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      if (qmp_session_feed (c->session, buf, r) == -1)
        break;
    }
  }
  nbdcbt_debug ("control: client %d disconnected", c->fd);
  /* Its backup sessions begun with end-on-disconnect end as failed, as a
   * command would end them: under the command lock.  Without it, ending
   * one (session lock, then the disk's write gate) could meet another
   * client's transaction (the gate of every disk, then the session lock
   * in its backup-begin action) and both would wait for ever.
   */
  control_commands_lock ();
  sessions_owner_gone (c->session);
  control_commands_unlock ();
  /* Wake a sender blocked in an event to this client, then let
   * control_stop or the accept thread reap us.
   */
  shutdown (c->fd, SHUT_RDWR);
  pthread_mutex_lock (&lock);
  c->done = true;
  pthread_mutex_unlock (&lock);
  return NULL;
}

static void
client_free (struct client *c)
{
  pthread_join (c->thread, NULL);
  qmp_session_free (c->session);
  pthread_mutex_destroy (&c->write_lock);
  close (c->fd);
  free (c);
}

/* Join the threads of clients that have gone.  Not under LOCK. */
static void
reap_clients (void)
{
  struct client **pp, *gone = NULL, *c;

  pthread_mutex_lock (&lock);
  for (pp = &clients; *pp;) {
    c = *pp;
    if (c->done) {
      *pp = c->next;
      c->next = gone;
      gone = c;
      nclients--;
    }
    else
      pp = &c->next;
  }
  pthread_mutex_unlock (&lock);
  while ((c = gone) != NULL) {
    gone = c->next;
    client_free (c);
  }
}

static void
new_client (int fd)
{
  struct timeval tv = { .tv_sec = SEND_TIMEOUT_SECONDS };
  struct client *c;
  int err;

  reap_clients ();
  pthread_mutex_lock (&lock);
  if (nclients >= CONTROL_MAX_CLIENTS) {
    pthread_mutex_unlock (&lock);
    nbdcbt_error ("control: more than %d clients: connection refused",
                  CONTROL_MAX_CLIENTS);
    close (fd);
    return;
  }
  pthread_mutex_unlock (&lock);

  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  c = calloc (1, sizeof *c);
  if (c == NULL)
    goto err;
  c->fd = fd;
  pthread_mutex_init (&c->write_lock, NULL);
  c->session = qmp_session_new (client_output, c);
  if (c->session == NULL)
    goto err;

  pthread_mutex_lock (&lock);
  err = pthread_create (&c->thread, NULL, client_thread, c);
  if (err == 0) {
    c->next = clients;
    clients = c;
    nclients++;
  }
  pthread_mutex_unlock (&lock);
  if (err != 0) {
    errno = err;
    goto err;
  }
  nbdcbt_debug ("control: client %d connected", fd);
  return;

 err:
  nbdcbt_error ("control: cannot serve a client: %m");
  if (c) {
    qmp_session_free (c->session);
    pthread_mutex_destroy (&c->write_lock);
    free (c);
  }
  close (fd);
}

static void *
accept_loop (void *arg)
{
  (void) arg;

  for (;;) {
    struct pollfd fds[2] = {
      { .fd = listen_fd, .events = POLLIN },
      { .fd = stop_pipe[0], .events = POLLIN },
    };
    int fd;

    if (poll (fds, 2, 5000) == -1) {
      if (errno == EINTR)
        continue;
      nbdcbt_error ("control: poll: %m");
      return NULL;
    }
    if (fds[1].revents)
      return NULL;
    reap_clients ();
    if (!(fds[0].revents & POLLIN))
      continue;
    fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd == -1) {
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
        nbdcbt_error ("control: accept: %m");
      continue;
    }
    new_client (fd);
  }
}

int
control_start (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  char *tmp = NULL;
  struct stat st;
  int err;

  jobs_init ();
  /* Bound under a temporary name, made 0600 and listening, then renamed:
   * the socket appears at PATH only once it is ready, and never with
   * wider permissions.
   */
  if (asprintf (&tmp, "%s.%ld~", path, (long) getpid ()) == -1) {
    nbdcbt_error ("--control: %m");
    return -1;
  }
  if (strlen (tmp) >= sizeof addr.sun_path) {
    nbdcbt_error ("--control=%s: socket path too long (at most %zu bytes)",
                  path, sizeof addr.sun_path - 1 - (strlen (tmp)
                                                    - strlen (path)));
    free (tmp);
    return -1;
  }
  /* A socket left behind by a server that died may be replaced; anything
   * else at PATH is not ours.
   */
  if (lstat (path, &st) == 0 && !S_ISSOCK (st.st_mode)) {
    nbdcbt_error ("--control=%s: exists and is not a socket", path);
    free (tmp);
    return -1;
  }
  strcpy (addr.sun_path, tmp);
  unlink (tmp);
  listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                      0);
  if (listen_fd == -1) {
    nbdcbt_error ("--control: socket: %m");
    free (tmp);
    return -1;
  }
  if (bind (listen_fd, (struct sockaddr *) &addr, sizeof addr) == -1) {
    nbdcbt_error ("--control=%s: bind: %m", path);
    goto err;
  }
  if (chmod (tmp, 0600) == -1 || listen (listen_fd, 64) == -1
      || rename (tmp, path) == -1) {
    nbdcbt_error ("--control=%s: %m", path);
    unlink (tmp);
    goto err;
  }
  socket_path = strdup (path);
  if (socket_path == NULL || pipe2 (stop_pipe, O_CLOEXEC) == -1) {
    nbdcbt_error ("--control: %m");
    unlink (path);
    goto err;
  }
  err = pthread_create (&accept_thread, NULL, accept_loop, NULL);
  if (err != 0) {
    errno = err;
    nbdcbt_error ("--control: pthread_create: %m");
    unlink (path);
    goto err;
  }
  started = true;
  free (tmp);
  nbdcbt_debug ("control: listening on %s", path);
  return 0;

 err:
  close (listen_fd);
  listen_fd = -1;
  free (socket_path);
  socket_path = NULL;
  free (tmp);
  return -1;
}

void
control_stop (void)
{
  struct client *c, *gone;
  char x = 0;

  if (!started)
    return;
  /* As QEMU's system emulator announces it (qemu-storage-daemon sends
   * nothing).
   */
  {
    json_object *data = json_object_new_object ();

    if (data) {
      json_object_object_add (data, "guest", json_object_new_boolean (false));
      json_object_object_add (data, "reason", json_object_new_string
                              (__atomic_load_n (&quit_by_command,
                                                __ATOMIC_SEQ_CST)
                               ? "host-qmp-quit" : "host-signal"));
    }
    control_event ("SHUTDOWN", data);
  }
  started = false;
  if (write (stop_pipe[1], &x, 1) != 1)
    nbdcbt_debug ("control: stop pipe: %m");
  pthread_join (accept_thread, NULL);
  close (listen_fd);
  listen_fd = -1;
  unlink (socket_path);
  free (socket_path);
  socket_path = NULL;

  /* Wake every client thread (a command in progress finishes first) and
   * take the list, so that an event sent meanwhile finds no client.
   */
  pthread_mutex_lock (&lock);
  for (c = clients; c; c = c->next)
    shutdown (c->fd, SHUT_RDWR);
  gone = clients;
  clients = NULL;
  nclients = 0;
  pthread_mutex_unlock (&lock);
  while ((c = gone) != NULL) {
    gone = c->next;
    client_free (c);
  }
  close (stop_pipe[0]);
  close (stop_pipe[1]);
  stop_pipe[0] = stop_pipe[1] = -1;
}

char *
control_event_message (const char *event, json_object *data)
{
  json_object *ev = json_object_new_object ();
  json_object *ts = json_object_new_object ();
  struct timeval tv;
  char *msg = NULL;

  gettimeofday (&tv, NULL);
  if (ev == NULL || ts == NULL) {
    json_object_put (ev);
    json_object_put (ts);
    json_object_put (data);
    return NULL;
  }
  json_object_object_add (ts, "seconds", json_object_new_int64 (tv.tv_sec));
  json_object_object_add (ts, "microseconds",
                          json_object_new_int64 (tv.tv_usec));
  json_object_object_add (ev, "timestamp", ts);
  json_object_object_add (ev, "event", json_object_new_string (event));
  if (data)
    json_object_object_add (ev, "data", data);
  msg = control_json_text (ev, NULL);
  json_object_put (ev);
  return msg;
}

void
control_event (const char *event, json_object *data)
{
  char *msg = control_event_message (event, data);
  struct client *c;
  size_t len;

  if (msg == NULL)
    return;
  len = strlen (msg);
  pthread_mutex_lock (&lock);
  for (c = clients; c; c = c->next) {
    if (c->done || !qmp_session_negotiated (c->session))
      continue;
    pthread_mutex_lock (&c->write_lock);
    if (send_all (c->fd, msg, len, MSG_DONTWAIT) == -1
        || send_all (c->fd, "\r\n", 2, MSG_DONTWAIT) == -1) {
      nbdcbt_debug ("control: client %d does not read its events: "
                    "dropped", c->fd);
      shutdown (c->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock (&c->write_lock);
  }
  pthread_mutex_unlock (&lock);
  free (msg);
}
