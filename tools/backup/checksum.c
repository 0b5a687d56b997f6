/* nbdcbt-backup: SHA-256 of backup files and of the data copied
 * (gnutls, which uses the CPU's SHA instructions when it has them).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "backup.h"

void
hex_bytes (const unsigned char *digest, size_t len, char *hex)
{
  size_t i;

  for (i = 0; i < len; ++i) {
    hex[2 * i] = "0123456789abcdef"[digest[i] >> 4];
    hex[2 * i + 1] = "0123456789abcdef"[digest[i] & 15];
  }
  hex[2 * len] = '\0';
}

/* The data checksums.  SHA-256 costs about 1 s of CPU per GB even with
 * the SHA instructions, as much as the rest of the copy; UMAC-128 (a
 * universal hash, RFC 4418) costs a third of that.  Under a random key
 * two different blocks get the same UMAC-128 with a probability of
 * about 2^-120, which is what a checksum against damage needs; the key
 * is stored with the checksums, since it guards against accidents, not
 * against someone who can rewrite the backup and its checksum list.
 */
struct summer {
  enum sum_algorithm algorithm;
  gnutls_hmac_hd_t umac;
};

const char *
sum_algorithm_name (enum sum_algorithm a)
{
  return a == SUM_UMAC128 ? "umac128" : "sha256";
}

size_t
sum_size (enum sum_algorithm a)
{
  return a == SUM_UMAC128 ? 16 : 32;
}

struct summer *
summer_new (const struct sum_params *p)
{
  struct summer *s = calloc (1, sizeof *s);

  if (s == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  s->algorithm = p->algorithm;
  if (p->algorithm == SUM_UMAC128 &&
      gnutls_hmac_init (&s->umac, GNUTLS_MAC_UMAC_128, p->key,
                        SUM_KEY_SIZE) < 0) {
    error ("gnutls: UMAC-128 is not available");
    free (s);
    return NULL;
  }
  return s;
}

void
summer_sum (struct summer *s, uint64_t offset, const void *buf, size_t len,
            unsigned char digest[SUM_SIZE])
{
  unsigned char nonce[8];
  int i;

  memset (digest, 0, SUM_SIZE);
  if (s->algorithm == SUM_SHA256) {
    sum_data (buf, len, digest);
    return;
  }
  /* Each block of a backup has its own offset: a unique nonce. */
  for (i = 0; i < 8; ++i)
    nonce[i] = offset >> (56 - 8 * i);
  gnutls_hmac_set_nonce (s->umac, nonce, sizeof nonce);
  gnutls_hmac (s->umac, buf, len);
  gnutls_hmac_output (s->umac, digest);  /* and resets for the next */
}

void
summer_free (struct summer *s)
{
  if (s == NULL)
    return;
  if (s->umac)
    gnutls_hmac_deinit (s->umac, NULL);
  free (s);
}

int
sum_params_new (struct sum_params *p)
{
  gnutls_hmac_hd_t h;

  memset (p, 0, sizeof *p);
  if (gnutls_rnd (GNUTLS_RND_NONCE, p->key, SUM_KEY_SIZE) < 0) {
    error ("gnutls_rnd failed");
    return -1;
  }
  if (gnutls_hmac_init (&h, GNUTLS_MAC_UMAC_128, p->key, SUM_KEY_SIZE) < 0)
    p->algorithm = SUM_SHA256;
  else {
    gnutls_hmac_deinit (h, NULL);
    p->algorithm = SUM_UMAC128;
  }
  return 0;
}

void
sum_data (const void *buf, size_t len, unsigned char digest[SUM_SIZE])
{
  /* SHA-256 is always available in gnutls: this cannot fail. */
  gnutls_hash_fast (GNUTLS_DIG_SHA256, buf, len, digest);
}

bool
is_zero (const void *buf, size_t len)
{
  const char *p = buf;
  size_t i;

  if (len < 16)
    return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
  for (i = 0; i < 16; ++i)
    if (p[i])
      return false;
  return memcmp (p, p + 16, len - 16) == 0;
}

int
sha256_fd (int fd, char hex[65])
{
  const size_t bufsize = 4 * 1024 * 1024;
  gnutls_hash_hd_t hd;
  unsigned char digest[32];
  char *buf;
  off_t offset = 0;

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
  hex_digest (digest, hex);
  return 0;
}
