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

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-text.h"

void
json_text_scan_init (struct json_text_scan *s)
{
  memset (s, 0, sizeof *s);
}

static void
fail (struct json_text_scan *s, const char *msg)
{
  if (s->error == NULL)
    s->error = msg;
}

static void
stray (struct json_text_scan *s, const char *token)
{
  if (s->error == NULL) {
    snprintf (s->stray, sizeof s->stray, "stray '%.3s'", token);
    s->error = s->stray;
  }
}

/* The literal just read must be spelt as JSON spells it (json-c's lenient
 * mode takes True, NULL...).
 */
static void
end_word (struct json_text_scan *s)
{
  if (s->wordlen == 0)
    return;
  s->word[s->wordlen < sizeof s->word ? s->wordlen : sizeof s->word - 1] = 0;
  if (strcmp (s->word, "true") != 0 && strcmp (s->word, "false") != 0
      && strcmp (s->word, "null") != 0) {
    char first[2] = { s->word[0], 0 };

    stray (s, first);
  }
  s->wordlen = 0;
}

static bool
is_number_char (char c)
{
  return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+'
         || c == '-';
}

static void
start_number (struct json_text_scan *s, char c)
{
  s->in_number = true;
  memset (s->num, 0, sizeof s->num);
  s->num[0] = c;
  s->numlen = 1;
  s->zero_first = c == '0';
  s->digits = c != '-';
  s->in_fraction = false;
}

void
json_text_scan_feed (struct json_text_scan *s, const char *text, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++) {
    char c = text[i];

    if (s->quote) {
      if (s->escape)
        s->escape = false;
      else if (c == '\\')
        s->escape = true;
      else if (c == s->quote)
        s->quote = 0;
      continue;
    }
    if (s->in_number) {
      if (is_number_char (c)) {
        if (s->numlen < sizeof s->num - 1)
          s->num[s->numlen++] = c;
        if (c >= '0' && c <= '9' && !s->in_fraction) {
          /* 01 is not a JSON number: QEMU refuses it, json-c reads 1. */
          if (s->zero_first)
            stray (s, s->num);
          if (s->digits++ == 0 && c == '0')
            s->zero_first = true;
        }
        else if (c == '.' || c == 'e' || c == 'E')
          s->in_fraction = true;
        continue;
      }
      s->in_number = false;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      if (s->wordlen < sizeof s->word - 1)
        s->word[s->wordlen] = c;
      s->wordlen++;
      s->after_comma = false;
      continue;
    }
    end_word (s);
    switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
      continue;
    case '/':
      stray (s, "/");
      continue;
    case '}':
    case ']':
      if (s->after_comma)
        fail (s, "expecting value");
      break;
    case ':':
      s->colons++;
      break;
    case '"':
    case '\'':
      s->quote = c;
      break;
    default:
      if (c == '-' || (c >= '0' && c <= '9'))
        start_number (s, c);
      break;
    }
    s->after_comma = c == ',';
  }
}

/* Keys in V and everything below it. */
static size_t
count_keys (json_object *v)
{
  size_t n = 0, i;

  if (json_object_is_type (v, json_type_object)) {
    json_object_object_foreach (v, key, val)
    {
      (void) key;
      n += 1 + count_keys (val);
    }
  }
  else if (json_object_is_type (v, json_type_array))
    for (i = 0; i < json_object_array_length (v); i++)
      n += count_keys (json_object_array_get_idx (v, i));
  return n;
}

/* Every key in the text is followed by the one ':' outside strings: more
 * of them than the parsed objects hold keys means that an object named a
 * key twice.
 */
bool
json_text_duplicate_keys (const struct json_text_scan *s, json_object *value)
{
  return s->colons != count_keys (value);
}

const char *
json_text_scan_finish (struct json_text_scan *s, json_object *value)
{
  end_word (s);
  if (s->error == NULL && json_text_duplicate_keys (s, value))
    s->error = "duplicate key";
  return s->error;
}

/* The character at P (before END) as QEMU's JSON writer decodes it
 * (util/unicode.c): its code point, or -1 if it is not one QEMU writes
 * as itself, and in *LEN the bytes it takes.  A lead byte takes the
 * continuation bytes that follow it, up to its length, even when the
 * sequence turns out invalid (overlong, a surrogate, above U+10FFFF, a
 * noncharacter); 0xC0 0x80 is U+0000 (modified UTF-8).
 */
static int
qemu_code_point (const unsigned char *p, const unsigned char *end, size_t *len)
{
  static const int min[] = { 0x80, 0x800, 0x10000, 0x200000, 0x4000000 };
  unsigned lead = p[0], n = 0, i;
  int cp;

  *len = 1;
  if (lead < 0x80)
    return lead;
  if (lead >= 0xfe || (lead & 0x40) == 0)
    return -1; /* 0xFE, 0xFF, a lone continuation byte */
  while (lead & (0x80 >> n))
    n++; /* 2 to 6 */
  cp = lead & (0x7f >> n);
  for (i = 1; i < n; i++) {
    if (p + i >= end || (p[i] & 0xc0) != 0x80)
      return -1; /* cut short: ends before P[I] */
    cp = (cp << 6) | (p[i] & 0x3f);
    *len = i + 1;
  }
  if (cp > 0x10ffff || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe
      || (cp >= 0xd800 && cp <= 0xdfff)
      || (cp < min[n - 2] && !(cp == 0 && n == 2)))
    return -1;
  return cp;
}

char *
json_text_utf8 (const char *text, size_t len, size_t *out_len)
{
  const unsigned char *p, *end = (const unsigned char *) text + len;
  size_t size = 0, n;
  char *out, *q;
  int cp;

  /* Same length unless something is rewritten: measure first. */
  for (p = (const unsigned char *) text; p < end; p += n) {
    cp = qemu_code_point (p, end, &n);
    size += cp == -1 || cp == 0 ? 6 : n;
  }
  out = malloc (size + 1);
  if (out == NULL)
    return NULL;
  for (p = (const unsigned char *) text, q = out; p < end; p += n) {
    cp = qemu_code_point (p, end, &n);
    if (cp == -1 || cp == 0)
      q += sprintf (q, "\\u%04X", cp == -1 ? 0xfffd : 0);
    else {
      memcpy (q, p, n);
      q += n;
    }
  }
  *q = '\0';
  if (out_len)
    *out_len = q - out;
  return out;
}
