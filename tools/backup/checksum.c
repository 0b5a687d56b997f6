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

/* nbdcbt-backup: SHA-256 of backup files and of the data copied
 * (gnutls, which uses the CPU's SHA instructions when it has them).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "backup.h"
#include "cleanup.h"

#if defined (__x86_64__) && defined (__GNUC__)
#include <nmmintrin.h>
#define HAVE_CRC32C_INSN 1
#endif

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

/* The data checksums.  Per GiB of data on this project's 2-core test
 * machine: SHA-256 about 1 s of CPU even with the SHA instructions (as
 * much as the rest of the copy), UMAC-128 (a universal hash, RFC 4418)
 * 0.3 s, CRC-32C with the SSE 4.2 instruction on four independent lanes
 * 0.08 s (scripts/bench-backup; zlib's crc32 was 0.6 s).
 *
 * CRC-32C by quarters: the block (256K by default) is cut in four
 * lanes, each of a quarter of it rounded down to 8 bytes (the last one
 * takes the rest), and the digest is the four CRC-32C (Castagnoli, as
 * iSCSI, ext4 and btrfs use for their checksums) in big-endian order:
 * one CRC per 64K cluster.  It finds every error burst up to 32 bits,
 * and misses random damage of a lane with a probability of 2^-32.
 *
 * UMAC-128: under a random key two different blocks get the same sum
 * with a probability of about 2^-120; the key is stored with the
 * checksums, since they guard against accidents, not against someone
 * who can rewrite the backup and its checksum list.
 */

#define CRC32C_POLY 0x82f63b78  /* reflected Castagnoli polynomial */
static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void
crc32c_init_table (void)
{
  uint32_t i, k, c;

  for (i = 0; i < 256; ++i) {
    c = i;
    for (k = 0; k < 8; ++k)
      c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
    crc32c_table[i] = c;
  }
}

/* Plain CRC-32C (without the initial and final inversions). */
static uint32_t
crc32c_soft (uint32_t c, const unsigned char *p, size_t n)
{
  pthread_once (&crc32c_once, crc32c_init_table);
  while (n--)
    c = crc32c_table[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

#ifdef HAVE_CRC32C_INSN
static bool
have_crc32c_insn (void)
{
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("sse4.2");
}

/* The four lanes at once: four independent dependency chains keep the
 * CRC unit busy (one lane alone runs at a third of the speed).
 */
__attribute__ ((target ("sse4.2")))
static void
crc32c_lanes_insn (const unsigned char *p, size_t q, uint32_t c[4])
{
  uint64_t a = c[0], b = c[1], d = c[2], e = c[3], v0, v1, v2, v3;
  size_t i;

  for (i = 0; i < q; i += 8) {
    memcpy (&v0, p + i, 8);
    memcpy (&v1, p + q + i, 8);
    memcpy (&v2, p + 2 * q + i, 8);
    memcpy (&v3, p + 3 * q + i, 8);
    a = _mm_crc32_u64 (a, v0);
    b = _mm_crc32_u64 (b, v1);
    d = _mm_crc32_u64 (d, v2);
    e = _mm_crc32_u64 (e, v3);
  }
  c[0] = a; c[1] = b; c[2] = d; c[3] = e;
}
#else
static bool
have_crc32c_insn (void)
{
  return false;
}
#endif

static void
crc32c_quarters (bool insn, const unsigned char *p, size_t len,
                 unsigned char digest[SUM_SIZE])
{
  size_t q = (len / 4) & ~(size_t) 7;
  uint32_t c[4] = { ~0u, ~0u, ~0u, ~0u };
  int i;

#ifdef HAVE_CRC32C_INSN
  if (insn)
    crc32c_lanes_insn (p, q, c);
  else
#endif
  {
    for (i = 0; i < 4; ++i)
      c[i] = crc32c_soft (c[i], p + i * q, q);
  }
  /* The last lane's tail (fewer than 35 bytes). */
  c[3] = crc32c_soft (c[3], p + 4 * q, len - 4 * q);
  for (i = 0; i < 4; ++i) {
    uint32_t v = ~c[i];
    digest[4 * i] = v >> 24;
    digest[4 * i + 1] = v >> 16;
    digest[4 * i + 2] = v >> 8;
    digest[4 * i + 3] = v;
  }
}
struct summer {
  enum sum_algorithm algorithm;
  gnutls_hmac_hd_t umac;
  bool crc32c_insn;
};

const char *
sum_algorithm_name (enum sum_algorithm a)
{
  switch (a) {
  case SUM_UMAC128: return "umac128";
  case SUM_CRC32C4: return "crc32c-4";
  default: return "sha256";
  }
}

size_t
sum_size (enum sum_algorithm a)
{
  return a == SUM_SHA256 ? 32 : 16;
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
  /* NBDCBT_BACKUP_SOFT_CRC (for the tests): the portable code. */
  s->crc32c_insn = have_crc32c_insn () && !getenv ("NBDCBT_BACKUP_SOFT_CRC");
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
  if (s->algorithm == SUM_CRC32C4) {
    crc32c_quarters (s->crc32c_insn, buf, len, digest);
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
sum_params_new (struct sum_params *p, uint64_t disk_size)
{
  gnutls_hmac_hd_t h;

  /* NBDCBT_BACKUP_SUM=umac128|sha256 (undocumented, for the tests)
   * makes another choice.
   */
  const char *force = getenv ("NBDCBT_BACKUP_SUM");

  memset (p, 0, sizeof *p);
  p->has_disk_size = true;
  p->disk_size = disk_size;
  if (force && strcmp (force, "sha256") == 0)
    return 0;
  if (have_crc32c_insn () && !(force && strcmp (force, "umac128") == 0)) {
    p->algorithm = SUM_CRC32C4;
    return 0;
  }
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
sha256_pieces (sha256_read_fn *read_piece, void *opaque, char hex[65])
{
  const size_t bufsize = 4 * 1024 * 1024;
  gnutls_hash_hd_t hd;
  unsigned char digest[32];
  CLEANUP_FREE char *buf = malloc (bufsize);
  uint64_t offset = 0;

  if (buf == NULL) {
    error_errno ("malloc");
    return -1;
  }
  if (gnutls_hash_init (&hd, GNUTLS_DIG_SHA256) < 0) {
    error ("gnutls: SHA-256 is not available");
    return -1;
  }
  for (;;) {
    ssize_t n = read_piece (opaque, buf, bufsize, offset);

    if (n == -1) {
      gnutls_hash_deinit (hd, NULL);
      return -1;
    }
    if (n == 0)
      break;
    gnutls_hash (hd, buf, n);
    offset += n;
  }
  gnutls_hash_deinit (hd, digest);
  hex_digest (digest, hex);
  return 0;
}

static ssize_t
read_fd_piece (void *opaque, char *buf, size_t len, uint64_t offset)
{
  int fd = *(int *) opaque;
  ssize_t n;

  while ((n = pread (fd, buf, len, offset)) == -1 && errno == EINTR)
    ;
  if (n == -1)
    error_errno ("read");
  return n;
}

int
sha256_fd (int fd, char hex[65])
{
  return sha256_pieces (read_fd_piece, &fd, hex);
}
