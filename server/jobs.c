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

/* nbdcbt server: the backup session commands of the control socket.
 *
 *   backup-begin {node, bitmap?, id?, export-name?, delta?, sync?,
 *                 bitmap-mode?, end-on-disconnect?}
 *       -> {id, export, delta-export?, bitmap?}
 *   backup-end {id, success}
 *   query-backups -> [{id, node, bitmap?, export, delta-export?, grouped,
 *                      size, granularity, needed, copied, store-bytes,
 *                      failure?}]
 *   transaction action "backup-begin" (the same data), with
 *   "properties": {"completion-mode": "grouped"} for grouped completion.
 *
 * Events: BACKUP_SESSION_COMPLETED {id, node, bitmap?, success,
 * bitmap-action: "abdicate" | "reclaim" | "none", error?} when a
 * session's bitmap has been dealt with; BACKUP_GROUP_COMPLETED {ids,
 * success} once when every member of a grouped transaction has ended.
 *
 * See sessions.h for what the commands do.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"
#include "cleanup.h"
#include "control.h"
#include "jobs.h"
#include "sessions.h"

/* The arguments of backup-begin, already checked against BEGIN_SPEC. */
static int
begin_args (json_object *args, struct backup_begin_args *a,
            struct qmp_error *err)
{
  const char *mode = control_arg_str (args, "bitmap-mode");
  const char *sync = control_arg_str (args, "sync");

  memset (a, 0, sizeof *a);
  a->node = control_arg_str (args, "node");
  a->bitmap = control_arg_str (args, "bitmap");
  a->id = control_arg_str (args, "id");
  a->export_name = control_arg_str (args, "export-name");
  a->delta = control_arg_bool (args, "delta", false);
  a->mode = BITMAP_MODE_ON_SUCCESS;
  if (sync) {
    if (strcmp (sync, "full") == 0)
      a->sync_full = true;
    else if (strcmp (sync, "bitmap") != 0) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter 'sync' does not "
                     "accept value '%s'", sync);
      return -1;
    }
    else if (a->bitmap == NULL) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "must provide a valid bitmap "
                     "name for 'bitmap' sync mode");
      return -1;
    }
  }
  if (mode) {
    if (strcmp (mode, "on-success") == 0)
      a->mode = BITMAP_MODE_ON_SUCCESS;
    else if (strcmp (mode, "always") == 0)
      a->mode = BITMAP_MODE_ALWAYS;
    else if (strcmp (mode, "never") == 0)
      a->mode = BITMAP_MODE_NEVER;
    else {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter 'bitmap-mode' does "
                     "not accept value '%s'", mode);
      return -1;
    }
    /* As QEMU's backup: bitmap-mode if and only if bitmap. */
    if (a->bitmap == NULL) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Cannot specify bitmap sync "
                     "mode without a bitmap");
      return -1;
    }
  }
  if (control_arg_bool (args, "end-on-disconnect", false))
    a->owner = control_current_client ();
  return 0;
}

static json_object *
begin_reply (struct backup_session *s)
{
  json_object *r = json_object_new_object ();

  if (r == NULL)
    return NULL;
  json_object_object_add (r, "id", json_object_new_string (session_id (s)));
  json_object_object_add (r, "export",
                          json_object_new_string (session_export (s)));
  if (session_delta_export (s))
    json_object_object_add (r, "delta-export",
                            json_object_new_string (session_delta_export (s)));
  if (session_bitmap (s))
    json_object_object_add (r, "bitmap",
                            json_object_new_string (session_bitmap (s)));
  return r;
}

json_object *
qmp_backup_begin (json_object *args, struct qmp_error *err)
{
  struct backup_begin_args a;
  struct backup_session *s;
  json_object *r;
  char *msg;

  if (control_args_check (args, backup_begin_spec, "", err) == -1
      || begin_args (args, &a, err) == -1)
    return NULL;
  s = session_prepare (&a, &msg);
  if (s == NULL) {
    qmp_error_take (err, QMP_GENERIC_ERROR, msg);
    return NULL;
  }
  /* Build the answer first: S is the registry's once begun. */
  r = begin_reply (s);
  if (sessions_begin (&s, 1, false, &msg) == -1) {
    json_object_put (r);
    qmp_error_take (err, QMP_GENERIC_ERROR, msg);
    return NULL;
  }
  return r;
}

static const struct control_arg end_spec[] = {
  { "id", ARG_STR, false },
  { "success", ARG_BOOL, false },
  CONTROL_ARGS_END
};

json_object *
qmp_backup_end (json_object *args, struct qmp_error *err)
{
  char *msg;

  if (control_args_check (args, end_spec, "", err) == -1)
    return NULL;
  if (session_end (control_arg_str (args, "id"),
                   control_arg_bool (args, "success", false), &msg) == -1) {
    qmp_error_take (err, QMP_GENERIC_ERROR, msg);
    return NULL;
  }
  return json_object_new_object ();
}

static const struct control_arg no_args[] = { CONTROL_ARGS_END };

json_object *
qmp_query_backups (json_object *args, struct qmp_error *err)
{
  struct session_info *l;
  size_t i, n;
  json_object *list;

  if (control_args_check (args, no_args, "", err) == -1)
    return NULL;
  if (sessions_list (&l, &n) == -1) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "out of memory");
    return NULL;
  }
  list = json_object_new_array ();
  for (i = 0; list && i < n; i++) {
    json_object *o = json_object_new_object ();

    json_object_object_add (o, "id", json_object_new_string (l[i].id));
    json_object_object_add (o, "node", json_object_new_string (l[i].node));
    if (l[i].bitmap)
      json_object_object_add (o, "bitmap",
                              json_object_new_string (l[i].bitmap));
    json_object_object_add (o, "export",
                            json_object_new_string (l[i].export_name));
    if (l[i].delta_export)
      json_object_object_add (o, "delta-export",
                              json_object_new_string (l[i].delta_export));
    json_object_object_add (o, "grouped",
                            json_object_new_boolean (l[i].grouped));
    json_object_object_add (o, "size", json_object_new_int64 (l[i].size));
    json_object_object_add (o, "granularity",
                            json_object_new_int64 (l[i].granularity));
    json_object_object_add (o, "needed",
                            json_object_new_int64 (l[i].needed));
    json_object_object_add (o, "copied",
                            json_object_new_int64 (l[i].copied));
    json_object_object_add (o, "store-bytes",
                            json_object_new_int64 (l[i].store_bytes));
    if (l[i].failure)
      json_object_object_add (o, "failure",
                              json_object_new_string (l[i].failure));
    json_object_array_add (list, o);
  }
  session_info_free (l, n);
  return list;
}

/* The transaction action.  All prepares of a transaction come before any
 * of its commits or aborts (control-transaction.c), and the transaction
 * holds every disk quiesced across them: the backup-begin actions of one
 * transaction share one instant, and with "grouped" one group, which is
 * open from the first prepare to the first finish.
 */
static struct group *building;

struct begin_action {
  struct backup_session *s;
  struct group *g;
  bool made_group;              /* the first grouped action made G */
};

static void
finish_begin (void *opaque, bool commit)
{
  struct begin_action *ba = opaque;
  CLEANUP_FREE char *msg = NULL;

  building = NULL;
  if (commit && session_publish (ba->s, ba->g, &msg) == 0) {
    free (ba);
    return;
  }
  if (commit)
    /* Too late to fail the transaction: say so, and fail the session
     * (it never was served; its bitmap is reclaimed).
     */
    nbdcbt_error ("transaction: backup session '%s': %s",
                  session_id (ba->s), msg ? msg : "cannot publish");
  session_abort (ba->s);
  /* An aborted transaction finishes its actions in reverse order: the
   * one that made the group is the last, and no session joined it.
   */
  if (!commit && ba->made_group)
    session_group_abandon (ba->g);
  free (ba);
}

int
prepare_backup_begin (json_object *data, bool grouped, struct control_action *act,
               struct qmp_error *err)
{
  struct backup_begin_args a;
  struct begin_action *ba;
  char *msg;

  if (begin_args (data, &a, err) == -1)
    return -1;
  ba = calloc (1, sizeof *ba);
  if (ba == NULL) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "out of memory");
    return -1;
  }
  ba->s = session_prepare (&a, &msg);
  if (ba->s == NULL) {
    free (ba);
    qmp_error_take (err, QMP_GENERIC_ERROR, msg);
    return -1;
  }
  if (session_instant (ba->s, &msg) == -1) {
    session_discard (ba->s);
    free (ba);
    qmp_error_take (err, QMP_GENERIC_ERROR, msg);
    return -1;
  }
  if (grouped) {
    if (building == NULL) {
      building = session_group_new ();
      ba->made_group = true;
    }
    ba->g = building;
  }
  act->opaque = ba;
  act->finish = finish_begin;
  return 0;
}


/* Events. */
static void
session_completed (const struct session_done *d)
{
  json_object *data = json_object_new_object ();

  if (data == NULL)
    return;
  json_object_object_add (data, "id", json_object_new_string (d->id));
  json_object_object_add (data, "node", json_object_new_string (d->node));
  if (d->bitmap)
    json_object_object_add (data, "bitmap",
                            json_object_new_string (d->bitmap));
  json_object_object_add (data, "success",
                          json_object_new_boolean (d->success));
  json_object_object_add (data, "bitmap-action",
                          json_object_new_string (d->bitmap == NULL ? "none"
                                                  : d->bitmap_synced
                                                  ? "abdicate"
                                                  : "reclaim"));
  if (d->bitmap && d->bitmap_synced && !d->success)
    json_object_object_add (data, "uncopied",
                            json_object_new_int64 (d->kept_uncopied));
  if (d->error)
    json_object_object_add (data, "error", json_object_new_string (d->error));
  control_event ("BACKUP_SESSION_COMPLETED", data);
}

static void
group_completed (const char *const *ids, size_t n, bool success)
{
  json_object *data = json_object_new_object ();
  json_object *list = json_object_new_array ();
  size_t i;

  if (data == NULL || list == NULL) {
    json_object_put (data);
    json_object_put (list);
    return;
  }
  for (i = 0; i < n; i++)
    json_object_array_add (list, json_object_new_string (ids[i]));
  json_object_object_add (data, "ids", list);
  json_object_object_add (data, "success", json_object_new_boolean (success));
  control_event ("BACKUP_GROUP_COMPLETED", data);
}

void
jobs_init (void)
{
  session_completed_hook = session_completed;
  group_completed_hook = group_completed;
}
