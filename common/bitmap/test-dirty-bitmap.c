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

/* Unit test of the bitmap model (dirty-bitmap.c): QEMU's rules and
 * messages, successors, merge, resize, references, concurrent marking
 * checked mark by mark, and the cost of dirty_bitmaps_mark.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dirty-bitmap.h"
#include "hbitmap.h"
#include "unit-test.h"


/* Expect failure with errno ERR and a message containing WANT. */
#define CHECK_ERR(call, err, want)                                      \
  do {                                                                  \
    char *_msg = NULL;                                                  \
    char **errp = &_msg;                                                \
    int _r = (call);                                                    \
    if (_r != -1 || errno != (err) || _msg == NULL                      \
        || strstr (_msg, (want)) == NULL) {                             \
      fprintf (stderr, "%s:%d: FAIL: %s: r=%d errno=%d msg=%s\n",       \
               __FILE__, __LINE__, #call, _r, errno,                    \
               _msg ? _msg : "(null)");                                 \
      failures++;                                                       \
    }                                                                   \
    free (_msg);                                                        \
  } while (0)

#define CHECK_OK(call)                                                  \
  do {                                                                  \
    char *_msg = NULL;                                                  \
    char **errp = &_msg;                                                \
    if ((call) == -1) {                                                 \
      fprintf (stderr, "%s:%d: FAIL: %s: %s\n", __FILE__, __LINE__,     \
               #call, _msg ? _msg : "(null)");                          \
      failures++;                                                       \
    }                                                                   \
    free (_msg);                                                        \
  } while (0)

static uint64_t
count_of (struct dirty_bitmaps *set, const char *name)
{
  struct dirty_bitmap_info info;
  uint64_t c;

  if (dirty_bitmaps_query (set, name, &info, NULL) == -1)
    return UINT64_MAX;
  c = info.count;
  free (info.name);
  return c;
}

static bool
dirty_at (struct dirty_bitmaps *set, const char *name, uint64_t offset)
{
  struct dirty_bitmap *bm = dirty_bitmaps_get (set, name, NULL);
  bool r;

  assert (bm);
  r = hbitmap_get (dirty_bitmap_data (bm), offset);
  dirty_bitmap_put (bm);
  return r;
}

static void
test_limits (void)
{
  struct dirty_bitmaps *set = dirty_bitmaps_new (1 << 20);
  struct dirty_bitmap_opts o = { 0 };
  char name[1025];

  CHECK_ERR (dirty_bitmaps_add (set, "", NULL, NULL, errp), EINVAL,
             "Bitmap name cannot be empty");
  CHECK_ERR (dirty_bitmaps_add (set, NULL, NULL, NULL, errp), EINVAL,
             "cannot be empty");
  memset (name, 'a', 1024);
  name[1024] = '\0';
  CHECK_ERR (dirty_bitmaps_add (set, name, NULL, NULL, errp), EINVAL,
             "Name length exceeds maximum (1023 characters)");
  name[1023] = '\0';
  CHECK_OK (dirty_bitmaps_add (set, name, NULL, NULL, errp));
  o.granularity = 256;
  CHECK_ERR (dirty_bitmaps_add (set, "g", &o, NULL, errp), EINVAL,
             "power of 2 and at least 512");
  o.granularity = 4097;
  CHECK_ERR (dirty_bitmaps_add (set, "g", &o, NULL, errp), EINVAL,
             "power of 2");
  o.granularity = UINT64_C(1) << 32;
  CHECK_ERR (dirty_bitmaps_add (set, "g", &o, NULL, errp), EINVAL,
             "Granularity exceeds maximum");
  o.granularity = UINT64_C(1) << 31;
  CHECK_OK (dirty_bitmaps_add (set, "g", &o, NULL, errp));
  CHECK_ERR (dirty_bitmaps_add (set, "g", NULL, NULL, errp), EEXIST,
             "Bitmap already exists: g");
  CHECK_ERR (dirty_bitmaps_remove (set, "nope", NULL, errp), ENOENT,
             "Dirty bitmap 'nope' not found");
  CHECK_ERR (dirty_bitmaps_clear (set, "nope", errp), ENOENT, "not found");

  /* Default granularity. */
  {
    struct dirty_bitmap_info info;
    CHECK_OK (dirty_bitmaps_query (set, name, &info, errp));
    CHECK (info.granularity == 65536);
    CHECK (info.recording && !info.busy && !info.persistent);
    free (info.name);
  }
  dirty_bitmaps_free (set);
}

static void
test_mark_enable (void)
{
  struct dirty_bitmaps *set = dirty_bitmaps_new (1000000);
  struct dirty_bitmap_opts o = { .granularity = 4096 };
  struct dirty_bitmap_opts d = { .granularity = 512, .disabled = true };

  CHECK_OK (dirty_bitmaps_add (set, "a", &o, NULL, errp));
  CHECK_OK (dirty_bitmaps_add (set, "off", &d, NULL, errp));
  CHECK (dirty_bitmaps_recording_count (set) == 1);
  dirty_bitmaps_mark (set, 4095, 2);       /* two partial granules */
  CHECK (count_of (set, "a") == 8192);
  CHECK (count_of (set, "off") == 0);
  dirty_bitmaps_mark (set, 999999, 1);     /* the short last granule */
  CHECK (dirty_at (set, "a", 999999));
  CHECK_OK (dirty_bitmaps_enable (set, "off", errp));
  CHECK (dirty_bitmaps_recording_count (set) == 2);
  dirty_bitmaps_mark (set, 0, 1);
  CHECK (count_of (set, "off") == 512);
  CHECK_OK (dirty_bitmaps_disable (set, "a", errp));
  dirty_bitmaps_mark (set, 500000, 1);
  CHECK (!dirty_at (set, "a", 500000));
  CHECK (dirty_at (set, "off", 500000));
  CHECK_OK (dirty_bitmaps_clear (set, "off", errp));
  CHECK (count_of (set, "off") == 0);
  dirty_bitmaps_mark (set, 0, 0);          /* nothing */
  CHECK (count_of (set, "off") == 0);
  dirty_bitmaps_free (set);
}

static void
test_successor (void)
{
  struct dirty_bitmaps *set = dirty_bitmaps_new (1 << 20);
  struct dirty_bitmap_opts o = { .granularity = 4096, .persistent = true };
  struct dirty_bitmap_info info;
  struct dirty_bitmap *frozen;

  CHECK_OK (dirty_bitmaps_add (set, "b", &o, NULL, errp));
  dirty_bitmaps_mark (set, 0, 4096);

  /* create: parent frozen (busy, not recording), successor records. */
  CHECK_OK (dirty_bitmaps_create_successor (set, "b", errp));
  CHECK_ERR (dirty_bitmaps_create_successor (set, "b", errp), EBUSY,
             "currently in use");
  CHECK_ERR (dirty_bitmaps_clear (set, "b", errp), EBUSY,
             "Bitmap 'b' is currently in use by another operation");
  CHECK_ERR (dirty_bitmaps_remove (set, "b", NULL, errp), EBUSY, "in use");
  CHECK_ERR (dirty_bitmaps_enable (set, "b", errp), EBUSY, "in use");
  CHECK_OK (dirty_bitmaps_query (set, "b", &info, errp));
  CHECK (info.busy && info.has_successor && info.recording);
  free (info.name);
  frozen = dirty_bitmaps_get (set, "b", NULL);
  dirty_bitmaps_mark (set, 8192, 1);
  CHECK (!dirty_at (set, "b", 8192));   /* the parent is frozen */

  /* reclaim: the successor's bits return, parent records again. */
  CHECK_OK (dirty_bitmaps_reclaim (set, "b", errp));
  CHECK (dirty_at (set, "b", 0) && dirty_at (set, "b", 8192));
  CHECK_OK (dirty_bitmaps_query (set, "b", &info, errp));
  CHECK (!info.busy && !info.has_successor && info.recording);
  free (info.name);
  CHECK_ERR (dirty_bitmaps_reclaim (set, "b", errp), EINVAL,
             "no successor");
  dirty_bitmap_put (frozen);

  /* abdicate: the successor takes the name and only holds new writes;
   * a reference to the frozen parent keeps its data alive.
   */
  CHECK_OK (dirty_bitmaps_create_successor (set, "b", errp));
  frozen = dirty_bitmaps_get (set, "b", NULL);
  dirty_bitmaps_mark (set, 65536, 1);
  CHECK_OK (dirty_bitmaps_abdicate (set, "b", errp));
  CHECK (!dirty_at (set, "b", 0));
  CHECK (dirty_at (set, "b", 65536));
  CHECK (hbitmap_get (dirty_bitmap_data (frozen), 0));
  CHECK (!hbitmap_get (dirty_bitmap_data (frozen), 65536));
  dirty_bitmap_put (frozen);
  CHECK_OK (dirty_bitmaps_query (set, "b", &info, errp));
  CHECK (info.persistent && info.recording && !info.busy
         && info.granularity == 4096);
  free (info.name);
  dirty_bitmaps_mark (set, 131072, 1);
  CHECK (dirty_at (set, "b", 131072));

  /* A disabled bitmap's successor does not record either. */
  CHECK_OK (dirty_bitmaps_disable (set, "b", errp));
  CHECK_OK (dirty_bitmaps_create_successor (set, "b", errp));
  CHECK (dirty_bitmaps_recording_count (set) == 0);
  CHECK_OK (dirty_bitmaps_reclaim (set, "b", errp));
  CHECK_OK (dirty_bitmaps_query (set, "b", &info, errp));
  CHECK (!info.recording);
  free (info.name);
  dirty_bitmaps_free (set);
}

static void
test_merge_inconsistent (void)
{
  struct dirty_bitmaps *set = dirty_bitmaps_new (3 << 20);
  struct dirty_bitmap_opts fine = { .granularity = 512, .disabled = true };
  struct dirty_bitmap_opts coarse = { .granularity = 1 << 20,
                                      .disabled = true };
  struct dirty_bitmap_opts bad = { .inconsistent = true, .persistent = true };
  struct hbitmap *data;
  const char *srcs[] = { "fine" };
  const char *bad_srcs[] = { "fine", "nope" };
  bool persistent = false;

  data = hbitmap_new (3 << 20, 512);
  hbitmap_set (data, 1000, 1);
  CHECK_OK (dirty_bitmaps_add (set, "fine", &fine, data, errp));
  CHECK_OK (dirty_bitmaps_add (set, "coarse", &coarse, NULL, errp));
  CHECK_OK (dirty_bitmaps_merge (set, "coarse", srcs, 1, errp));
  CHECK (dirty_at (set, "coarse", 0) && dirty_at (set, "coarse", 1048575));
  CHECK (!dirty_at (set, "coarse", 1 << 20));
  CHECK_ERR (dirty_bitmaps_merge (set, "fine", bad_srcs, 2, errp), ENOENT,
             "Dirty bitmap 'nope' not found");

  /* Data of the wrong size is refused and not taken. */
  data = hbitmap_new (1 << 20, 512);
  CHECK_ERR (dirty_bitmaps_add (set, "x", NULL, data, errp), EINVAL,
             "has size");
  hbitmap_free (data);

  CHECK_OK (dirty_bitmaps_add (set, "bad", &bad, NULL, errp));
  CHECK (!dirty_bitmaps_exists (set, "bad"));
  CHECK (dirty_bitmaps_get (set, "bad", NULL) == NULL);
  CHECK_ERR (dirty_bitmaps_clear (set, "bad", errp), EINVAL,
             "Bitmap 'bad' is inconsistent");
  CHECK_ERR (dirty_bitmaps_enable (set, "bad", errp), EINVAL, "inconsistent");
  CHECK_ERR (dirty_bitmaps_merge (set, "bad", srcs, 1, errp), EINVAL,
             "inconsistent");
  CHECK_ERR (dirty_bitmaps_create_successor (set, "bad", errp), EINVAL,
             "inconsistent");
  dirty_bitmaps_mark (set, 0, 3 << 20);
  CHECK_OK (dirty_bitmaps_remove (set, "bad", &persistent, errp));
  CHECK (persistent);
  dirty_bitmaps_free (set);
}

static void
test_resize_list (void)
{
  struct dirty_bitmaps *set = dirty_bitmaps_new (100000);
  struct dirty_bitmap_opts o = { .granularity = 4096 };
  struct dirty_bitmap_opts d = { .granularity = 4096, .disabled = true };
  struct dirty_bitmap_info *list;
  size_t n;

  CHECK_OK (dirty_bitmaps_add (set, "rec", &o, NULL, errp));
  CHECK_OK (dirty_bitmaps_add (set, "dis", &d, NULL, errp));
  CHECK_OK (dirty_bitmaps_resize (set, 200000, true, errp));
  CHECK (dirty_bitmaps_size (set) == 200000);
  CHECK (!dirty_at (set, "rec", 98303));
  CHECK (dirty_at (set, "rec", 100000) && dirty_at (set, "rec", 199999));
  CHECK (!dirty_at (set, "dis", 150000));
  CHECK_OK (dirty_bitmaps_resize (set, 50000, true, errp));
  CHECK (dirty_bitmaps_size (set) == 50000);
  CHECK (count_of (set, "rec") == 0);
  CHECK (dirty_bitmaps_list (set, &list, &n) == 0);
  CHECK (n == 2 && strcmp (list[0].name, "rec") == 0
         && strcmp (list[1].name, "dis") == 0
         && list[0].recording && !list[1].recording);
  dirty_bitmap_info_free (list, n);
  dirty_bitmaps_free (set);
}

/* Writers mark while another thread toggles recording, adds and
 * removes bitmaps and runs successors through both endings.  Each writer
 * also records its marks in a private hbitmap: afterwards the bitmap
 * that always recorded must be exactly the union of those, and the one
 * that was toggled a subset of it.
 */
static struct dirty_bitmaps *tset;
#define TSIZE (UINT64_C (4) << 30)   /* 2^20 granules: sparse marks */
#define TGRAN 4096
#define NWRITERS 2

struct writer {
  pthread_t thread;
  uint64_t seed;
  struct hbitmap *mine;
};

static void *
writer (void *arg)
{
  struct writer *w = arg;
  uint64_t i, seed = w->seed;

  for (i = 0; i < 20000; i++) {
    uint64_t off, len;

    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    off = (seed >> 20) % (TSIZE - 8192);
    len = 1 + (seed >> 8) % 8192;   /* unaligned, up to three granules */
    dirty_bitmaps_mark (tset, off, len);
    hbitmap_set (w->mine, off, len);
  }
  return NULL;
}

/* The data of NAME in TSET, as a copy. */
static struct hbitmap *
data_copy (const char *name)
{
  struct dirty_bitmap *bm = dirty_bitmaps_get (tset, name, NULL);
  struct hbitmap *hb;

  assert (bm);
  hb = hbitmap_copy (dirty_bitmap_data (bm));
  dirty_bitmap_put (bm);
  assert (hb);
  return hb;
}

static bool
same_bits (const struct hbitmap *a, const struct hbitmap *b)
{
  char da[65], db[65];

  return hbitmap_sha256 (a, da) == 0 && hbitmap_sha256 (b, db) == 0
    && strcmp (da, db) == 0 && hbitmap_count (a) == hbitmap_count (b);
}

static void *
toggler (void *arg)
{
  int i;

  for (i = 0; i < 500; i++) {
    dirty_bitmaps_disable (tset, "t", NULL);
    dirty_bitmaps_enable (tset, "t", NULL);
    dirty_bitmaps_add (tset, "tmp", NULL, NULL, NULL);
    dirty_bitmaps_create_successor (tset, "tmp", NULL);
    if (i & 1)
      dirty_bitmaps_abdicate (tset, "tmp", NULL);
    else
      dirty_bitmaps_reclaim (tset, "tmp", NULL);
    dirty_bitmaps_remove (tset, "tmp", NULL, NULL);
  }
  return NULL;
}

static void
test_threads (void)
{
  struct writer w[NWRITERS];
  pthread_t toggle;
  struct dirty_bitmap_opts o = { .granularity = TGRAN };
  struct hbitmap *uni = hbitmap_new (TSIZE, TGRAN);
  struct hbitmap *always, *toggled, *with_toggled;
  size_t i;

  assert (uni);
  tset = dirty_bitmaps_new (TSIZE);
  CHECK_OK (dirty_bitmaps_add (tset, "always", &o, NULL, errp));
  CHECK_OK (dirty_bitmaps_add (tset, "t", &o, NULL, errp));
  for (i = 0; i < NWRITERS; i++) {
    w[i].seed = i + 1;
    w[i].mine = hbitmap_new (TSIZE, TGRAN);
    assert (w[i].mine);
    pthread_create (&w[i].thread, NULL, writer, &w[i]);
  }
  pthread_create (&toggle, NULL, toggler, NULL);
  for (i = 0; i < NWRITERS; i++) {
    pthread_join (w[i].thread, NULL);
    CHECK (hbitmap_merge (uni, w[i].mine) == 0);
    hbitmap_free (w[i].mine);
  }
  pthread_join (toggle, NULL);

  /* Every mark is in the bitmap that always recorded, and nothing else. */
  always = data_copy ("always");
  CHECK (same_bits (always, uni));
  CHECK (count_of (tset, "always") == hbitmap_count (uni));
  /* The toggled one missed some marks but has none of its own. */
  toggled = data_copy ("t");
  with_toggled = hbitmap_copy (uni);
  assert (with_toggled);
  CHECK (hbitmap_merge (with_toggled, toggled) == 0);
  CHECK (same_bits (with_toggled, uni));
  hbitmap_free (with_toggled);
  hbitmap_free (toggled);
  hbitmap_free (always);
  hbitmap_free (uni);
  dirty_bitmaps_free (tset);
}

/* The write path's cost: 4 recording bitmaps, 4 KiB writes at random
 * offsets.  Informational: compare with the few microseconds a request
 * costs the server.
 */
static void
bench_mark (void)
{
  struct dirty_bitmaps *set = dirty_bitmaps_new (UINT64_C(1) << 30);
  struct dirty_bitmap_opts o = { .granularity = 65536 };
  struct timespec a, b;
  uint64_t i, seed = 1, n = 200000;
  const char *names[] = { "b0", "b1", "b2", "b3" };
  double ns;

  for (i = 0; i < 4; i++)
    CHECK_OK (dirty_bitmaps_add (set, names[i], &o, NULL, errp));
  clock_gettime (CLOCK_MONOTONIC, &a);
  for (i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    dirty_bitmaps_mark (set, (seed >> 30) % ((UINT64_C(1) << 30) - 4096),
                     4096);
  }
  clock_gettime (CLOCK_MONOTONIC, &b);
  ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
  printf ("dirty_bitmaps_mark, 4 bitmaps, 4 KiB: %.0f ns per write\n", ns);
  dirty_bitmaps_free (set);
}

int
main (void)
{
  test_limits ();
  test_mark_enable ();
  test_successor ();
  test_merge_inconsistent ();
  test_resize_list ();
  test_threads ();
  bench_mark ();
  if (failures) {
    fprintf (stderr, "%d failure(s)\n", failures);
    return 1;
  }
  return 0;
}
