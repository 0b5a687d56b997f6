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

/* The "fleece" service: how the server reaches the copy-before-write
 * engine of an export whose chain has the fleece filter (see cbw.h for
 * the engine and its rules).  The server finds it with
 * nbdcbt_next_service (top, FLEECE_SERVICE) and serves each session's
 * views through these entry points, so that one copy of the engine (the
 * filter's) does all the work.
 */
#ifndef NBDCBT_FLEECE_SERVICE_H
#define NBDCBT_FLEECE_SERVICE_H

#include "cbw.h"

#define FLEECE_SERVICE "fleece"

struct fleece_service {
  void *fleece;                 /* the filter's instance */
  /* The engine of the disk below, whose size is SIZE (the filter learns
   * it at the first connection; whoever knows it first sets it).  NULL
   * with *ERRP if SIZE differs from the size known.
   */
  struct cbw_disk *(*disk) (void *fleece, uint64_t size, char **errp);
  /* The session-dir= directory (the default resolved). */
  const char *(*session_dir) (void *fleece);

  /* Hold every write of the export between two requests, and let them
   * go (nests in one thread; see cbw_quiesce).  Whoever quiesces both
   * this and the dirty filter below quiesces this first: a write waits
   * here before it is marked below.
   */
  void (*quiesce) (void *fleece);
  void (*resume) (void *fleece);
  struct cbw_session *(*session_new) (struct cbw_disk *d,
                                      const struct cbw_session_opts *o,
                                      char **errp);
  void (*session_detach) (struct cbw_session *s);
  void (*session_ref) (struct cbw_session *s);
  void (*session_unref) (struct cbw_session *s);
  int (*session_read) (struct cbw_session *s, void *buf, uint32_t count,
                       uint64_t offset, bool delta, cbw_read_fn *read,
                       void *opaque, int *err);
  int (*session_map) (struct cbw_session *s, uint64_t offset,
                      uint64_t count, cbw_map_fn *fn, void *opaque);
  struct cbw_hold *(*session_hold) (struct cbw_session *s, uint64_t offset,
                                    uint64_t count, int *err);
  void (*session_unhold) (struct cbw_hold *h);
  void (*session_stats) (struct cbw_session *s,
                         struct cbw_session_stats *st);
  const char *(*session_failed) (struct cbw_session *s);
  struct hbitmap *(*session_unread) (struct cbw_session *s,
                                     const struct hbitmap *mask,
                                     uint64_t *bytes);
  void (*unread_free) (struct hbitmap *hb);
};

#endif /* NBDCBT_FLEECE_SERVICE_H */
