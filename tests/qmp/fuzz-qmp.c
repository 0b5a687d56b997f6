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

/* libFuzzer harness for the control socket's parser and dispatcher:
 * the bytes of one input are fed to a fresh QMP session (in pieces whose
 * sizes come from the input, as reads would split them), with a node
 * "disk0" whose dirty-bitmaps service is the dirty filter's own
 * (filters/dirty/control.c over the real bitmap model, no store).  Every
 * command runs as on the socket; answers are parsed back as JSON.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "dirty-bitmaps-service.h"

/* The harness's node, from fuzz-qmp-node.c. */
extern const struct dirty_bitmaps_service *fuzz_node_new (void);
extern void fuzz_node_free (void);
static const struct dirty_bitmaps_service *service;

void
control_request_quit (void)
{
}

static int
output (void *opaque, const char *msg, size_t len)
{
  json_object *obj;

  (void) opaque;
  /* Every answer must be one valid JSON object. */
  obj = json_tokener_parse (msg);
  if (obj == NULL || strlen (msg) != len)
    abort ();
  /* FUZZ_QMP_PRINT=1: show the answers (to check the seeds). */
  if (getenv ("FUZZ_QMP_PRINT"))
    fprintf (stderr, "%s\n", msg);
  json_object_put (obj);
  return 0;
}

int
control_nodes_get (struct control_node **nodes, size_t *n,
                   struct qmp_error *err)
{
  *nodes = calloc (1, sizeof **nodes);
  if (*nodes == NULL || control_node_find ("disk0", *nodes, err) == -1) {
    free (*nodes);
    return -1;
  }
  *n = 1;
  return 0;
}

void
control_nodes_put (struct control_node *nodes, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    control_node_put (&nodes[i]);
  free (nodes);
}

int
control_node_find (const char *name, struct control_node *node,
                   struct qmp_error *err)
{
  if (strcmp (name, "disk0") != 0) {
    qmp_error_set (err, QMP_GENERIC_ERROR,
                   "Cannot find device='%s' nor node-name='%s'", name, name);
    return -1;
  }
  memset (node, 0, sizeof *node);
  node->node_name = strdup ("disk0");
  node->export_name = strdup ("disk0");
  node->drv = strdup ("memory");
  node->bitmaps = service;
  return 0;
}

void
control_node_put (struct control_node *node)
{
  free (node->node_name);
  free (node->export_name);
  free (node->drv);
  memset (node, 0, sizeof *node);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct qmp_session *s;
  size_t chunk, off = 0;

  service = fuzz_node_new ();
  s = qmp_session_new (output, NULL);
  if (s == NULL)
    abort ();
  qmp_session_greet (s);
  /* The first byte picks the read size (1..256 bytes). */
  chunk = size ? (size_t) data[0] + 1 : 1;
  while (off < size) {
    size_t n = size - off < chunk ? size - off : chunk;

    if (qmp_session_feed (s, (const char *) data + off, n) == -1)
      break;
    off += n;
  }
  qmp_session_free (s);
  fuzz_node_free ();
  return 0;
}
