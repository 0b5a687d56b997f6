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

/* What json-c's lenient parser takes and JSON (RFC 8259) and QEMU's
 * parser do not.  The control socket parses leniently (json-c's strict
 * mode refuses the '...' strings QEMU accepts, and a second message after
 * the first), and both it and the QBM sidecar reader need a duplicate
 * key refused: json-c keeps the last value silently, so
 * {"name":"a","name":"b"} would act on "b" where QEMU refuses the
 * command.  The scanner reads the text json-c consumed, in as many pieces
 * as it came in, and is asked once the value is complete.
 */
#ifndef NBDCBT_JSON_TEXT_H
#define NBDCBT_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

struct json_text_scan {
  const char *error; /* the first problem found, or NULL */
  size_t colons; /* ':' outside strings: one per key */
  char quote; /* inside a string: its quote character */
  bool escape; /* inside a string, after a backslash */
  bool after_comma; /* the last character that counts was ',' */
  bool in_number;
  bool zero_first; /* the number's first digit is 0 */
  unsigned digits; /* digits of the number's integer part so far */
  bool in_fraction; /* after the number's '.', 'e' or 'E' */
  char num[4]; /* the number's first characters */
  unsigned numlen;
  char word[6]; /* a literal (true, false, null) being read */
  unsigned wordlen;
  char stray[16]; /* storage for the "stray '...'" message */
};

extern void json_text_scan_init (struct json_text_scan *s);

/* Scan LEN more bytes of the value's text. */
extern void json_text_scan_feed (struct json_text_scan *s, const char *text,
                                 size_t len);

/* The value json-c returned for the text scanned: NULL if the text is
 * JSON as QEMU reads it ('...' strings allowed), else what is wrong in
 * the words of QEMU's parser ("duplicate key", "expecting value" for a
 * trailing comma, "stray '/'" for a comment, "stray 'T'" for True...).
 */
extern const char *json_text_scan_finish (struct json_text_scan *s,
                                          json_object *value);

/* Whether an object in VALUE named a key twice, from the text scanned
 * (json_text_scan_finish checks this too).
 */
extern bool json_text_duplicate_keys (const struct json_text_scan *s,
                                      json_object *value);

/* TEXT, LEN bytes of JSON as json-c writes it, with each character
 * QEMU's JSON writer would not write as it is (bytes that are not UTF-8,
 * overlong forms, surrogates, noncharacters) written as the escape
 * \uFFFD, as QEMU writes it: json-c copies a string's bytes as they
 * are, a name read from an image (a bitmap's) may be any bytes, and a
 * QMP client could not decode the reply.  Such bytes can only be inside
 * strings (json-c writes everything else in ASCII), where the escape is
 * valid.  A malloc'd copy, NUL-terminated, with its length in *OUT_LEN
 * if not NULL; NULL if out of memory.
 */
extern char *json_text_utf8 (const char *text, size_t len, size_t *out_len);

#endif /* NBDCBT_JSON_TEXT_H */
