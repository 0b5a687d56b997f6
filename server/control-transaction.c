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

/* nbdcbt server: the transaction command (qapi/transaction.json).
 *
 * All or nothing, as QEMU's qmp_transaction: every action's arguments are
 * checked before anything runs; then the actions are prepared (applied)
 * in order, and if one fails the ones before it are aborted (undone) in
 * reverse order and its error is the command's; otherwise all are
 * committed.  Every node's write path is quiesced meanwhile, so an undo
 * restores a bitmap exactly, and no NBD client can observe a half-applied
 * transaction (block status reads the bitmaps between writes too, but a
 * reader sees each action whole: the dispatcher runs one command at a
 * time and each action applies under its bitmap's lock).
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "dirty-bitmaps-service.h"
#include "fleece-service.h"

static const struct control_arg transaction_spec[] = {
  { "actions", ARG_ARRAY, false },
  { "properties", ARG_OBJECT, true },
  CONTROL_ARGS_END
};

static const struct control_arg properties_spec[] = {
  { "completion-mode", ARG_STR, true },
  CONTROL_ARGS_END
};

static const struct control_arg action_spec[] = {
  { "type", ARG_STR, false },
  { "data", ARG_OBJECT, false },
  CONTROL_ARGS_END
};

/* Check every action: {"type", "data"} with data as the type wants. */
static int
check_actions (json_object *actions, struct qmp_error *err)
{
  size_t i, n = json_object_array_length (actions);

  for (i = 0; i < n; i++) {
    json_object *a = json_object_array_get_idx (actions, i);
    const struct control_action_type *t;
    char prefix[64];
    const char *type;

    snprintf (prefix, sizeof prefix, "actions[%zu]", i);
    if (!json_object_is_type (a, json_type_object)) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Invalid parameter type for "
                     "'%s', expected: object", prefix);
      return -1;
    }
    /* The discriminator first, then the branch. */
    if (!json_object_object_get_ex (a, "type", NULL)) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter '%s.type' is "
                     "missing", prefix);
      return -1;
    }
    if (!json_object_is_type (json_object_object_get (a, "type"),
                              json_type_string)) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Invalid parameter type for "
                     "'%s.type', expected: string", prefix);
      return -1;
    }
    type = control_arg_str (a, "type");
    t = control_action_find (type);
    if (t == NULL) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter 'type' does not "
                     "accept value '%s'", type);
      return -1;
    }
    if (control_args_check (a, action_spec, prefix, err) == -1)
      return -1;
    snprintf (prefix, sizeof prefix, "actions[%zu].data", i);
    if (control_args_check (json_object_object_get (a, "data"), t->spec,
                            prefix, err) == -1)
      return -1;
  }
  return 0;
}

/* Hold every node's writes: the fleece filter's gate first (it is above
 * the dirty filter, and a write holds it while it waits to be marked),
 * then the dirty filter's; let them go in the reverse order.  Holding
 * the fleece gate also makes the backup-begin actions of a transaction
 * one instant.
 */
static void
quiesce (struct control_node *nodes, size_t n, bool on)
{
  size_t i;

  for (i = 0; i < n; i++) {
    const struct dirty_bitmaps_service *svc = nodes[i].bitmaps;
    const struct fleece_service *f = nodes[i].fleece;

    if (on) {
      if (f)
        f->quiesce (f->fleece);
      if (svc)
        svc->quiesce (svc->opaque);
    }
    else {
      if (svc)
        svc->resume (svc->opaque);
      if (f)
        f->resume (f->fleece);
    }
  }
}

/* Prepare actions TYPES[i] with data DATA[i] in order, with every node
 * quiesced; then commit them all, or, if one fails, abort the ones
 * prepared before it in reverse order (its error is the answer).
 */
static json_object *
apply_actions (size_t n, const struct control_action_type *const *types,
               json_object *const *data, bool grouped, struct qmp_error *err)
{
  struct control_action *acts;
  struct control_node *nodes = NULL;
  size_t i, nnodes = 0, done = 0;
  json_object *ret = NULL;

  acts = calloc (n + 1, sizeof *acts);
  if (acts == NULL) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
    return NULL;
  }
  if (control_nodes_get (&nodes, &nnodes, err) == -1) {
    free (acts);
    return NULL;
  }

  quiesce (nodes, nnodes, true);
  for (i = 0; i < n; i++) {
    if (types[i]->prepare (data[i], grouped, &acts[i], err) == -1) {
      control_action_finish (&acts[i], false);
      break;
    }
    done++;
  }
  if (done == n) {
    for (i = 0; i < n; i++)
      control_action_finish (&acts[i], true);
    ret = json_object_new_object ();
  }
  else {
    while (done > 0)
      control_action_finish (&acts[--done], false);
  }
  quiesce (nodes, nnodes, false);

  control_nodes_put (nodes, nnodes);
  free (acts);
  return ret;
}

/* A bitmap command outside a transaction (block-dirty-bitmap-clear...):
 * quiesced as in a transaction.  A clear must wait for the writes the
 * dirty filter has marked and not finished: cleared before such a
 * write's data lands, the bitmap would lose it.  QEMU needs no drain
 * there, because it marks a write once it is done.
 */
json_object *
control_run_action (const struct control_action_type *t, json_object *args,
                    struct qmp_error *err)
{
  return apply_actions (1, &t, &args, false, err);
}

json_object *
qmp_transaction (json_object *args, struct qmp_error *err)
{
  json_object *actions, *props;
  const struct control_action_type **types;
  json_object **data;
  size_t i, n;
  bool grouped = false;
  json_object *ret = NULL;

  if (control_args_check (args, transaction_spec, "", err) == -1)
    return NULL;
  props = json_object_object_get (args, "properties");
  if (props) {
    const char *mode;

    if (control_args_check (props, properties_spec, "properties",
                            err) == -1)
      return NULL;
    mode = control_arg_str (props, "completion-mode");
    if (mode && strcmp (mode, "grouped") == 0)
      grouped = true;
    else if (mode && strcmp (mode, "individual") != 0) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter 'completion-mode' "
                     "does not accept value '%s'", mode);
      return NULL;
    }
  }
  actions = json_object_object_get (args, "actions");
  if (check_actions (actions, err) == -1)
    return NULL;
  n = json_object_array_length (actions);

  types = calloc (n + 1, sizeof *types);
  data = calloc (n + 1, sizeof *data);
  if (types == NULL || data == NULL)
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
  else {
    for (i = 0; i < n; i++) {
      json_object *a = json_object_array_get_idx (actions, i);

      types[i] = control_action_find (control_arg_str (a, "type"));
      data[i] = json_object_object_get (a, "data");
    }
    ret = apply_actions (n, types, data, grouped, err);
  }
  free (types);
  free (data);
  return ret;
}
