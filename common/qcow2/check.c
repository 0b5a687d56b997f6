#include <config.h>
#include <errno.h>
#include "qcow2-internal.h"
int qcow2_check (struct qcow2 *q, int flags, struct qcow2_check_result *result,
                 void (*msg) (void *opaque, const char *text), void *opaque)
{ (void) q; (void) flags; (void) result; (void) msg; (void) opaque;
  return qcow2_error (ENOTSUP, "not yet"); }
