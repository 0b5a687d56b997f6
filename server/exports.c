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

/* The exports this server serves: the registry, lookups, and adding and
 * removing exports while the server runs.
 *
 * An export is a name clients ask for, a node name the control socket
 * uses, and a chain of its own (its own instances of its modules, its own
 * get_ready and cleanup).  The registry keeps them in the order they were
 * added (NBD_OPT_LIST shows that order).  References: one for being in
 * the registry, one for each connection that picked the export (and for
 * the handshake while it looks at one); whoever drops the last frees it.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "cleanup.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t refs_dropped = PTHREAD_COND_INITIALIZER;
static struct export *exports;          /* in the order added */
static bool started;                    /* exports_start was called */

/* QEMU's rule for node names (id_wellformed): a letter, then letters,
 * digits, '-', '.' and '_', at most 31 bytes.
 */
bool
is_node_name (const char *name)
{
  const char *p;

  if (name == NULL || strlen (name) > NODE_NAME_MAX
      || !((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z')))
    return false;
  for (p = name + 1; *p; ++p)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
          || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'
          || *p == '_'))
      return false;
  return true;
}

struct export *
export_new (const char *name, const char *node_name, const char *description,
            struct nbdcbt_backend *top, bool read_only)
{
  struct export *exp;

  if (node_name == NULL)
    node_name = name;
  if (strlen (name) > NBD_MAX_STRING) {
    nbdcbt_error ("export name longer than %d bytes", NBD_MAX_STRING);
    goto fail;
  }
  if (description && strlen (description) > NBD_MAX_STRING) {
    nbdcbt_error ("export '%s': description longer than %d bytes", name,
                  NBD_MAX_STRING);
    goto fail;
  }
  if (!is_node_name (node_name)) {
    nbdcbt_error ("export '%s': '%s' is not a valid node name (a letter, "
                  "then letters, digits, '-', '.' or '_', at most %d "
                  "bytes)%s", name, node_name, NODE_NAME_MAX,
                  node_name == name ? "; give one with --node-name" : "");
    goto fail;
  }
  exp = calloc (1, sizeof *exp);
  if (exp == NULL
      || (exp->name = strdup (name)) == NULL
      || (exp->node_name = strdup (node_name)) == NULL
      || (description && (exp->description = strdup (description)) == NULL)) {
    nbdcbt_error ("export: %m");
    if (exp) {
      free (exp->name);
      free (exp->node_name);
      free (exp);
    }
    goto fail;
  }
  exp->top = top;
  exp->read_only = read_only;
  return exp;

 fail:
  backend_chain_free (top);
  return NULL;
}

void
export_free (struct export *exp)
{
  if (exp == NULL)
    return;
  nbdcbt_debug ("export '%s' (node %s): cleanup", exp->name, exp->node_name);
  backend_chain_free (exp->top);
  free (exp->name);
  free (exp->node_name);
  free (exp->description);
  free (exp);
}

/* LOCK held. */
static struct export *
find_locked (const char *name, size_t len, const char *node_name)
{
  struct export *exp;

  for (exp = exports; exp; exp = exp->list_next) {
    if (node_name) {
      if (strcmp (exp->node_name, node_name) == 0)
        return exp;
    }
    else if ((strlen (exp->name) == len && memcmp (exp->name, name, len) == 0)
             || (len == 0 && exp->default_alias))
      return exp;
  }
  return NULL;
}

int
exports_add (struct export *exp)
{
  struct export **pp;
  int model;

  model = backend_thread_model (exp->top);
  if (model == -1)
    return -1;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);

    if (find_locked (exp->name, strlen (exp->name), NULL)
        || (exp->name[0] == '\0' && find_locked ("", 0, NULL))) {
      nbdcbt_error ("export '%s' exists already", exp->name);
      return -1;
    }
    if (find_locked (NULL, 0, exp->node_name)) {
      nbdcbt_error ("export '%s': node name '%s' is in use already",
                    exp->name, exp->node_name);
      return -1;
    }
    /* Connections read the server's model when they start; lowering it
     * under them is not safe.
     */
    if (started && model < thread_model) {
      nbdcbt_error ("cannot add export '%s' while the server runs: its "
                    "chain needs thread model %d, the server runs with %d",
                    exp->name, model, thread_model);
      return -1;
    }
  }
  /* Outside the lock: get_ready may take its time (open an image). */
  if (backend_get_ready (exp->top) == -1)
    return -1;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  /* Checked again: another thread may have added the same name. */
  if (find_locked (exp->name, strlen (exp->name), NULL)
      || find_locked (NULL, 0, exp->node_name)) {
    nbdcbt_error ("export '%s' exists already", exp->name);
    return -1;
  }
  if (!started && model < thread_model)
    thread_model = model;
  for (pp = &exports; *pp; pp = &(*pp)->list_next)
    ;
  *pp = exp;
  exp->listed = true;
  exp->refs = 1;
  nbdcbt_debug ("export '%s' (node %s) added, thread model %d",
                exp->name, exp->node_name, model);
  return 0;
}

void
exports_start (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  started = true;
}

struct export *
export_get (const char *name, size_t len)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct export *exp = find_locked (name, len, NULL);

  if (exp)
    exp->refs++;
  return exp;
}

struct export *
export_get_by_node (const char *node_name)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct export *exp = find_locked (NULL, 0, node_name);

  if (exp)
    exp->refs++;
  return exp;
}

void
export_put (struct export *exp)
{
  bool last;

  if (exp == NULL)
    return;
  pthread_mutex_lock (&lock);
  last = --exp->refs == 0;
  pthread_cond_broadcast (&refs_dropped);
  pthread_mutex_unlock (&lock);
  if (last)
    export_free (exp);
}

/* Unlink EXP, stop its connections and wait for them to end; then drop
 * the registry's reference (freeing it).  LOCK held on entry, released.
 */
static void
remove_locked (struct export *exp)
{
  struct export **pp;

  for (pp = &exports; *pp != exp; pp = &(*pp)->list_next)
    ;
  *pp = exp->list_next;
  exp->list_next = NULL;
  exp->listed = false;
  nbdcbt_debug ("export '%s' removed: closing its connections", exp->name);
  /* A connection that took its reference just now may not be known to
   * connections_shutdown yet: ask again until all are gone.
   */
  while (exp->refs > 1) {
    struct timespec ts;

    pthread_mutex_unlock (&lock);
    connections_shutdown (exp);
    pthread_mutex_lock (&lock);
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000 * 1000 * 1000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000 * 1000 * 1000;
    }
    if (exp->refs > 1)
      pthread_cond_timedwait (&refs_dropped, &lock, &ts);
  }
  exp->refs = 0;
  pthread_mutex_unlock (&lock);
  export_free (exp);
}

int
exports_remove (const char *name)
{
  struct export *exp;

  pthread_mutex_lock (&lock);
  for (exp = exports; exp; exp = exp->list_next)
    if (strcmp (exp->name, name) == 0)
      break;
  if (exp == NULL) {
    pthread_mutex_unlock (&lock);
    errno = ENOENT;
    return -1;
  }
  remove_locked (exp);
  return 0;
}

void
exports_remove_all (void)
{
  pthread_mutex_lock (&lock);
  while (exports) {
    remove_locked (exports);
    pthread_mutex_lock (&lock);
  }
  pthread_mutex_unlock (&lock);
}

int
exports_foreach (int (*f) (struct export *exp, void *opaque), void *opaque)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct export *exp;
  int r;

  for (exp = exports; exp; exp = exp->list_next)
    if ((r = f (exp, opaque)) != 0)
      return r;
  return 0;
}

size_t
exports_count (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
  struct export *exp;
  size_t n = 0;

  for (exp = exports; exp; exp = exp->list_next)
    n++;
  return n;
}

const void *
export_get_service (struct export *exp, const char *name)
{
  return backend_get_service (exp->top, name);
}
