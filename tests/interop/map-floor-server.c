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

/* map-floor-server SOCKET SOURCE-URI: the fastest possible answer to
 * nbdinfo --map=qemu:dirty-bitmap:b0, to measure nbdinfo's own floor.
 *
 * It reads the map of qemu:dirty-bitmap:b0 from SOURCE (any server) with
 * the requests nbdinfo sends (offset k * (2^32 - 512), one at a time) and
 * keeps each reply in wire format.  Then it listens on the Unix socket
 * SOCKET, one connection at a time, with a minimal fixed-newstyle
 * handshake, and answers each BLOCK_STATUS with the stored chunk (only
 * the cookie patched): no lookup, no allocation, one thread, one read and
 * one write per request.  Time nbdinfo --map against it and against a
 * real server: the difference is all the server can still save.
 *
 * Not a test (nothing in TESTS runs it); built with the tests so that it
 * keeps compiling.  Stop it with a signal.
 */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libnbd.h>

#define CONTEXT "qemu:dirty-bitmap:b0"
#define STEP (UINT64_C (4294967296) - 512) /* nbdinfo's request size */

struct reply {
  char *buf;
  size_t len;
};

static struct reply *replies;
static size_t nreplies;
static uint64_t export_size;

static void
put32 (char *p, uint32_t v)
{
  v = htobe32 (v);
  memcpy (p, &v, 4);
}

static int
store_reply (void *opaque, const char *ctx, uint64_t offset,
             uint32_t *entries, size_t n, int *error)
{
  size_t k = offset / STEP, i;
  char *p = malloc (24 + 4 * n);

  if (p == NULL || k >= nreplies) {
    perror ("malloc");
    exit (EXIT_FAILURE);
  }
  put32 (p, 0x668e33ef);               /* structured reply magic */
  p[4] = 0; p[5] = 1;                  /* flags: DONE */
  p[6] = 0; p[7] = 5;                  /* type: BLOCK_STATUS */
  put32 (p + 16, 4 + 4 * n);
  put32 (p + 20, 1);                   /* context id */
  for (i = 0; i < n; ++i)
    put32 (p + 24 + 4 * i, entries[i]);
  free (replies[k].buf);
  replies[k].buf = p;
  replies[k].len = 24 + 4 * n;
  return 0;
}

static void
fetch (const char *uri)
{
  struct nbd_handle *h = nbd_create ();
  uint64_t off;

  if (h == NULL || nbd_add_meta_context (h, CONTEXT) == -1
      || nbd_connect_uri (h, uri) == -1) {
    fprintf (stderr, "%s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  export_size = nbd_get_size (h);
  nreplies = (export_size + STEP - 1) / STEP;
  replies = calloc (nreplies, sizeof *replies);
  if (replies == NULL) {
    perror ("calloc");
    exit (EXIT_FAILURE);
  }
  for (off = 0; off < export_size; off += STEP) {
    uint64_t count = export_size - off < STEP ? export_size - off : STEP;

    if (nbd_block_status (h, count, off,
                          (nbd_extent_callback) { .callback = store_reply },
                          0) == -1) {
      fprintf (stderr, "%s\n", nbd_get_error ());
      exit (EXIT_FAILURE);
    }
  }
  nbd_shutdown (h, 0);
  nbd_close (h);
}

static bool
read_all (int fd, void *buf, size_t len)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r = read (fd, p, len);
    if (r <= 0)
      return false;
    p += r;
    len -= r;
  }
  return true;
}

static void
write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = write (fd, p, len);
    if (r <= 0)
      return;
    p += r;
    len -= r;
  }
}

static void
option_reply (int fd, uint32_t option, uint32_t type, const void *data,
              uint32_t len)
{
  char buf[64];
  uint64_t magic = htobe64 (UINT64_C (0x3e889045565a9));

  memcpy (buf, &magic, 8);
  put32 (buf + 8, option);
  put32 (buf + 12, type);
  put32 (buf + 16, len);
  memcpy (buf + 20, data, len);
  write_all (fd, buf, 20 + len);
}

/* Options until GO; false to drop the client. */
static bool
handshake (int fd)
{
  char hello[18] = "NBDMAGICIHAVEOPT\0\3"; /* FIXED_NEWSTYLE, NO_ZEROES */
  char flags[4];

  write_all (fd, hello, sizeof hello);
  if (!read_all (fd, flags, 4))
    return false;
  for (;;) {
    static char data[65536];
    char hdr[16];
    uint32_t option, len;

    if (!read_all (fd, hdr, 16))
      return false;
    memcpy (&option, hdr + 8, 4);
    memcpy (&len, hdr + 12, 4);
    option = be32toh (option);
    len = be32toh (len);
    if (len > sizeof data || !read_all (fd, data, len))
      return false;
    switch (option) {
    case 8:                     /* STRUCTURED_REPLY */
      option_reply (fd, option, 1, NULL, 0);
      break;
    case 9: case 10: {          /* LIST/SET_META_CONTEXT: ours only */
      char ctx[4 + sizeof CONTEXT - 1];
      put32 (ctx, 1);
      memcpy (ctx + 4, CONTEXT, sizeof CONTEXT - 1);
      option_reply (fd, option, 4, ctx, sizeof ctx);
      option_reply (fd, option, 1, NULL, 0);
      break;
    }
    case 6: case 7: {           /* INFO, GO: size, read-only */
      char info[12] = { 0 };
      uint64_t size = htobe64 (export_size);
      memcpy (info + 2, &size, 8);
      info[11] = 3;             /* HAS_FLAGS | READ_ONLY */
      option_reply (fd, option, 3, info, sizeof info);
      option_reply (fd, option, 1, NULL, 0);
      if (option == 7)
        return true;
      break;
    }
    case 2:                     /* ABORT */
      option_reply (fd, option, 1, NULL, 0);
      return false;
    default:
      option_reply (fd, option, UINT32_C (0x80000001), NULL, 0);
    }
  }
}

static void
serve (int fd)
{
  char req[28];

  if (!handshake (fd))
    return;
  while (read_all (fd, req, sizeof req)) {
    uint16_t type;
    uint64_t off;

    memcpy (&type, req + 6, 2);
    memcpy (&off, req + 16, 8);
    type = be16toh (type);
    off = be64toh (off);
    if (type == 2)              /* DISC */
      return;
    if (type == 7 && off % STEP == 0 && off / STEP < nreplies
        && replies[off / STEP].buf) {
      struct reply *r = &replies[off / STEP];
      memcpy (r->buf + 8, req + 8, 8);
      write_all (fd, r->buf, r->len);
    }
    else {                      /* anything else: simple reply, EINVAL */
      char simple[16];
      put32 (simple, 0x67446698);
      put32 (simple + 4, 22);
      memcpy (simple + 8, req + 8, 8);
      write_all (fd, simple, sizeof simple);
    }
  }
}

int
main (int argc, char *argv[])
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int sock;

  if (argc != 3 || strlen (argv[1]) >= sizeof addr.sun_path) {
    fprintf (stderr, "usage: map-floor-server SOCKET SOURCE-URI\n");
    exit (EXIT_FAILURE);
  }
  fetch (argv[2]);
  strcpy (addr.sun_path, argv[1]);
  unlink (argv[1]);
  sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock == -1 || bind (sock, (struct sockaddr *) &addr, sizeof addr) == -1
      || listen (sock, 8) == -1) {
    perror (argv[1]);
    exit (EXIT_FAILURE);
  }
  for (;;) {
    int fd = accept (sock, NULL, NULL);

    if (fd >= 0) {
      serve (fd);
      close (fd);
    }
  }
}
