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

/* dirty-map URI CONTEXT: print the map of a metadata context as
 * "OFFSET LENGTH FLAGS" lines (adjacent equal extents merged), walking
 * the whole export with block status requests, as a libnbd backup client
 * would.  Used by test-interop-libnbd.sh against both servers.
 */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

struct walk {
  const char *context;
  uint64_t pos;          /* next offset to report */
  uint64_t start, len;   /* pending merged extent */
  uint32_t flags;
  bool have;
  bool seen;             /* CONTEXT was in this reply */
};

static void
emit (struct walk *w, uint64_t len, uint32_t flags)
{
  if (w->have && w->flags == flags && w->start + w->len == w->pos) {
    w->len += len;
  }
  else {
    if (w->have)
      printf ("%" PRIu64 " %" PRIu64 " %" PRIu32 "\n", w->start, w->len,
              w->flags);
    w->start = w->pos;
    w->len = len;
    w->flags = flags;
    w->have = true;
  }
  w->pos += len;
}

static int
extent_cb (void *opaque, const char *metacontext, uint64_t offset,
           uint32_t *entries, size_t nr_entries, int *error)
{
  struct walk *w = opaque;
  size_t i;

  if (strcmp (metacontext, w->context) != 0)
    return 0;
  w->seen = true;
  for (i = 0; i + 1 < nr_entries; i += 2)
    emit (w, entries[i], entries[i + 1]);
  return 0;
}

int
main (int argc, char *argv[])
{
  struct nbd_handle *nbd;
  struct walk w = { 0 };
  int64_t size;

  if (argc != 3) {
    fprintf (stderr, "usage: %s URI CONTEXT\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  w.context = argv[2];
  nbd = nbd_create ();
  if (nbd == NULL
      || nbd_add_meta_context (nbd, w.context) == -1
      || nbd_connect_uri (nbd, argv[1]) == -1)
    goto err;
  if (nbd_can_meta_context (nbd, w.context) != 1) {
    fprintf (stderr, "%s: the server did not select %s\n", argv[0],
             w.context);
    exit (EXIT_FAILURE);
  }
  size = nbd_get_size (nbd);
  if (size == -1)
    goto err;
  while (w.pos < (uint64_t) size) {
    uint64_t count = (uint64_t) size - w.pos;
    uint64_t before = w.pos;

    if (count > 0x80000000)
      count = 0x80000000;
    w.seen = false;
    if (nbd_block_status (nbd, count, w.pos,
                          (nbd_extent_callback) { .callback = extent_cb,
                                                  .user_data = &w },
                          0) == -1)
      goto err;
    if (!w.seen || w.pos == before) {
      fprintf (stderr, "%s: no progress at %" PRIu64 "\n", argv[0], before);
      exit (EXIT_FAILURE);
    }
    /* The last extent may pass the request end: clip to the export. */
    if (w.pos > (uint64_t) size) {
      w.len -= w.pos - size;
      w.pos = size;
    }
  }
  if (w.have)
    printf ("%" PRIu64 " %" PRIu64 " %" PRIu32 "\n", w.start, w.len,
            w.flags);
  nbd_shutdown (nbd, 0);
  nbd_close (nbd);
  return 0;

 err:
  fprintf (stderr, "%s: %s\n", argv[0], nbd_get_error ());
  exit (EXIT_FAILURE);
}
