/* Small shared helpers: full I/O loops and human size parsing. */
#ifndef NBDCBT_UTILS_H
#define NBDCBT_UTILS_H
#include <stdint.h>
#include <sys/types.h>

/* Read/write exactly COUNT bytes (EINTR and short transfers retried).
 * 0 or -1 with errno.  full_read at end of file fails with errno EPIPE
 * (ENODATA if nothing was read); full_pread past the end of file fills
 * the rest of BUF with zeroes and succeeds.
 */
extern int full_read (int fd, void *buf, size_t count);
extern int full_write (int fd, const void *buf, size_t count);
extern int full_pread (int fd, void *buf, size_t count, off_t offset);
extern int full_pwrite (int fd, const void *buf, size_t count, off_t offset);

/* "512", "4k", "4K", "1M", "1MiB", "2G", "1T", "1E" (powers of 1024).  Returns
 * -1 and sets *err to a static message on bad input.
 */
extern int64_t parse_human_size (const char *str, const char **err);
#endif
