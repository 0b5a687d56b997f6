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

/* nbdcbt server: the block commands of the control socket.
 *
 * query-block, query-named-block-nodes, block-dirty-bitmap-add, -remove,
 * -clear, -enable, -disable, -merge and x-debug-block-dirty-bitmap-sha256,
 * with QEMU's arguments, checks and messages (qapi/block-core.json,
 * block/monitor/bitmap-qmp-cmds.c).  Each bitmap command is also a
 * transaction action: the command is the action prepared and committed
 * at once.  The bitmaps themselves live in the dirty filter of each
 * export's chain, reached through its "dirty-bitmaps" service.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "jobs.h"
#include "dirty-bitmaps-service.h"

/* A node that tracks changes, or QEMU's lookup error: add looks the node
 * up as a device or node ("Cannot find device=..."), the commands on an
 * existing bitmap through block_dirty_bitmap_lookup ("Node ... not
 * found").
 */
static int
find_node (const char *name, struct control_node *node, bool for_add,
           struct qmp_error *err)
{
  if (control_node_find (name, node, err) == -1) {
    if (!for_add)
      qmp_error_set (err, QMP_GENERIC_ERROR, "Node '%s' not found", name);
    return -1;
  }
  if (node->bitmaps == NULL) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "Node '%s' has no dirty bitmaps "
                   "(its chain has no dirty filter)", name);
    control_node_put (node);
    return -1;
  }
  return 0;
}

static int
service_error (struct qmp_error *err, char *msg)
{
  if (msg == NULL && asprintf (&msg, "%s", strerror (errno)) == -1)
    msg = NULL;
  qmp_error_take (err, QMP_GENERIC_ERROR, msg);
  return -1;
}

static int
check_grouped (bool grouped, const char *action, struct qmp_error *err)
{
  if (grouped) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "Action '%s' does not support "
                   "Transaction property completion-mode = grouped", action);
    return -1;
  }
  return 0;
}

/* BlockDirtyBitmap {node, name}: remove, clear, enable, disable. */
static const struct control_arg bitmap_spec[] = {
  { "node", ARG_STR, false },
  { "name", ARG_STR, false },
  CONTROL_ARGS_END
};

static const struct control_arg add_spec[] = {
  { "node", ARG_STR, false },
  { "name", ARG_STR, false },
  { "granularity", ARG_UINT32, true },
  { "persistent", ARG_BOOL, true },
  { "disabled", ARG_BOOL, true },
  CONTROL_ARGS_END
};

static const struct control_arg merge_spec[] = {
  { "node", ARG_STR, false },
  { "target", ARG_STR, false },
  { "bitmaps", ARG_BITMAP_SOURCES, false },
  CONTROL_ARGS_END
};

static const struct control_arg no_args[] = { CONTROL_ARGS_END };

static int
prepare_add (json_object *args, bool grouped, struct control_action *act,
             struct qmp_error *err)
{
  const char *node = control_arg_str (args, "node");
  const char *name = control_arg_str (args, "name");
  struct dirty_bitmap_opts opts = { 0 };
  char *msg = NULL;

  if (check_grouped (grouped, "block-dirty-bitmap-add", err) == -1)
    return -1;
  /* The name before the node, as QEMU checks them. */
  if (name[0] == '\0') {
    qmp_error_set (err, QMP_GENERIC_ERROR, "Bitmap name cannot be empty");
    return -1;
  }
  if (find_node (node, &act->node, true, err) == -1)
    return -1;
  act->svc = act->node.bitmaps;
  if (control_arg_has (args, "granularity")) {
    uint64_t g = control_arg_uint (args, "granularity", 0);

    if (g < 512 || (g & (g - 1)) != 0) {
      qmp_error_set (err, QMP_GENERIC_ERROR,
                     "Granularity must be power of 2 and at least 512");
      return -1;
    }
    opts.granularity = g;
  }
  opts.persistent = control_arg_bool (args, "persistent", false);
  opts.disabled = control_arg_bool (args, "disabled", false);
  if (act->svc->add (act->svc->opaque, node, name, &opts, &act->action,
                     &msg) == -1)
    return service_error (err, msg);
  return 0;
}

/* The four {node, name} actions. */
typedef int simple_action_fn (void *opaque, const char *name,
                              struct dirty_bitmaps_action **action,
                              char **errp);

static int
prepare_simple (json_object *args, struct control_action *act,
                size_t offset, struct qmp_error *err)
{
  const char *node = control_arg_str (args, "node");
  const char *name = control_arg_str (args, "name");
  simple_action_fn *fn;
  char *msg = NULL;

  if (find_node (node, &act->node, false, err) == -1)
    return -1;
  act->svc = act->node.bitmaps;
  fn = *(simple_action_fn **) ((const char *) act->svc + offset);
  if (fn (act->svc->opaque, name, &act->action, &msg) == -1)
    return service_error (err, msg);
  return 0;
}

#define SIMPLE(fn, action_name, member)                                   \
  static int                                                              \
  fn (json_object *args, bool grouped, struct control_action *act,        \
      struct qmp_error *err)                                              \
  {                                                                       \
    if (check_grouped (grouped, action_name, err) == -1)                  \
      return -1;                                                          \
    return prepare_simple (args, act,                                     \
                           offsetof (struct dirty_bitmaps_service,        \
                                     member), err);                       \
  }
SIMPLE (prepare_remove, "block-dirty-bitmap-remove", remove)
SIMPLE (prepare_clear, "block-dirty-bitmap-clear", clear)
SIMPLE (prepare_enable, "block-dirty-bitmap-enable", enable)
SIMPLE (prepare_disable, "block-dirty-bitmap-disable", disable)

static int
prepare_merge (json_object *args, bool grouped, struct control_action *act,
               struct qmp_error *err)
{
  const char *node = control_arg_str (args, "node");
  const char *target = control_arg_str (args, "target");
  json_object *bitmaps = json_object_object_get (args, "bitmaps");
  size_t i, n = json_object_array_length (bitmaps);
  struct dirty_bitmaps_source *sources = NULL;
  struct control_node *nodes = NULL;
  char *msg = NULL;
  int r = -1;

  if (check_grouped (grouped, "block-dirty-bitmap-merge", err) == -1)
    return -1;
  if (find_node (node, &act->node, false, err) == -1)
    return -1;
  act->svc = act->node.bitmaps;

  sources = calloc (n + 1, sizeof *sources);
  nodes = calloc (n + 1, sizeof *nodes);
  if (sources == NULL || nodes == NULL) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
    goto out;
  }
  for (i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (bitmaps, i);

    if (json_object_is_type (e, json_type_string)) {
      sources[i].service = act->svc;
      sources[i].name = json_object_get_string (e);
      continue;
    }
    /* {node, name}: a bitmap of any node that tracks changes. */
    if (find_node (control_arg_str (e, "node"), &nodes[i], false, err) == -1)
      goto out;
    sources[i].service = nodes[i].bitmaps;
    sources[i].name = control_arg_str (e, "name");
  }
  if (act->svc->merge (act->svc->opaque, target, sources, n, &act->action,
                       &msg) == -1) {
    service_error (err, msg);
    goto out;
  }
  r = 0;
 out:
  for (i = 0; nodes && i < n; i++)
    if (nodes[i].node_name)
      control_node_put (&nodes[i]);
  free (nodes);
  free (sources);
  return r;
}

static int
prepare_abort (json_object *args, bool grouped, struct control_action *act,
               struct qmp_error *err)
{
  (void) args;
  (void) grouped;
  (void) act;
  qmp_error_set (err, QMP_GENERIC_ERROR,
                 "Transaction aborted using Abort action");
  return -1;
}

/* backup-begin's arguments, here with the other actions' so that the
 * transaction parser (and its fuzz harness) checks them without the
 * session code (jobs.c).
 */
const struct control_arg backup_begin_spec[] = {
  { "node", ARG_STR, false },
  { "bitmap", ARG_STR, true },
  { "id", ARG_STR, true },
  { "export-name", ARG_STR, true },
  { "delta", ARG_BOOL, true },
  { "sync", ARG_STR, true },
  { "bitmap-mode", ARG_STR, true },
  { "end-on-disconnect", ARG_BOOL, true },
  CONTROL_ARGS_END
};

static const struct control_action_type action_types[] = {
  { "abort", no_args, prepare_abort },
  { "block-dirty-bitmap-add", add_spec, prepare_add },
  { "block-dirty-bitmap-remove", bitmap_spec, prepare_remove },
  { "block-dirty-bitmap-clear", bitmap_spec, prepare_clear },
  { "block-dirty-bitmap-enable", bitmap_spec, prepare_enable },
  { "block-dirty-bitmap-disable", bitmap_spec, prepare_disable },
  { "block-dirty-bitmap-merge", merge_spec, prepare_merge },
  { "backup-begin", backup_begin_spec, prepare_backup_begin },
};

const struct control_action_type *
control_action_find (const char *type)
{
  size_t i;

  for (i = 0; i < sizeof action_types / sizeof action_types[0]; i++)
    if (strcmp (action_types[i].name, type) == 0)
      return &action_types[i];
  return NULL;
}

void
control_action_finish (struct control_action *act, bool commit)
{
  if (act->finish) {
    act->finish (act->opaque, commit);
    act->finish = NULL;
  }
  if (act->action) {
    if (commit)
      act->svc->commit (act->action);
    else
      act->svc->abort (act->action);
    act->action = NULL;
  }
  if (act->node.node_name)
    control_node_put (&act->node);
}

/* A bitmap command on its own: the action, committed at once. */
static json_object *
run_action (const char *type, json_object *args, struct qmp_error *err)
{
  const struct control_action_type *t = control_action_find (type);

  if (control_args_check (args, t->spec, "", err) == -1)
    return NULL;
  return control_run_action (t, args, err);
}

json_object *
qmp_block_dirty_bitmap_add (json_object *args, struct qmp_error *err)
{
  return run_action ("block-dirty-bitmap-add", args, err);
}

json_object *
qmp_block_dirty_bitmap_remove (json_object *args, struct qmp_error *err)
{
  return run_action ("block-dirty-bitmap-remove", args, err);
}

json_object *
qmp_block_dirty_bitmap_clear (json_object *args, struct qmp_error *err)
{
  return run_action ("block-dirty-bitmap-clear", args, err);
}

json_object *
qmp_block_dirty_bitmap_enable (json_object *args, struct qmp_error *err)
{
  return run_action ("block-dirty-bitmap-enable", args, err);
}

json_object *
qmp_block_dirty_bitmap_disable (json_object *args, struct qmp_error *err)
{
  return run_action ("block-dirty-bitmap-disable", args, err);
}

json_object *
qmp_block_dirty_bitmap_merge (json_object *args, struct qmp_error *err)
{
  return run_action ("block-dirty-bitmap-merge", args, err);
}

json_object *
qmp_x_debug_block_dirty_bitmap_sha256 (json_object *args,
                                       struct qmp_error *err)
{
  struct control_node node;
  char sha[65], *msg = NULL;
  json_object *ret;
  int r;

  if (control_args_check (args, bitmap_spec, "", err) == -1)
    return NULL;
  if (find_node (control_arg_str (args, "node"), &node, false, err) == -1)
    return NULL;
  r = node.bitmaps->sha256 (node.bitmaps->opaque,
                            control_arg_str (args, "name"), sha, &msg);
  control_node_put (&node);
  if (r == -1) {
    service_error (err, msg);
    return NULL;
  }
  ret = json_object_new_object ();
  if (ret)
    json_object_object_add (ret, "sha256", json_object_new_string (sha));
  return ret;
}

/* BlockDirtyInfo list, NULL with *ERR on failure. */
static json_object *
dirty_info_list (const struct dirty_bitmaps_service *svc,
                 struct qmp_error *err)
{
  struct dirty_bitmap_info *info = NULL;
  json_object *list;
  size_t i, n = 0;

  if (svc->list (svc->opaque, &info, &n) == -1) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (errno));
    return NULL;
  }
  list = json_object_new_array ();
  for (i = 0; list && i < n; i++) {
    json_object *b = json_object_new_object ();

    if (b == NULL)
      break;
    json_object_object_add (b, "name", json_object_new_string (info[i].name));
    json_object_object_add (b, "recording",
                            json_object_new_boolean (info[i].recording));
    json_object_object_add (b, "persistent",
                            json_object_new_boolean (info[i].persistent));
    json_object_object_add (b, "busy",
                            json_object_new_boolean (info[i].busy));
    json_object_object_add (b, "granularity",
                            json_object_new_uint64 (info[i].granularity));
    json_object_object_add (b, "count",
                            json_object_new_uint64 (info[i].count));
    /* QEMU sends "inconsistent" only when it is true. */
    if (info[i].inconsistent)
      json_object_object_add (b, "inconsistent",
                              json_object_new_boolean (true));
    json_object_array_add (list, b);
  }
  svc->list_free (info, n);
  if (list == NULL || i < n) {
    json_object_put (list);
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
    return NULL;
  }
  return list;
}

/* BlockDeviceInfo for NODE: the fields nbdcbt has data for. */
static json_object *
node_info (const struct control_node *node, struct qmp_error *err)
{
  json_object *o = json_object_new_object ();

  if (o == NULL) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
    return NULL;
  }
  json_object_object_add (o, "node-name",
                          json_object_new_string (node->node_name));
  json_object_object_add (o, "drv", json_object_new_string (node->drv));
  json_object_object_add (o, "ro", json_object_new_boolean (node->read_only));
  json_object_object_add (o, "encrypted", json_object_new_boolean (false));
  json_object_object_add (o, "backing_file_depth", json_object_new_int (0));
  json_object_object_add (o, "detect_zeroes", json_object_new_string ("off"));
  if (node->bitmaps) {
    json_object *image = json_object_new_object ();
    json_object *list;

    if (image) {
      json_object_object_add (image, "virtual-size",
                              json_object_new_uint64
                              (node->bitmaps->size (node->bitmaps->opaque)));
      json_object_object_add (image, "format",
                              json_object_new_string (node->drv));
      json_object_object_add (o, "image", image);
    }
    list = dirty_info_list (node->bitmaps, err);
    if (list == NULL) {
      json_object_put (o);
      return NULL;
    }
    /* QEMU leaves the member out when the node has no bitmap. */
    if (json_object_array_length (list) > 0)
      json_object_object_add (o, "dirty-bitmaps", list);
    else
      json_object_put (list);
  }
  return o;
}

static const struct control_arg query_nodes_spec[] = {
  { "flat", ARG_BOOL, true },
  CONTROL_ARGS_END
};

json_object *
qmp_query_named_block_nodes (json_object *args, struct qmp_error *err)
{
  struct control_node *nodes = NULL;
  json_object *list = NULL;
  size_t i, n = 0;

  if (control_args_check (args, query_nodes_spec, "", err) == -1)
    return NULL;
  if (control_nodes_get (&nodes, &n, err) == -1)
    return NULL;
  list = json_object_new_array ();
  for (i = 0; list && i < n; i++) {
    json_object *o = node_info (&nodes[i], err);

    if (o == NULL) {
      json_object_put (list);
      list = NULL;
      break;
    }
    json_object_array_add (list, o);
  }
  control_nodes_put (nodes, n);
  return list;
}

/* query-block: one BlockInfo per export (QEMU lists named devices; an
 * export is what nbdcbt has in their place, so "device" is its name).
 */
json_object *
qmp_query_block (json_object *args, struct qmp_error *err)
{
  struct control_node *nodes = NULL;
  json_object *list = NULL;
  size_t i, n = 0;

  if (control_args_check (args, no_args, "", err) == -1)
    return NULL;
  if (control_nodes_get (&nodes, &n, err) == -1)
    return NULL;
  list = json_object_new_array ();
  for (i = 0; list && i < n; i++) {
    json_object *b = json_object_new_object ();
    json_object *inserted = node_info (&nodes[i], err);

    if (b == NULL || inserted == NULL) {
      json_object_put (b);
      json_object_put (inserted);
      json_object_put (list);
      list = NULL;
      break;
    }
    json_object_object_add (b, "device",
                            json_object_new_string (nodes[i].export_name));
    json_object_object_add (b, "locked", json_object_new_boolean (false));
    json_object_object_add (b, "removable", json_object_new_boolean (false));
    json_object_object_add (b, "type", json_object_new_string ("unknown"));
    json_object_object_add (b, "inserted", inserted);
    json_object_array_add (list, b);
  }
  control_nodes_put (nodes, n);
  return list;
}
