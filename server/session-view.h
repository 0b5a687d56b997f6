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

/* nbdcbt server: the exports of a backup session (session-view.c). */
#ifndef NBDCBT_SESSION_VIEW_H
#define NBDCBT_SESSION_VIEW_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "fleece-service.h"

struct nbdcbt_backend;
struct nbdcbt_context;

/* What a view reads. */
struct view_source {
  const struct fleece_service *fleece;
  struct cbw_session *cbw;
  struct nbdcbt_context *below;   /* the source chain below the filter */
  pthread_mutex_t *below_lock;    /* NULL: BELOW takes parallel requests */
  uint64_t size;
  const char *bitmap_context;     /* "qemu:dirty-bitmap:NAME" or NULL */
};

/* A one-layer chain serving SRC (the delta view with DELTA).  When the
 * chain is freed, RELEASE (OPAQUE) is called.  NULL after an error.
 */
extern struct nbdcbt_backend *session_view_chain (
  const struct view_source *src, bool delta, void (*release) (void *opaque),
  void *opaque);

#endif /* NBDCBT_SESSION_VIEW_H */
