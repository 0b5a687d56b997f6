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

/* nbdcbt-backup full|inc|auto with several disks: many disks on many
 * servers in one run.
 *
 *   nbdcbt-backup auto -o /backups --bitmap b0 --jobs 2 \
 *     db=nbd://host1/db web=nbd://host2/web \
 *     vm1='nbd+unix:///?socket=/run/vms.sock' --control vm1=/run/vms.ctl
 *
 * Each disk is "[NAME=]URI" and goes into its own chain, OUTPUT/NAME
 * (NAME defaults to the URI's export name).  A disk with "--control
 * NAME=SOCKET" is backed up through a backup session on that server
 * (its node is NAME, or "--node NAME=NODE").  Each disk is one child
 * process running exactly what a run for that disk alone would, at most
 * JOBS at once: a disk that fails (its server gone, its chain damaged)
 * fails alone, ends only its own session as failed, and the others go
 * on.  A summary table follows; the exit status is 1 if any disk failed.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "store.h"
#include "cleanup.h"

struct disk {
  char *name;
  const char *uri;
  const char *control;          /* or NULL */
  const char *node;             /* or NULL */
  char *dir;

  /* The run. */
  pid_t pid;
  int pipe_fd;
  bool done;
  int status;                   /* wait status */
  struct backup_outcome outcome;
  struct timespec start, end;
};

/* Disk names become directory names. */
static bool
good_name (const char *s, size_t len)
{
  size_t i;

  if (len == 0 || len > 255 || s[0] == '.')
    return false;
  for (i = 0; i < len; ++i)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' ||
          s[i] == '.'))
      return false;
  return true;
}

/* "[NAME=]URI": the name before an '=' that comes before "://", else
 * the URI's export name (its path without the leading '/').
 */
static int
parse_disk (const char *arg, struct disk *d)
{
  const char *scheme = strstr (arg, "://"), *eq = strchr (arg, '=');
  const char *p, *end;

  if (scheme == NULL) {
    error ("'%s' is not a disk: expected [NAME=]URI, for example "
           "db=nbd://host/db", arg);
    return -1;
  }
  if (eq && eq < scheme) {
    if (!good_name (arg, eq - arg)) {
      error ("'%.*s': a disk's name is 1 to 255 letters, digits, '-', '_' "
             "or '.', not starting with '.'", (int) (eq - arg), arg);
      return -1;
    }
    d->name = strndup (arg, eq - arg);
    d->uri = eq + 1;
  }
  else {
    d->uri = arg;
    p = strchr (scheme + 3, '/');
    if (p == NULL)
      p = scheme + strlen (scheme);
    else
      p++;
    end = p + strcspn (p, "?#");
    if (!good_name (p, end - p)) {
      error ("%s: name this disk (NAME=URI): its export name %s%.*s%s "
             "cannot name a directory", arg, end == p ? "is empty" : "'",
             (int) (end - p), p, end == p ? "" : "'");
      return -1;
    }
    d->name = strndup (p, end - p);
  }
  if (d->name == NULL) {
    error_errno ("strndup");
    return -1;
  }
  return 0;
}

/* "--control NAME=SOCKET" and "--node NAME=NODE" onto the disk NAME. */
static int
bind_option (const char *opt, const char *arg, struct disk *disks, size_t n,
             bool is_control)
{
  const char *eq = strchr (arg, '=');
  size_t i;

  if (eq == NULL || eq[1] == '\0') {
    error ("%s '%s': with several disks, say which one: %s NAME=%s", opt,
           arg, opt, is_control ? "SOCKET" : "NODE");
    return -1;
  }
  for (i = 0; i < n; ++i)
    if (strlen (disks[i].name) == (size_t) (eq - arg) &&
        strncmp (disks[i].name, arg, eq - arg) == 0)
      break;
  if (i == n) {
    error ("%s '%s': there is no disk named '%.*s'", opt, arg,
           (int) (eq - arg), arg);
    return -1;
  }
  if (is_control ? disks[i].control != NULL : disks[i].node != NULL) {
    error ("%s: disk '%s' has two", opt, disks[i].name);
    return -1;
  }
  if (is_control)
    disks[i].control = eq + 1;
  else {
    if (strchr (eq + 1, '/') || strcmp (eq + 1, ".") == 0 ||
        strcmp (eq + 1, "..") == 0) {
      error ("--node '%s': not a node name", eq + 1);
      return -1;
    }
    disks[i].node = eq + 1;
  }
  return 0;
}

/* The child: exactly the run for this disk alone, its outcome written
 * to FD for the summary.
 */
static void __attribute__ ((noreturn))
run_disk (enum backup_mode mode, struct disk *d, int fd)
{
  static const char *node;
  int r;

  message_prefix = d->name;
  opts.output = d->dir;
  opts.control = d->control;
  node = d->node ? d->node : d->name;
  /* The run's --node NAME=NODE were bound to their disks already. */
  free (opts.nodes);
  opts.nodes = d->control || d->node ? &node : NULL;
  opts.nnodes = opts.nodes ? 1 : 0;
  r = do_backup (mode, d->uri);
  if (write (fd, &backup_outcome, sizeof backup_outcome) !=
      sizeof backup_outcome) {
    /* The parent then reports the disk without details. */
  }
  fflush (stdout);
  exit (r == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}

static int
start_disk (enum backup_mode mode, struct disk *d)
{
  int fds[2];

  if (pipe (fds) == -1) {
    error_errno ("pipe");
    return -1;
  }
  fflush (stdout);
  fflush (stderr);
  clock_gettime (CLOCK_MONOTONIC, &d->start);
  d->pid = fork ();
  if (d->pid == -1) {
    error_errno ("fork");
    close (fds[0]);
    close (fds[1]);
    return -1;
  }
  if (d->pid == 0) {
    close (fds[0]);
    run_disk (mode, d, fds[1]);
  }
  close (fds[1]);
  d->pipe_fd = fds[0];
  info ("%s: backing up %s into %s%s%s", d->name, d->uri, d->dir,
        d->control ? " through a session on " : "",
        d->control ? d->control : "");
  return 0;
}

/* Reap one child; returns its disk. */
static struct disk *
reap_one (struct disk *disks, size_t n)
{
  int status;
  pid_t pid;
  size_t i;

  do
    pid = wait (&status);
  while (pid == -1 && errno == EINTR);
  if (pid == -1)
    return NULL;
  for (i = 0; i < n; ++i)
    if (disks[i].pid == pid && !disks[i].done)
      break;
  if (i == n)
    return NULL;
  disks[i].done = true;
  disks[i].status = status;
  clock_gettime (CLOCK_MONOTONIC, &disks[i].end);
  if (read (disks[i].pipe_fd, &disks[i].outcome, sizeof disks[i].outcome)
      != sizeof disks[i].outcome)
    memset (&disks[i].outcome, 0, sizeof disks[i].outcome);
  close (disks[i].pipe_fd);
  return &disks[i];
}

static bool
succeeded (const struct disk *d)
{
  return d->done && WIFEXITED (d->status) && WEXITSTATUS (d->status) == 0;
}

static void
print_summary (const struct disk *disks, size_t n)
{
  size_t i, w = 4, failed = 0;

  for (i = 0; i < n; ++i)
    if (strlen (disks[i].name) > w)
      w = strlen (disks[i].name);
  /* On stdout even with -q: it is the run's result. */
  printf ("\n%-*s  %-6s  %-11s  %6s  %14s  %8s  %s\n", (int) w, "DISK",
          "RESULT", "TYPE", "INDEX", "DATA", "TIME", "CHAIN");
  for (i = 0; i < n; ++i) {
    const struct disk *d = &disks[i];
    double secs = (d->end.tv_sec - d->start.tv_sec) +
      (d->end.tv_nsec - d->start.tv_nsec) / 1e9;
    char result[32], index[24], data[24];

    if (succeeded (d))
      snprintf (result, sizeof result, "ok");
    else if (d->done && WIFSIGNALED (d->status))
      snprintf (result, sizeof result, "SIG%d", WTERMSIG (d->status));
    else
      snprintf (result, sizeof result, "FAILED");
    if (!succeeded (d))
      failed++;
    if (d->outcome.published) {
      snprintf (index, sizeof index, "%" PRIi64, d->outcome.index);
      snprintf (data, sizeof data, "%" PRIu64, d->outcome.data_bytes);
    }
    else {
      strcpy (index, "-");
      strcpy (data, "-");
    }
    printf ("%-*s  %-6s  %-11s  %6s  %14s  %7.1fs  %s\n", (int) w, d->name,
            result, !d->outcome.published ? "-"
            : d->outcome.full ? "full" : "incremental",
            index, data, d->done ? secs : 0.0, d->dir);
  }
  if (failed)
    printf ("%zu of %zu disks FAILED (their messages are above)\n", failed, n);
  else
    printf ("all %zu disks backed up\n", n);
  fflush (stdout);
}

int
do_many_backups (enum backup_mode mode, char *const *args, size_t n,
                 const char *const *controls, size_t ncontrols, int jobs)
{
  struct disk *disks = calloc (n, sizeof *disks);
  size_t i, j, next = 0, running = 0;
  int ret = -1;

  if (disks == NULL) {
    error_errno ("calloc");
    return -1;
  }
  for (i = 0; i < n; ++i)
    if (parse_disk (args[i], &disks[i]) == -1)
      goto out;
  for (i = 0; i < n; ++i)
    for (j = 0; j < i; ++j)
      if (strcmp (disks[i].name, disks[j].name) == 0) {
        error ("two disks are named '%s' (name them: NAME=URI)",
               disks[i].name);
        goto out;
      }
  for (i = 0; i < ncontrols; ++i)
    if (bind_option ("--control", controls[i], disks, n, true) == -1)
      goto out;
  for (i = 0; i < opts.nnodes; ++i)
    if (bind_option ("--node", opts.nodes[i], disks, n, false) == -1)
      goto out;
  for (i = 0; i < n; ++i)
    if (disks[i].node && !disks[i].control) {
      error ("--node %s=%s: a node is backed up through a session: give "
             "--control %s=SOCKET", disks[i].name, disks[i].node,
             disks[i].name);
      goto out;
    }
  /* An S3 prefix needs no directory: its chains are OUTPUT/NAME too. */
  if (!store_is_url (opts.output) &&
      mkdir (opts.output, 0755) == -1 && errno != EEXIST) {
    error_errno ("mkdir %s", opts.output);
    goto out;
  }
  for (i = 0; i < n; ++i)
    if ((disks[i].dir = dir_file (opts.output, disks[i].name)) == NULL)
      goto out;

  /* A progress bar per child would garble the terminal. */
  opts.progress = false;
  /* The parent must outlive a child's closed pipe.  The children inherit
   * this: a closed pipe is an EPIPE error for them, which fails their run
   * as any failed write does.
   */
  signal (SIGPIPE, SIG_IGN);
  while (next < n || running > 0) {
    if (next < n && running < (size_t) jobs) {
      if (start_disk (mode, &disks[next]) == 0)
        running++;
      else
        disks[next].done = true;   /* reported as failed */
      next++;
      continue;
    }
    if (reap_one (disks, n) != NULL)
      running--;
    else if (errno == ECHILD)
      break;
  }
  print_summary (disks, n);
  ret = 0;
  for (i = 0; i < n; ++i)
    if (!succeeded (&disks[i]))
      ret = -1;

 out:
  for (i = 0; i < n; ++i) {
    free (disks[i].name);
    free (disks[i].dir);
  }
  free (disks);
  return ret;
}
