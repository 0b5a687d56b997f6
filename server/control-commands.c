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

/* nbdcbt server: the control socket's commands.
 *
 * A command is a function that checks its arguments (control_args_check)
 * and returns its "return" value, or NULL with an error; adding one is an
 * entry in the table below.  The dispatcher (control-qmp.c) runs one
 * command at a time.
 */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "jobs.h"

static pthread_mutex_t commands_lock = PTHREAD_MUTEX_INITIALIZER;

void
control_commands_lock (void)
{
  pthread_mutex_lock (&commands_lock);
}

void
control_commands_unlock (void)
{
  pthread_mutex_unlock (&commands_lock);
}

static const struct control_arg no_args[] = { CONTROL_ARGS_END };

static json_object *
qmp_query_version (json_object *args, struct qmp_error *err)
{
  if (control_args_check (args, no_args, "", err) == -1)
    return NULL;
  return control_version_object ();
}

static json_object *
qmp_query_commands (json_object *args, struct qmp_error *err)
{
  json_object *list;
  size_t i;

  if (control_args_check (args, no_args, "", err) == -1)
    return NULL;
  list = json_object_new_array ();
  for (i = 0; list && i < control_ncommands; i++) {
    json_object *c = json_object_new_object ();

    if (c == NULL) {
      json_object_put (list);
      return NULL;
    }
    json_object_object_add (c, "name",
                            json_object_new_string (control_commands[i].name));
    json_object_array_add (list, c);
  }
  return list;
}

/* quit: answer, then stop as on SIGTERM (connections finish, bitmaps are
 * stored).
 */
static json_object *
qmp_quit (json_object *args, struct qmp_error *err)
{
  if (control_args_check (args, no_args, "", err) == -1)
    return NULL;
  control_quit_after_reply ();
  return json_object_new_object ();
}

const struct control_command control_commands[] = {
  { "qmp_capabilities", NULL, true },
  { "query-version", qmp_query_version, false },
  { "query-commands", qmp_query_commands, false },
  { "quit", qmp_quit, false },
  { "query-block", qmp_query_block, false },
  { "backup-begin", qmp_backup_begin, false },
  { "backup-end", qmp_backup_end, false },
  { "query-backups", qmp_query_backups, false },
  { "query-named-block-nodes", qmp_query_named_block_nodes, false },
  { "block-dirty-bitmap-add", qmp_block_dirty_bitmap_add, false },
  { "block-dirty-bitmap-remove", qmp_block_dirty_bitmap_remove, false },
  { "block-dirty-bitmap-clear", qmp_block_dirty_bitmap_clear, false },
  { "block-dirty-bitmap-enable", qmp_block_dirty_bitmap_enable, false },
  { "block-dirty-bitmap-disable", qmp_block_dirty_bitmap_disable, false },
  { "block-dirty-bitmap-merge", qmp_block_dirty_bitmap_merge, false },
  { "x-debug-block-dirty-bitmap-sha256",
    qmp_x_debug_block_dirty_bitmap_sha256, false },
  { "transaction", qmp_transaction, false },
};
const size_t control_ncommands =
  sizeof control_commands / sizeof control_commands[0];

const struct control_command *
control_command_find (const char *name)
{
  size_t i;

  for (i = 0; i < control_ncommands; i++)
    if (strcmp (control_commands[i].name, name) == 0)
      return &control_commands[i];
  return NULL;
}
