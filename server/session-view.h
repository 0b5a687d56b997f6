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
