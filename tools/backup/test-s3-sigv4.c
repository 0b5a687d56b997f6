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

/* AWS Signature Version 4 (s3-sigv4.c) against the worked examples of
 * AWS's S3 documentation ("Signature Calculations for the Authorization
 * Header: Transferring Payload in a Single Chunk"): the example keys,
 * bucket examplebucket, 2013-05-24, us-east-1.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"

#define EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static int failures;

static void
check (const char *what, const struct sigv4_request *r, const char *want)
{
  char *auth = sigv4_authorization (r);
  const char *sig = auth ? strstr (auth, "Signature=") : NULL;

  if (sig == NULL || strcmp (sig + 10, want) != 0) {
    fprintf (stderr, "FAIL: %s:\n  got  %s\n  want Signature=%s\n", what,
             auth ? auth : "(null)", want);
    failures++;
  }
  else
    printf ("ok: %s\n", what);
  free (auth);
}

int
main (void)
{
  struct sigv4_request r = {
    .method = "GET",
    .canonical_uri = "/test.txt",
    .canonical_query = "",
    .host = "examplebucket.s3.amazonaws.com",
    .range = "bytes=0-9",
    .payload_sha256 = EMPTY_SHA256,
    .amz_date = "20130524T000000Z",
    .region = "us-east-1",
    .service = "s3",
    .access_key = "AKIAIOSFODNN7EXAMPLE",
    .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  };
  char *enc;
  char hex[65];

  check ("GET object with a range", &r,
         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");

  r.canonical_uri = "/";
  r.range = NULL;
  r.canonical_query = "lifecycle=";
  check ("GET bucket lifecycle", &r,
         "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");

  r.canonical_query = "max-keys=2&prefix=J";
  check ("GET bucket (list objects)", &r,
         "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");

  sha256_hex ("", 0, hex);
  if (strcmp (hex, EMPTY_SHA256) != 0) {
    fprintf (stderr, "FAIL: SHA-256 of nothing: %s\n", hex);
    failures++;
  }

  enc = s3_uri_encode ("a b/c~d+e=f&é", true);
  if (enc == NULL || strcmp (enc, "a%20b/c~d%2Be%3Df%26%C3%A9") != 0) {
    fprintf (stderr, "FAIL: URI encoding: %s\n", enc ? enc : "(null)");
    failures++;
  }
  free (enc);
  enc = s3_uri_encode ("x/y", false);
  if (enc == NULL || strcmp (enc, "x%2Fy") != 0) {
    fprintf (stderr, "FAIL: URI encoding of a query value: %s\n",
             enc ? enc : "(null)");
    failures++;
  }
  free (enc);

  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
