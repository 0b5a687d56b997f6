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

/* A command-line driver of the qcow2 library for the tests.
 *
 *   qcow2-test-tool create IMG SIZE [key=value...]
 *       cluster_size= refcount_bits= version= extended_l2=on lazy=on
 *       compression=zstd backing= backing_fmt=
 *   qcow2-test-tool read IMG OUT.raw
 *   qcow2-test-tool info IMG
 *   qcow2-test-tool map IMG            (offset length status depth)
 *   qcow2-test-tool random IMG MODEL.raw SEED NOPS [nodiscard] [noflush]
 *   qcow2-test-tool threads IMG MODEL.raw NTHREADS NOPS
 *   qcow2-test-tool check IMG [repair]
 *   qcow2-test-tool resize IMG SIZE
 *   qcow2-test-tool bitmaps IMG list|add NAME GRAN|remove NAME|
 *                   dump NAME|mark|setbits NAME OFF LEN
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitmap-store.h"
#include "hbitmap.h"
#include "qcow2.h"

static void
die (const char *what)
{
  fprintf (stderr, "qcow2-test-tool: %s: %s\n", what, qcow2_last_error ());
  exit (EXIT_FAILURE);
}

static struct qcow2 *
open_or_die (const char *path, int flags)
{
  struct qcow2 *q = qcow2_open (path, flags);
  if (q == NULL)
    die ("open");
  return q;
}

static int
do_create (int argc, char **argv)
{
  struct qcow2_create_opts o = { 0 };
  int i;

  o.size = strtoull (argv[1], NULL, 0);
  for (i = 2; i < argc; i++) {
    char *v = strchr (argv[i], '=');
    if (v == NULL) {
      fprintf (stderr, "bad option %s\n", argv[i]);
      return 1;
    }
    *v++ = 0;
    if (!strcmp (argv[i], "cluster_size")) o.cluster_size = atoi (v);
    else if (!strcmp (argv[i], "refcount_bits")) o.refcount_bits = atoi (v);
    else if (!strcmp (argv[i], "version")) o.version = atoi (v);
    else if (!strcmp (argv[i], "extended_l2")) o.extended_l2 = true;
    else if (!strcmp (argv[i], "lazy")) o.lazy_refcounts = true;
    else if (!strcmp (argv[i], "compression")) o.compression_type = 1;
    else if (!strcmp (argv[i], "backing")) o.backing_file = v;
    else if (!strcmp (argv[i], "backing_fmt")) o.backing_format = v;
    else {
      fprintf (stderr, "bad option %s\n", argv[i]);
      return 1;
    }
  }
  if (qcow2_create (argv[0], &o) == -1)
    die ("create");
  return 0;
}

static int
do_read (char **argv)
{
  struct qcow2 *q = open_or_die (argv[0], QCOW2_OPEN_RDONLY);
  uint64_t size = qcow2_get_size (q), off;
  size_t bs = 1 << 20;
  char *buf = malloc (bs);
  int fd = open (argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);

  if (fd == -1 || buf == NULL) {
    perror (argv[1]);
    return 1;
  }
  for (off = 0; off < size; off += bs) {
    size_t n = size - off < bs ? size - off : bs;
    if (qcow2_pread (q, buf, n, off) == -1)
      die ("pread");
    if (pwrite (fd, buf, n, off) != (ssize_t) n) {
      perror ("pwrite");
      return 1;
    }
  }
  if (ftruncate (fd, size) == -1)
    perror ("ftruncate");
  close (fd);
  free (buf);
  if (qcow2_close (q) == -1)
    die ("close");
  return 0;
}

static int
do_info (char **argv)
{
  struct qcow2 *q = open_or_die (argv[0], QCOW2_OPEN_RDONLY);
  struct qcow2_info i;

  qcow2_get_info (q, &i);
  printf ("version=%d\nsize=%" PRIu64 "\ncluster_size=%" PRIu32
          "\nrefcount_bits=%d\nlazy_refcounts=%d\nextended_l2=%d\n"
          "dirty=%d\ncorrupt=%d\ncompression_type=%d\nbacking_file=%s\n"
          "backing_format=%s\nnb_bitmaps=%" PRIu64 "\n",
          i.version, i.size, i.cluster_size, i.refcount_bits,
          i.lazy_refcounts, i.extended_l2, i.dirty, i.corrupt,
          i.compression_type, i.backing_file ? i.backing_file : "",
          i.backing_format ? i.backing_format : "", i.nb_bitmaps);
  qcow2_close (q);
  return 0;
}

static int
do_map (char **argv)
{
  struct qcow2 *q = open_or_die (argv[0], QCOW2_OPEN_RDONLY);
  uint64_t size = qcow2_get_size (q), off = 0;
  uint64_t run_start = 0, run_len = 0;
  int run_status = -1, run_depth = -1;

  while (off < size) {
    uint64_t pnum;
    int status, depth;
    if (qcow2_block_status (q, off, size - off, &pnum, &status, &depth) == -1)
      die ("block_status");
    if (pnum == 0) {
      fprintf (stderr, "block_status returned 0 bytes\n");
      return 1;
    }
    if (status == run_status && depth == run_depth)
      run_len += pnum;
    else {
      if (run_len)
        printf ("%" PRIu64 " %" PRIu64 " %d %d\n", run_start, run_len,
                run_status, run_depth);
      run_start = off;
      run_len = pnum;
      run_status = status;
      run_depth = depth;
    }
    off += pnum;
  }
  if (run_len)
    printf ("%" PRIu64 " %" PRIu64 " %d %d\n", run_start, run_len,
            run_status, run_depth);
  qcow2_close (q);
  return 0;
}

/* Random writes, zeroes and discards, mirrored into a raw model file. */
static int
do_random (int argc, char **argv)
{
  struct qcow2 *q = open_or_die (argv[0], 0);
  int model = open (argv[1], O_RDWR);
  unsigned seed = atoi (argv[2]);
  long nops = atol (argv[3]), i;
  bool nodiscard = false, noflush = false;
  uint64_t size = qcow2_get_size (q);
  size_t maxlen = 1 << 20;
  char *buf = malloc (maxlen), *zero = calloc (1, maxlen);
  int a;

  for (a = 4; a < argc; a++) {
    if (!strcmp (argv[a], "nodiscard")) nodiscard = true;
    if (!strcmp (argv[a], "noflush")) noflush = true;
  }
  if (model == -1 || buf == NULL || zero == NULL) {
    perror (argv[1]);
    return 1;
  }
  srand (seed);
  for (i = 0; i < nops; i++) {
    int op = rand () % 10;
    uint64_t len = 1 + rand () % (op < 6 ? 200000 : maxlen);
    uint64_t off;
    size_t j;

    /* Some aligned requests, some not. */
    if (rand () % 2)
      len = (len + 4095) & ~UINT64_C (4095);
    if (len > size)
      len = size;
    off = ((uint64_t) rand () * 7919 + rand ()) % (size - len + 1);
    if (rand () % 2)
      off &= ~UINT64_C (4095);
    if (op < 6) {
      for (j = 0; j < len; j++)
        buf[j] = rand ();
      if (qcow2_pwrite (q, buf, len, off, op == 0 ? QCOW2_WRITE_FUA : 0) == -1)
        die ("pwrite");
      if (pwrite (model, buf, len, off) != (ssize_t) len)
        return 1;
    }
    else if (op < 8 || nodiscard) {
      if (qcow2_zero (q, len, off, op == 6 ? QCOW2_ZERO_MAY_UNMAP : 0) == -1)
        die ("zero");
      if (pwrite (model, zero, len, off) != (ssize_t) len)
        return 1;
    }
    else if (op == 8) {
      /* Discard: only whole clusters change; the test images have no
       * backing file or are v3, so discarded clusters read as zero.
       */
      struct qcow2_info inf;
      uint64_t cs, first, last;
      qcow2_get_info (q, &inf);
      cs = inf.cluster_size;
      first = (off + cs - 1) / cs * cs;
      last = (off + len) / cs * cs;
      if (off + len == size)
        last = size;
      if (qcow2_discard (q, len, off, 0) == -1)
        die ("discard");
      if (last > first &&
          pwrite (model, zero, last - first > maxlen ? 0 : last - first,
                  first) == -1)
        return 1;
      while (last > first + maxlen) {
        /* Large discards: zero the model in pieces. */
        uint64_t n = last - first - maxlen;
        if (n > maxlen) n = maxlen;
        if (pwrite (model, zero, n, first + maxlen) != (ssize_t) n)
          return 1;
        first += n;
      }
    }
    else if (!noflush) {
      if (qcow2_flush (q) == -1)
        die ("flush");
    }
  }
  free (buf);
  free (zero);
  close (model);
  if (qcow2_close (q) == -1)
    die ("close");
  return 0;
}

/* Many threads at once, each in its own region (regions share clusters
 * at their edges), mirrored into the model.
 */
struct thread_arg {
  struct qcow2 *q;
  int model;
  uint64_t start, len;
  unsigned seed;
  long nops;
  int err;
};

static void *
thread_main (void *opaque)
{
  struct thread_arg *a = opaque;
  size_t maxlen = 256 * 1024;
  char *buf = malloc (maxlen), *zero = calloc (1, maxlen);
  long i;

  for (i = 0; i < a->nops && buf && zero; i++) {
    uint64_t len = 1 + rand_r (&a->seed) % maxlen, off;
    int op = rand_r (&a->seed) % 10;
    size_t j;
    if (len > a->len)
      len = a->len;
    off = a->start + (uint64_t) rand_r (&a->seed) % (a->len - len + 1);
    if (op < 7) {
      for (j = 0; j < len; j++)
        buf[j] = rand_r (&a->seed);
      if (qcow2_pwrite (a->q, buf, len, off, 0) == -1 ||
          pwrite (a->model, buf, len, off) != (ssize_t) len)
        goto fail;
    }
    else if (op < 9) {
      if (qcow2_zero (a->q, len, off, op == 7 ? QCOW2_ZERO_MAY_UNMAP : 0)
          == -1 ||
          pwrite (a->model, zero, len, off) != (ssize_t) len)
        goto fail;
    }
    else if (qcow2_flush (a->q) == -1)
      goto fail;
  }
  free (buf);
  free (zero);
  return NULL;
 fail:
  fprintf (stderr, "thread: %s\n", qcow2_last_error ());
  a->err = 1;
  free (buf);
  free (zero);
  return NULL;
}

static int
do_threads (char **argv)
{
  struct qcow2 *q = open_or_die (argv[0], 0);
  int model = open (argv[1], O_RDWR);
  int n = atoi (argv[2]), i, err = 0;
  long nops = atol (argv[3]);
  uint64_t size = qcow2_get_size (q);
  uint64_t region = size / n / 512 * 512;
  struct thread_arg *a = calloc (n, sizeof *a);
  pthread_t *t = calloc (n, sizeof *t);

  if (model == -1 || a == NULL || t == NULL) {
    perror (argv[1]);
    return 1;
  }
  for (i = 0; i < n; i++) {
    a[i] = (struct thread_arg) { .q = q, .model = model, .seed = i + 1,
      .start = i * region, .len = region, .nops = nops };
    pthread_create (&t[i], NULL, thread_main, &a[i]);
  }
  for (i = 0; i < n; i++) {
    pthread_join (t[i], NULL);
    err |= a[i].err;
  }
  free (a);
  free (t);
  close (model);
  if (qcow2_close (q) == -1)
    die ("close");
  return err;
}

static void
print_msg (void *opaque, const char *text)
{
  (void) opaque;
  printf ("%s\n", text);
}

static int
do_check (int argc, char **argv)
{
  struct qcow2 *q;
  struct qcow2_check_result r;
  bool repair = argc > 1 && !strcmp (argv[1], "repair");

  q = open_or_die (argv[0], repair ? 0 : QCOW2_OPEN_RDONLY);
  if (qcow2_check (q, repair ? QCOW2_CHECK_REPAIR_LEAKS : 0, &r,
                   print_msg, NULL) == -1)
    die ("check");
  printf ("corruptions=%" PRIu64 " leaks=%" PRIu64 " leaks_fixed=%" PRIu64
          " allocated=%" PRIu64 " end=%" PRIu64 "\n",
          r.corruptions, r.leaks, r.leaks_fixed, r.allocated_clusters,
          r.image_end_offset);
  if (qcow2_close (q) == -1)
    die ("close");
  return r.corruptions ? 2 : (r.leaks - r.leaks_fixed) ? 3 : 0;
}

static int
do_resize (char **argv)
{
  struct qcow2 *q = open_or_die (argv[0], 0);
  if (qcow2_resize (q, strtoull (argv[1], NULL, 0)) == -1)
    die ("resize");
  if (qcow2_close (q) == -1)
    die ("close");
  return 0;
}

static int
do_bitmaps (int argc, char **argv)
{
  const char *img = argv[0], *cmd = argv[1];
  struct qcow2 *q;

  if (!strcmp (cmd, "list")) {
    struct qcow2_bitmap_info *l;
    size_t n, i;
    q = open_or_die (img, QCOW2_OPEN_RDONLY);
    if (qcow2_bitmap_list (q, &l, &n) == -1)
      die ("list");
    for (i = 0; i < n; i++)
      printf ("%s %" PRIu64 "%s%s\n", l[i].name, l[i].granularity,
              l[i].flags & QCOW2_BME_IN_USE ? " in-use" : "",
              l[i].flags & QCOW2_BME_AUTO ? " auto" : "");
    qcow2_bitmap_list_free (l, n);
  }
  else if (!strcmp (cmd, "add") && argc >= 4) {
    q = open_or_die (img, QCOW2_OPEN_NO_BITMAP_IN_USE);
    if (qcow2_bitmap_add (q, argv[2], strtoull (argv[3], NULL, 0),
                          argc < 5 || strcmp (argv[4], "disabled")) == -1)
      die ("add");
  }
  else if (!strcmp (cmd, "remove") && argc >= 3) {
    q = open_or_die (img, QCOW2_OPEN_NO_BITMAP_IN_USE);
    if (qcow2_bitmap_remove (q, argv[2]) == -1)
      die ("remove");
  }
  else if (!strcmp (cmd, "dump") && argc >= 3) {
    struct hbitmap *hb;
    uint64_t off = 0, size, start, len;
    q = open_or_die (img, QCOW2_OPEN_RDONLY);
    hb = qcow2_bitmap_load (q, argv[2]);
    if (hb == NULL)
      die ("load");
    size = hbitmap_size (hb);
    while (off < size &&
           hbitmap_next_dirty_area (hb, off, size, UINT64_MAX, &start, &len)) {
      printf ("%" PRIu64 " %" PRIu64 "\n", start, len);
      off = start + len;
    }
    hbitmap_free (hb);
  }
  else if (!strcmp (cmd, "mark")) {
    q = open_or_die (img, 0);
    if (qcow2_bitmaps_mark_in_use (q) == -1)
      die ("mark");
  }
  else if (!strcmp (cmd, "setbits") && argc >= 5) {
    /* Load every bitmap, mark in use, set a range in NAME, store all. */
    struct qcow2_bitmap_info *l;
    struct bitmap_store_entry *set;
    struct hbitmap **hbs;
    size_t n, i;
    q = open_or_die (img, 0);
    if (qcow2_bitmap_list (q, &l, &n) == -1)
      die ("list");
    if (qcow2_bitmaps_mark_in_use (q) == -1)
      die ("mark");
    set = calloc (n + 1, sizeof *set);
    hbs = calloc (n + 1, sizeof *hbs);
    for (i = 0; i < n; i++) {
      hbs[i] = qcow2_bitmap_load (q, l[i].name);
      if (hbs[i] == NULL)
        die ("load");
      if (!strcmp (l[i].name, argv[2]))
        hbitmap_set (hbs[i], strtoull (argv[3], NULL, 0),
                     strtoull (argv[4], NULL, 0));
      set[i].name = l[i].name;
      set[i].bitmap = hbs[i];
      set[i].recording = !!(l[i].flags & QCOW2_BME_AUTO);
    }
    if (qcow2_bitmaps_store (q, set, n, NULL, 0) == -1)
      die ("store");
    for (i = 0; i < n; i++)
      hbitmap_free (hbs[i]);
    free (hbs);
    free (set);
    qcow2_bitmap_list_free (l, n);
  }
  else {
    fprintf (stderr, "bad bitmaps command\n");
    return 1;
  }
  if (qcow2_close (q) == -1)
    die ("close");
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: see the comment in qcow2-test-tool.c\n");
    return 1;
  }
  if (!strcmp (argv[1], "create"))
    return do_create (argc - 2, argv + 2);
  if (!strcmp (argv[1], "read") && argc >= 4)
    return do_read (argv + 2);
  if (!strcmp (argv[1], "info"))
    return do_info (argv + 2);
  if (!strcmp (argv[1], "map"))
    return do_map (argv + 2);
  if (!strcmp (argv[1], "random") && argc >= 6)
    return do_random (argc - 2, argv + 2);
  if (!strcmp (argv[1], "threads") && argc >= 6)
    return do_threads (argv + 2);
  if (!strcmp (argv[1], "check"))
    return do_check (argc - 2, argv + 2);
  if (!strcmp (argv[1], "resize") && argc >= 4)
    return do_resize (argv + 2);
  if (!strcmp (argv[1], "bitmaps") && argc >= 4)
    return do_bitmaps (argc - 2, argv + 2);
  fprintf (stderr, "unknown command %s\n", argv[1]);
  return 1;
}
