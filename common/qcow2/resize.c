#include <config.h>
#include <errno.h>
#include "qcow2-internal.h"
int qcow2_resize (struct qcow2 *q, uint64_t new_size)
{ (void) q; (void) new_size; return qcow2_error (ENOTSUP, "not yet"); }
