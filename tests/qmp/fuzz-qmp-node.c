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

/* The fuzz harness's node: one dirty filter instance over a 1 MiB export,
 * its service from filters/dirty/control.c, no bitmap store.  The server
 * functions the filter calls are stubbed here.
 */
#include <config.h>

#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include "dirty.h"
#include "dirty-bitmaps-service.h"
#include "jobs.h"

static struct dirty_instance instance;

const struct dirty_bitmaps_service *fuzz_node_new (void);
void fuzz_node_free (void);

const struct dirty_bitmaps_service *
fuzz_node_new (void)
{
  memset (&instance, 0, sizeof instance);
  pthread_mutex_init (&instance.lock, NULL);
  pthread_rwlock_init (&instance.quiesce, NULL);
  instance.bitmaps = dirty_bitmaps_new (1024 * 1024);
  dirty_control_init (&instance);
  return &instance.service;
}

void
fuzz_node_free (void)
{
  dirty_bitmaps_free (instance.bitmaps);
  pthread_rwlock_destroy (&instance.quiesce);
  pthread_mutex_destroy (&instance.lock);
}

/* No store below: nothing to store or remove. */
int
dirty_store_now (struct dirty_instance *d, char **errp)
{
  (void) d;
  (void) errp;
  return 0;
}

int
dirty_store_remove (struct dirty_instance *d, const char *name, char **errp)
{
  (void) d;
  (void) name;
  (void) errp;
  return 0;
}

void
nbdcbt_debug (const char *fs, ...)
{
  (void) fs;
}

void
nbdcbt_error (const char *fs, ...)
{
  (void) fs;
}

/* Backup sessions need a running server: the harness refuses them (their
 * argument checking is still fuzzed through the transaction action).
 */
static json_object *
no_sessions (struct qmp_error *err)
{
  qmp_error_set (err, QMP_GENERIC_ERROR,
                 "backup sessions are not part of the fuzz harness");
  return NULL;
}

json_object *
qmp_backup_begin (json_object *args, struct qmp_error *err)
{
  (void) args;
  return no_sessions (err);
}

json_object *
qmp_backup_end (json_object *args, struct qmp_error *err)
{
  (void) args;
  return no_sessions (err);
}

json_object *
qmp_query_backups (json_object *args, struct qmp_error *err)
{
  (void) args;
  return no_sessions (err);
}

int
prepare_backup_begin (json_object *data, bool grouped,
                      struct control_action *act, struct qmp_error *err)
{
  (void) data;
  (void) grouped;
  (void) act;
  no_sessions (err);
  return -1;
}
