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

/* nbdcbt server: the control plane (--control=PATH), shared by its files.
 *
 *   control.c              the Unix socket, one thread per client, events
 *   control-qmp.c          one client's QMP session: framing, the envelope,
 *                          capabilities negotiation, dispatch
 *   control-args.c         argument checking with QEMU's messages
 *   control-commands.c     the command table; qmp_capabilities,
 *                          query-version, query-commands, quit
 *   control-block.c        query-block, query-named-block-nodes, the
 *                          block-dirty-bitmap-* commands and their
 *                          transaction actions
 *   control-transaction.c  transaction: prepare every action, then commit
 *                          all or abort all
 *   control-nodes.c        the nodes (exports) the commands name
 *
 * Adding a command: a function of type control_command_fn and one entry
 * in the table in control-commands.c.  Commands run one at a time (the
 * dispatcher holds one lock), so a command never sees another half done.
 */
#ifndef NBDCBT_CONTROL_H
#define NBDCBT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Largest QMP message a client may send (bytes); a longer one closes the
 * connection.  QEMU's own limit is far larger, but no command of ours
 * needs more than a few kilobytes.
 */
#define CONTROL_MAX_MESSAGE (1024 * 1024)
/* JSON nesting deeper than this is refused (QEMU: 1024). */
#define CONTROL_MAX_DEPTH 64
/* Clients connected at once; more are refused at accept. */
#define CONTROL_MAX_CLIENTS 16

/* QEMU's error classes. */
#define QMP_GENERIC_ERROR "GenericError"
#define QMP_COMMAND_NOT_FOUND "CommandNotFound"
#define QMP_DEVICE_NOT_FOUND "DeviceNotFound"

/* An error of a command: class and message, both malloc'd. */
struct qmp_error {
  const char *klass;             /* static */
  char *desc;
};
extern void qmp_error_set (struct qmp_error *err, const char *klass,
                           const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 3, 4)));
/* Take ownership of a malloc'd message (NULL: "out of memory"). */
extern void qmp_error_take (struct qmp_error *err, const char *klass,
                            char *desc);
extern void qmp_error_clear (struct qmp_error *err);

/* One client's session (control-qmp.c).  OUTPUT is called with each
 * complete message (no newline) to send; it returns -1 if the client is
 * gone.
 */
struct qmp_session;
typedef int qmp_output_fn (void *opaque, const char *msg, size_t len);
extern struct qmp_session *qmp_session_new (qmp_output_fn *output,
                                            void *opaque);
extern void qmp_session_free (struct qmp_session *s);
/* The greeting, sent once at connect. */
extern int qmp_session_greet (struct qmp_session *s);
/* Bytes from the client.  -1: the connection must be closed (the client
 * is gone, or sent a message longer than CONTROL_MAX_MESSAGE).
 */
extern int qmp_session_feed (struct qmp_session *s, const char *buf,
                             size_t len);
/* Whether the client has negotiated capabilities (receives events). */
extern bool qmp_session_negotiated (struct qmp_session *s);

/* Commands (control-commands.c). */
typedef json_object *control_command_fn (json_object *args,
                                         struct qmp_error *err);
struct control_command {
  const char *name;
  control_command_fn *fn;
  /* Accepted before qmp_capabilities (only qmp_capabilities itself). */
  bool before_negotiation;
};
extern const struct control_command *control_command_find (const char *name);
extern const struct control_command control_commands[];
extern const size_t control_ncommands;
/* Serialises commands (taken by the dispatcher). */
extern void control_commands_lock (void);
extern void control_commands_unlock (void);

/* control-block.c: the commands and the transaction actions. */
extern control_command_fn qmp_query_block, qmp_query_named_block_nodes,
  qmp_block_dirty_bitmap_add, qmp_block_dirty_bitmap_remove,
  qmp_block_dirty_bitmap_clear, qmp_block_dirty_bitmap_enable,
  qmp_block_dirty_bitmap_disable, qmp_block_dirty_bitmap_merge,
  qmp_x_debug_block_dirty_bitmap_sha256;
extern control_command_fn qmp_transaction;

/* Arguments (control-args.c).  The spec lists a command's members in
 * QEMU's schema order; checking reports the first problem as QEMU does:
 * a missing or mistyped member in schema order first, then an unexpected
 * one.  PREFIX names the enclosing member in messages ("actions[0].data"),
 * "" at top level.
 */
enum control_arg_type {
  ARG_STR,
  ARG_BOOL,
  ARG_UINT32,
  ARG_OBJECT,           /* checked by the command itself */
  ARG_ARRAY,            /* ditto */
  ARG_BITMAP_SOURCES,   /* [str | {node, name}] (BlockDirtyBitmapOrStr) */
};
struct control_arg {
  const char *name;
  enum control_arg_type type;
  bool optional;
};
#define CONTROL_ARGS_END { NULL, 0, false }
extern int control_args_check (json_object *args,
                               const struct control_arg *spec,
                               const char *prefix, struct qmp_error *err);
/* After a successful check: members by name (absent optional ones give
 * DEF / NULL).
 */
extern const char *control_arg_str (json_object *args, const char *name);
extern bool control_arg_bool (json_object *args, const char *name, bool def);
extern uint64_t control_arg_uint (json_object *args, const char *name,
                                  uint64_t def);
extern bool control_arg_has (json_object *args, const char *name);

/* The nodes commands name (control-nodes.c): one per export.  A node
 * holds a reference on its export until control_node_put.
 */
struct dirty_bitmaps_service;
struct fleece_service;
struct control_node {
  char *node_name;
  char *export_name;
  char *drv;                    /* the plugin's name */
  bool read_only;
  /* The dirty filter's service in the export's chain, or NULL. */
  const struct dirty_bitmaps_service *bitmaps;
  /* The fleece filter's (backup sessions), or NULL. */
  const struct fleece_service *fleece;
  void *ref;
};
/* Every node, in the order the exports were added. */
extern int control_nodes_get (struct control_node **nodes, size_t *n,
                              struct qmp_error *err);
extern void control_nodes_put (struct control_node *nodes, size_t n);
/* NAME or QEMU's "Cannot find device='NAME' nor node-name='NAME'". */
extern int control_node_find (const char *name, struct control_node *node,
                              struct qmp_error *err);
extern void control_node_put (struct control_node *node);

/* Transaction actions (control-block.c).  CHECK validates an action's
 * data (PREFIX for messages, e.g. "actions[0].data"); PREPARE applies it
 * and fills ACT, which control_action_finish then commits or aborts.
 * GROUPED: the transaction's completion-mode is "grouped".
 */
struct control_action {
  struct control_node node;
  const struct dirty_bitmaps_service *svc;
  struct dirty_bitmaps_action *action;
  /* Actions of other kinds (backup-begin): their own commit / abort. */
  void (*finish) (void *opaque, bool commit);
  void *opaque;
};
struct control_action_type {
  const char *name;
  const struct control_arg *spec;
  int (*prepare) (json_object *data, bool grouped,
                  struct control_action *act, struct qmp_error *err);
};
extern const struct control_action_type *control_action_find (
  const char *type);
extern void control_action_finish (struct control_action *act, bool commit);
/* control-transaction.c: one action outside a transaction, with the
 * nodes quiesced as a transaction quiesces them.
 */
extern json_object *control_run_action (const struct control_action_type *t,
                                        json_object *args,
                                        struct qmp_error *err);

/* control.c: events to every client that negotiated capabilities.  DATA
 * (may be NULL) is consumed.  Safe from any thread.
 */
extern void control_event (const char *event, json_object *data);
/* Build an event message (with "timestamp") into a string; the caller
 * frees it.  Shared with the fuzz harness.
 */
extern char *control_event_message (const char *event, json_object *data);

/* The server's side (control.c). */
extern int control_start (const char *path);
extern void control_stop (void);
/* quit: stop the server as SIGTERM does (main.c's set_quit). */
extern void control_request_quit (void);

/* The client (its QMP session) whose command is running on this
 * thread, or NULL: backup sessions begun with end-on-disconnect end
 * when it goes (sessions_owner_gone).
 */
extern const void *control_current_client (void);

/* control-qmp.c: encode a JSON value as QMP sends it (one line, all
 * UTF-8); malloc'd, NULL if out of memory.
 */
extern char *control_json_text (json_object *obj, size_t *len);
/* query-version's answer (also in the greeting). */
extern json_object *control_version_object (void);
/* A command (quit) asks to stop the server once its answer is sent. */
extern void control_quit_after_reply (void);

#endif /* NBDCBT_CONTROL_H */
