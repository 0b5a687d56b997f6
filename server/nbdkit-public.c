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

/* The nbdkit_* functions that nbdkit plugins and filters call, with
 * nbdkit's documented behaviour (nbdkit-plugin(3), nbdkit-filter(3)),
 * on top of nbdcbt's own services.  They are exported from the nbdcbt
 * executable (-export-dynamic) so that the modules nbdkit-host.c loads
 * find them.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>
#include <nbdkit-filter.h>

#include "internal.h"
#include "nbdkit-host.h"
#include "tls.h"
#include "utils.h"

bool nbdkit_stdio_used;

/* Flags. */

uint32_t
nbdkit_flags_to_nbdcbt (uint32_t f)
{
  uint32_t r = 0;

  if (f & NBDKIT_FLAG_FUA)
    r |= NBDCBT_FLAG_FUA;
  if (f & NBDKIT_FLAG_MAY_TRIM)
    r |= NBDCBT_FLAG_MAY_TRIM;
  if (f & NBDKIT_FLAG_REQ_ONE)
    r |= NBDCBT_FLAG_REQ_ONE;
  if (f & NBDKIT_FLAG_FAST_ZERO)
    r |= NBDCBT_FLAG_FAST_ZERO;
  return r;
}

uint32_t
nbdcbt_flags_to_nbdkit (uint32_t f)
{
  uint32_t r = 0;

  if (f & NBDCBT_FLAG_FUA)
    r |= NBDKIT_FLAG_FUA;
  if (f & NBDCBT_FLAG_MAY_TRIM)
    r |= NBDKIT_FLAG_MAY_TRIM;
  if (f & NBDCBT_FLAG_REQ_ONE)
    r |= NBDKIT_FLAG_REQ_ONE;
  if (f & NBDCBT_FLAG_FAST_ZERO)
    r |= NBDKIT_FLAG_FAST_ZERO;
  return r;
}

/* Messages. */

void
nbdkit_verror (const char *fs, va_list args)
{
  nbdcbt_verror (fs, args);
}

void
nbdkit_error (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  nbdcbt_verror (fs, args);
  va_end (args);
}

void
nbdkit_vdebug (const char *fs, va_list args)
{
  char *msg;

  if (!nbdcbt_verbose ())
    return;
  if (vasprintf (&msg, fs, args) == -1)
    return;
  nbdcbt_debug ("%s", msg);
  free (msg);
}

void
nbdkit_debug (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  nbdkit_vdebug (fs, args);
  va_end (args);
}

void
nbdkit_set_error (int err)
{
  nbdcbt_set_error (err);
}

/* Parsing. */

int64_t
nbdkit_parse_size (const char *str)
{
  const char *why;
  int64_t r = parse_human_size (str, &why);

  if (r == -1)
    nbdkit_error ("could not parse size string (%s): %s", str, why);
  return r;
}

int
nbdkit_parse_bool (const char *str)
{
  static const char *const yes[] = { "1", "true", "t", "yes", "y", "on" };
  static const char *const no[] = { "0", "false", "f", "no", "n", "off" };
  size_t i;

  for (i = 0; i < sizeof yes / sizeof yes[0]; ++i) {
    if (strcasecmp (str, yes[i]) == 0)
      return 1;
    if (strcasecmp (str, no[i]) == 0)
      return 0;
  }
  nbdkit_error ("could not decipher boolean (%s)", str);
  return -1;
}

/* nbdkit parses numbers with strtol/strtoul in base 0 (0x.. hex, 0..
 * octal), refusing empty strings, trailing characters, values out of
 * range, and a minus sign for unsigned types.
 */
static int
parse_signed (const char *what, const char *str, long long min,
              long long max, long long *r)
{
  char *end;
  long long v;

  if (*str == '\0') {
    nbdkit_error ("%s: empty string where we expected a number", what);
    return -1;
  }
  errno = 0;
  v = strtoll (str, &end, 0);
  if (end == str || *end != '\0') {
    nbdkit_error ("%s: could not parse number: \"%s\": trailing garbage",
                  what, str);
    return -1;
  }
  if (errno == ERANGE || v < min || v > max) {
    nbdkit_error ("%s: could not parse number: \"%s\": "
                  "value is out of range", what, str);
    return -1;
  }
  *r = v;
  return 0;
}

static int
parse_unsigned (const char *what, const char *str, unsigned long long max,
                unsigned long long *r)
{
  const char *p = str;
  char *end;
  unsigned long long v;

  while (isspace ((unsigned char) *p))
    p++;
  if (*p == '-') {
    nbdkit_error ("%s: negative numbers are not allowed", what);
    return -1;
  }
  if (*str == '\0') {
    nbdkit_error ("%s: empty string where we expected a number", what);
    return -1;
  }
  errno = 0;
  v = strtoull (str, &end, 0);
  if (end == str || *end != '\0') {
    nbdkit_error ("%s: could not parse number: \"%s\": trailing garbage",
                  what, str);
    return -1;
  }
  if (errno == ERANGE || v > max) {
    nbdkit_error ("%s: could not parse number: \"%s\": "
                  "value is out of range", what, str);
    return -1;
  }
  *r = v;
  return 0;
}

#define PARSE_SIGNED(fn, type, min, max)                                    \
  int fn (const char *what, const char *str, type *rp)                      \
  {                                                                         \
    long long v;                                                            \
    if (parse_signed (what, str, (min), (max), &v) == -1)                   \
      return -1;                                                            \
    if (rp)                                                                 \
      *rp = v;                                                              \
    return 0;                                                               \
  }
#define PARSE_UNSIGNED(fn, type, max)                                       \
  int fn (const char *what, const char *str, type *rp)                      \
  {                                                                         \
    unsigned long long v;                                                   \
    if (parse_unsigned (what, str, (max), &v) == -1)                        \
      return -1;                                                            \
    if (rp)                                                                 \
      *rp = v;                                                              \
    return 0;                                                               \
  }

PARSE_SIGNED (nbdkit_parse_int, int, INT_MIN, INT_MAX)
PARSE_SIGNED (nbdkit_parse_int8_t, int8_t, INT8_MIN, INT8_MAX)
PARSE_SIGNED (nbdkit_parse_int16_t, int16_t, INT16_MIN, INT16_MAX)
PARSE_SIGNED (nbdkit_parse_int32_t, int32_t, INT32_MIN, INT32_MAX)
PARSE_SIGNED (nbdkit_parse_int64_t, int64_t, INT64_MIN, INT64_MAX)
PARSE_UNSIGNED (nbdkit_parse_unsigned, unsigned, UINT_MAX)
PARSE_UNSIGNED (nbdkit_parse_uint8_t, uint8_t, UINT8_MAX)
PARSE_UNSIGNED (nbdkit_parse_uint16_t, uint16_t, UINT16_MAX)
PARSE_UNSIGNED (nbdkit_parse_uint32_t, uint32_t, UINT32_MAX)
PARSE_UNSIGNED (nbdkit_parse_uint64_t, uint64_t, UINT64_MAX)

/* Paths. */

char *
nbdkit_absolute_path (const char *path)
{
  return nbdcbt_absolute_path (path);
}

char *
nbdkit_realpath (const char *path)
{
  char *r;

  if (path == NULL || *path == '\0') {
    nbdkit_error ("cannot resolve a null or empty path");
    errno = ENOENT;
    return NULL;
  }
  r = realpath (path, NULL);
  if (r == NULL)
    nbdkit_error ("realpath: %s: %m", path);
  return r;
}

/* Passwords: "-" from the terminal (or stdin), "-FD" from a file
 * descriptor, "+FILE" from a file, anything else is the password.
 */
int
nbdkit_stdio_safe (void)
{
  return !nbdkit_stdio_used;
}

static int
read_password_from (FILE *fp, const char *what, char **password)
{
  char *line = NULL;
  size_t n = 0;
  ssize_t r;

  r = getline (&line, &n, fp);
  if (r == -1) {
    if (ferror (fp))
      nbdkit_error ("reading the password from %s: %m", what);
    else {
      free (line);
      line = strdup ("");   /* an empty file is an empty password */
      if (line == NULL) {
        nbdkit_error ("strdup: %m");
        return -1;
      }
      *password = line;
      return 0;
    }
    free (line);
    return -1;
  }
  if (r > 0 && line[r - 1] == '\n')
    line[--r] = '\0';
  *password = line;
  return 0;
}

int
nbdkit_read_password (const char *value, char **password)
{
  *password = NULL;

  if (strcmp (value, "-") == 0) {
    struct termios orig, noecho;
    bool tty = isatty (0);
    int r;

    if (!nbdkit_stdio_safe ()) {
      nbdkit_error ("stdin is not available for reading the password");
      return -1;
    }
    if (tty) {
      printf ("password: ");
      fflush (stdout);
      if (tcgetattr (0, &orig) == 0) {
        noecho = orig;
        noecho.c_lflag &= ~ECHO;
        tcsetattr (0, TCSAFLUSH, &noecho);
      }
      else
        tty = false;
    }
    r = read_password_from (stdin, "stdin", password);
    if (tty) {
      tcsetattr (0, TCSAFLUSH, &orig);
      printf ("\n");
    }
    return r;
  }
  if (value[0] == '-' && value[1] != '\0') {
    int fd, fd2;
    FILE *fp;
    int r;

    if (nbdkit_parse_int ("password file descriptor", value + 1, &fd) == -1)
      return -1;
    if (fd <= 2 || fcntl (fd, F_GETFD) == -1) {
      nbdkit_error ("password file descriptor %d: not an open file "
                    "descriptor above 2", fd);
      return -1;
    }
    /* Read from a duplicate: the caller's descriptor is closed as nbdkit
     * does, after reading.
     */
    fd2 = dup (fd);
    if (fd2 == -1 || (fp = fdopen (fd2, "r")) == NULL) {
      nbdkit_error ("password file descriptor %d: %m", fd);
      if (fd2 >= 0)
        close (fd2);
      return -1;
    }
    r = read_password_from (fp, "the file descriptor", password);
    fclose (fp);
    close (fd);
    return r;
  }
  if (value[0] == '+') {
    FILE *fp = fopen (value + 1, "r");
    int r;

    if (fp == NULL) {
      nbdkit_error ("open %s: %m", value + 1);
      return -1;
    }
    r = read_password_from (fp, value + 1, password);
    fclose (fp);
    return r;
  }
  *password = strdup (value);
  if (*password == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  return 0;
}

/* Time and shutdown. */

int
nbdkit_nanosleep (unsigned sec, unsigned nsec)
{
  struct timespec ts = { .tv_sec = sec + nsec / 1000000000,
                         .tv_nsec = nsec % 1000000000 };
  struct pollfd pfd = { .fd = quit_fd, .events = POLLIN };
  int r;

  /* Wake early when the server stops, as nbdkit does. */
  for (;;) {
    r = ppoll (&pfd, quit_fd >= 0 ? 1 : 0, &ts, NULL);
    if (r == -1 && errno == EINTR)
      continue;
    break;
  }
  if (r == -1) {
    nbdkit_error ("poll: %m");
    return -1;
  }
  if (r > 0 || is_quitting ()) {
    nbdkit_error ("aborting sleep to shut down");
    errno = ESHUTDOWN;
    return -1;
  }
  return 0;
}

void
nbdkit_shutdown (void)
{
  nbdcbt_shutdown ();
}

/* The client. */

const char *
nbdkit_export_name (void)
{
  const char *r = nbdcbt_export_name ();

  if (r == NULL)
    nbdkit_error ("no connection in this thread");
  return r;
}

int
nbdkit_is_tls (void)
{
  if (current_conn == NULL) {
    nbdkit_error ("no connection in this thread");
    return -1;
  }
  return tls_active (&current_conn->transport);
}

static int
peer_fd (void)
{
  if (current_conn == NULL) {
    nbdkit_error ("no connection in this thread");
    return -1;
  }
  if (!current_conn->transport.is_socket) {
    nbdkit_error ("the client is not on a socket");
    return -1;
  }
  return current_conn->transport.sockin;
}

int
nbdkit_peer_name (struct sockaddr *addr, socklen_t *addrlen)
{
  int fd = peer_fd ();

  if (fd == -1)
    return -1;
  if (getpeername (fd, addr, addrlen) == -1) {
    nbdkit_error ("peername: %m");
    return -1;
  }
  return 0;
}

static int
peer_cred (struct ucred *cred)
{
  socklen_t len = sizeof *cred;
  int fd = peer_fd ();

  if (fd == -1)
    return -1;
  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, cred, &len) == -1) {
    nbdkit_error ("getsockopt: SO_PEERCRED: %m");
    return -1;
  }
  return 0;
}

int64_t
nbdkit_peer_pid (void)
{
  struct ucred c;

  return peer_cred (&c) == -1 ? -1 : c.pid;
}

int64_t
nbdkit_peer_uid (void)
{
  struct ucred c;

  return peer_cred (&c) == -1 ? -1 : (int64_t) c.uid;
}

int64_t
nbdkit_peer_gid (void)
{
  struct ucred c;

  return peer_cred (&c) == -1 ? -1 : (int64_t) c.gid;
}

/* Interned strings: nbdkit frees them when the connection (or, outside
 * one, the server) ends.  Here they all live until the process exits,
 * which is correct and costs a little memory for modules that intern
 * per connection.
 */
static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static char **interned;
static size_t ninterned, interned_cap;

static void
free_interned (void)
{
  size_t i;

  for (i = 0; i < ninterned; ++i)
    free (interned[i]);
  free (interned);
}

static const char *
intern (char *s)
{
  if (s == NULL) {
    nbdkit_error ("strdup: %m");
    return NULL;
  }
  pthread_mutex_lock (&intern_lock);
  if (ninterned == interned_cap) {
    size_t cap = interned_cap ? interned_cap * 2 : 16;
    char **p = realloc (interned, cap * sizeof *p);

    if (p == NULL) {
      pthread_mutex_unlock (&intern_lock);
      nbdkit_error ("realloc: %m");
      free (s);
      return NULL;
    }
    if (interned == NULL)
      atexit (free_interned);
    interned = p;
    interned_cap = cap;
  }
  interned[ninterned++] = s;
  pthread_mutex_unlock (&intern_lock);
  return s;
}

const char *
nbdkit_strdup_intern (const char *str)
{
  return intern (strdup (str));
}

const char *
nbdkit_strndup_intern (const char *str, size_t n)
{
  return intern (strndup (str, n));
}

const char *
nbdkit_vprintf_intern (const char *fs, va_list args)
{
  char *s;

  if (vasprintf (&s, fs, args) == -1)
    s = NULL;
  return intern (s);
}

const char *
nbdkit_printf_intern (const char *fs, ...)
{
  va_list args;
  const char *r;

  va_start (args, fs);
  r = nbdkit_vprintf_intern (fs, args);
  va_end (args);
  return r;
}

/* Extents: an nbdkit extents list is an nbdcbt one (the same rules:
 * ascending, contiguous, clipped to the range, neighbours merged).
 */
struct nbdkit_extents *
nbdkit_extents_new (uint64_t start, uint64_t end)
{
  if (start > end || end > INT64_MAX) {
    nbdkit_error ("nbdkit_extents_new: "
                  "start (%" PRIu64 ") >= end (%" PRIu64 ")", start, end);
    errno = ERANGE;
    return NULL;
  }
  return (struct nbdkit_extents *) nbdcbt_extents_new (start, end);
}

void
nbdkit_extents_free (struct nbdkit_extents *e)
{
  nbdcbt_extents_free ((struct nbdcbt_extents *) e);
}

size_t
nbdkit_extents_count (const struct nbdkit_extents *e)
{
  return nbdcbt_extents_count ((const struct nbdcbt_extents *) e);
}

struct nbdkit_extent
nbdkit_get_extent (const struct nbdkit_extents *e, size_t i)
{
  struct nbdcbt_extent x =
    nbdcbt_get_extent ((const struct nbdcbt_extents *) e, i);

  return (struct nbdkit_extent) { .offset = x.offset, .length = x.length,
                                  .type = x.type };
}

int
nbdkit_add_extent (struct nbdkit_extents *e, uint64_t offset,
                   uint64_t length, uint32_t type)
{
  return nbdcbt_add_extent ((struct nbdcbt_extents *) e, offset, length,
                            type);
}

/* Export lists. */
struct nbdkit_exports {
  struct nbdkit_export *v;
  size_t len;
  bool use_default;
};

struct nbdkit_exports *
nbdkit_exports_new (void)
{
  struct nbdkit_exports *e = calloc (1, sizeof *e);

  if (e == NULL)
    nbdkit_error ("calloc: %m");
  return e;
}

void
nbdkit_exports_free (struct nbdkit_exports *e)
{
  size_t i;

  if (e == NULL)
    return;
  for (i = 0; i < e->len; ++i) {
    free (e->v[i].name);
    free (e->v[i].description);
  }
  free (e->v);
  free (e);
}

size_t
nbdkit_exports_count (const struct nbdkit_exports *e)
{
  return e->len;
}

/* nbdkit's header declares the return value const. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-qualifiers"
const struct nbdkit_export
nbdkit_get_export (const struct nbdkit_exports *e, size_t i)
{
  return e->v[i];
}
#pragma GCC diagnostic pop

int
nbdkit_add_export (struct nbdkit_exports *e, const char *name,
                   const char *description)
{
  struct nbdkit_export *v;

  /* NBD limits: names up to 4096 bytes, at most 10000 listed (nbdkit's). */
  if (e->len >= 10000) {
    nbdkit_error ("nbdkit_add_export: too many exports");
    errno = EINVAL;
    return -1;
  }
  if (strlen (name) > 4096 || (description && strlen (description) > 4096)) {
    nbdkit_error ("nbdkit_add_export: name or description too long");
    errno = EINVAL;
    return -1;
  }
  v = realloc (e->v, (e->len + 1) * sizeof *v);
  if (v == NULL) {
    nbdkit_error ("realloc: %m");
    return -1;
  }
  e->v = v;
  v[e->len].name = strdup (name);
  v[e->len].description = description ? strdup (description) : NULL;
  if (v[e->len].name == NULL || (description && !v[e->len].description)) {
    free (v[e->len].name);
    free (v[e->len].description);
    nbdkit_error ("strdup: %m");
    return -1;
  }
  e->len++;
  return 0;
}

int
nbdkit_use_default_export (struct nbdkit_exports *e)
{
  e->use_default = true;
  return 0;
}
