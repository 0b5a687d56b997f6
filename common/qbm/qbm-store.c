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

/* The QBM sidecar as a bitmap store (bitmap-store.h), for the file
 * plugin: what the dirty filter sees of a raw image's bitmaps.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap-store.h"
#include "qbm.h"
#include "qbm-store.h"

struct qbm_store {
  struct bitmap_store ops;      /* first: the filter gets &ops */
  struct qbm *q;
};

static int
s_list (void *opaque, struct bitmap_store_info **list, size_t *n)
{
  struct qbm_store *s = opaque;
  struct qbm_bitmap_info *l;
  size_t i;

  if (qbm_list (s->q, &l, n) == -1)
    return -1;
  *list = calloc (*n + 1, sizeof **list);
  if (*list == NULL) {
    qbm_list_free (l, *n);
    errno = ENOMEM;
    return -1;
  }
  for (i = 0; i < *n; i++) {
    (*list)[i].name = l[i].name;
    l[i].name = NULL;
    (*list)[i].granularity = l[i].granularity;
    (*list)[i].recording = l[i].recording;
    /* Recoverable through the intent record: consistent. */
    (*list)[i].in_use = l[i].inconsistent;
    (*list)[i].recovered = l[i].in_use && !l[i].inconsistent;
  }
  qbm_list_free (l, *n);
  return 0;
}

static void
s_list_free (void *opaque, struct bitmap_store_info *list, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    free (list[i].name);
  free (list);
}

static struct hbitmap *
s_load (void *opaque, const char *name)
{
  struct qbm_store *s = opaque;
  return qbm_load (s->q, name);
}

static int
s_mark_in_use (void *opaque)
{
  struct qbm_store *s = opaque;

  /* No sidecar and nothing to keep: nothing to mark (no sidecar is made
   * for an image served without persistent bitmaps).
   */
  if (!qbm_exists (s->q))
    return 0;
  /* The plain way (intent=false, or start_intent failed): a record made
   * here would be driven by nobody, and recovery would trust it.
   */
  return qbm_mark_in_use_no_record (s->q);
}

static int
s_start_intent (void *opaque, uint64_t zone_size, struct intent **intent)
{
  struct qbm_store *s = opaque;
  return qbm_mark_in_use (s->q, zone_size, intent);
}

static int
s_store (void *opaque, const struct bitmap_store_entry *entries, size_t n,
         const char *const *keep, size_t nkeep)
{
  struct qbm_store *s = opaque;
  return qbm_store (s->q, entries, n, keep, nkeep);
}

static int
s_remove (void *opaque, const char *name)
{
  struct qbm_store *s = opaque;
  return qbm_remove (s->q, name);
}

static const char *
s_last_error (void *opaque)
{
  return qbm_last_error ();
}

const struct bitmap_store *
qbm_store_new (struct qbm *q)
{
  struct qbm_store *s = calloc (1, sizeof *s);

  if (s == NULL)
    return NULL;
  s->q = q;
  s->ops.name = "qbm";
  s->ops.opaque = s;
  s->ops.list = s_list;
  s->ops.list_free = s_list_free;
  s->ops.load = s_load;
  s->ops.mark_in_use = s_mark_in_use;
  s->ops.store = s_store;
  s->ops.remove = s_remove;
  s->ops.last_error = s_last_error;
  s->ops.start_intent = s_start_intent;
  return &s->ops;
}

void
qbm_store_free (const struct bitmap_store *store)
{
  free ((struct qbm_store *) store);
}
