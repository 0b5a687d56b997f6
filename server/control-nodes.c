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

/* nbdcbt server: the nodes the control socket's commands name.
 *
 * A node is an export (exports.c): its node name, its export name, its
 * chain (the plugin's name is the node's "drv") and the dirty filter's
 * "dirty-bitmaps" service if the chain has one.  A node holds a
 * reference on its export, so an export removed meanwhile stays valid
 * until the command is done with it.
 *
 * The dirty filter creates its bitmaps when it first learns the export's
 * size, at the first open of the chain.  So that bitmaps can be queried
 * and added before any NBD client came, the first look at a node whose
 * bitmaps do not exist yet opens its chain once, read-only.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "control.h"
#include "dirty-bitmaps-service.h"
#include "fleece-service.h"

static int
node_fill (struct export *exp, struct control_node *node)
{
  const struct dirty_bitmaps_service *svc;
  struct nbdcbt_backend *b;

  memset (node, 0, sizeof *node);
  for (b = exp->top; b->next; b = b->next)
    ;
  node->node_name = strdup (exp->node_name);
  node->export_name = strdup (exp->name);
  node->drv = strdup (b->name);
  if (node->node_name == NULL || node->export_name == NULL
      || node->drv == NULL) {
    control_node_put (node);
    return -1;
  }
  node->read_only = exp->read_only || read_only;
  svc = export_get_service (exp, DIRTY_BITMAPS_SERVICE);
  if (svc && !svc->ready (svc->opaque)) {
    struct nbdcbt_context *c = backend_open (exp->top, true);

    if (c)
      backend_close (c);
    else
      nbdcbt_debug ("control: node %s: cannot open its chain",
                    exp->node_name);
  }
  node->bitmaps = svc;
  node->fleece = export_get_service (exp, FLEECE_SERVICE);
  node->ref = exp;             /* the caller's reference */
  return 0;
}

struct names {
  char **v;
  size_t n, cap;
};

static int
collect (struct export *exp, void *opaque)
{
  struct names *names = opaque;

  if (names->n == names->cap) {
    size_t cap = names->cap ? names->cap * 2 : 8;
    char **v = realloc (names->v, cap * sizeof *v);

    if (v == NULL)
      return -1;
    names->v = v;
    names->cap = cap;
  }
  names->v[names->n] = strdup (exp->node_name);
  if (names->v[names->n] == NULL)
    return -1;
  names->n++;
  return 0;
}

int
control_nodes_get (struct control_node **nodes, size_t *n,
                   struct qmp_error *err)
{
  struct names names = { 0 };
  size_t i, k = 0;
  int r = -1;

  *nodes = NULL;
  *n = 0;
  if (exports_foreach (collect, &names) != 0)
    goto out;
  *nodes = calloc (names.n + 1, sizeof **nodes);
  if (*nodes == NULL)
    goto out;
  for (i = 0; i < names.n; i++) {
    struct export *exp = export_get_by_node (names.v[i]);

    if (exp == NULL)
      continue;                 /* removed meanwhile */
    if (node_fill (exp, &(*nodes)[k]) == -1) {
      export_put (exp);
      control_nodes_put (*nodes, k);
      *nodes = NULL;
      goto out;
    }
    k++;
  }
  *n = k;
  r = 0;
 out:
  for (i = 0; i < names.n; i++)
    free (names.v[i]);
  free (names.v);
  if (r == -1)
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
  return r;
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
  struct export *exp = export_get_by_node (name);

  if (exp == NULL) {
    qmp_error_set (err, QMP_GENERIC_ERROR,
                   "Cannot find device='%s' nor node-name='%s'", name, name);
    return -1;
  }
  if (node_fill (exp, node) == -1) {
    export_put (exp);
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
    return -1;
  }
  return 0;
}

void
control_node_put (struct control_node *node)
{
  free (node->node_name);
  free (node->export_name);
  free (node->drv);
  if (node->ref)
    export_put (node->ref);
  memset (node, 0, sizeof *node);
}
