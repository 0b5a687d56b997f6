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

/* nbdcbt server: backup sessions (see sessions.h for the model).
 *
 * The instant.  The fleece filter's gate holds each write from before it
 * is marked in the bitmaps (the dirty filter is below it) until it has
 * reached the disk.  So with every involved disk quiesced, no write is
 * half done: freezing the bitmap and starting the copy-before-write
 * session then split the writes cleanly into those before the instant
 * (in the frozen bitmap and in the view) and those after (in the
 * successor, and copied before they overwrite what the view needs).
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "cleanup.h"
#include "dirty-bitmaps-service.h"
#include "fleece-service.h"
#include "session-view.h"
#include "sessions.h"

#define SESSION_ID_MAX 128

struct group {
  size_t n, ended;
  bool all_ok;
  char **ids;
};

struct backup_session {
  char *id, *node, *bitmap, *bitmap_context;
  char *export_name, *delta_export;
  enum bitmap_mode mode;
  bool sync_full;                 /* the view keeps every granule */
  const void *owner;
  struct export *source;          /* a reference */
  const struct fleece_service *fleece;
  const struct dirty_bitmaps_service *bitmaps; /* NULL without bitmap */
  struct cbw_disk *disk;
  struct cbw_session *cbw;
  struct nbdcbt_context *below;
  pthread_mutex_t below_lock;
  bool below_serial;
  uint64_t size;
  bool frozen;                    /* the bitmap has a successor of ours */
  const struct hbitmap *frozen_data; /* valid while FROZEN */
  uint64_t kept_uncopied;         /* bytes bitmap-mode=always kept dirty */
  bool begun, detached;
  bool success;                   /* backup-end's answer */
  char *error;
  struct group *group;
  unsigned refs;                  /* the registry's, and each view's */
  struct backup_session *next;
};

/* Serialises begin/end (the control socket runs one command at a time,
 * but shutdown and a client going away come from other threads) and
 * guards the registry.
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct backup_session *sessions;     /* prepared and begun */
static unsigned long next_id = 1;
/* Members of groups that ended while others of their group have not. */
static struct backup_session *pending;

void (*session_completed_hook) (const struct session_done *d);
void (*group_completed_hook) (const char *const *ids, size_t n,
                              bool success);

static void
set_error (char **errp, const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 2, 3)));

static void
set_error (char **errp, const char *fs, ...)
{
  va_list ap;

  va_start (ap, fs);
  if (vasprintf (errp, fs, ap) == -1)
    *errp = NULL;
  va_end (ap);
}

/* LOCK held. */
static struct backup_session *
find_id (const char *id)
{
  struct backup_session *s;

  for (s = sessions; s; s = s->next)
    if (strcmp (s->id, id) == 0)
      return s;
  return NULL;
}

static bool
export_name_taken (const char *name)
{
  struct backup_session *s;
  struct export *exp;

  for (s = sessions; s; s = s->next)
    if (strcmp (s->export_name, name) == 0
        || (s->delta_export && strcmp (s->delta_export, name) == 0))
      return true;
  exp = export_get (name, strlen (name));
  if (exp) {
    export_put (exp);
    return true;
  }
  return false;
}

static void
session_unref (struct backup_session *s)
{
  if (__atomic_sub_fetch (&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  if (s->cbw)
    s->fleece->session_unref (s->cbw);
  if (s->below)
    backend_close (s->below);
  if (s->source)
    export_put (s->source);
  pthread_mutex_destroy (&s->below_lock);
  free (s->id);
  free (s->node);
  free (s->bitmap);
  free (s->bitmap_context);
  free (s->export_name);
  free (s->delta_export);
  free (s->error);
  free (s);
}

static void
view_released (void *opaque)
{
  session_unref (opaque);
}

/* LOCK held. */
static void
unlink_session (struct backup_session *s)
{
  struct backup_session **pp;

  for (pp = &sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
}

/* Find the fleece layer of EXP's chain and check the dirty filter is
 * below it.
 */
static struct nbdcbt_backend *
fleece_layer (struct export *exp, const char *node, bool want_bitmap,
              char **errp)
{
  struct nbdcbt_backend *b, *fleece = NULL;

  for (b = exp->top; b; b = b->next) {
    if (b->filter && strcmp (b->name, "fleece") == 0 && fleece == NULL)
      fleece = b;
    else if (b->filter && strcmp (b->name, "dirty") == 0 && fleece == NULL
             && want_bitmap) {
      set_error (errp, "Node '%s' cannot begin an incremental backup "
                 "session: its fleece filter must be above its dirty "
                 "filter (--filter=fleece --filter=dirty)", node);
      return NULL;
    }
  }
  if (fleece == NULL)
    set_error (errp, "Node '%s' cannot serve backup sessions: its chain "
               "has no fleece filter (start it with --filter=fleece "
               "before --filter=dirty)", node);
  return fleece;
}

struct backup_session *
session_prepare (const struct backup_begin_args *a, char **errp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct backup_session *s;
  struct nbdcbt_backend *fb;
  char idbuf[32];
  const char *id = a->id;

  *errp = NULL;
  if (id) {
    const char *p;

    if (*id == '\0' || strlen (id) > SESSION_ID_MAX) {
      set_error (errp, "Invalid backup session id: it must be 1 to %d "
                 "bytes long", SESSION_ID_MAX);
      return NULL;
    }
    for (p = id; *p; p++)
      if ((unsigned char) *p < 0x20 || *p == '/' || *p == 0x7f) {
        set_error (errp, "Invalid backup session id '%s': no control "
                   "characters or '/'", id);
        return NULL;
      }
    if (find_id (id)) {
      set_error (errp, "Backup session '%s' already exists", id);
      return NULL;
    }
  }
  else {
    do
      snprintf (idbuf, sizeof idbuf, "%lu", next_id++);
    while (find_id (idbuf));
    id = idbuf;
  }

  s = calloc (1, sizeof *s);
  if (s == NULL) {
    set_error (errp, "%s", strerror (errno));
    return NULL;
  }
  pthread_mutex_init (&s->below_lock, NULL);
  s->refs = 1;
  s->mode = a->mode;
  s->sync_full = a->sync_full || a->bitmap == NULL;
  s->owner = a->owner;
  s->id = strdup (id);
  s->node = strdup (a->node);
  if (a->export_name)
    s->export_name = strdup (a->export_name);
  else if (asprintf (&s->export_name, "backup-%s", id) == -1)
    s->export_name = NULL;
  if (a->delta && asprintf (&s->delta_export, "%s-delta",
                            s->export_name ? s->export_name : "") == -1)
    s->delta_export = NULL;
  if (a->bitmap) {
    s->bitmap = strdup (a->bitmap);
    if (s->bitmap == NULL
        || asprintf (&s->bitmap_context, "qemu:dirty-bitmap:%s",
                     a->bitmap) == -1)
      s->bitmap_context = NULL;
  }
  if (!s->id || !s->node || !s->export_name || (a->delta && !s->delta_export)
      || (a->bitmap && !s->bitmap_context)) {
    set_error (errp, "%s", strerror (ENOMEM));
    goto err;
  }
  if (strlen (s->export_name) > NBD_MAX_STRING
      || (s->delta_export && strlen (s->delta_export) > NBD_MAX_STRING)) {
    set_error (errp, "Export name too long (at most %d bytes)",
               NBD_MAX_STRING);
    goto err;
  }
  if (export_name_taken (s->export_name)
      || (s->delta_export && export_name_taken (s->delta_export))) {
    set_error (errp, "Export '%s' already exists",
               export_name_taken (s->export_name) ? s->export_name
               : s->delta_export);
    goto err;
  }

  s->source = export_get_by_node (a->node);
  if (s->source == NULL) {
    set_error (errp, "Cannot find device='%s' nor node-name='%s'",
               a->node, a->node);
    goto err;
  }
  fb = fleece_layer (s->source, a->node, a->bitmap != NULL, errp);
  if (fb == NULL)
    goto err;
  s->fleece = nbdcbt_next_service (fb, FLEECE_SERVICE);
  if (s->fleece == NULL) {
    set_error (errp, "Node '%s': the fleece filter offers no service",
               a->node);
    goto err;
  }
  if (a->bitmap) {
    s->bitmaps = export_get_service (s->source, DIRTY_BITMAPS_SERVICE);
    if (s->bitmaps == NULL) {
      set_error (errp, "Dirty bitmap '%s' not found", a->bitmap);
      goto err;
    }
  }

  /* The view reads the disk through the chain below the filter. */
  s->below = backend_open (fb->next, true);
  if (s->below == NULL) {
    set_error (errp, "Node '%s': cannot open the disk below the fleece "
               "filter", a->node);
    goto err;
  }
  s->size = s->below->size;
  s->below_serial = backend_thread_model (fb->next)
    < NBDCBT_THREAD_MODEL_PARALLEL;
  s->disk = s->fleece->disk (s->fleece->fleece, s->size, errp);
  if (s->disk == NULL)
    goto err;

  s->next = sessions;
  sessions = s;
  return s;

 err:
  session_unref (s);
  return NULL;
}

void
session_discard (struct backup_session *s)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);

  unlink_session (s);
  session_unref (s);
}

const char *
session_id (const struct backup_session *s)
{
  return s->id;
}

const char *
session_export (const struct backup_session *s)
{
  return s->export_name;
}

const char *
session_delta_export (const struct backup_session *s)
{
  return s->delta_export;
}

const char *
session_bitmap (const struct backup_session *s)
{
  return s->bitmap;
}

/* Quiesce the disks of V (each once, in a fixed order: two begins can
 * never wait on each other), and let them go in the reverse order.
 */
static int
cmp_session_disk (const void *a, const void *b)
{
  uintptr_t x = (uintptr_t) (*(struct backup_session *const *) a)->fleece->fleece;
  uintptr_t y = (uintptr_t) (*(struct backup_session *const *) b)->fleece->fleece;
  return x < y ? -1 : x > y;
}

static void
quiesce_all (struct backup_session **sorted, size_t n, bool on)
{
  size_t i;

  if (on) {
    for (i = 0; i < n; i++)
      if (i == 0 || sorted[i]->fleece->fleece != sorted[i - 1]->fleece->fleece)
        sorted[i]->fleece->quiesce (sorted[i]->fleece->fleece);
  }
  else {
    for (i = n; i-- > 0; )
      if (i == 0 || sorted[i]->fleece->fleece != sorted[i - 1]->fleece->fleece)
        sorted[i]->fleece->resume (sorted[i]->fleece->fleece);
  }
}

/* Give the bitmap back: abdicate (SYNC) or reclaim.  KEEP: with SYNC,
 * bits that stay dirty.  A sync that fails reclaims instead (the bitmap
 * must not stay frozen, and reclaiming loses nothing).
 */
static int
unfreeze (struct backup_session *s, bool sync, const struct hbitmap *keep,
          char **errp)
{
  int r;

  if (!s->frozen)
    return 0;
  r = s->bitmaps->unfreeze (s->bitmaps->opaque, s->bitmap, sync, keep,
                            errp);
  if (r == -1 && sync
      && s->bitmaps->unfreeze (s->bitmaps->opaque, s->bitmap, false, NULL,
                               NULL) == -1)
    return -1;                  /* still frozen: nothing else to try */
  s->frozen = false;
  return r;
}

int
session_instant (struct backup_session *s, char **errp)
{
  struct cbw_session_opts o = {
    .dir = s->fleece->session_dir (s->fleece->fleece),
    /* Backup clients read whole 64K clusters (the qcow2 layers they
     * write); a finer bitmap would let them read granules the session
     * does not keep.  The view's bitmap is then reported at 64K (a
     * superset).
     */
    .min_granularity = 65536,
    /* A delta view reports the granules clean in the bitmap as holes,
     * but a client may read them anyway: nbdcopy reads whole 256 KiB
     * requests that hold any data, and with -S 0 writes what it read
     * onto the mirror.  So they must read as the instant's data, and a
     * session with a delta view keeps every granule.
     */
    .need_all = s->sync_full || s->delta_export != NULL,
    .release_on_read = true,
  };

  *errp = NULL;
  s->fleece->quiesce (s->fleece->fleece);
  if (s->bitmap) {
    if (s->bitmaps->freeze (s->bitmaps->opaque, s->bitmap, &o.dirty,
                            errp) == -1)
      goto err;
    s->frozen = true;
    s->frozen_data = o.dirty;
  }
  s->cbw = s->fleece->session_new (s->disk, &o, errp);
  if (s->cbw == NULL) {
    unfreeze (s, false, NULL, NULL);
    goto err;
  }
  s->fleece->resume (s->fleece->fleece);
  return 0;

 err:
  s->fleece->resume (s->fleece->fleece);
  return -1;
}

/* Undo the instant of S. */
static void
undo_instant (struct backup_session *s)
{
  if (s->cbw && !s->detached) {
    s->fleece->quiesce (s->fleece->fleece);
    s->fleece->session_detach (s->cbw);
    s->fleece->resume (s->fleece->fleece);
    s->detached = true;
  }
  unfreeze (s, false, NULL, NULL);
}

static int
add_view (struct backup_session *s, const char *name, bool delta,
          unsigned long serial)
{
  struct view_source src = {
    .fleece = s->fleece,
    .cbw = s->cbw,
    .below = s->below,
    .below_lock = s->below_serial ? &s->below_lock : NULL,
    .size = s->size,
    .bitmap_context = s->bitmap_context,
  };
  struct nbdcbt_backend *b;
  struct export *exp;
  char node[NODE_NAME_MAX + 1];

  snprintf (node, sizeof node, "session%lu%s", serial, delta ? "-delta" : "");
  __atomic_add_fetch (&s->refs, 1, __ATOMIC_ACQ_REL);
  b = session_view_chain (&src, delta, view_released, s);
  if (b == NULL) {
    session_unref (s);
    return -1;
  }
  exp = export_new (name, node, s->source->description, b, true);
  if (exp == NULL)
    return -1;                  /* the chain (and its reference) is gone */
  /* A read answered partly with holes would not count as read whole:
   * the granule would stay needed (copied again at the next write) and
   * count as not copied for bitmap-mode=always.
   */
  exp->whole_reads = true;
  if (exports_add (exp) == -1) {
    export_free (exp);
    return -1;
  }
  return 0;
}

static void
remove_views (struct backup_session *s)
{
  exports_remove (s->export_name);
  if (s->delta_export)
    exports_remove (s->delta_export);
}

struct group *
session_group_new (void)
{
  struct group *g = calloc (1, sizeof *g);

  if (g)
    g->all_ok = true;
  return g;
}

void
session_group_abandon (struct group *g)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);

  if (g && g->n == 0) {
    free (g->ids);
    free (g);
  }
}

int
session_publish (struct backup_session *s, struct group *g, char **errp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  static unsigned long serial;
  unsigned long k = ++serial;

  *errp = NULL;
  if (add_view (s, s->export_name, false, k) == -1
      || (s->delta_export && add_view (s, s->delta_export, true, k) == -1)) {
    set_error (errp, "Cannot add the export of backup session '%s' (see "
               "the server's log)", s->id);
    remove_views (s);
    return -1;
  }
  if (g) {
    char **ids = realloc (g->ids, (g->n + 1) * sizeof *ids);

    if (ids == NULL || (ids[g->n] = strdup (s->id)) == NULL) {
      if (ids)
        g->ids = ids;
      set_error (errp, "%s", strerror (ENOMEM));
      remove_views (s);
      return -1;
    }
    g->ids = ids;
    g->n++;
  }
  s->group = g;
  s->begun = true;
  nbdcbt_debug ("backup session '%s' of node '%s' begun: export '%s'%s%s",
                s->id, s->node, s->export_name,
                s->bitmap ? ", bitmap " : "", s->bitmap ? s->bitmap : "");
  return 0;
}

void
session_abort (struct backup_session *s)
{
  undo_instant (s);
  session_discard (s);
}

int
sessions_begin (struct backup_session **v, size_t n, bool grouped,
                char **errp)
{
  struct backup_session **sorted;
  struct group *g = NULL;
  size_t i, k;
  int r = -1;

  *errp = NULL;
  sorted = malloc (n * sizeof *sorted);
  if (sorted == NULL
      || (grouped && n > 1 && (g = session_group_new ()) == NULL)) {
    set_error (errp, "%s", strerror (ENOMEM));
    free (sorted);
    for (i = 0; i < n; i++)
      session_discard (v[i]);
    return -1;
  }
  memcpy (sorted, v, n * sizeof *sorted);
  qsort (sorted, n, sizeof *sorted, cmp_session_disk);

  /* The instant: every disk held, then each session begins. */
  quiesce_all (sorted, n, true);
  for (i = 0; i < n; i++)
    if (session_instant (v[i], errp) == -1)
      break;
  quiesce_all (sorted, n, false);
  if (i < n) {
    for (k = 0; k < n; k++)
      session_abort (v[k]);
    goto out;
  }

  for (i = 0; i < n; i++)
    if (session_publish (v[i], g, errp) == -1)
      break;
  if (i < n) {
    for (k = 0; k < i; k++)
      remove_views (v[k]);
    for (k = 0; k < n; k++)
      session_abort (v[k]);
    if (g) {
      for (k = 0; k < g->n; k++)
        free (g->ids[k]);
      free (g->ids);
      free (g);
    }
    goto out;
  }
  r = 0;
 out:
  free (sorted);
  return r;
}

static void
notify (struct backup_session *s, bool synced)
{
  if (session_completed_hook) {
    struct session_done d = {
      .id = s->id, .node = s->node, .bitmap = s->bitmap,
      .success = s->success, .bitmap_synced = synced, .error = s->error,
      .kept_uncopied = synced ? s->kept_uncopied : 0,
    };
    session_completed_hook (&d);
  }
}

/* The bitmap's fate under the session's bitmap-mode (QEMU's rule). */
static bool
sync_bitmap (const struct backup_session *s, bool success)
{
  return (success || s->mode == BITMAP_MODE_ALWAYS)
    && s->mode != BITMAP_MODE_NEVER;
}

/* What a failed session synced under bitmap-mode=always must keep
 * dirty, as QEMU does: the granules its client did not copy (did not
 * read whole from the view), of the frozen bitmap for an incremental,
 * of the whole disk for a full backup.  NULL if nothing (or no memory:
 * the caller then reclaims, which keeps everything).
 */
static struct hbitmap *
uncopied (struct backup_session *s, bool *nomem)
{
  struct hbitmap *keep;

  *nomem = false;
  keep = s->fleece->session_unread (s->cbw,
                                    s->sync_full ? NULL : s->frozen_data,
                                    &s->kept_uncopied);
  if (keep == NULL)
    *nomem = true;
  return keep;
}

/* Finish S (no longer in the registry; detached: its view answers no
 * more reads).  SUCCESS: whether the session (or its group) succeeded.
 * LOCK held.
 */
static void
complete (struct backup_session *s, bool success)
{
  CLEANUP_FREE char *msg = NULL;
  struct hbitmap *keep = NULL;
  bool sync = sync_bitmap (s, success);

  if (s->frozen && sync && !success) {
    bool nomem;

    keep = uncopied (s, &nomem);
    if (nomem) {
      nbdcbt_error ("backup session '%s': bitmap '%s': cannot tell what "
                    "was not copied (%m): reclaiming instead", s->id,
                    s->bitmap);
      sync = false;
    }
  }
  if (s->frozen && unfreeze (s, sync, keep, &msg) == -1) {
    nbdcbt_error ("backup session '%s': bitmap '%s': %s", s->id, s->bitmap,
                  msg ? msg : "cannot give the bitmap back");
    sync = false;
    s->kept_uncopied = 0;
  }
  if (keep)
    s->fleece->unread_free (keep);
  notify (s, s->bitmap ? sync : false);
  session_unref (s);
}

/* End S.  LOCK held. */
static void
end_locked (struct backup_session *s, bool success, const char *why)
{
  const char *failure;
  struct group *g = s->group;

  /* Its exports first: their clients are disconnected. */
  remove_views (s);

  /* A broken session failed, whatever the client says. */
  failure = s->fleece->session_failed (s->cbw);
  if (failure && success) {
    success = false;
    why = failure;
  }
  s->success = success;
  if (why && s->error == NULL)
    s->error = strdup (why);

  /* No more copies into its store. */
  s->fleece->quiesce (s->fleece->fleece);
  s->fleece->session_detach (s->cbw);
  s->fleece->resume (s->fleece->fleece);
  s->detached = true;
  unlink_session (s);
  nbdcbt_debug ("backup session '%s' ended: %s", s->id,
                success ? "success" : "failure");

  if (g == NULL) {
    complete (s, success);
    return;
  }

  /* Grouped: wait for the others (keep S, unlinked, in the group). */
  g->ended++;
  if (!success)
    g->all_ok = false;
  s->next = NULL;
  {
    struct backup_session **pp;
    size_t i;

    s->next = pending;
    pending = s;
    if (g->ended < g->n)
      return;
    for (pp = &pending; *pp; ) {
      struct backup_session *m = *pp;
      if (m->group == g) {
        *pp = m->next;
        complete (m, g->all_ok);
      }
      else
        pp = &m->next;
    }
    if (group_completed_hook)
      group_completed_hook ((const char *const *) g->ids, g->n, g->all_ok);
    for (i = 0; i < g->n; i++)
      free (g->ids[i]);
    free (g->ids);
    free (g);
  }
}

int
session_end (const char *id, bool success, char **errp)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct backup_session *s = find_id (id);

  *errp = NULL;
  if (s == NULL || !s->begun) {
    set_error (errp, "Backup session '%s' not found", id);
    return -1;
  }
  end_locked (s, success, success ? NULL : "backup-end: success false");
  return 0;
}

void
sessions_owner_gone (const void *owner)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct backup_session *s;

 again:
  for (s = sessions; s; s = s->next)
    if (s->begun && s->owner == owner) {
      nbdcbt_debug ("backup session '%s': its control client is gone",
                    s->id);
      end_locked (s, false, "the control connection that began it closed");
      goto again;
    }
}

void
sessions_end_all (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct backup_session *s;

 again:
  for (s = sessions; s; s = s->next)
    if (s->begun) {
      end_locked (s, false, "the server stopped");
      goto again;
    }
}

int
sessions_list (struct session_info **list, size_t *n)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct backup_session *s;
  struct session_info *l;
  size_t k = 0, i;

  for (s = sessions; s; s = s->next)
    if (s->begun)
      k++;
  l = calloc (k ? k : 1, sizeof *l);
  if (l == NULL)
    return -1;
  i = k;
  /* The registry is newest first; list oldest first. */
  for (s = sessions; s; s = s->next) {
    struct cbw_session_stats st;
    const char *f;

    if (!s->begun)
      continue;
    i--;
    s->fleece->session_stats (s->cbw, &st);
    f = s->fleece->session_failed (s->cbw);
    l[i].id = strdup (s->id);
    l[i].node = strdup (s->node);
    l[i].bitmap = s->bitmap ? strdup (s->bitmap) : NULL;
    l[i].export_name = strdup (s->export_name);
    l[i].delta_export = s->delta_export ? strdup (s->delta_export) : NULL;
    l[i].grouped = s->group != NULL;
    l[i].failure = f ? strdup (f) : NULL;
    l[i].size = s->size;
    l[i].granularity = st.granularity;
    l[i].needed = st.needed;
    l[i].copied = st.copied;
    l[i].store_bytes = st.store_bytes;
  }
  *list = l;
  *n = k;
  return 0;
}

void
session_info_free (struct session_info *list, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++) {
    free (list[i].id);
    free (list[i].node);
    free (list[i].bitmap);
    free (list[i].export_name);
    free (list[i].delta_export);
    free (list[i].failure);
  }
  free (list);
}
