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

/* The server's extent list (server/extents.c) against a model of what
 * nbdkit_add_extent documents: extents in order from the requested
 * offset, the part before what the list still needs ignored, a gap an
 * error, clipped to the range's end, merged with the last one of the
 * same type, dropped once the list holds its maximum.  Random calls,
 * many of them the common case (the next extent, of another type).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

#include "internal.h"
#include "unit-test.h"

#undef main

#define MODEL_MAX 64

struct model {
  uint64_t start, end, next;
  size_t max, n;
  struct nbdcbt_extent v[MODEL_MAX];
};

static int
model_add (struct model *m, uint64_t offset, uint64_t length, uint32_t type)
{
  uint64_t end;

  if (length == 0)
    return 0;
  if (offset + length < offset) {
    errno = ERANGE;
    return -1;
  }
  end = offset + length;
  if (end <= m->next)
    return 0;
  if (offset < m->next)
    offset = m->next;
  if (offset > m->next) {
    errno = ERANGE;
    return -1;
  }
  if (offset >= m->end)
    return 0;
  if (end > m->end)
    end = m->end;
  if (m->n > 0 && m->v[m->n - 1].type == type) {
    m->v[m->n - 1].length += end - offset;
    m->next = end;
    return 0;
  }
  if (m->n >= m->max)
    return 0;
  m->v[m->n++] = (struct nbdcbt_extent){ .offset = offset,
                                         .length = end - offset,
                                         .type = type };
  m->next = end;
  return 0;
}

static uint64_t rnd_state = 42;

static uint64_t
rnd (void)
{
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state;
}

/* An offset near what the list needs next: mostly exactly there. */
static uint64_t
pick_offset (const struct model *m)
{
  switch (rnd () % 8) {
  case 0:
    return m->next - (m->next > m->start ? rnd () % 3 : 0);
  case 1:
    return m->next + 1 + rnd () % 3;
  case 2:
    return rnd ();
  default:
    return m->next;
  }
}

static uint64_t
pick_length (const struct model *m)
{
  switch (rnd () % 8) {
  case 0:
    return 0;
  case 1:
    return UINT64_MAX - rnd () % 3;
  case 2:
    return m->end > m->next ? m->end - m->next + rnd () % 3 : 1;
  default:
    return 1 + rnd () % 4096;
  }
}

static bool
same (const struct nbdcbt_extents *e, const struct model *m)
{
  size_t i;

  if (nbdcbt_extents_count (e) != m->n
      || nbdcbt_extents_full (e) != (m->next >= m->end || m->n >= m->max))
    return false;
  for (i = 0; i < m->n; ++i) {
    struct nbdcbt_extent x = nbdcbt_get_extent (e, i);

    if (x.offset != m->v[i].offset || x.length != m->v[i].length
        || x.type != m->v[i].type)
      return false;
  }
  return true;
}

int
main (void)
{
  struct nbdcbt_extents *e = NULL;
  struct model m;
  unsigned round, call, bad = 0;
  int saved_stderr = dup (2), null = open ("/dev/null", O_WRONLY);
  FILE *out = saved_stderr >= 0 ? fdopen (saved_stderr, "w") : NULL;

  /* The calls with a gap or an overflow log an error each: not here. */
  if (out == NULL || null == -1 || dup2 (null, 2) == -1) {
    perror ("test-extents: /dev/null");
    return EXIT_FAILURE;
  }

  for (round = 0; round < 2000 && bad < 5; ++round) {
    m = (struct model){ .start = rnd () % 100000 };
    m.end = m.start + 1 + rnd () % 200000;
    m.next = m.start;
    m.max = 1 + rnd () % MODEL_MAX;
    /* Half the rounds reuse the list, as a worker does between requests. */
    if (e == NULL || round % 2 == 0) {
      nbdcbt_extents_free (e);
      e = extents_new_limited (m.start, m.end, m.max);
      CHECK (e != NULL);
      if (e == NULL)
        return EXIT_FAILURE;
    }
    else
      CHECK (extents_reuse (e, m.start, m.end, m.max) == 0);

    for (call = 0; call < 200 && bad < 5; ++call) {
      uint64_t offset = pick_offset (&m), length = pick_length (&m);
      uint32_t type = rnd () % 3;
      int err_got, err_want, got, want;

      errno = 0;
      got = nbdcbt_add_extent (e, offset, length, type);
      err_got = errno;
      errno = 0;
      want = model_add (&m, offset, length, type);
      err_want = errno;
      if (got != want || (want == -1 && err_got != err_want) || !same (e, &m)) {
        fprintf (out,
                 "round %u call %u: add (%" PRIu64 ", %" PRIu64 ", %" PRIu32
                 ") = %d, model %d\n",
                 round, call, offset, length, type, got, want);
        bad++;
      }
    }
  }
  fflush (out);
  dup2 (saved_stderr, 2);
  CHECK (bad == 0);
  nbdcbt_extents_free (e);
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
