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

/* Exports added and removed while the server runs (server/exports.c).
 *
 * The server's own main runs in a thread of this program (main.c is
 * compiled with main renamed to server_main), serving the memory plugin
 * on a Unix socket; this thread adds and removes exports through the
 * registry's functions, as backup sessions will, and checks what libnbd
 * clients see: the new export listed and served with its own instance,
 * a removed one gone for new clients and its connected client
 * disconnected after its requests were answered, duplicates refused,
 * node names looked up.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>

#include "internal.h"
#include "unit-test.h"

/* This file is built with -Dmain=server_main too: its own main is main. */
#undef main
extern int server_main (int argc, char *argv[]);


static char sock[256];
static int server_status = -1;

static void *
run_server (void *arg)
{
  char *argv[] = { (char *) "nbdcbt", (char *) "-f", (char *) "-U", sock,
                   (char *) "memory", (char *) "size=1M", NULL };

  optind = 1;
  server_status = server_main (6, argv);
  return NULL;
}

/* A client of export NAME, or NULL if the server refuses it. */
static struct nbd_handle *
client (const char *name)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL || nbd_set_export_name (h, name) == -1) {
    fprintf (stderr, "%s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  if (nbd_connect_unix (h, sock) == -1) {
    nbd_close (h);
    return NULL;
  }
  return h;
}

/* A memory export NAME of SIZE, served. */
static int
add_memory_export (const char *name, const char *node_name, const char *size)
{
  struct nbdcbt_backend *top = backend_chain_new ("memory", NULL, 0);
  struct export *exp;

  if (top == NULL)
    return -1;
  if (backend_config (top, "size", size) == -1
      || backend_config_complete (top) == -1) {
    backend_chain_free (top);
    return -1;
  }
  exp = export_new (name, node_name, NULL, top, false);
  if (exp == NULL)
    return -1;
  if (exports_add (exp) == -1) {
    export_free (exp);
    return -1;
  }
  return 0;
}

static int
count_export (void *opaque, const char *name, const char *description)
{
  int *n = opaque;

  (void) description;
  if (strcmp (name, "extra") == 0)
    (*n)++;
  return 0;
}

static bool
listed (const char *name)
{
  struct nbd_handle *h = nbd_create ();
  int n = 0;

  (void) name;
  if (h == NULL || nbd_set_opt_mode (h, true) == -1
      || nbd_connect_unix (h, sock) == -1
      || nbd_opt_list (h, (nbd_list_callback) { .callback = count_export,
                                                 .user_data = &n }) == -1) {
    fprintf (stderr, "list: %s\n", nbd_get_error ());
    exit (EXIT_FAILURE);
  }
  nbd_opt_abort (h);
  nbd_close (h);
  return n == 1;
}

int
main (void)
{
  const char *builddir = getenv ("top_builddir");
  char buf[512], path[1024];
  struct nbd_handle *h, *h2;
  struct export *exp;
  pthread_t tid;
  int i;

  if (builddir == NULL) {
    fprintf (stderr, "run through make check\n");
    return EXIT_FAILURE;
  }
  snprintf (path, sizeof path, "%s/plugins/memory/.libs", builddir);
  setenv ("NBDCBT_PLUGIN_PATH", path, 1);
  snprintf (sock, sizeof sock, "/tmp/nbdcbt-test-exports.%ld",
            (long) getpid ());
  unlink (sock);

  if (pthread_create (&tid, NULL, run_server, NULL) != 0) {
    perror ("pthread_create");
    return EXIT_FAILURE;
  }
  for (i = 0; i < 300 && access (sock, F_OK) != 0; i++)
    usleep (100 * 1000);
  /* The socket exists before it listens: wait for a real client. */
  for (h = NULL; i < 300 && (h = client ("")) == NULL; i++)
    usleep (100 * 1000);
  if (h == NULL) {
    fprintf (stderr, "the server did not start\n");
    return EXIT_FAILURE;
  }
  CHECK (nbd_get_size (h) == 1024 * 1024);

  /* The single export's node name. */
  exp = export_get_by_node ("disk");
  CHECK (exp != NULL && strcmp (exp->name, "") == 0);
  export_put (exp);

  /* Add an export with its own instance of the same plugin. */
  CHECK (!listed ("extra"));
  CHECK (client ("extra") == NULL);
  CHECK (add_memory_export ("extra", "extra-node", "2M") == 0);
  CHECK (listed ("extra"));
  exp = export_get_by_node ("extra-node");
  CHECK (exp != NULL && strcmp (exp->name, "extra") == 0);
  CHECK (exp != NULL && export_get_service (exp, "no-such-service") == NULL);
  export_put (exp);
  h2 = client ("extra");
  CHECK (h2 != NULL);
  if (h2 == NULL)
    return EXIT_FAILURE;
  CHECK (nbd_get_size (h2) == 2 * 1024 * 1024);
  memset (buf, 'x', sizeof buf);
  CHECK (nbd_pwrite (h2, buf, sizeof buf, 4096, 0) == 0);
  /* Its data is its own: the first export still reads zeroes. */
  CHECK (nbd_pread (h, buf, sizeof buf, 4096, 0) == 0 && buf[0] == 0);

  /* Duplicates are refused and change nothing. */
  CHECK (add_memory_export ("extra", "other-node", "1M") == -1);
  CHECK (add_memory_export ("other", "extra-node", "1M") == -1);
  CHECK (add_memory_export ("other", "9bad", "1M") == -1);
  CHECK (exports_count () == 2);

  /* Remove it while a client is connected: the client is disconnected,
   * new clients no longer find it, the other export is untouched.
   */
  CHECK (exports_remove ("extra") == 0);
  CHECK (nbd_pread (h2, buf, sizeof buf, 4096, 0) == -1);
  nbd_close (h2);
  CHECK (client ("extra") == NULL);
  CHECK (!listed ("extra"));
  CHECK (export_get_by_node ("extra-node") == NULL);
  CHECK (exports_remove ("extra") == -1 && errno == ENOENT);
  CHECK (nbd_pread (h, buf, sizeof buf, 0, 0) == 0);

  /* Added again: a new instance, a new (empty) disk. */
  CHECK (add_memory_export ("extra", NULL, "1M") == 0);
  h2 = client ("extra");
  CHECK (h2 != NULL);
  if (h2) {
    CHECK (nbd_get_size (h2) == 1024 * 1024);
    CHECK (nbd_pread (h2, buf, sizeof buf, 4096, 0) == 0 && buf[0] == 0);
    nbd_shutdown (h2, 0);
    nbd_close (h2);
  }
  nbd_shutdown (h, 0);
  nbd_close (h);

  set_quit ();
  pthread_join (tid, NULL);
  CHECK (server_status == 0);
  unlink (sock);
  if (failures) {
    fprintf (stderr, "%d failure(s)\n", failures);
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
