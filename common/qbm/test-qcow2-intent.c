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

/* The intent record in a qcow2 image: written where QEMU leaves it alone,
 * recovered after a crash, invalidated by QEMU's (and any untracked)
 * read-write open, never read as a wrong clean.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbitmap.h"
#include "intent.h"
#include "bitmap-store.h"
#include "qcow2.h"

#define MiB (UINT64_C (1) << 20)

static char dir[] = "/tmp/test-qcow2-intent.XXXXXX";

static int
sh (const char *cmd)
{
  char buf[2048];
  snprintf (buf, sizeof buf, "cd %s && %s", dir, cmd);
  return system (buf);
}

static int
persist (void *opaque, const uint8_t *bits, size_t off, size_t len)
{
  return qcow2_intent_persist (opaque, bits, off, len);
}

static struct qcow2 *
open_or_die (const char *name, int flags)
{
  char path[256];
  struct qcow2 *q;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  q = qcow2_open (path, flags);
  if (q == NULL) {
    fprintf (stderr, "%s: %s\n", name, qcow2_last_error ());
    abort ();
  }
  return q;
}

int
main (void)
{
  struct qcow2 *q;
  struct hbitmap *hb;
  struct intent *rec;
  struct intent_backend be;
  uint8_t *bits;
  size_t nbytes;
  uint64_t zone;
  char buf[4096];

  setvbuf (stdout, NULL, _IONBF, 0);
  if (system ("qemu-img --version >/dev/null 2>&1") != 0) {
    printf ("qemu-img missing: skipped\n");
    return 77;
  }
  assert (mkdtemp (dir));
  assert (sh ("qemu-img create -q -f qcow2 a.qcow2 1G && "
              "qemu-img bitmap --add a.qcow2 b0 && "
              "qemu-io -c 'write 0 64k' a.qcow2 >/dev/null") == 0);

  /* A server: mark in use, start the record, a write into zone 3 goes
   * down after its zone is durable; the fine bitmap is never stored.
   */
  q = open_or_die ("a.qcow2", QCOW2_OPEN_NO_BITMAP_IN_USE);
  assert (!qcow2_bitmap_recoverable (q, "b0"));
  assert (qcow2_bitmaps_mark_in_use (q) == 0);
  assert (qcow2_intent_start (q, 64 * MiB, &bits, &nbytes, &zone) == 0);
  assert (zone == 64 * MiB && nbytes == 2);
  be.opaque = q;
  be.persist = persist;
  rec = intent_new (qcow2_get_size (q), zone, bits, &be);
  free (bits);
  assert (intent_mark (rec, 3 * zone + 4096, 4096) == 0);
  memset (buf, 0xaa, sizeof buf);
  assert (qcow2_pwrite (q, buf, sizeof buf, 3 * zone + 4096, 0) == 0);
  assert (qcow2_flush (q) == 0);
  /* The crash: the file as it is now. */
  assert (sh ("cp a.qcow2 crash.qcow2") == 0);
  intent_free (rec);

  /* QEMU: bitmaps in use, no corruption, no leak. */
  assert (sh ("qemu-img info -U crash.qcow2 | grep -q in-use") == 0);
  assert (sh ("qemu-img check crash.qcow2 >/dev/null") == 0);

  /* nbdcbt: recoverable; b0 = stored (the 64k QEMU wrote) | zone 3. */
  assert (sh ("cp crash.qcow2 c1.qcow2 && cp crash.qcow2 c2.qcow2 && "
              "cp crash.qcow2 c3.qcow2") == 0);
  {
    struct qcow2 *r = open_or_die ("c1.qcow2", QCOW2_OPEN_RDONLY
                                   | QCOW2_OPEN_NO_BITMAP_IN_USE);
    assert (qcow2_bitmap_recoverable (r, "b0"));
    hb = qcow2_bitmap_load (r, "b0");
    assert (hb);
    assert (hbitmap_get (hb, 0) && hbitmap_get (hb, 3 * zone)
            && hbitmap_get (hb, 4 * zone - 1) && !hbitmap_get (hb, 4 * zone));
    assert (hbitmap_count (hb) == 64 * 1024 + zone);
    hbitmap_free (hb);
    qcow2_close (r);
  }

  /* QEMU opens it read-write (even without writing): the record is no
   * longer trusted; b0 is inconsistent, as QEMU sees it.  The extension
   * itself survives.
   */
  assert (sh ("qemu-io -c 'read 0 512' c2.qcow2 >/dev/null") == 0);
  assert (sh ("qemu-io -c 'write 128M 4k' c3.qcow2 >/dev/null") == 0);
  {
    struct qcow2 *r = open_or_die ("c2.qcow2", QCOW2_OPEN_RDONLY
                                   | QCOW2_OPEN_NO_BITMAP_IN_USE);
    assert (!qcow2_bitmap_recoverable (r, "b0"));
    assert (qcow2_bitmap_load (r, "b0") == NULL && errno == EBUSY);
    assert (qcow2_intent_get (r, &bits, &nbytes, &zone) == -1);
    qcow2_close (r);
    r = open_or_die ("c3.qcow2", QCOW2_OPEN_RDONLY
                     | QCOW2_OPEN_NO_BITMAP_IN_USE);
    assert (!qcow2_bitmap_recoverable (r, "b0"));
    assert (qcow2_bitmap_load (r, "b0") == NULL);
    qcow2_close (r);
  }
  assert (sh ("python3 -c \"import sys; d=open('c2.qcow2','rb').read(65536); "
              "sys.exit(0 if b'NBCI' in d else 1)\"") == 0);

  /* A writer that records nothing (no intent_start) invalidates the
   * record before its first write goes down.
   */
  assert (sh ("cp crash.qcow2 c4.qcow2") == 0);
  {
    struct qcow2 *r = open_or_die ("c4.qcow2", QCOW2_OPEN_NO_BITMAP_IN_USE);
    assert (qcow2_bitmap_recoverable (r, "b0"));
    assert (qcow2_pwrite (r, buf, 512, 0, 0) == 0);
    qcow2_close (r);
    r = open_or_die ("c4.qcow2", QCOW2_OPEN_RDONLY
                     | QCOW2_OPEN_NO_BITMAP_IN_USE);
    assert (!qcow2_bitmap_recoverable (r, "b0"));
    qcow2_close (r);
  }

  /* Clean close: stored with in_use clear; QEMU sees clean flags. */
  {
    struct bitmap_store_entry e = { 0 };
    hb = hbitmap_new (qcow2_get_size (q), 65536);
    hbitmap_set (hb, 3 * zone, 1);
    e.name = "b0";
    e.bitmap = hb;
    e.recording = true;
    e.in_use = false;
    assert (qcow2_bitmaps_store (q, &e, 1, NULL, 0) == 0);
    hbitmap_free (hb);
  }
  assert (qcow2_close (q) == 0);
  assert (sh ("qemu-img info a.qcow2 | grep -q in-use") != 0);
  assert (sh ("qemu-img check a.qcow2 >/dev/null") == 0);
  assert (sh ("qemu-img bitmap --clear a.qcow2 b0") == 0);

  {
    char cmd[300];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    assert (system (cmd) == 0);
  }
  printf ("test-qcow2-intent: ok\n");
  return 0;
}
