/* crashrec: an LD_PRELOAD shim that records what a program writes and
 * syncs under one directory, for the crash-state builder (crashstates.py).
 *
 *   CRASHREC_DIR=/abs/dir  CRASHREC_LOG=/abs/log  LD_PRELOAD=.../crashrec.so
 *
 * Every operation on a file under CRASHREC_DIR is appended to the log as
 * one line, in the order the calls returned (under one lock), with the
 * data of writes in LOG.data:
 *
 *   W path offset length dataoffset     write (pwrite, write, pwritev2)
 *   D path offset length dataoffset     write with RWF_DSYNC/O_DSYNC: durable
 *   Z path offset length                fallocate punch hole / zero range
 *   T path length                       ftruncate / O_TRUNC
 *   S path                              fsync / fdatasync (file or directory)
 *   C path                              created (O_CREAT of a missing file)
 *   R old new                           rename
 *   U path                              unlink
 *
 * Paths are relative to CRASHREC_DIR.  Only what the tests need is
 * intercepted: the calls nbdcbt's plugins, libqcow2 and libqbm make.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *dir;
static size_t dirlen;
static int logfd = -1, datafd = -1;
static off_t dataoff;
static char *fdpath[MAX_FD];
static int fdsync[MAX_FD];      /* opened with O_SYNC/O_DSYNC */
/* CRASHREC_NO_RWF_DSYNC: pwritev2 refuses RWF_DSYNC/RWF_SYNC with
 * EOPNOTSUPP, as a kernel older than 4.7 does, to test the fallbacks.
 */
static int no_rwf_dsync;

static ssize_t (*real_pwrite) (int, const void *, size_t, off_t);
static ssize_t (*real_write) (int, const void *, size_t);
static ssize_t (*real_pwritev2) (int, const struct iovec *, int, off_t, int);
static int (*real_open) (const char *, int, ...);
static int (*real_openat) (int, const char *, int, ...);
static int (*real_close) (int);
static int (*real_fsync) (int);
static int (*real_fdatasync) (int);
static int (*real_ftruncate) (int, off_t);
static int (*real_fallocate) (int, int, off_t, off_t);
static int (*real_rename) (const char *, const char *);
static int (*real_renameat) (int, const char *, int, const char *);
static int (*real_unlink) (const char *);

__attribute__ ((constructor)) static void
init (void)
{
  const char *d = getenv ("CRASHREC_DIR"), *l = getenv ("CRASHREC_LOG");
  char data[PATH_MAX];

  real_pwrite = dlsym (RTLD_NEXT, "pwrite");
  real_write = dlsym (RTLD_NEXT, "write");
  real_pwritev2 = dlsym (RTLD_NEXT, "pwritev2");
  real_open = dlsym (RTLD_NEXT, "open");
  real_openat = dlsym (RTLD_NEXT, "openat");
  real_close = dlsym (RTLD_NEXT, "close");
  real_fsync = dlsym (RTLD_NEXT, "fsync");
  real_fdatasync = dlsym (RTLD_NEXT, "fdatasync");
  real_ftruncate = dlsym (RTLD_NEXT, "ftruncate");
  real_fallocate = dlsym (RTLD_NEXT, "fallocate");
  real_rename = dlsym (RTLD_NEXT, "rename");
  real_renameat = dlsym (RTLD_NEXT, "renameat");
  real_unlink = dlsym (RTLD_NEXT, "unlink");
  no_rwf_dsync = getenv ("CRASHREC_NO_RWF_DSYNC") != NULL;
  if (d == NULL || l == NULL)
    return;
  dir = realpath (d, NULL);
  if (dir == NULL)
    return;
  dirlen = strlen (dir);
  snprintf (data, sizeof data, "%s.data", l);
  logfd = real_open (l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  datafd = real_open (data, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  {
    struct stat st;
    if (datafd >= 0 && fstat (datafd, &st) == 0)
      dataoff = st.st_size;
  }
}

/* PATH relative to DIR, or NULL if outside.  Malloc'd. */
static char *
relative (int dirfd, const char *path)
{
  char buf[PATH_MAX * 3], *abs;

  if (dir == NULL || logfd < 0)
    return NULL;
  if (path[0] == '/')
    snprintf (buf, sizeof buf, "%s", path);
  else if (dirfd != AT_FDCWD && dirfd >= 0 && dirfd < MAX_FD && fdpath[dirfd])
    snprintf (buf, sizeof buf, "%s/%s/%s", dir, fdpath[dirfd], path);
  else {
    char cwd[PATH_MAX];
    if (getcwd (cwd, sizeof cwd) == NULL)
      return NULL;
    snprintf (buf, sizeof buf, "%s/%s", cwd, path);
  }
  /* Normalize the directory part (the file may not exist yet). */
  {
    char *slash = strrchr (buf, '/'), *d;
    *slash = '\0';
    d = realpath (buf[0] ? buf : "/", NULL);
    if (d == NULL)
      return NULL;
    if (asprintf (&abs, "%s/%s", d, slash + 1) == -1) {
      free (d);
      return NULL;
    }
    free (d);
  }
  if (strcmp (abs, dir) == 0 || strcmp (abs, "/") == 0) {
    free (abs);
    return strdup (".");
  }
  if (strncmp (abs, dir, dirlen) != 0 || abs[dirlen] != '/') {
    /* DIR itself, opened as "DIR/." or similar. */
    char *r = realpath (abs, NULL);
    free (abs);
    if (r && strcmp (r, dir) == 0) {
      free (r);
      return strdup (".");
    }
    free (r);
    return NULL;
  }
  {
    char *r = strdup (abs + dirlen + 1);
    free (abs);
    if (r && (strcmp (r, ".") == 0 || r[0] == '\0')) {
      free (r);
      return strdup (".");
    }
    return r;
  }
}

static void
logline (const char *fmt, ...)
{
  char buf[PATH_MAX * 2 + 128];
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (n > 0)
    real_write (logfd, buf, n);
}

static void
log_write (int fd, const struct iovec *iov, int iovcnt, off_t offset,
           ssize_t done, int durable)
{
  size_t left = done;
  int i;

  logline ("%c %s %lld %zd %lld\n", durable ? 'D' : 'W', fdpath[fd],
           (long long) offset, done, (long long) dataoff);
  for (i = 0; i < iovcnt && left > 0; i++) {
    size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
    real_write (datafd, iov[i].iov_base, n);
    left -= n;
  }
  dataoff += done;
}

static int
tracked (int fd)
{
  return fd >= 0 && fd < MAX_FD && fdpath[fd] != NULL;
}

static void
opened (int fd, const char *rel, int flags, int existed)
{
  if (fd < 0 || fd >= MAX_FD || rel == NULL)
    return;
  free (fdpath[fd]);
  fdpath[fd] = strdup (rel);
  fdsync[fd] = (flags & (O_SYNC | O_DSYNC)) != 0;
  if ((flags & O_CREAT) && !existed)
    logline ("C %s\n", rel);
  if ((flags & O_TRUNC) && ((flags & O_ACCMODE) != O_RDONLY))
    logline ("T %s 0\n", rel);
}

static int
do_openat (int dirfd, const char *path, int flags, mode_t mode)
{
  char *rel = relative (dirfd, path);
  struct stat st;
  int existed, fd;

  if (rel == NULL)
    return real_openat (dirfd, path, flags, mode);
  pthread_mutex_lock (&lock);
  existed = fstatat (dirfd, path, &st, 0) == 0;
  fd = real_openat (dirfd, path, flags, mode);
  if (fd >= 0)
    opened (fd, rel, flags, existed);
  pthread_mutex_unlock (&lock);
  free (rel);
  return fd;
}

int
open (const char *path, int flags, ...)
{
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start (ap, flags);
    mode = va_arg (ap, mode_t);
    va_end (ap);
  }
  return do_openat (AT_FDCWD, path, flags, mode);
}
int open64 (const char *path, int flags, ...) __attribute__ ((alias ("open")));

int
openat (int dirfd, const char *path, int flags, ...)
{
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start (ap, flags);
    mode = va_arg (ap, mode_t);
    va_end (ap);
  }
  return do_openat (dirfd, path, flags, mode);
}
int openat64 (int dirfd, const char *path, int flags, ...)
  __attribute__ ((alias ("openat")));

int
close (int fd)
{
  if (tracked (fd)) {
    pthread_mutex_lock (&lock);
    free (fdpath[fd]);
    fdpath[fd] = NULL;
    pthread_mutex_unlock (&lock);
  }
  return real_close (fd);
}

ssize_t
pwrite (int fd, const void *buf, size_t count, off_t offset)
{
  ssize_t r;
  if (!tracked (fd))
    return real_pwrite (fd, buf, count, offset);
  pthread_mutex_lock (&lock);
  r = real_pwrite (fd, buf, count, offset);
  if (r > 0) {
    struct iovec iov = { (void *) buf, r };
    log_write (fd, &iov, 1, offset, r, fdsync[fd]);
  }
  pthread_mutex_unlock (&lock);
  return r;
}
ssize_t pwrite64 (int, const void *, size_t, off_t)
  __attribute__ ((alias ("pwrite")));

ssize_t
write (int fd, const void *buf, size_t count)
{
  ssize_t r;
  off_t offset;
  if (!tracked (fd))
    return real_write (fd, buf, count);
  pthread_mutex_lock (&lock);
  offset = lseek (fd, 0, SEEK_CUR);
  r = real_write (fd, buf, count);
  if (r > 0) {
    struct iovec iov = { (void *) buf, r };
    log_write (fd, &iov, 1, offset, r, fdsync[fd]);
  }
  pthread_mutex_unlock (&lock);
  return r;
}

ssize_t
pwritev2 (int fd, const struct iovec *iov, int iovcnt, off_t offset,
          int flags)
{
  ssize_t r;
  if (!tracked (fd))
    return real_pwritev2 (fd, iov, iovcnt, offset, flags);
  if (no_rwf_dsync && (flags & (RWF_DSYNC | RWF_SYNC))) {
    errno = EOPNOTSUPP;
    return -1;
  }
  pthread_mutex_lock (&lock);
  r = real_pwritev2 (fd, iov, iovcnt, offset, flags);
  if (r > 0)
    log_write (fd, iov, iovcnt, offset, r,
               fdsync[fd] || (flags & (RWF_DSYNC | RWF_SYNC)));
  pthread_mutex_unlock (&lock);
  return r;
}

static int
do_sync (int fd, int (*fn) (int))
{
  int r;
  if (!tracked (fd))
    return fn (fd);
  pthread_mutex_lock (&lock);
  r = fn (fd);
  if (r == 0)
    logline ("S %s\n", fdpath[fd]);
  pthread_mutex_unlock (&lock);
  return r;
}

int fsync (int fd) { return do_sync (fd, real_fsync); }
int fdatasync (int fd) { return do_sync (fd, real_fdatasync); }

int
ftruncate (int fd, off_t length)
{
  int r;
  if (!tracked (fd))
    return real_ftruncate (fd, length);
  pthread_mutex_lock (&lock);
  r = real_ftruncate (fd, length);
  if (r == 0)
    logline ("T %s %lld\n", fdpath[fd], (long long) length);
  pthread_mutex_unlock (&lock);
  return r;
}
int ftruncate64 (int, off_t) __attribute__ ((alias ("ftruncate")));

int
fallocate (int fd, int mode, off_t offset, off_t len)
{
  int r;
  if (!tracked (fd))
    return real_fallocate (fd, mode, offset, len);
  pthread_mutex_lock (&lock);
  r = real_fallocate (fd, mode, offset, len);
  if (r == 0 && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
    logline ("Z %s %lld %lld\n", fdpath[fd], (long long) offset,
             (long long) len);
  else if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE)) {
    struct stat st;
    if (fstat (fd, &st) == 0)
      logline ("T %s %lld\n", fdpath[fd], (long long) st.st_size);
  }
  pthread_mutex_unlock (&lock);
  return r;
}
int fallocate64 (int, int, off_t, off_t) __attribute__ ((alias ("fallocate")));

static int
do_rename (int olddirfd, const char *old, int newdirfd, const char *new)
{
  char *ro = relative (olddirfd, old), *rn = relative (newdirfd, new);
  int r;
  pthread_mutex_lock (&lock);
  r = real_renameat (olddirfd, old, newdirfd, new);
  if (r == 0 && ro && rn)
    logline ("R %s %s\n", ro, rn);
  pthread_mutex_unlock (&lock);
  free (ro);
  free (rn);
  return r;
}

int rename (const char *o, const char *n)
{ return do_rename (AT_FDCWD, o, AT_FDCWD, n); }
int renameat (int od, const char *o, int nd, const char *n)
{ return do_rename (od, o, nd, n); }

int
unlink (const char *path)
{
  char *rel = relative (AT_FDCWD, path);
  int r;
  pthread_mutex_lock (&lock);
  r = real_unlink (path);
  if (r == 0 && rel)
    logline ("U %s\n", rel);
  pthread_mutex_unlock (&lock);
  free (rel);
  return r;
}
