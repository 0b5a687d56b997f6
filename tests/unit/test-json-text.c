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

/* json_text_utf8: what the control socket sends is UTF-8 JSON, with
 * each character QEMU's writer would not write as itself replaced as
 * QEMU replaces it (util/unicode.c's rules: a sequence cut short is one
 * U+FFFD, so is an overlong form, a surrogate, a noncharacter, a code
 * point above U+10FFFF; 0xC0 0x80 is U+0000).  Valid text is unchanged.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "json-text.h"
#include "unit-test.h"

static void
check (const char *in, size_t len, const char *want)
{
  size_t n = 0;
  char *out = json_text_utf8 (in, len, &n);

  CHECK (out != NULL);
  if (out == NULL)
    return;
  if (strcmp (out, want) != 0 || n != strlen (want)) {
    fprintf (stderr, "json_text_utf8: got \"%s\", want \"%s\"\n", out, want);
    failures++;
  }
  free (out);
}

#define T(in, want) check ((in), sizeof (in) - 1, (want))

int
main (void)
{
  T ("", "");
  T ("{\"name\": \"b0\"}", "{\"name\": \"b0\"}");
  T ("h\xc3\xa9", "h\xc3\xa9");                     /* 2 bytes */
  T ("\xe6\x97\xa5", "\xe6\x97\xa5");               /* 3 bytes */
  T ("\xf0\x9f\x92\xbe", "\xf0\x9f\x92\xbe");       /* 4 bytes */
  T ("bad\xff\xfename", "bad\\uFFFD\\uFFFDname");   /* one per byte */
  T ("a\x80z", "a\\uFFFDz");                        /* lone continuation */
  T ("cut\xe2\x82", "cut\\uFFFD");                  /* cut at the end */
  T ("cut\xe2\x82z", "cut\\uFFFDz");                /* cut by 'z' */
  T ("\xe2\x82\xe2\x82\xac", "\\uFFFD\xe2\x82\xac"); /* then a good one */
  T ("ov\xc0\xaf", "ov\\uFFFD");                    /* overlong '/' */
  T ("\xc0\x80", "\\u0000");                        /* modified UTF-8 */
  T ("\xed\xa0\x80", "\\uFFFD");                    /* surrogate */
  T ("\xef\xbf\xbe", "\\uFFFD");                    /* U+FFFE */
  T ("\xef\xb7\x90", "\\uFFFD");                    /* U+FDD0 */
  T ("\xf4\x90\x80\x80", "\\uFFFD");                /* above U+10FFFF */
  T ("\xf8\x88\x80\x80\x80", "\\uFFFD");            /* 5-byte form */
  /* The length given, not the NUL, ends the text. */
  check ("ab\xe2\x82\xac", 4, "ab\\uFFFD");
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
