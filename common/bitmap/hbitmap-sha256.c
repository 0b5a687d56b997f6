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

/* Helper for test-hbitmap-sha256.py: build a bitmap from byte ranges and
 * print what QEMU would report for the same bitmap.
 *
 *   hbitmap-sha256 SIZE GRANULARITY [OFFSET:LENGTH | =NEWSIZE]...
 *
 * applies hbitmap_set (OFFSET:LENGTH) and hbitmap_resize (=NEWSIZE) in
 * order, then prints "SHA256 COUNT" (COUNT = hbitmap_count, dirty bytes).
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hbitmap.h"

static uint64_t
parse_u64 (const char *s, char **end)
{
  uint64_t v;

  errno = 0;
  v = strtoull (s, end, 0);
  if (errno != 0 || *end == s || *s == '-') {
    fprintf (stderr, "hbitmap-sha256: bad number: %s\n", s);
    exit (EXIT_FAILURE);
  }
  return v;
}

int
main (int argc, char *argv[])
{
  struct hbitmap *hb;
  uint64_t size, gran, off, len;
  char digest[65], *end;
  int i;

  if (argc < 3) {
    fprintf (stderr, "usage: hbitmap-sha256 SIZE GRANULARITY "
             "[OFFSET:LENGTH | =NEWSIZE]...\n");
    exit (EXIT_FAILURE);
  }
  size = parse_u64 (argv[1], &end);
  gran = parse_u64 (argv[2], &end);
  hb = hbitmap_new (size, gran);
  if (hb == NULL) {
    perror ("hbitmap_new");
    exit (EXIT_FAILURE);
  }
  for (i = 3; i < argc; ++i) {
    if (argv[i][0] == '=') {
      if (hbitmap_resize (hb, parse_u64 (argv[i] + 1, &end)) == -1) {
        perror ("hbitmap_resize");
        exit (EXIT_FAILURE);
      }
      continue;
    }
    off = parse_u64 (argv[i], &end);
    if (*end != ':') {
      fprintf (stderr, "hbitmap-sha256: expected OFFSET:LENGTH: %s\n",
               argv[i]);
      exit (EXIT_FAILURE);
    }
    len = parse_u64 (end + 1, &end);
    hbitmap_set (hb, off, len);
  }
  if (hbitmap_sha256 (hb, digest) == -1) {
    perror ("hbitmap_sha256");
    exit (EXIT_FAILURE);
  }
  printf ("%s %" PRIu64 "\n", digest, hbitmap_count (hb));
  hbitmap_free (hb);
  return EXIT_SUCCESS;
}
