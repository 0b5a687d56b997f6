/* nbdcbt-backup: sink writing into a qcow2 image through common/qcow2. */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>

#include "backup.h"
#include "qcow2.h"

struct qcow2_sink {
  struct sink s;
  struct qcow2 *q;
};

static int
q_pwrite (struct sink *s, const void *buf, uint64_t count, uint64_t offset)
{
  struct qcow2_sink *qs = (struct qcow2_sink *) s;

  if (qcow2_pwrite (qs->q, buf, count, offset, 0) == -1) {
    error ("qcow2 write at offset %" PRIu64 ": %s", offset,
           qcow2_last_error ());
    return -1;
  }
  return 0;
}

static int
q_zero (struct sink *s, uint64_t count, uint64_t offset)
{
  struct qcow2_sink *qs = (struct qcow2_sink *) s;

  if (qcow2_zero (qs->q, count, offset, QCOW2_ZERO_MAY_UNMAP) == -1) {
    error ("qcow2 zero at offset %" PRIu64 ": %s", offset,
           qcow2_last_error ());
    return -1;
  }
  return 0;
}

static int
q_flush (struct sink *s)
{
  struct qcow2_sink *qs = (struct qcow2_sink *) s;

  if (qcow2_flush (qs->q) == -1) {
    error ("qcow2 flush: %s", qcow2_last_error ());
    return -1;
  }
  return 0;
}

static int
q_close (struct sink *s)
{
  struct qcow2_sink *qs = (struct qcow2_sink *) s;
  int r = qcow2_close (qs->q);

  if (r == -1)
    error ("qcow2 close: %s", qcow2_last_error ());
  free (qs);
  return r;
}

static const struct sink_ops qcow2_ops = {
  .name = "qcow2",
  .pwrite = q_pwrite,
  .zero = q_zero,
  .flush = q_flush,
  .close = q_close,
};

struct sink *
sink_qcow2_wrap (struct qcow2 *q)
{
  struct qcow2_sink *qs = calloc (1, sizeof *qs);

  if (qs == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  qs->s.ops = &qcow2_ops;
  qs->s.reads_zero = true;
  qs->q = q;
  return &qs->s;
}
