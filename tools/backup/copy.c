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

/* nbdcbt-backup: the copy engine.
 *
 * The DATA extents are cut into requests of at most --request-size bytes
 * (cut at multiples of the request size, so that writes into the target
 * are large and cluster aligned).  One thread per NBD connection keeps up
 * to --requests reads in flight with nbd_aio_pread; as each completes its
 * buffer is checksummed and written to the sink, and the slot is reused.
 * The checksums are taken while the data is in the CPU cache anyway and
 * spread over the connection threads, so the backup file never has to
 * be read again.  Several connections are used only when the server
 * advertises multi-conn.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "huge-pages.h"

/* The read requests are the records of what was written for them
 * (kind SUM_NONE until stored): with the zero extents added this array
 * becomes the checksum list, without a copy.
 */
struct engine {
  const char *uri;
  struct nbd_handle *first;
  int64_t size;                 /* of the export on FIRST */
  sum_list reqs;
  struct sink *sink;
  bool skip_zero_data;
  const struct sum_params *sum_params; /* NULL: no checksums */
  _Atomic size_t next;
  atomic_bool failed;
  _Atomic uint64_t done_bytes;
  _Atomic uint64_t data_bytes;
  _Atomic uint64_t zero_bytes;
  _Atomic int finished_threads;
};

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_DONE };

struct slot {
  enum slot_state state;
  int err;
  size_t idx;                   /* in e->reqs */
  char *buf;
};

struct worker {
  struct engine *e;
  int index;
  pthread_t thread;
};

static int
read_done (void *opaque, int *err)
{
  struct slot *s = opaque;

  s->err = *err;
  s->state = SLOT_DONE;
  return 1;                     /* retire the command */
}

/* Write one completed read to the sink. */
static int
store (struct engine *e, struct summer *summer, struct slot *s)
{
  struct sum_record *r = &e->reqs.ptr[s->idx];

  if (s->err) {
    error ("read at offset %" PRIu64 " (%" PRIu64 " bytes) failed: %s",
           r->offset, r->length, strerror (s->err));
    return -1;
  }
  if (is_zero (s->buf, r->length)) {
    if (!e->skip_zero_data) {
      if (e->sink->ops->zero (e->sink, r->length, r->offset) == -1)
        return -1;
      e->zero_bytes += r->length;
      r->kind = SUM_ZERO;
    }
  }
  else {
    if (summer)
      summer_sum (summer, r->offset, s->buf, r->length, r->digest);
    if (e->sink->ops->pwrite (e->sink, s->buf, r->length, r->offset) == -1)
      return -1;
    e->data_bytes += r->length;
    r->kind = SUM_DATA;
  }
  e->done_bytes += r->length;
  return 0;
}

static void *
worker_run (void *opaque)
{
  struct worker *w = opaque;
  struct engine *e = w->e;
  struct nbd_handle *h = NULL;
  struct slot *slots = NULL;
  struct summer *summer = NULL;
  int nslots = opts.requests, i, in_flight = 0;
  char *bufs = NULL;
  size_t bufsize = 0;

  if (e->sum_params && (summer = summer_new (e->sum_params)) == NULL)
    goto fail;

  if (w->index == 0)
    h = e->first;
  else {
    char what[32];

    snprintf (what, sizeof what, "connection %d", w->index + 1);
    h = nbd_create ();
    if (h == NULL) {
      error ("%s: %s", what, nbd_get_error ());
      goto fail;
    }
    if (connect_uri_tls (h, e->uri, what) == -1)
      goto fail;
    /* The same export, not one that changed since the first connection. */
    if (nbd_get_size (h) != e->size) {
      error ("connection %d: the export's size changed during the backup",
             w->index + 1);
      goto fail;
    }
  }

  /* A buffer is used only after its read succeeded (which libnbd
   * reports only when the server sent every byte): clearing it before
   * each read, libnbd's default, costs 3% of the CPU for nothing.
   */
  if (nbd_set_pread_initialize (h, false) == -1) {
    error ("%s", nbd_get_error ());
    goto fail;
  }

  slots = calloc (nslots, sizeof *slots);
  if (slots == NULL) {
    error_errno ("calloc");
    goto fail;
  }
  /* One mapping for every buffer, in huge pages where the kernel has
   * them: each 4 KiB page touched for the first time is a page fault,
   * and a backup's buffers are touched a few times only when it is a
   * small one (16 MiB of them for 41 MiB of changes: 4,096 faults).
   */
  bufs = huge_pages_alloc ((size_t) nslots * opts.request_size, &bufsize);
  if (bufs == NULL) {
    error ("out of memory for %d buffers of %" PRIu32 " bytes",
           nslots, opts.request_size);
    goto fail;
  }
  for (i = 0; i < nslots; ++i)
    slots[i].buf = bufs + (size_t) i * opts.request_size;

  for (;;) {
    /* Fill the free slots. */
    for (i = 0; i < nslots && !e->failed; ++i) {
      size_t idx;

      if (slots[i].state != SLOT_FREE)
        continue;
      idx = atomic_fetch_add (&e->next, 1);
      if (idx >= e->reqs.len)
        break;
      slots[i].idx = idx;
      slots[i].state = SLOT_BUSY;
      slots[i].err = 0;
      if (nbd_aio_pread (h, slots[i].buf, e->reqs.ptr[idx].length,
                         e->reqs.ptr[idx].offset,
                         (nbd_completion_callback) {
                           .callback = read_done, .user_data = &slots[i] },
                         0) == -1) {
        error ("read at offset %" PRIu64 ": %s", e->reqs.ptr[idx].offset,
               nbd_get_error ());
        slots[i].state = SLOT_FREE;
        goto fail;
      }
      in_flight++;
    }
    if (in_flight == 0 || e->failed)
      break;

    if (nbd_poll (h, -1) == -1) {
      error ("connection %d to the server failed during the copy: %s",
             w->index + 1, nbd_get_error ());
      goto fail;
    }

    for (i = 0; i < nslots; ++i) {
      if (slots[i].state != SLOT_DONE)
        continue;
      in_flight--;
      if (store (e, summer, &slots[i]) == -1)
        goto fail;
      slots[i].state = SLOT_FREE;
    }
  }
  goto out;

 fail:
  e->failed = true;
 out:
  /* Never free a buffer the library may still read into. */
  if (h && in_flight > 0) {
    while (nbd_aio_in_flight (h) > 0 && nbd_poll (h, -1) != -1)
      ;
  }
  if (h && h != e->first)
    nbd_close (h);
  huge_pages_free (bufs, bufsize);
  free (slots);
  summer_free (summer);
  e->finished_threads++;
  return NULL;
}

/* Append [START, END) of KIND to OUT, leaving out what OUT already
 * covers (the list only grows forwards).
 */
static int
append_after (extent_list *out, uint64_t start, uint64_t end,
              enum extent_kind kind)
{
  struct extent *last = out->len ? &out->ptr[out->len - 1] : NULL;

  if (last && start < last->offset + last->length)
    start = last->offset + last->length;
  if (start >= end)
    return 0;
  if (last && last->kind == kind && last->offset + last->length == start) {
    last->length += end - start;
    return 0;
  }
  return extent_list_append (out, (struct extent) { start, end - start,
                                                    kind });
}

/* Cluster-aligned work list: a block of ALIGN bytes lying in one extent
 * keeps its kind; a block that several extents share is read as DATA
 * (reading clean or zero bytes from the source gives what the target
 * would have had there anyway).  The target then never has to merge a
 * partial cluster with its backing file, and zero extents are whole
 * clusters.  LIST is sorted and covers the disk without gaps.
 */
static int
align_extents (const extent_list *list, uint64_t align, extent_list *out)
{
  uint64_t size;
  size_t i;

  if (list->len == 0)
    return 0;
  size = list->ptr[list->len - 1].offset + list->ptr[list->len - 1].length;
  for (i = 0; i < list->len; ++i) {
    const struct extent *x = &list->ptr[i];
    uint64_t a = x->offset, b = x->offset + x->length;
    uint64_t inner_start = (a + align - 1) & ~(align - 1);
    uint64_t inner_end = b == size ? b : b & ~(align - 1);

    if (inner_start < inner_end &&
        append_after (out, inner_start, inner_end, x->kind) == -1)
      return -1;
    if (b != size && (b & (align - 1)) != 0) {
      uint64_t c = b & ~(align - 1), d = c + align;
      if (d > size)
        d = size;
      if (append_after (out, c, d, EXTENT_DATA) == -1)
        return -1;
    }
  }
  return 0;
}

static int
compare_sums (const void *a, const void *b)
{
  const struct sum_record *x = a, *y = b;

  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The checksum list: the written requests and the zero extents.  Takes
 * the request array from E.
 */
static int
collect_sums (struct engine *e, const extent_list *list, sum_list *sums)
{
  size_t i, n = 0;

  for (i = 0; i < e->reqs.len; ++i)
    if (e->reqs.ptr[i].kind != SUM_NONE)
      e->reqs.ptr[n++] = e->reqs.ptr[i];
  e->reqs.len = n;
  *sums = e->reqs;
  e->reqs = (sum_list) empty_vector;

  for (i = 0; !e->skip_zero_data && i < list->len; ++i) {
    const struct extent *x = &list->ptr[i];
    if (x->kind == EXTENT_ZERO &&
        sum_list_append (sums, (struct sum_record) {
            .offset = x->offset, .length = x->length,
            .kind = SUM_ZERO }) == -1)
      return -1;
  }
  if (sums->len > 1)
    qsort (sums->ptr, sums->len, sizeof *sums->ptr, compare_sums);
  return 0;
}

int
copy_extents (const char *uri, struct nbd_handle *first,
              const extent_list *in_list, struct sink *sink,
              bool skip_zero_data, uint32_t align,
              struct copy_stats *stats)
{
  struct engine e = {
    .uri = uri, .first = first, .sink = sink,
    .skip_zero_data = skip_zero_data,
    .sum_params = stats->sums ? stats->sum_params : NULL,
  };
  struct worker *workers = NULL;
  extent_list aligned = empty_vector;
  const extent_list *list = in_list;
  uint64_t total = 0, zero_total = 0, rs = opts.request_size;
  size_t i;
  int n, started = 0, ret = -1;

  if (align > 1) {
    if (align_extents (in_list, align, &aligned) == -1) {
      error_errno ("malloc");
      goto out;
    }
    list = &aligned;
  }

  /* Requests, cut at multiples of the request size. */
  for (i = 0; i < list->len; ++i) {
    const struct extent *x = &list->ptr[i];
    uint64_t pos = x->offset, end = x->offset + x->length;

    if (x->kind == EXTENT_ZERO && !skip_zero_data)
      zero_total += x->length;
    if (x->kind != EXTENT_DATA)
      continue;
    while (pos < end) {
      uint64_t next = (pos / rs + 1) * rs;
      if (next > end)
        next = end;
      if (sum_list_append (&e.reqs,
                           (struct sum_record) { .offset = pos,
                                                 .length = next - pos,
                                                 .kind = SUM_NONE })
          == -1) {
        error_errno ("malloc");
        goto out;
      }
      total += next - pos;
      pos = next;
    }
  }

  progress_start ("copying", total + zero_total);

  /* Zero extents are metadata updates in the target: do them first. */
  if (!skip_zero_data) {
    for (i = 0; i < list->len; ++i) {
      const struct extent *x = &list->ptr[i];
      if (x->kind != EXTENT_ZERO)
        continue;
      if (sink->ops->zero (sink, x->length, x->offset) == -1)
        goto out;
      e.zero_bytes += x->length;
      e.done_bytes += x->length;
    }
  }

  if (e.reqs.len > 0) {
    e.size = nbd_get_size (first);
    if (e.size == -1) {
      error ("%s", nbd_get_error ());
      goto out;
    }
    n = nbd_can_multi_conn (first) == 1 ? opts.connections : 1;
    /* Extra connections only pay off when there is work for them. */
    if ((size_t) n > (e.reqs.len + opts.requests - 1) / opts.requests)
      n = (e.reqs.len + opts.requests - 1) / opts.requests;
    if (n < 1)
      n = 1;
    workers = calloc (n, sizeof *workers);
    if (workers == NULL) {
      error_errno ("calloc");
      goto out;
    }
    for (started = 0; started < n; ++started) {
      int err;

      workers[started].e = &e;
      workers[started].index = started;
      err = pthread_create (&workers[started].thread, NULL, worker_run,
                            &workers[started]);
      if (err) {
        errno = err;
        error_errno ("pthread_create");
        e.failed = true;
        break;
      }
    }
    while (opts.progress && e.finished_threads < started) {
      progress_update (e.done_bytes);
      usleep (100000);
    }
    for (i = 0; i < (size_t) started; ++i)
      pthread_join (workers[i].thread, NULL);
    if (e.failed)
      goto out;
  }

  progress_update (e.done_bytes);
  progress_end ();
  stats->data_bytes = e.data_bytes;
  stats->zero_bytes = e.zero_bytes;
  if (stats->sums && collect_sums (&e, list, stats->sums) == -1) {
    error_errno ("malloc");
    goto out;
  }
  ret = 0;

 out:
  if (ret == -1)
    progress_end ();
  free (workers);
  free (e.reqs.ptr);
  free (aligned.ptr);
  return ret;
}
