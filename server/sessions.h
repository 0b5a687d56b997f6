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

/* nbdcbt server: backup sessions (sessions.c, session-view.c).
 *
 * A backup session is a point-in-time view of one export's disk, served
 * as a read-only export of its own while clients keep writing to the
 * disk.  Beginning one is a single instant: the bitmap (if any) is
 * frozen, its successor starts recording, and the fleece filter's
 * copy-before-write session starts, all while the disk's writes are held
 * between two requests.  Ending one removes its exports (their clients
 * are disconnected), then abdicates or reclaims the bitmap (QEMU's
 * bitmap-mode rules), then frees the store.
 *
 * Sessions begun together with completion-mode "grouped" complete
 * together: each member's backup-end records its result and removes its
 * exports; when the last member ends, every bitmap abdicates if all
 * succeeded and every one reclaims otherwise.
 *
 * All calls come from the control socket's command thread (commands run
 * one at a time) or from the shutdown path.
 */
#ifndef NBDCBT_SESSIONS_H
#define NBDCBT_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bitmap_mode { BITMAP_MODE_ON_SUCCESS, BITMAP_MODE_ALWAYS,
                   BITMAP_MODE_NEVER };

struct backup_begin_args {
  const char *node;             /* required */
  const char *bitmap;           /* NULL: a full backup */
  const char *id;               /* NULL: "backup-N" (N counts up) */
  const char *export_name;      /* NULL: the id */
  bool delta;                   /* also serve EXPORT-delta */
  bool sync_full;               /* with BITMAP: a full backup (the view
                                 * keeps every granule; the bitmap is
                                 * frozen and synced all the same) */
  enum bitmap_mode mode;
  const void *owner;            /* when not NULL, see sessions_owner_gone */
};

struct backup_session;

/* Check ARGS and reserve the id and export names.  NULL with *ERRP (a
 * malloc'd message, QEMU's style) if anything is wrong; nothing changes.
 */
extern struct backup_session *session_prepare (
  const struct backup_begin_args *args, char **errp);
/* Begin the N prepared sessions at one instant (the writes of every disk
 * involved are held meanwhile), then serve their exports.  GROUPED: they
 * complete together.  On error every one of them is undone (bitmaps as
 * they were, no exports) and freed, and *ERRP says why.
 */
extern int sessions_begin (struct backup_session **v, size_t n,
                           bool grouped, char **errp);
/* Free a prepared session that was not begun. */
extern void session_discard (struct backup_session *s);

/* The same in steps, for a transaction (which holds every disk quiesced
 * across all its actions, so that they all share one instant):
 * session_instant freezes the bitmap and starts the copy-before-write
 * session; session_publish serves the exports (joining group G, which
 * may be NULL) and makes the session begun; session_abort undoes the
 * instant and discards the session.
 */
struct group;
extern int session_instant (struct backup_session *s, char **errp);
extern struct group *session_group_new (void);
/* Free G if no session joined it (its transaction was aborted). */
extern void session_group_abandon (struct group *g);
extern int session_publish (struct backup_session *s, struct group *g,
                            char **errp);
extern void session_abort (struct backup_session *s);

/* What backup-begin returns. */
extern const char *session_id (const struct backup_session *s);
extern const char *session_export (const struct backup_session *s);
extern const char *session_delta_export (const struct backup_session *s);
extern const char *session_bitmap (const struct backup_session *s);

/* End session ID.  -1 with *ERRP if there is no such session. */
extern int session_end (const char *id, bool success, char **errp);

/* The control client OWNER is gone: its sessions end as failed. */
extern void sessions_owner_gone (const void *owner);
/* At shutdown, before the exports go: every session ends as failed. */
extern void sessions_end_all (void);

/* query-backups. */
struct session_info {
  char *id, *node, *bitmap, *export_name, *delta_export;
  bool grouped;
  char *failure;                /* NULL unless the session broke */
  uint64_t size, granularity, needed, copied, store_bytes;
};
extern int sessions_list (struct session_info **list, size_t *n);
extern void session_info_free (struct session_info *list, size_t n);

/* Events: a session completed (its bitmap was dealt with), and a group
 * completed.  Set by the control socket; NULL until then.
 */
struct session_done {
  const char *id, *node, *bitmap;
  bool success;                 /* what backup-end said (false if failed) */
  bool bitmap_synced;           /* abdicated (true) or reclaimed */
  uint64_t kept_uncopied;       /* abdicated after a failure (always):
                                 * bytes kept dirty, not copied */
  const char *error;            /* why it failed, or NULL */
};
extern void (*session_completed_hook) (const struct session_done *d);
extern void (*group_completed_hook) (const char *const *ids, size_t n,
                                     bool success);

#endif /* NBDCBT_SESSIONS_H */
