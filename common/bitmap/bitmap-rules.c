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

/* QEMU's bitmap rules and messages: see bitmap-rules.h. */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "bitmap-rules.h"

/* The limits written into the messages below. */
_Static_assert (BITMAP_NAME_MAX == 1023, "name message");
_Static_assert (BITMAP_GRANULARITY_MIN == 512, "granularity message");
_Static_assert (BITMAP_GRANULARITY_MAX == UINT64_C (2147483648),
                "granularity message");

/* The messages are QEMU's: block/monitor/bitmap-qmp-cmds.c for an empty
 * name and a bad granularity, block/qcow2-bitmap.c for the rest.
 */
const char *
bitmap_name_error (const char *name)
{
  if (name == NULL || name[0] == '\0')
    return "Bitmap name cannot be empty";
  if (strnlen (name, BITMAP_NAME_MAX + 1) > BITMAP_NAME_MAX)
    return "Name length exceeds maximum (1023 characters)";
  return NULL;
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF.
 */
static size_t
utf8_sequence_length (const unsigned char *s)
{
  unsigned char c = s[0];
  unsigned char lo = 0x80, hi = 0xbf;
  size_t n, i;

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0)
      lo = 0xa0;                /* overlong */
    else if (c == 0xed)
      hi = 0x9f;                /* surrogates */
  }
  else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0)
      lo = 0x90;                /* overlong */
    else if (c == 0xf4)
      hi = 0x8f;                /* above U+10FFFF */
  }
  else
    return 0;
  for (i = 1; i < n; i++) {
    if (s[i] < lo || s[i] > hi)
      return 0;                 /* also stops at the NUL */
    lo = 0x80;
    hi = 0xbf;
  }
  return n;
}

bool
bitmap_name_is_utf8 (const char *name)
{
  const unsigned char *s = (const unsigned char *) name;
  size_t n;

  while (*s) {
    if ((n = utf8_sequence_length (s)) == 0)
      return false;
    s += n;
  }
  return true;
}

const char *
bitmap_new_name_error (const char *name)
{
  const char *msg = bitmap_name_error (name);

  if (msg == NULL && !bitmap_name_is_utf8 (name))
    msg = BITMAP_NAME_NOT_UTF8;
  return msg;
}

const char *
bitmap_name_quote (const char *name, char *buf, size_t len)
{
  const unsigned char *s = (const unsigned char *) name;
  size_t used = 0, n;
  char piece[16];
  const size_t room = 4 + 3;    /* the widest piece and "..." */

  if (len < room + 1)
    return "";
  while (*s) {
    if (used + room + 1 > len) {
      memcpy (buf + used, "...", 3);
      used += 3;
      break;
    }
    n = utf8_sequence_length (s);
    if (n == 0 || *s < 0x20 || *s == 0x7f || *s == '\\') {
      if (*s == '\\')
        strcpy (piece, "\\\\");
      else
        snprintf (piece, sizeof piece, "\\x%02x", *s);
      n = 1;
    }
    else {
      memcpy (piece, s, n);
      piece[n] = '\0';
    }
    memcpy (buf + used, piece, strlen (piece));
    used += strlen (piece);
    s += n;
  }
  buf[used] = '\0';
  return buf;
}

const char *
bitmap_granularity_error (uint64_t granularity)
{
  if (granularity < BITMAP_GRANULARITY_MIN ||
      (granularity & (granularity - 1)) != 0)
    return "Granularity must be power of 2 and at least 512";
  if (granularity > BITMAP_GRANULARITY_MAX)
    return "Granularity exceeds maximum (2147483648 bytes)";
  return NULL;
}

const char *
bitmap_count_error (size_t count)
{
  if (count > BITMAP_COUNT_MAX)
    return "Maximum number of persistent bitmaps is already reached";
  return NULL;
}
