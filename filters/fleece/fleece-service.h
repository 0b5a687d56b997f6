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
};

#endif /* NBDCBT_FLEECE_SERVICE_H */
