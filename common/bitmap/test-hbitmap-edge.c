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

/* Edge cases of hbitmap: bad arguments, size 0, one byte, one granule,
 * offsets at and past the end, zero and huge lengths, resize across word
 * boundaries, known serialization bytes and digests, and a 1 TiB bitmap
 * at 512-byte granularity (2^31 bits) with its memory budget; the
 * dirty walk over many areas and long runs; a level 0 mapped in huge
 * pages through every path that fills, copies, clears, deserializes and
 * resizes it.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbitmap.h"
#include "unit-test.h"


#define TIB (UINT64_C (1) << 40)

static struct hbitmap *
new_or_die (uint64_t size, uint64_t gran)
{
  struct hbitmap *hb = hbitmap_new (size, gran);

  if (hb == NULL) {
    fprintf (stderr, "hbitmap_new (%" PRIu64 ", %" PRIu64 "): %m\n",
             size, gran);
    exit (EXIT_FAILURE);
  }
  return hb;
}

static void
test_bad_arguments (void)
{
  static const uint64_t bad_gran[] = {
    0, 1, 256, 511, 513, 768, UINT64_C (1) << 32, UINT64_MAX
  };
  struct hbitmap *a, *b;
  size_t i;

  for (i = 0; i < sizeof bad_gran / sizeof bad_gran[0]; ++i) {
    errno = 0;
    CHECK (hbitmap_new (4096, bad_gran[i]) == NULL && errno == EINVAL);
  }
  errno = 0;
  CHECK (hbitmap_new ((uint64_t) INT64_MAX + 1, 512) == NULL
         && errno == EINVAL);

  /* Limits that are accepted. */
  a = new_or_die (4096, 512);
  hbitmap_free (a);
  a = new_or_die (4096, UINT64_C (1) << 31);
  CHECK (hbitmap_nbits (a) == 1);
  hbitmap_set (a, 4095, 1);
  CHECK (hbitmap_count (a) == UINT64_C (1) << 31);
  hbitmap_free (a);
  hbitmap_free (NULL);

  /* Merge of different geometries fails and changes nothing. */
  a = new_or_die (1 << 20, 512);
  b = new_or_die (1 << 20, 1024);
  hbitmap_set (b, 0, 1 << 20);
  errno = 0;
  CHECK (hbitmap_merge (a, b) == -1 && errno == EINVAL);
  CHECK (hbitmap_count (a) == 0);
  hbitmap_free (b);
  b = new_or_die ((1 << 20) + 512, 512);
  hbitmap_set (b, 0, 1 << 20);
  errno = 0;
  CHECK (hbitmap_merge (a, b) == -1 && errno == EINVAL);
  CHECK (hbitmap_count (a) == 0);
  /* Merging into itself is a no-op. */
  CHECK (hbitmap_merge (b, b) == 0 && hbitmap_count (b) == 1 << 20);
  hbitmap_free (b);

  errno = 0;
  CHECK (hbitmap_resize (a, (uint64_t) INT64_MAX + 1) == -1
         && errno == EINVAL);
  CHECK (hbitmap_size (a) == 1 << 20);
  hbitmap_free (a);
}

static void
test_size_zero (void)
{
  struct hbitmap *hb = new_or_die (0, 65536);
  uint64_t s, l;
  char digest[65];
  uint8_t byte = 0x5a;

  CHECK (hbitmap_size (hb) == 0);
  CHECK (hbitmap_nbits (hb) == 0);
  hbitmap_set (hb, 0, UINT64_MAX);
  hbitmap_set_all (hb);
  CHECK (hbitmap_count (hb) == 0);
  CHECK (!hbitmap_get (hb, 0));
  CHECK (hbitmap_next_dirty (hb, 0, UINT64_MAX) == -1);
  CHECK (hbitmap_next_clean (hb, 0, UINT64_MAX) == -1);
  CHECK (!hbitmap_next_dirty_area (hb, 0, UINT64_MAX, 0, &s, &l));
  CHECK (hbitmap_serialization_size (hb, 0, UINT64_MAX) == 0);
  hbitmap_serialize_part (hb, &byte, 0, UINT64_MAX);
  hbitmap_deserialize_part (hb, &byte, 0, UINT64_MAX);
  CHECK (byte == 0x5a);
  CHECK (hbitmap_is_zero_part (hb, 0, UINT64_MAX));
  /* QEMU hashes one zero word for an empty bitmap. */
  CHECK (hbitmap_sha256 (hb, digest) == 0);
  CHECK (strcmp (digest, "af5570f5a1810b7af78caf4bc70a660f"
                 "0df51e42baf91d4de5b2328de0e83dfc") == 0);

  CHECK (hbitmap_resize (hb, 65536 * 100 + 1) == 0);
  CHECK (hbitmap_nbits (hb) == 101);
  CHECK (hbitmap_count (hb) == 0);
  hbitmap_set (hb, 65536 * 100, 1);
  CHECK (hbitmap_count (hb) == 65536);
  CHECK (hbitmap_resize (hb, 0) == 0);
  CHECK (hbitmap_count (hb) == 0);
  CHECK (hbitmap_sha256 (hb, digest) == 0);
  CHECK (strcmp (digest, "af5570f5a1810b7af78caf4bc70a660f"
                 "0df51e42baf91d4de5b2328de0e83dfc") == 0);
  hbitmap_free (hb);
}

static void
test_one_byte_and_granule (void)
{
  struct hbitmap *hb = new_or_die (1, 512);
  uint64_t s = 0, l = 0;

  CHECK (hbitmap_nbits (hb) == 1);
  hbitmap_set (hb, 0, 0);
  CHECK (hbitmap_count (hb) == 0);
  hbitmap_set (hb, 1, 100);               /* past the end: ignored */
  CHECK (hbitmap_count (hb) == 0);
  hbitmap_set (hb, 0, UINT64_MAX);        /* huge: clipped */
  /* QEMU counts the whole last granule. */
  CHECK (hbitmap_count (hb) == 512);
  CHECK (hbitmap_count_bits (hb) == 1);
  CHECK (hbitmap_get (hb, 0) && !hbitmap_get (hb, 1));
  CHECK (hbitmap_next_dirty (hb, 0, 1) == 0);
  CHECK (hbitmap_next_dirty (hb, 1, 1) == -1);
  CHECK (hbitmap_next_clean (hb, 0, UINT64_MAX) == -1);
  CHECK (hbitmap_next_dirty_area (hb, 0, UINT64_MAX, 0, &s, &l)
         && s == 0 && l == 1);
  hbitmap_free (hb);

  hb = new_or_die (4096, 4096);
  hbitmap_set (hb, 4095, 1);
  CHECK (hbitmap_count (hb) == 4096);
  CHECK (hbitmap_next_dirty (hb, 100, 10) == 100);   /* never below OFFSET */
  CHECK (hbitmap_next_dirty_area (hb, 100, 200, 0, &s, &l)
         && s == 100 && l == 100);
  CHECK (hbitmap_next_dirty_area (hb, 100, UINT64_MAX, 7, &s, &l)
         && s == 100 && l == 7);
  hbitmap_reset (hb, 4095, UINT64_MAX);
  CHECK (hbitmap_count (hb) == 0);
  hbitmap_free (hb);
}

static void
test_offsets_and_lengths (void)
{
  const uint64_t g = 65536, size = 130 * g + 1000;
  struct hbitmap *hb = new_or_die (size, g);
  uint64_t s, l;

  /* offset + len overflows: clipped at the end. */
  hbitmap_set (hb, 129 * g, UINT64_MAX - 5);
  CHECK (hbitmap_count_bits (hb) == 2);
  CHECK (hbitmap_next_dirty (hb, 0, UINT64_MAX) == (int64_t) (129 * g));
  CHECK (hbitmap_next_dirty (hb, size, UINT64_MAX) == -1);
  CHECK (hbitmap_next_dirty (hb, size - 1, 1) == (int64_t) (size - 1));
  CHECK (hbitmap_next_dirty (hb, 0, 129 * g) == -1);
  CHECK (hbitmap_next_dirty (hb, 0, 129 * g + 1) == (int64_t) (129 * g));
  CHECK (hbitmap_next_clean (hb, 129 * g, UINT64_MAX) == -1);
  CHECK (hbitmap_next_clean (hb, 129 * g + 5, 0) == -1);
  CHECK (!hbitmap_get (hb, size));
  CHECK (!hbitmap_next_dirty_area (hb, size, UINT64_MAX, 0, &s, &l));
  CHECK (!hbitmap_next_dirty_area (hb, 5, 5, 0, &s, &l));
  CHECK (!hbitmap_next_dirty_area (hb, 6, 5, 0, &s, &l));
  CHECK (hbitmap_next_dirty_area (hb, 0, UINT64_MAX, 0, &s, &l)
         && s == 129 * g && l == g + 1000);

  /* Word boundary: granules 63 and 64. */
  hbitmap_set (hb, 63 * g + 1, 2);
  hbitmap_set (hb, 64 * g, 1);
  CHECK (hbitmap_next_dirty_area (hb, 0, UINT64_MAX, 0, &s, &l)
         && s == 63 * g && l == 2 * g);
  CHECK (hbitmap_next_clean (hb, 63 * g, UINT64_MAX) == (int64_t) (65 * g));
  hbitmap_reset (hb, 64 * g - 1, 1);
  CHECK (hbitmap_next_dirty (hb, 0, UINT64_MAX) == (int64_t) (64 * g));
  hbitmap_free (hb);
}

static void
test_resize (void)
{
  const uint64_t g = 512;
  struct hbitmap *hb = new_or_die (200 * g, g);
  char d1[65], d2[65];
  struct hbitmap *ref;

  hbitmap_set_all (hb);
  CHECK (hbitmap_count_bits (hb) == 200);
  /* Shrink into the middle of a granule: it keeps its bit. */
  CHECK (hbitmap_resize (hb, 130 * g + 7) == 0);
  CHECK (hbitmap_count_bits (hb) == 131);
  CHECK (hbitmap_count (hb) == 131 * g);
  CHECK (hbitmap_resize (hb, 128 * g) == 0);    /* exactly two words */
  CHECK (hbitmap_count_bits (hb) == 128);
  CHECK (hbitmap_next_clean (hb, 0, UINT64_MAX) == -1);
  CHECK (hbitmap_resize (hb, 63 * g) == 0);     /* below one word */
  CHECK (hbitmap_count_bits (hb) == 63);
  CHECK (hbitmap_resize (hb, 100000 * g) == 0); /* grow: new space clean */
  CHECK (hbitmap_count_bits (hb) == 63);
  CHECK (hbitmap_next_clean (hb, 0, UINT64_MAX) == (int64_t) (63 * g));
  CHECK (hbitmap_next_dirty (hb, 63 * g, UINT64_MAX) == -1);
  hbitmap_set (hb, 99999 * g, g);
  CHECK (hbitmap_next_dirty (hb, 63 * g, UINT64_MAX)
         == (int64_t) (99999 * g));

  /* The digest after resizes equals a fresh bitmap's. */
  ref = new_or_die (100000 * g, g);
  hbitmap_set (ref, 0, 63 * g);
  hbitmap_set (ref, 99999 * g, 1);
  CHECK (hbitmap_sha256 (hb, d1) == 0 && hbitmap_sha256 (ref, d2) == 0);
  CHECK (strcmp (d1, d2) == 0);
  CHECK (hbitmap_resize (hb, 65 * g) == 0 && hbitmap_resize (ref, 65 * g) == 0);
  CHECK (hbitmap_sha256 (hb, d1) == 0 && hbitmap_sha256 (ref, d2) == 0);
  CHECK (strcmp (d1, d2) == 0);
  CHECK (hbitmap_memory_usage (hb) == hbitmap_memory_usage (ref));
  hbitmap_free (ref);
  hbitmap_free (hb);
}

static void
test_serialization (void)
{
  const uint64_t g = 65536, size = 100 * g + 512;   /* 101 bits */
  struct hbitmap *hb = new_or_die (size, g), *hb2;
  uint64_t align = hbitmap_serialization_align (hb), off, n;
  uint8_t whole[13], part[13];
  size_t i;

  CHECK (align == 8 * g);
  hbitmap_set (hb, 0, 1);         /* bit 0 */
  hbitmap_set (hb, 9 * g, 1);     /* bit 9 */
  hbitmap_set (hb, 100 * g, 1);   /* bit 100, the last, partial granule */
  CHECK (hbitmap_serialization_size (hb, 0, UINT64_MAX) == 13);
  memset (whole, 0xee, sizeof whole);
  hbitmap_serialize_part (hb, whole, 0, UINT64_MAX);
  /* LSB first: bit n is bit (n & 7) of byte n >> 3. */
  CHECK (whole[0] == 0x01 && whole[1] == 0x02);
  CHECK (whole[12] == 0x10);      /* bit 100 = byte 12 bit 4 */
  for (i = 2; i < 12; ++i)
    CHECK (whole[i] == 0);

  /* Parts of one byte each tile the whole serialization. */
  for (off = 0, i = 0; off < size; off += align, ++i) {
    n = hbitmap_serialization_size (hb, off, align);
    CHECK (n == 1);
    hbitmap_serialize_part (hb, &part[i], off, align);
    CHECK (part[i] == whole[i]);
    CHECK (hbitmap_is_zero_part (hb, off, align) == (whole[i] == 0));
  }

  /* Deserialize into a fresh bitmap in uneven chunks. */
  hb2 = new_or_die (size, g);
  hbitmap_deserialize_part (hb2, whole, 0, 3 * align);
  hbitmap_deserialize_part (hb2, whole + 3, 3 * align, UINT64_MAX);
  CHECK (hbitmap_count_bits (hb2) == 3);
  CHECK (hbitmap_get (hb2, 100 * g + 1));
  hbitmap_set_all (hb2);
  memset (part, 0, sizeof part);
  part[12] = 0xf0;                /* bits 100-103: only 100 is inside */
  hbitmap_deserialize_part (hb2, part, 0, UINT64_MAX);
  CHECK (hbitmap_count_bits (hb2) == 1);
  CHECK (hbitmap_next_dirty (hb2, 0, UINT64_MAX) == (int64_t) (100 * g));
  hbitmap_free (hb2);
  hbitmap_free (hb);
}

static void
test_1tib_512 (void)
{
  struct hbitmap *hb = new_or_die (TIB, 512);
  uint64_t nbits = TIB / 512, s, l;
  size_t mem = hbitmap_memory_usage (hb);

  CHECK (hbitmap_nbits (hb) == nbits);
  printf ("1 TiB @ 512: %" PRIu64 " bits, %zu bytes (%.4f x nbits/8)\n",
          nbits, mem, mem / (double) (nbits / 8));
  CHECK (mem <= 1.1 * (nbits / 8));
  CHECK (hbitmap_next_dirty (hb, 0, UINT64_MAX) == -1);
  CHECK (hbitmap_next_clean (hb, TIB - 1, UINT64_MAX) == (int64_t) (TIB - 1));

  hbitmap_set (hb, TIB - 512, 512);
  hbitmap_set (hb, 12345 * 512, 3 * 4096);
  hbitmap_set (hb, UINT64_C (5) << 30, UINT64_C (4) << 30);  /* 4 GiB */
  CHECK (hbitmap_count (hb) == 512 + 3 * 4096 + (UINT64_C (4) << 30));
  CHECK (hbitmap_next_dirty (hb, 0, UINT64_MAX) == 12345 * 512);
  CHECK (hbitmap_next_dirty (hb, 12345 * 512 + 3 * 4096, UINT64_MAX)
         == (int64_t) (UINT64_C (5) << 30));
  CHECK (hbitmap_next_clean (hb, UINT64_C (5) << 30, UINT64_MAX)
         == (int64_t) (UINT64_C (9) << 30));
  CHECK (hbitmap_next_dirty (hb, UINT64_C (9) << 30, UINT64_MAX)
         == (int64_t) (TIB - 512));
  CHECK (hbitmap_next_dirty_area (hb, UINT64_C (6) << 30, UINT64_MAX, 0,
                                  &s, &l)
         && s == UINT64_C (6) << 30 && l == UINT64_C (3) << 30);
  hbitmap_reset (hb, 0, TIB / 2);
  CHECK (hbitmap_count (hb) == 512);
  CHECK (hbitmap_next_dirty (hb, 0, UINT64_MAX) == (int64_t) (TIB - 512));
  hbitmap_free (hb);
}

/* Resident memory in bytes (Linux /proc), 0 if unknown. */
static uint64_t
resident (void)
{
  FILE *f = fopen ("/proc/self/statm", "r");
  unsigned long size, res = 0;

  if (f == NULL)
    return 0;
  if (fscanf (f, "%lu %lu", &size, &res) != 2)
    res = 0;
  fclose (f);
  return (uint64_t) res * 4096;
}

/* A sparse 1 TiB bitmap at 512 B (a level 0 of 256 MiB) costs memory for
 * the words it uses, not for its size: new, set, copy, clear and
 * deserializing a sparse part leave level 0's clean stretches untouched.
 */
static void
test_sparse_memory (void)
{
  const uint64_t limit = UINT64_C (64) << 20;
  uint64_t r0 = resident ();
  struct hbitmap *a = new_or_die (TIB, 512), *b;
  uint8_t part[4096] = { 0 };

  hbitmap_set (a, 0, 512);
  hbitmap_set (a, TIB / 2, 4096);
  hbitmap_set (a, TIB - 512, 512);
  b = hbitmap_copy (a);
  CHECK (b != NULL && hbitmap_count_bits (b) == 10);
  hbitmap_reset_all (b);
  CHECK (hbitmap_count_bits (b) == 0);
  part[100] = 0x11;
  hbitmap_deserialize_part (b, part, TIB / 4, sizeof part * 8 * 512);
  CHECK (hbitmap_count_bits (b) == 2);
  CHECK (hbitmap_next_dirty (b, 0, UINT64_MAX)
         == (int64_t) (TIB / 4 + 800 * 512));
  if (r0) {
    uint64_t used = resident () - r0;
    printf ("two sparse 1 TiB @ 512 bitmaps: %" PRIu64 " KiB resident\n",
            used >> 10);
    CHECK (used < limit);
  }
  hbitmap_free (a);
  hbitmap_free (b);
}

/* 1 TiB at 64 KiB: a level 0 of 2 MiB, mapped (hbitmap.c).  Sparse and
 * dense contents through deserializing into a clean bitmap (whole, and in
 * cluster-sized parts as the qcow2 loader does) and into a dirty one,
 * copy, clear, merge, and a resize down below the mapping threshold and
 * back up.
 */
static void
test_mapped (void)
{
  const uint64_t gran = 65536, size = TIB, nbits = TIB / 65536;
  const uint64_t part = UINT64_C (65536) * 8 * gran;  /* a 64 KiB cluster */
  struct hbitmap *a = new_or_die (size, gran), *b;
  size_t nbytes = hbitmap_serialization_size (a, 0, size);
  uint8_t *buf = calloc (nbytes, 1), *out = malloc (nbytes);
  uint64_t want, off;
  char d1[65], d2[65];

  if (buf == NULL || out == NULL)
    exit (EXIT_FAILURE);
  CHECK (nbytes == nbits / 8);
  buf[0] = 0x01;
  buf[8003] = 0xf0;
  memset (buf + 65536, 0xff, 4096);   /* whole words: the full summary */
  buf[nbytes - 1] = 0x80;             /* the last granule */
  want = 1 + 4 + 4096 * 8 + 1;

  /* Into a new bitmap: the sparse path. */
  hbitmap_deserialize_part (a, buf, 0, size);
  CHECK (hbitmap_count_bits (a) == want);
  hbitmap_serialize_part (a, out, 0, size);
  CHECK (memcmp (buf, out, nbytes) == 0);
  CHECK (hbitmap_next_dirty (a, gran, UINT64_MAX)
         == (int64_t) (8003 * 8 + 4) * (int64_t) gran);
  CHECK (hbitmap_next_clean (a, UINT64_C (65536) * 8 * gran, UINT64_MAX)
         == (int64_t) ((65536 + 4096) * 8 * gran));
  CHECK (hbitmap_next_dirty (a, (65536 + 4096) * 8 * gran, UINT64_MAX)
         == (int64_t) (size - gran));

  /* A sparse copy is the same bitmap, and independent. */
  b = hbitmap_copy (a);
  CHECK (b != NULL);
  CHECK (hbitmap_sha256 (a, d1) == 0 && hbitmap_sha256 (b, d2) == 0
         && strcmp (d1, d2) == 0);
  CHECK (hbitmap_count_bits (b) == want);
  hbitmap_set (b, gran * 100, gran);
  CHECK (!hbitmap_get (a, gran * 100));
  CHECK (hbitmap_next_clean (b, UINT64_C (65536) * 8 * gran, UINT64_MAX)
         == (int64_t) ((65536 + 4096) * 8 * gran));

  /* A sparse clear, then the same bytes in cluster-sized parts. */
  hbitmap_reset_all (a);
  CHECK (hbitmap_count_bits (a) == 0);
  CHECK (hbitmap_next_dirty (a, 0, UINT64_MAX) == -1);
  CHECK (hbitmap_next_clean (a, 0, UINT64_MAX) == 0);
  for (off = 0; off < size; off += part)
    hbitmap_deserialize_part (a, buf + off / gran / 8, off, part);
  CHECK (hbitmap_count_bits (a) == want);
  CHECK (hbitmap_sha256 (a, d2) == 0 && strcmp (d1, d2) == 0);

  /* Into a dirty range: zeros replace what was there. */
  memset (out, 0, 8192);
  hbitmap_deserialize_part (a, out, 0, UINT64_C (8192) * 8 * gran);
  CHECK (hbitmap_count_bits (a) == want - 5);
  CHECK (hbitmap_next_dirty (a, 0, UINT64_MAX)
         == (int64_t) (UINT64_C (65536) * 8 * gran));

  /* Merge a mapped bitmap into another one. */
  CHECK (hbitmap_merge (b, a) == 0);
  CHECK (hbitmap_count_bits (b) == want + 1);

  /* Dense: copy and clear go through level 0 linearly. */
  hbitmap_set_all (a);
  hbitmap_reset (a, gran * 7, gran);
  hbitmap_free (b);
  b = hbitmap_copy (a);
  CHECK (b != NULL && hbitmap_count_bits (b) == nbits - 1);
  CHECK (hbitmap_next_clean (b, 0, UINT64_MAX) == (int64_t) (gran * 7));
  CHECK (hbitmap_next_clean (b, gran * 8, UINT64_MAX) == -1);
  hbitmap_reset_all (a);
  CHECK (hbitmap_count_bits (a) == 0 && hbitmap_next_dirty (a, 0, UINT64_MAX) == -1);
  hbitmap_free (b);

  /* Resize below the threshold (512 MiB of level 0 is 8 KiB) and back. */
  hbitmap_set (a, 4096 * gran, gran);
  hbitmap_set (a, size - gran, gran);
  CHECK (hbitmap_resize (a, UINT64_C (512) << 30) == 0);
  CHECK (hbitmap_count_bits (a) == 1);
  CHECK (hbitmap_resize (a, size) == 0);
  CHECK (hbitmap_count_bits (a) == 1);
  CHECK (hbitmap_get (a, 4096 * gran) && !hbitmap_get (a, size - gran));
  CHECK (hbitmap_next_dirty (a, 4097 * gran, UINT64_MAX) == -1);
  hbitmap_set (a, size - gran, gran);
  CHECK (hbitmap_resize (a, size * 2) == 0);   /* mapped to mapped */
  CHECK (hbitmap_count_bits (a) == 2 && hbitmap_get (a, size - gran));
  CHECK (hbitmap_next_dirty (a, size, UINT64_MAX) == -1);
  hbitmap_free (a);
  free (buf);
  free (out);
}

/* The walk over more areas than one lock hold covers (the lock is
 * dropped every 1024), over runs that cross words and level-1 words
 * (followed through the "full" summaries) and unaligned ends: the areas
 * must be exactly those next_dirty_area finds one by one.
 */
struct walk_list {
  uint64_t *a;
  size_t n, cap;
};

static int
walk_collect (void *opaque, uint64_t start, uint64_t len)
{
  struct walk_list *l = opaque;

  if (l->n + 2 > l->cap) {
    l->cap = l->cap ? 2 * l->cap : 1024;
    l->a = realloc (l->a, l->cap * sizeof *l->a);
    if (l->a == NULL)
      exit (EXIT_FAILURE);
  }
  l->a[l->n++] = start;
  l->a[l->n++] = len;
  return 0;
}

static void
check_walk_matches (struct hbitmap *hb, uint64_t off, uint64_t end)
{
  struct walk_list l = { 0 };
  uint64_t s, len, pos = off;
  size_t i = 0;

  CHECK (hbitmap_walk_dirty (hb, off, end, walk_collect, &l) == 0);
  while (hbitmap_next_dirty_area (hb, pos, end, 0, &s, &len)) {
    CHECK (i + 1 < l.n);
    if (i + 1 >= l.n)
      break;
    CHECK (l.a[i] == s && l.a[i + 1] == len);
    i += 2;
    pos = s + len;
  }
  CHECK (i == l.n);
  free (l.a);
}

static void
test_walk_many (void)
{
  const uint64_t gran = 512, size = (UINT64_C (3) << 30) + 1234;
  struct hbitmap *hb = new_or_die (size, gran);
  uint64_t i;

  /* 3000 single granules, every 301st: more than two lock holds. */
  for (i = 0; i < 3000; ++i)
    hbitmap_set (hb, i * 301 * gran, 1);
  /* Runs across words and across level-1 words (4096 granules each). */
  hbitmap_set (hb, 10000000 * gran - 100, 200 * gran);
  hbitmap_set (hb, 4096 * 700 * gran - 64 * gran, 4096 * 3 * gran);
  hbitmap_set (hb, 63 * gran, 2 * gran);
  /* Dirty up to the (partial) last granule. */
  hbitmap_set (hb, size - 70 * gran, 70 * gran);

  check_walk_matches (hb, 0, UINT64_MAX);
  check_walk_matches (hb, 1, size - 1);
  check_walk_matches (hb, 64 * gran, 4096 * 701 * gran + 17);
  check_walk_matches (hb, 4096 * 700 * gran - 10 * gran, UINT64_MAX);
  check_walk_matches (hb, size - 1, size);
  check_walk_matches (hb, size, UINT64_MAX);
  hbitmap_set_all (hb);
  check_walk_matches (hb, 0, UINT64_MAX);
  check_walk_matches (hb, 777, size - 777);
  hbitmap_free (hb);

  /* One word, one level. */
  hb = new_or_die (40 * gran, gran);
  hbitmap_set (hb, 3 * gran, 5 * gran);
  hbitmap_set (hb, 30 * gran, 10 * gran);
  check_walk_matches (hb, 0, UINT64_MAX);
  check_walk_matches (hb, 5 * gran + 1, 35 * gran);
  hbitmap_free (hb);
}

int
main (void)
{
  test_bad_arguments ();
  test_size_zero ();
  test_one_byte_and_granule ();
  test_offsets_and_lengths ();
  test_resize ();
  test_serialization ();
  test_1tib_512 ();
  test_mapped ();
  test_sparse_memory ();
  test_walk_many ();

  if (failures) {
    fprintf (stderr, "test-hbitmap-edge: %d failures\n", failures);
    return EXIT_FAILURE;
  }
  printf ("test-hbitmap-edge: all passed\n");
  return EXIT_SUCCESS;
}
