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

/* Unit tests for common/utils: size parsing, rounding, byte order,
 * full I/O, the scope locks.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byte-order.h"
#include "cleanup.h"
#include "rounding.h"
#include "utils.h"
#include "unit-test.h"

static void
check_size (const char *s, int64_t want)
{
  const char *err = NULL;
  int64_t r = parse_human_size (s, &err);
  if (r != want) {
    fprintf (stderr, "parse_human_size (\"%s\") = %lld, want %lld (%s)\n", s,
             (long long) r, (long long) want, err ? err : "");
    failures++;
  }
  if (want == -1)
    CHECK (err != NULL);
}

/* The full_* loops, and what each does at end of file. */
static void
check_full_io (void)
{
  char tmpl[] = "/tmp/test-utils.XXXXXX";
  char buf[8];
  int fds[2];
  int fd = mkstemp (tmpl);

  CHECK (fd >= 0);
  if (fd < 0)
    return;
  unlink (tmpl);
  CHECK (full_pwrite (fd, "abcdef", 6, 2) == 0);
  CHECK (full_write (fd, "XY", 2) == 0); /* at the file position: 0 */
  memset (buf, '?', sizeof buf);
  CHECK (full_pread (fd, buf, 8, 0) == 0);
  CHECK (memcmp (buf, "XYabcdef", 8) == 0);
  /* A durable write lands where a plain one would. */
  CHECK (full_pwrite_dsync (fd, "cd", 2, 4) == 0);
  memset (buf, '?', sizeof buf);
  CHECK (full_pread (fd, buf, 8, 0) == 0);
  CHECK (memcmp (buf, "XYabcdef", 8) == 0);
  CHECK (full_pwrite_dsync (-1, "cd", 2, 4) == -1 && errno == EBADF);
  /* Past the end reads as zeroes. */
  memset (buf, '?', sizeof buf);
  CHECK (full_pread (fd, buf, 8, 4) == 0);
  CHECK (memcmp (buf, "cdef\0\0\0\0", 8) == 0);
  /* full_read: a short read fails. */
  CHECK (lseek (fd, 5, SEEK_SET) == 5);
  errno = 0;
  CHECK (full_read (fd, buf, 8) == -1 && errno == EPIPE);
  errno = 0;
  CHECK (full_read (fd, buf, 1) == -1 && errno == ENODATA);
  close (fd);

  /* A pipe hands data over in pieces. */
  CHECK (pipe (fds) == 0);
  CHECK (full_write (fds[1], "12", 2) == 0);
  CHECK (full_write (fds[1], "345", 3) == 0);
  close (fds[1]);
  CHECK (full_read (fds[0], buf, 5) == 0 && memcmp (buf, "12345", 5) == 0);
  close (fds[0]);
}

/* The scope lock macros: several in one scope (even on one line) and in
 * nested scopes, each released when its own scope ends.
 */
static void
check_scope_locks (void)
{
  static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER;
  static pthread_mutex_t b = PTHREAD_MUTEX_INITIALIZER;
  static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;

  {
    /* clang-format off */
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&a); ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&b);
    /* clang-format on */
    CHECK (pthread_mutex_trylock (&a) == EBUSY);
    CHECK (pthread_mutex_trylock (&b) == EBUSY);
    {
      ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&rw);
      CHECK (pthread_rwlock_trywrlock (&rw) == EBUSY);
      {
        ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&rw);
        CHECK (pthread_rwlock_trywrlock (&rw) == EBUSY);
      }
    }
    CHECK (pthread_rwlock_trywrlock (&rw) == 0);
    pthread_rwlock_unlock (&rw);
    CHECK (pthread_mutex_trylock (&a) == EBUSY);
  }
  CHECK (pthread_mutex_trylock (&a) == 0);
  CHECK (pthread_mutex_trylock (&b) == 0);
  pthread_mutex_unlock (&a);
  pthread_mutex_unlock (&b);
  {
    ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&rw);
    CHECK (pthread_rwlock_tryrdlock (&rw) == EBUSY);
  }
  CHECK (pthread_rwlock_tryrdlock (&rw) == 0);
  pthread_rwlock_unlock (&rw);
}

int
main (void)
{
  check_full_io ();
  check_scope_locks ();

  check_size ("0", 0);
  check_size ("512", 512);
  check_size ("4k", 4096);
  check_size ("4K", 4096);
  check_size ("1M", 1048576);
  check_size ("1MiB", 1048576);
  check_size ("2G", INT64_C (2147483648));
  check_size ("1T", INT64_C (1099511627776));
  check_size ("8E", -1);   /* 2^63 overflows int64 */
  check_size ("", -1);
  check_size ("-1", -1);
  check_size ("1X", -1);
  check_size ("1Mfoo", -1);
  check_size ("99999999999999999999999", -1);

  CHECK (ROUND_UP (5, 4) == 8);
  CHECK (ROUND_DOWN (5, 4) == 4);
  CHECK (DIV_ROUND_UP (9, 4) == 3);
  CHECK (is_power_of_2 (4096));
  CHECK (!is_power_of_2 (0));
  CHECK (!is_power_of_2 (6));
  CHECK (log_2_bits (65536) == 16);

  uint8_t b[8];
  store_be64 (b, UINT64_C (0x0102030405060708));
  CHECK (b[0] == 1 && b[7] == 8);
  CHECK (load_be64 (b) == UINT64_C (0x0102030405060708));
  store_be32 (b, 0xdeadbeef);
  CHECK (load_be32 (b) == 0xdeadbeef && b[0] == 0xde);
  store_be16 (b, 0x1234);
  CHECK (load_be16 (b) == 0x1234 && b[1] == 0x34);

  if (failures) {
    fprintf (stderr, "%d failures\n", failures);
    exit (EXIT_FAILURE);
  }
  return 0;
}
