#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utils.h"

int
full_read (int fd, void *buf, size_t count)
{
  char *p = buf;
  size_t done = 0;

  while (done < count) {
    ssize_t r = read (fd, p + done, count - done);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      errno = done ? EPIPE : ENODATA;
      return -1;
    }
    done += r;
  }
  return 0;
}

int
full_write (int fd, const void *buf, size_t count)
{
  const char *p = buf;

  while (count > 0) {
    ssize_t r = write (fd, p, count);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    count -= r;
  }
  return 0;
}

int
full_pread (int fd, void *buf, size_t count, off_t offset)
{
  char *p = buf;

  while (count > 0) {
    ssize_t r = pread (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      /* Past the end of file: reads as zeroes. */
      memset (p, 0, count);
      return 0;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
full_pwrite (int fd, const void *buf, size_t count, off_t offset)
{
  const char *p = buf;

  while (count > 0) {
    ssize_t r = pwrite (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

int64_t
parse_human_size (const char *str, const char **err)
{
  char *end;
  unsigned long long v;
  int shift = 0;

  while (isspace ((unsigned char) *str))
    str++;
  if (*str == '-' || !isdigit ((unsigned char) *str)) {
    *err = "expected a non-negative number";
    return -1;
  }
  errno = 0;
  v = strtoull (str, &end, 10);
  if (errno == ERANGE) {
    *err = "number too large";
    return -1;
  }
  switch (*end) {
  case '\0': break;
  case 'b': case 'B': shift = 0; end++; break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  case 'p': case 'P': shift = 50; end++; break;
  case 'e': case 'E': shift = 60; end++; break;
  default:
    *err = "unknown size suffix (use b, k, M, G, T, P or E)";
    return -1;
  }
  if (shift && (strcmp (end, "iB") == 0 || strcmp (end, "B") == 0))
    end += strlen (end);
  if (*end != '\0') {
    *err = "trailing characters after the size";
    return -1;
  }
  if (v > (UINT64_C (0x7fffffffffffffff) >> shift)) {
    *err = "size too large";
    return -1;
  }
  return (int64_t) (v << shift);
}
