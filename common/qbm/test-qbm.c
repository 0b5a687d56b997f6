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

/* Tests of the QBM sidecar library: round trip, crash recovery through
 * the intent record, and every kind of damage refused with a message.
 */
#include <config.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "bitmap-store.h"
#include "hbitmap.h"
#include "intent.h"
#include "qbm.h"

#define SIZE (UINT64_C (100) << 20)
#define ZONE (UINT64_C (1) << 20)

static char dir[] = "/tmp/test-qbm.XXXXXX";
static char image[256], desc[256];

static void run (const char *fmt, const char *arg)
  __attribute__ ((__format__ (__printf__, 1, 0)));
static void
run (const char *fmt, const char *arg)
{
  char cmd[1024];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  snprintf (cmd, sizeof cmd, fmt, arg);
#pragma GCC diagnostic pop
  assert (system (cmd) == 0);
}

static void
restore (void)
{
  char cmd[1024];
  snprintf (cmd, sizeof cmd, "rm -rf %s/*; cp -a /tmp/test-qbm-good/. %s/",
            dir, dir);
  assert (system (cmd) == 0);
}

static struct qbm *
open_ok (void)
{
  struct qbm *q = qbm_open (desc, image, SIZE, 0);
  if (q == NULL) {
    fprintf (stderr, "qbm_open: %s\n", qbm_last_error ());
    abort ();
  }
  return q;
}

static void
expect_open_fails (const char *what, const char *needle)
{
  struct qbm *q = qbm_open (desc, image, SIZE, 0);
  struct hbitmap *hb = NULL;

  if (q) {
    hb = qbm_load (q, "b0");
    assert (hb == NULL);
    qbm_close (q);
  }
  printf ("%s: %s\n", what, qbm_last_error ());
  assert (strstr (qbm_last_error (), needle) != NULL);
}

static size_t
open_fds (void)
{
  DIR *d = opendir ("/proc/self/fd");
  size_t n = 0;

  assert (d);
  while (readdir (d))
    n++;
  closedir (d);
  return n;
}

/* qbm_mark_in_use failing after it wrote the record (the descriptor does
 * not fit: a full disk, here a file size limit) keeps neither the
 * record's fd nor its intent object, also when tried again, and leaves
 * the descriptor as it was.  Before, each failed try left an fd (and an
 * intent) that the next try overwrote.
 */
static void
test_mark_in_use_fails (void)
{
  size_t before = open_fds ();
  struct intent *rec = NULL;
  struct rlimit old, lim;
  struct stat st;
  struct qbm *q;
  size_t n;
  int i;

  restore ();
  assert (stat (desc, &st) == 0);
  q = open_ok ();
  assert (getrlimit (RLIMIT_FSIZE, &old) == 0);
  lim = old;
  lim.rlim_cur = st.st_size / 2;  /* the record fits, the descriptor not */
  signal (SIGXFSZ, SIG_IGN);
  assert (setrlimit (RLIMIT_FSIZE, &lim) == 0);
  for (i = 0; i < 2; i++)
    assert (qbm_mark_in_use (q, ZONE, &rec) == -1);
  /* (The limit holds for stdout too, hence no printf until here.) */
  assert (setrlimit (RLIMIT_FSIZE, &old) == 0);
  signal (SIGXFSZ, SIG_DFL);
  printf ("descriptor too big: %s\n", qbm_last_error ());
  assert (strstr (qbm_last_error (), ".qbm.tmp: write: "));
  assert (rec == NULL);
  assert (open_fds () == before + 1);   /* only the lock */
  /* The on-disk descriptor is the old one. */
  {
    char text[4096];
    FILE *f = fopen (desc, "r");

    assert (f);
    n = fread (text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose (f);
    assert (n == (size_t) st.st_size);
    assert (strstr (text, "\"in-use\": false") != NULL);
    assert (strstr (text, "\"in-use\": true") == NULL);
  }
  /* With room it works on the same handle. */
  assert (qbm_mark_in_use (q, ZONE, &rec) == 0 && rec);
  assert (intent_mark (rec, 0, 4096) == 0);
  qbm_close (q);
  assert (open_fds () == before);
  restore ();
}

int
main (void)
{
  struct qbm *q;
  struct hbitmap *b0, *b1, *hb;
  struct qbm_bitmap_info *list;
  struct intent *rec;
  size_t n;
  char sum0[65], sum1[65], save[512];

  setvbuf (stdout, NULL, _IONBF, 0);
  assert (mkdtemp (dir));
  snprintf (image, sizeof image, "%s/disk.raw", dir);
  snprintf (desc, sizeof desc, "%s/disk.raw.qbm", dir);
  snprintf (save, sizeof save, "%s/save", dir);
  run ("truncate -s 100M %s", image);

  /* No sidecar: empty; storing nothing creates nothing. */
  q = open_ok ();
  assert (!qbm_exists (q));
  assert (qbm_list (q, &list, &n) == 0 && n == 0);
  qbm_list_free (list, n);
  assert (qbm_store (q, NULL, 0, NULL, 0) == 0);
  assert (access (desc, F_OK) == -1);

  /* Round trip. */
  b0 = hbitmap_new (SIZE, 65536);
  b1 = hbitmap_new (SIZE, 512);
  hbitmap_set (b0, 0, 1);
  hbitmap_set (b0, SIZE - 1, 1);
  hbitmap_set (b1, 12345, 70000);
  {
    struct bitmap_store_entry e[2] = {
      { "b0", b0, true, false }, { "b1 ünï", b1, false, false },
    };
    assert (qbm_store (q, e, 2, NULL, 0) == 0);
  }
  qbm_close (q);
  q = open_ok ();
  assert (qbm_list (q, &list, &n) == 0 && n == 2);
  assert (strcmp (list[0].name, "b0") == 0 && list[0].recording
          && list[0].granularity == 65536 && !list[0].inconsistent);
  assert (strcmp (list[1].name, "b1 ünï") == 0 && !list[1].recording);
  qbm_list_free (list, n);
  hb = qbm_load (q, "b0");
  hbitmap_sha256 (hb, sum0);
  hbitmap_sha256 (b0, sum1);
  assert (strcmp (sum0, sum1) == 0);
  hbitmap_free (hb);
  hb = qbm_load (q, "b1 ünï");
  assert (hbitmap_count (hb) == hbitmap_count (b1));
  hbitmap_free (hb);

  /* The descriptor probes as QBM and names the image. */
  {
    char *img = NULL;
    assert (qbm_probe (desc, &img) == 1);
    assert (strcmp (img, image) == 0);
    free (img);
    assert (qbm_probe (image, &img) == 0);
  }

  /* Crash: marked in use, a write into zone 7 recorded in the intent
   * record only, no store.  Reopen: b0 = stored | zone 7, consistent.
   */
  assert (qbm_mark_in_use (q, ZONE, &rec) == 0);
  assert (intent_mark (rec, 7 * ZONE + 5, 4096) == 0);
  assert (intent_syncs (rec) == 1);
  run ("cp -a %s/. /tmp/test-qbm-crash", dir);   /* the crash state */
  qbm_close (q);
  q = open_ok ();
  assert (qbm_list (q, &list, &n) == 0 && n == 2);
  assert (list[0].in_use && !list[0].inconsistent);
  qbm_list_free (list, n);
  hb = qbm_load (q, "b0");
  assert (hb);
  assert (hbitmap_get (hb, 0) && hbitmap_get (hb, 7 * ZONE)
          && hbitmap_get (hb, 8 * ZONE - 1) && !hbitmap_get (hb, 8 * ZONE));
  assert (hbitmap_count (hb) == hbitmap_count (b0) + ZONE);
  hbitmap_free (hb);

  /* A restart keeps the old record's zones until the next store, and
   * its zone size while they recover a bitmap (a crash before the new
   * descriptor is durable must find a record the old one reads).
   */
  assert (qbm_mark_in_use (q, 2 * ZONE, &rec) == 0);
  assert (intent_zone_size (rec) == ZONE);
  assert (intent_marked_zones (rec) == 1);
  qbm_close (q);
  q = open_ok ();
  hb = qbm_load (q, "b0");
  assert (hb && hbitmap_get (hb, 7 * ZONE) && hbitmap_get (hb, 8 * ZONE - 1));
  hbitmap_free (hb);
  qbm_close (q);

  /* Without the intent record an in-use bitmap is inconsistent. */
  run ("rm %s/disk.raw.qbm.intent", dir);
  q = open_ok ();
  assert (qbm_list (q, &list, &n) == 0 && n == 2);
  assert (list[0].inconsistent);
  qbm_list_free (list, n);
  assert (qbm_load (q, "b0") == NULL && errno == EBUSY);
  printf ("no intent: %s\n", qbm_last_error ());
  /* A clean store makes them consistent again; remove drops one. */
  {
    struct bitmap_store_entry e[1] = { { "b0", b0, true, false } };
    assert (qbm_store (q, e, 1, NULL, 0) == 0);
  }
  qbm_close (q);
  q = open_ok ();
  assert (qbm_list (q, &list, &n) == 0 && n == 1 && !list[0].in_use);
  qbm_list_free (list, n);
  assert (qbm_remove (q, "b0") == 0);
  assert (qbm_list (q, &list, &n) == 0 && n == 0);
  qbm_list_free (list, n);
  {
    struct bitmap_store_entry e[1] = { { "b0", b0, true, false } };
    assert (qbm_store (q, e, 1, NULL, 0) == 0);
  }
  qbm_close (q);
  run ("rm -rf /tmp/test-qbm-good; cp -a %s /tmp/test-qbm-good", dir);

  /* Damage, each refused with a message. */
  run ("sh -c 'f=$(ls %s/*.bitmap); printf x | dd of=$f bs=1 seek=100 conv=notrunc 2>/dev/null'", dir);
  expect_open_fails ("bad checksum", "checksum mismatch");
  restore ();
  run ("sh -c 'f=$(ls %s/*.bitmap); truncate -s 100 $f'", dir);
  expect_open_fails ("truncated bitmap", "truncated");
  restore ();
  run ("sh -c 'f=$(ls %s/*.bitmap); truncate -s 1M $f'", dir);
  expect_open_fails ("bitmap too long", "is larger than");
  restore ();
  run ("sh -c 'f=$(ls %s/*.bitmap); rm $f'", dir);
  expect_open_fails ("missing bitmap", "No such file");
  restore ();
  run ("truncate -s 50 %s.qbm", image);
  expect_open_fails ("truncated descriptor", "descriptor");
  restore ();
  run ("sh -c 'echo \"{\\\"x\\\": 1}\" > %s.qbm'", image);
  expect_open_fails ("not QBM", "not a QBM descriptor");
  restore ();
  run ("sed -i 's/\"version\": 1/\"version\": 2/' %s.qbm", image);
  expect_open_fails ("version", "unsupported QBM version 2");
  restore ();
  run ("truncate -s 200M %s", image);
  {
    struct qbm *r = qbm_open (desc, image, UINT64_C (200) << 20, 0);
    assert (r == NULL);
    printf ("resized: %s\n", qbm_last_error ());
    assert (strstr (qbm_last_error (), "resized"));
  }
  run ("truncate -s 100M %s", image);
  test_mark_in_use_fails ();
  run ("sh -c 'truncate -s 100M %s/other.raw'", dir);
  {
    char other[300];
    struct qbm *r;
    snprintf (other, sizeof other, "%s/other.raw", dir);
    r = qbm_open (desc, other, SIZE, 0);
    assert (r == NULL);
    printf ("other image: %s\n", qbm_last_error ());
    assert (strstr (qbm_last_error (), "belongs to"));
  }

  hbitmap_free (b0);
  hbitmap_free (b1);
  run ("rm -rf %s /tmp/test-qbm-crash /tmp/test-qbm-good", dir);
  printf ("test-qbm: ok\n");
  return 0;
}
