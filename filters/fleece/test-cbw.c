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

/* Tests of the copy-before-write engine against a model.
 *
 * The disk is an array in memory.  Deterministic tests pin down each rule
 * (copy once, only needed granules, GONE reads fail, release on read, a
 * write waits for a view read of its bytes, a view read waits for a copy
 * of its bytes, the end of a session fails its reads); then a stress test
 * runs writers, view readers and a thread that begins and ends sessions
 * all at once on a small disk, so that writes and reads of the same
 * granules collide constantly, and checks every successful view read
 * against the disk as it was captured at the session's begin.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbw.h"
#include "hbitmap.h"

#define FAIL(...) do {                                                  \
    fprintf (stderr, "test-cbw: %s:%d: ", __FILE__, __LINE__);          \
    fprintf (stderr, __VA_ARGS__);                                      \
    fprintf (stderr, "\n");                                             \
    exit (EXIT_FAILURE);                                                \
  } while (0)
#define CHECK(cond) do { if (!(cond)) FAIL ("%s", #cond); } while (0)

static const char *dir;

/* The disk: bytes accessed with relaxed atomics (writers to the same bytes
 * may race, as NBD clients may), in small pieces with yields between, so
 * that a read and a write of the same bytes that were not ordered by the
 * engine would tear visibly.
 */
static uint64_t disk_size;
static uint8_t *disk;
static unsigned yield_every = 8; /* 512-byte pieces between yields */

static void
disk_copy_out (void *buf, uint64_t count, uint64_t offset)
{
  uint8_t *p = buf;
  uint64_t i;

  for (i = 0; i < count; i++) {
    p[i] = __atomic_load_n (&disk[offset + i], __ATOMIC_RELAXED);
    if (yield_every && i % (512 * yield_every) == 511)
      sched_yield ();
  }
}

static void
disk_copy_in (const void *buf, uint64_t count, uint64_t offset)
{
  const uint8_t *p = buf;
  uint64_t i;

  for (i = 0; i < count; i++) {
    __atomic_store_n (&disk[offset + i], p[i], __ATOMIC_RELAXED);
    if (yield_every && i % (512 * yield_every) == 511)
      sched_yield ();
  }
}

/* A read function that can be held at a gate to force interleavings. */
struct gate {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool armed;                   /* the next read stops here */
  bool arrived, released;
};
static struct gate g = { .lock = PTHREAD_MUTEX_INITIALIZER,
                         .cond = PTHREAD_COND_INITIALIZER };
static unsigned disk_reads;

static int
read_disk (void *opaque __attribute__ ((unused)), void *buf, uint32_t count, uint64_t offset,
           int *err)
{
  __atomic_add_fetch (&disk_reads, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock (&g.lock);
  if (g.armed) {
    g.armed = false;
    g.arrived = true;
    pthread_cond_broadcast (&g.cond);
    while (!g.released)
      pthread_cond_wait (&g.cond, &g.lock);
  }
  pthread_mutex_unlock (&g.lock);
  if (offset + count > disk_size) {
    *err = EINVAL;
    return -1;
  }
  disk_copy_out (buf, count, offset);
  return 0;
}

static void
gate_arm (void)
{
  pthread_mutex_lock (&g.lock);
  g.armed = true;
  g.arrived = g.released = false;
  pthread_mutex_unlock (&g.lock);
}

static void
gate_wait_arrived (void)
{
  pthread_mutex_lock (&g.lock);
  while (!g.arrived)
    pthread_cond_wait (&g.cond, &g.lock);
  pthread_mutex_unlock (&g.lock);
}

static void
gate_release (void)
{
  pthread_mutex_lock (&g.lock);
  g.released = true;
  pthread_cond_broadcast (&g.cond);
  pthread_mutex_unlock (&g.lock);
}

/* A guest write as the fleece filter issues it. */
static void
guest_write (struct cbw_disk *d, const void *buf, uint64_t count,
             uint64_t offset)
{
  cbw_write_enter (d);
  cbw_before_write (d, offset, count, read_disk, NULL);
  disk_copy_in (buf, count, offset);
  cbw_write_leave (d);
}

static void
fill (void *buf, uint64_t count, uint8_t v)
{
  memset (buf, v, count);
}

static struct cbw_session *
begin (struct cbw_disk *d, uint64_t gran, const struct hbitmap *dirty,
       bool release)
{
  struct cbw_session_opts o = {
    .dir = dir, .granularity = gran, .dirty = dirty,
    .release_on_read = release,
  };
  struct cbw_session *s;
  char *msg;

  cbw_quiesce (d);
  s = cbw_session_new (d, &o, &msg);
  cbw_resume (d);
  if (s == NULL)
    FAIL ("cbw_session_new: %s", msg);
  return s;
}

static void
end (struct cbw_disk *d, struct cbw_session *s)
{
  cbw_quiesce (d);
  cbw_session_detach (s);
  cbw_resume (d);
  cbw_session_unref (s);
}

static void
reset_disk (uint64_t size)
{
  uint64_t i;

  free (disk);
  disk_size = size;
  disk = malloc (size);
  CHECK (disk);
  for (i = 0; i < size; i++)
    disk[i] = (uint8_t) (i * 7 + i / 512);
}

static int
count_dirty (void *opaque, uint64_t offset, uint64_t len,
             enum cbw_where where, bool dirty)
{
  if (dirty)
    *(int *) opaque += len;
  return 0;
}

/* Each rule, one at a time. */
static void
test_rules (void)
{
  const uint64_t G = 4096;
  struct cbw_disk *d;
  struct cbw_session *s;
  struct cbw_session_stats st;
  struct hbitmap *hb;
  uint8_t *ref, buf[3 * 4096], w[4096];
  int err = 0;
  char *msg;

  reset_disk (64 * G + 512);  /* a short last granule */
  ref = malloc (disk_size);
  memcpy (ref, disk, disk_size);
  /* A disk whose size is not known yet takes no session; once set, the
   * size cannot change.
   */
  d = cbw_disk_new (0);
  CHECK (d);
  {
    struct cbw_session_opts o = { .dir = dir };
    cbw_quiesce (d);
    CHECK (cbw_session_new (d, &o, &msg) == NULL);
    cbw_resume (d);
    CHECK (msg && strstr (msg, "not known"));
    free (msg);
  }
  CHECK (cbw_disk_set_size (d, disk_size) == 0);
  CHECK (cbw_disk_set_size (d, disk_size) == 0);
  CHECK (cbw_disk_set_size (d, disk_size + 512) == -1);
  CHECK (cbw_disk_size (d) == disk_size);

  /* Quiesce nests in one thread. */
  cbw_quiesce (d);
  cbw_quiesce (d);
  cbw_resume (d);
  cbw_resume (d);

  /* No session: writes copy nothing. */
  fill (w, G, 0xaa);
  disk_reads = 0;
  guest_write (d, w, G, 0);
  CHECK (disk_reads == 0);
  memcpy (ref, disk, disk_size);

  /* A full session: the first write into a granule copies it, the
   * second does not; the view shows the old data, the delta view too.
   */
  s = begin (d, G, NULL, false);
  disk_reads = 0;
  fill (w, 100, 0xbb);
  guest_write (d, w, 100, G + 10);
  CHECK (disk_reads == 1);
  guest_write (d, w, 100, G + 200);
  CHECK (disk_reads == 1);
  CHECK (cbw_session_read (s, buf, 3 * G, 0, false, read_disk, NULL, &err)
         == 0);
  CHECK (memcmp (buf, ref, 3 * G) == 0);
  CHECK (cbw_session_read (s, buf, 3 * G, 0, true, read_disk, NULL, &err)
         == 0);
  CHECK (memcmp (buf, ref, 3 * G) == 0);
  /* The short last granule. */
  guest_write (d, w, 512, 64 * G);
  CHECK (cbw_session_read (s, buf, 512, 64 * G, false, read_disk, NULL, &err)
         == 0);
  CHECK (memcmp (buf, ref + 64 * G, 512) == 0);
  cbw_session_stats (s, &st);
  CHECK (st.copied == G + 512);
  CHECK (st.needed == disk_size - G - 512);
  CHECK (cbw_session_failed (s) == NULL);
  end (d, s);
  memcpy (ref, disk, disk_size);

  /* An incremental session: only the frozen-dirty granules are copied;
   * a clean granule written since reads as EIO (never as new data), in
   * the delta view too (never as zeroes, which a mirror would take for
   * the data).
   */
  hb = hbitmap_new (disk_size, G);
  CHECK (hb);
  hbitmap_set (hb, 2 * G, 2 * G);   /* granules 2 and 3 */
  s = begin (d, 0, hb, false);
  disk_reads = 0;
  fill (w, G, 0xcc);
  guest_write (d, w, G, 0);          /* clean: no copy */
  CHECK (disk_reads == 0);
  guest_write (d, w, G, 2 * G);      /* dirty: copied */
  CHECK (disk_reads == 1);
  CHECK (cbw_session_read (s, buf, G, 0, false, read_disk, NULL, &err)
         == -1 && err == EIO);
  CHECK (cbw_session_read (s, buf, 2 * G, 2 * G, false, read_disk, NULL,
                           &err) == 0);
  CHECK (memcmp (buf, ref + 2 * G, 2 * G) == 0);
  CHECK (cbw_session_read (s, buf, 3 * G, G, true, read_disk, NULL, &err)
         == -1 && err == EIO);
  CHECK (cbw_session_read (s, buf, 2 * G, 2 * G, true, read_disk, NULL,
                           &err) == 0);
  CHECK (memcmp (buf, ref + 2 * G, 2 * G) == 0);
  /* A clean granule not written since still reads (from the disk). */
  CHECK (cbw_session_read (s, buf, G, 10 * G, false, read_disk, NULL, &err)
         == 0);
  CHECK (memcmp (buf, ref + 10 * G, G) == 0);
  end (d, s);
  /* After the end the view fails. */
  s = begin (d, 0, hb, false);
  cbw_session_ref (s);
  end (d, s);
  CHECK (cbw_session_read (s, buf, G, 0, false, read_disk, NULL, &err) == -1
         && err == ESHUTDOWN);
  cbw_session_unref (s);
  memcpy (ref, disk, disk_size);

  /* Release on read: a granule read whole needs no copy any more; a
   * granule read in part still does; a copied granule read whole leaves
   * the store and later reads of it fail.
   */
  s = begin (d, G, NULL, true);
  CHECK (cbw_session_read (s, buf, G, 5 * G, false, read_disk, NULL, &err)
         == 0);
  CHECK (cbw_session_read (s, buf, 100, 6 * G, false, read_disk, NULL, &err)
         == 0);
  disk_reads = 0;
  fill (w, G, 0xdd);
  guest_write (d, w, G, 5 * G);
  CHECK (disk_reads == 0);
  guest_write (d, w, G, 6 * G);
  CHECK (disk_reads == 1);
  CHECK (cbw_session_read (s, buf, G, 6 * G, false, read_disk, NULL, &err)
         == 0);
  CHECK (memcmp (buf, ref + 6 * G, G) == 0);
  CHECK (cbw_session_read (s, buf, G, 6 * G, false, read_disk, NULL, &err)
         == -1 && err == EIO);
  CHECK (cbw_session_read (s, buf, G, 5 * G, false, read_disk, NULL, &err)
         == -1 && err == EIO);
  end (d, s);

  /* need_all: a full backup that freezes a bitmap needs every granule
   * (clean ones too: no EIO), and the mask still says what is dirty.
   */
  memcpy (ref, disk, disk_size);
  {
    struct cbw_session_opts o = { .dir = dir, .dirty = hb, .need_all = true,
                                  .release_on_read = true };
    int got_dirty = 0;

    cbw_quiesce (d);
    s = cbw_session_new (d, &o, &msg);
    cbw_resume (d);
    CHECK (s);
    fill (w, G, 0xee);
    guest_write (d, w, G, 0);         /* clean in the mask: still copied */
    CHECK (cbw_session_read (s, buf, G, 0, false, read_disk, NULL, &err)
           == 0);
    CHECK (memcmp (buf, ref, G) == 0);
    /* The delta view reads a clean granule as its data at the instant,
     * not as zeroes: nbdcopy reads whole requests that mix clean and
     * dirty granules, and writes them onto the mirror.
     */
    guest_write (d, w, G, G);         /* clean: copied, then overwritten */
    CHECK (cbw_session_read (s, buf, 3 * G, G, true, read_disk, NULL, &err)
           == 0);
    CHECK (memcmp (buf, ref + G, 3 * G) == 0);
    CHECK (cbw_session_map (s, 0, 4 * G, count_dirty, &got_dirty) == 0);
    CHECK (got_dirty == 2 * (int) G);
    end (d, s);
  }

  /* Several sessions at once, of different granularities, each its own
   * instant.
   */
  {
    struct cbw_session *s1, *s2;
    uint8_t *ref1 = malloc (disk_size), *ref2 = malloc (disk_size);

    memcpy (ref1, disk, disk_size);
    s1 = begin (d, 512, NULL, false);
    fill (w, G, 0x11);
    guest_write (d, w, 700, 3 * G + 100);
    memcpy (ref2, disk, disk_size);
    s2 = begin (d, 4 * G, NULL, false);
    fill (w, G, 0x22);
    guest_write (d, w, G, 3 * G);
    CHECK (cbw_session_read (s1, buf, 2 * G, 2 * G, false, read_disk, NULL,
                             &err) == 0);
    CHECK (memcmp (buf, ref1 + 2 * G, 2 * G) == 0);
    CHECK (cbw_session_read (s2, buf, 2 * G, 2 * G, false, read_disk, NULL,
                             &err) == 0);
    CHECK (memcmp (buf, ref2 + 2 * G, 2 * G) == 0);
    end (d, s1);
    end (d, s2);
    free (ref1);
    free (ref2);
  }

  /* A store that cannot be made: a clear error, no session. */
  {
    struct cbw_session_opts o = { .dir = "/nonexistent/dir" };
    cbw_quiesce (d);
    CHECK (cbw_session_new (d, &o, &msg) == NULL);
    cbw_resume (d);
    CHECK (msg && strstr (msg, "/nonexistent/dir"));
    free (msg);
  }
  CHECK (cbw_disk_sessions (d) == 0);

  hbitmap_free (hb);
  cbw_disk_free (d);
  free (ref);
}

/* Orderings forced with the gate. */
struct bg_write {
  struct cbw_disk *d;
  uint64_t offset, count;
  uint8_t v;
  bool done;
};

static void *
bg_write_thread (void *arg)
{
  struct bg_write *b = arg;
  uint8_t *buf = malloc (b->count);

  fill (buf, b->count, b->v);
  guest_write (b->d, buf, b->count, b->offset);
  free (buf);
  __atomic_store_n (&b->done, true, __ATOMIC_SEQ_CST);
  return NULL;
}

struct bg_read {
  struct cbw_session *s;
  uint64_t offset, count;
  uint8_t *buf;
  int r, err;
  bool done;
};

static void *
bg_read_thread (void *arg)
{
  struct bg_read *b = arg;

  b->r = cbw_session_read (b->s, b->buf, b->count, b->offset, false,
                           read_disk, NULL, &b->err);
  __atomic_store_n (&b->done, true, __ATOMIC_SEQ_CST);
  return NULL;
}

struct bg_begin {
  struct cbw_disk *d;
  struct bg_write *w;
  struct cbw_session *s;
  bool done, write_done_before;
};

static void *
bg_begin_thread (void *arg)
{
  struct bg_begin *b = arg;

  b->s = begin (b->d, 65536, NULL, false);
  /* The write was complete (its data on the disk) at the instant. */
  b->write_done_before =
    __atomic_load_n (&disk[b->w->offset], __ATOMIC_RELAXED) == b->w->v;
  __atomic_store_n (&b->done, true, __ATOMIC_SEQ_CST);
  return NULL;
}

static void
short_sleep (void)
{
  struct timespec ts = { 0, 200 * 1000 * 1000 };
  nanosleep (&ts, NULL);
}

static void
test_orderings (void)
{
  const uint64_t G = 65536;
  struct cbw_disk *d;
  struct cbw_session *s;
  uint8_t *ref;
  pthread_t t1, t2;

  yield_every = 0;
  reset_disk (16 * G);
  ref = malloc (disk_size);
  memcpy (ref, disk, disk_size);
  d = cbw_disk_new (disk_size);
  s = begin (d, G, NULL, false);

  /* A view read holds the disk; a write of the same bytes waits. */
  {
    struct bg_read r = { .s = s, .offset = G, .count = G };
    struct bg_write w = { .d = d, .offset = G + 512, .count = 512, .v = 1 };

    r.buf = malloc (G);
    gate_arm ();
    pthread_create (&t1, NULL, bg_read_thread, &r);
    gate_wait_arrived ();
    pthread_create (&t2, NULL, bg_write_thread, &w);
    short_sleep ();
    CHECK (!__atomic_load_n (&w.done, __ATOMIC_SEQ_CST));
    gate_release ();
    pthread_join (t1, NULL);
    pthread_join (t2, NULL);
    CHECK (r.r == 0);
    CHECK (memcmp (r.buf, ref + G, G) == 0);
    free (r.buf);
  }

  /* A copy in flight holds its granule; a view read of it waits, then
   * reads the store; a second write to the granule waits too.
   */
  {
    struct bg_write w1 = { .d = d, .offset = 4 * G, .count = 512, .v = 2 };
    struct bg_write w2 = { .d = d, .offset = 4 * G + 4096, .count = 512,
                           .v = 3 };
    struct bg_read r = { .s = s, .offset = 4 * G, .count = G };
    pthread_t t3;

    r.buf = malloc (G);
    gate_arm ();
    pthread_create (&t1, NULL, bg_write_thread, &w1);
    gate_wait_arrived ();
    pthread_create (&t2, NULL, bg_read_thread, &r);
    pthread_create (&t3, NULL, bg_write_thread, &w2);
    short_sleep ();
    CHECK (!__atomic_load_n (&r.done, __ATOMIC_SEQ_CST));
    CHECK (!__atomic_load_n (&w2.done, __ATOMIC_SEQ_CST));
    gate_release ();
    pthread_join (t1, NULL);
    pthread_join (t2, NULL);
    pthread_join (t3, NULL);
    CHECK (r.r == 0);
    CHECK (memcmp (r.buf, ref + 4 * G, G) == 0);
    free (r.buf);
  }

  /* A hold (base:allocation of the view from the disk) keeps writes of
   * its range waiting until it is released.
   */
  {
    struct bg_write w = { .d = d, .offset = 12 * G, .count = 512, .v = 5 };
    int err = 0;
    struct cbw_hold *hold = cbw_session_hold (s, 12 * G, G, &err);

    CHECK (hold);
    pthread_create (&t1, NULL, bg_write_thread, &w);
    short_sleep ();
    CHECK (!__atomic_load_n (&w.done, __ATOMIC_SEQ_CST));
    cbw_session_unhold (hold);
    pthread_join (t1, NULL);
    CHECK (w.done);
  }

  /* A session cannot begin in the middle of a write: the begin waits for
   * it (here, a write held while it copies for the open session).
   */
  {
    struct bg_write w = { .d = d, .offset = 8 * G, .count = 512, .v = 4 };
    struct bg_begin b = { .d = d, .w = &w };

    gate_arm ();
    pthread_create (&t1, NULL, bg_write_thread, &w);
    gate_wait_arrived ();
    pthread_create (&t2, NULL, bg_begin_thread, &b);
    short_sleep ();
    CHECK (!__atomic_load_n (&b.done, __ATOMIC_SEQ_CST));
    gate_release ();
    pthread_join (t2, NULL);
    pthread_join (t1, NULL);
    CHECK (b.write_done_before);
    end (d, b.s);
  }

  end (d, s);
  cbw_disk_free (d);
  free (ref);
  yield_every = 8;
}

/* The stress test. */
#define MAX_SESSIONS 3
struct live {
  struct cbw_session *s;
  uint8_t *ref;                 /* the disk at the begin */
  uint8_t *mask;                /* per byte: dirty in the frozen bitmap */
  bool release;
  unsigned refs;                /* readers using REF and MASK */
};
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static struct live live[MAX_SESSIONS];
static bool stop;
static struct cbw_disk *sd;
static uint64_t ok_reads, failed_reads, writes_done, sessions_done;

static uint64_t
rnd (unsigned *seed, uint64_t n)
{
  return n ? (uint64_t) rand_r (seed) % n : 0;
}

static void *
writer (void *arg)
{
  unsigned seed = (uintptr_t) arg;
  uint8_t *buf = malloc (3 * 65536);
  uint8_t v = (uintptr_t) arg * 16;

  while (!__atomic_load_n (&stop, __ATOMIC_RELAXED)) {
    uint64_t count = 1 + rnd (&seed, 3 * 4096);
    uint64_t offset = rnd (&seed, disk_size - count);

    if (rnd (&seed, 8) == 0)
      count = 1 + rnd (&seed, 3 * 65536 < disk_size - offset
                       ? 3 * 65536 : disk_size - offset);
    fill (buf, count, ++v);
    guest_write (sd, buf, count, offset);
    __atomic_add_fetch (&writes_done, 1, __ATOMIC_RELAXED);
  }
  free (buf);
  return NULL;
}

static void *
reader (void *arg)
{
  unsigned seed = (uintptr_t) arg;
  uint8_t *buf = malloc (3 * 65536);

  while (!__atomic_load_n (&stop, __ATOMIC_RELAXED)) {
    struct live *l;
    struct cbw_session *sess;
    unsigned i = rnd (&seed, MAX_SESSIONS);
    uint64_t count = 1 + rnd (&seed, 3 * 65536 - 1);
    uint64_t offset, j;
    bool delta = rnd (&seed, 4) == 0;
    int err = 0, r;

    pthread_mutex_lock (&live_lock);
    l = &live[i];
    if (l->s == NULL) {
      pthread_mutex_unlock (&live_lock);
      sched_yield ();
      continue;
    }
    l->refs++;
    sess = l->s;
    cbw_session_ref (sess);
    pthread_mutex_unlock (&live_lock);

    if (count > disk_size)
      count = disk_size;
    offset = rnd (&seed, disk_size - count + 1);
    r = cbw_session_read (sess, buf, count, offset, delta, read_disk, NULL,
                          &err);
    if (r == 0) {
      for (j = 0; j < count; j++) {
        /* The delta view too: clean granules read as the instant's data
         * or fail, never as zeroes.
         */
        uint8_t want = l->ref[offset + j];
        if (buf[j] != want)
          FAIL ("session read [%" PRIu64 ", +%" PRIu64 ") %s: byte %"
                PRIu64 " is 0x%02x, it was 0x%02x at the begin",
                offset, count, delta ? "(delta)" : "", offset + j, buf[j],
                want);
      }
      __atomic_add_fetch (&ok_reads, 1, __ATOMIC_RELAXED);
    }
    else {
      /* Allowed: a granule not needed (clean, or released by a read)
       * that was written since; never a needed one.  Without release, a
       * range wholly dirty must read.
       */
      bool all_dirty = true, ended;

      for (j = 0; j < count; j++)
        if (!l->mask[offset + j])
          all_dirty = false;
      pthread_mutex_lock (&live_lock);
      ended = l->s != sess;
      pthread_mutex_unlock (&live_lock);
      if (err == ESHUTDOWN && ended)
        all_dirty = false;      /* the session ended meanwhile */
      else if (err != EIO)
        FAIL ("session read failed with %s", strerror (err));
      if (!l->release && all_dirty)
        FAIL ("session read [%" PRIu64 ", +%" PRIu64 ") of needed "
              "granules failed", offset, count);
      __atomic_add_fetch (&failed_reads, 1, __ATOMIC_RELAXED);
    }

    cbw_session_unref (sess);
    pthread_mutex_lock (&live_lock);
    l->refs--;
    pthread_cond_broadcast (&live_cond);
    pthread_mutex_unlock (&live_lock);
  }
  free (buf);
  return NULL;
}

struct mask_fill {
  uint8_t *mask;
};

static int
mark_mask (void *opaque, uint64_t start, uint64_t len)
{
  memset (((struct mask_fill *) opaque)->mask + start, 1, len);
  return 0;
}

static void *
controller (void *arg __attribute__ ((unused)))
{
  unsigned seed = 12345;
  static const uint64_t grans[] = { 512, 4096, 65536 };

  while (!__atomic_load_n (&stop, __ATOMIC_RELAXED)) {
    unsigned i = rnd (&seed, MAX_SESSIONS);
    struct live *l = &live[i];

    if (l->s == NULL) {
      uint64_t gran = grans[rnd (&seed, 3)];
      struct hbitmap *hb = NULL;
      struct cbw_session_opts o = { .dir = dir, .granularity = gran,
                                    .release_on_read = rnd (&seed, 2) };
      uint8_t *ref = malloc (disk_size), *mask = malloc (disk_size);
      struct cbw_session *s;
      char *msg;

      if (rnd (&seed, 2)) {
        unsigned k, n = 1 + rnd (&seed, 20);
        struct mask_fill mf = { mask };

        hb = hbitmap_new (disk_size, gran);
        for (k = 0; k < n; k++) {
          uint64_t off = rnd (&seed, disk_size);
          hbitmap_set (hb, off, 1 + rnd (&seed, disk_size - off));
        }
        memset (mask, 0, disk_size);
        hbitmap_walk_dirty (hb, 0, disk_size, mark_mask, &mf);
        o.dirty = hb;
      }
      else
        memset (mask, 1, disk_size);

      /* The reference is the disk at the instant of the begin. */
      cbw_quiesce (sd);
      disk_copy_out (ref, disk_size, 0);
      s = cbw_session_new (sd, &o, &msg);
      cbw_resume (sd);
      if (s == NULL)
        FAIL ("cbw_session_new: %s", msg);
      hbitmap_free (hb);
      pthread_mutex_lock (&live_lock);
      l->ref = ref;
      l->mask = mask;
      l->release = o.release_on_read;
      l->s = s;
      pthread_mutex_unlock (&live_lock);
    }
    else {
      struct cbw_session *s;

      pthread_mutex_lock (&live_lock);
      s = l->s;
      l->s = NULL;
      pthread_mutex_unlock (&live_lock);
      if (cbw_session_failed (s))
        FAIL ("session broke: %s", cbw_session_failed (s));
      cbw_quiesce (sd);
      cbw_session_detach (s);
      cbw_resume (sd);
      cbw_session_unref (s);
      pthread_mutex_lock (&live_lock);
      while (l->refs)
        pthread_cond_wait (&live_cond, &live_lock);
      free (l->ref);
      free (l->mask);
      l->ref = l->mask = NULL;
      pthread_mutex_unlock (&live_lock);
      sessions_done++;
    }
    {
      struct timespec ts = { 0, (5 + rnd (&seed, 40)) * 1000 * 1000 };
      nanosleep (&ts, NULL);
    }
  }
  return NULL;
}

static void
test_stress (unsigned seconds)
{
  pthread_t w[4], r[3], c;
  unsigned i;

  reset_disk (2 * 1024 * 1024 + 3 * 512);
  sd = cbw_disk_new (disk_size);
  for (i = 0; i < 4; i++)
    pthread_create (&w[i], NULL, writer, (void *) (uintptr_t) (i + 1));
  for (i = 0; i < 3; i++)
    pthread_create (&r[i], NULL, reader, (void *) (uintptr_t) (i + 101));
  pthread_create (&c, NULL, controller, NULL);
  sleep (seconds);
  __atomic_store_n (&stop, true, __ATOMIC_RELAXED);
  for (i = 0; i < 4; i++)
    pthread_join (w[i], NULL);
  for (i = 0; i < 3; i++)
    pthread_join (r[i], NULL);
  pthread_join (c, NULL);
  for (i = 0; i < MAX_SESSIONS; i++)
    if (live[i].s) {
      end (sd, live[i].s);
      free (live[i].ref);
      free (live[i].mask);
    }
  cbw_disk_free (sd);
  printf ("test-cbw: stress: %" PRIu64 " writes, %" PRIu64 " view reads "
          "checked, %" PRIu64 " refused (granules no longer needed), %"
          PRIu64 " sessions\n", writes_done, ok_reads, failed_reads,
          sessions_done);
  CHECK (ok_reads > 100 && writes_done > 100 && sessions_done > 5);
}

int
main (void)
{
  const char *t = getenv ("TMPDIR");
  const char *s = getenv ("CBW_STRESS_SECONDS");

  dir = t && *t ? t : "/tmp";
  /* CBW_STRESS_ONLY=1 runs the stress test alone (to check that it
   * finds a broken engine by itself).
   */
  if (getenv ("CBW_STRESS_ONLY") == NULL) {
    test_rules ();
    test_orderings ();
  }
  test_stress (s ? atoi (s) : 5);
  free (disk);
  return 0;
}
