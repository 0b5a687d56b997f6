/* nbdcbt-backup: SHA-256 of backup files (gnutls). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "backup.h"

int
sha256_fd (int fd, char hex[65])
{
  const size_t bufsize = 4 * 1024 * 1024;
  gnutls_hash_hd_t hd;
  unsigned char digest[32];
  char *buf;
  off_t offset = 0;
  int i;

  buf = malloc (bufsize);
  if (buf == NULL) {
    error_errno ("malloc");
    return -1;
  }
  if (gnutls_hash_init (&hd, GNUTLS_DIG_SHA256) < 0) {
    error ("gnutls: SHA-256 is not available");
    free (buf);
    return -1;
  }
  for (;;) {
    ssize_t n = pread (fd, buf, bufsize, offset);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      error_errno ("read");
      gnutls_hash_deinit (hd, NULL);
      free (buf);
      return -1;
    }
    if (n == 0)
      break;
    gnutls_hash (hd, buf, n);
    offset += n;
  }
  gnutls_hash_deinit (hd, digest);
  free (buf);
  for (i = 0; i < 32; ++i) {
    hex[2 * i] = "0123456789abcdef"[digest[i] >> 4];
    hex[2 * i + 1] = "0123456789abcdef"[digest[i] & 15];
  }
  hex[64] = '\0';
  return 0;
}
