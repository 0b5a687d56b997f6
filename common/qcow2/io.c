/* Reading and writing the image file itself. */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2-internal.h"

int
qcow2_file_pread (struct qcow2 *q, void *buf, size_t count, uint64_t offset)
{
  char *p = buf;

  while (count > 0) {
    ssize_t r = pread (q->fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return qcow2_error (errno, "%s: read at %" PRIu64 ": %m",
                          q->filename, offset);
    }
    if (r == 0) {
      /* Past the end of the file reads as zeroes, as in QEMU. */
      memset (p, 0, count);
      return 0;
    }
    p += r;
    offset += r;
    count -= r;
  }
  return 0;
}

int
qcow2_file_pwrite (struct qcow2 *q, const void *buf, size_t count,
                   uint64_t offset)
{
  const char *p = buf;

  while (count > 0) {
    ssize_t r = pwrite (q->fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return qcow2_error (errno, "%s: write at %" PRIu64 ": %m",
                          q->filename, offset);
    }
    p += r;
    offset += r;
    count -= r;
  }
  return 0;
}

int
qcow2_file_sync (struct qcow2 *q)
{
  if (fdatasync (q->fd) == -1)
    return qcow2_error (errno, "%s: fdatasync: %m", q->filename);
  return 0;
}

uint64_t
qcow2_file_end (struct qcow2 *q)
{
  struct stat st;

  if (fstat (q->fd, &st) == -1)
    return 0;
  return st.st_size;
}
