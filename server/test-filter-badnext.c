/* A filter for tests that breaks the contract of its calls to the layer
 * below, as a buggy filter might: mistake=range writes past the end,
 * mistake=flags passes a flag the layer below did not advertise,
 * mistake=readonly opens the layer below read-only and still writes to
 * it.  The server must fail such a request with an error and a message,
 * and go on serving.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nbdcbt-filter.h"

enum mistake { NONE, RANGE, FLAGS, READONLY };

static void *
badnext_instance_new (void)
{
  return calloc (1, sizeof (enum mistake));
}

static void
badnext_instance_free (void *instance)
{
  free (instance);
}

static int
badnext_config (nbdcbt_next_config *next, nbdcbt_backend *nxdata,
                void *instance, const char *key, const char *value)
{
  enum mistake *m = instance;

  if (strcmp (key, "mistake") != 0)
    return next (nxdata, key, value);
  if (strcmp (value, "range") == 0)
    *m = RANGE;
  else if (strcmp (value, "flags") == 0)
    *m = FLAGS;
  else if (strcmp (value, "readonly") == 0)
    *m = READONLY;
  else {
    nbdcbt_error ("badnext: mistake=%s: unknown", value);
    return -1;
  }
  return 0;
}

struct handle {
  enum mistake m;
};

static void *
badnext_open (nbdcbt_next_open *next, nbdcbt_context *nxdata, void *instance,
              int readonly)
{
  enum mistake *m = instance;
  struct handle *h;

  if (next (nxdata, readonly || *m == READONLY) == -1)
    return NULL;
  h = malloc (sizeof *h);
  if (h)
    h->m = *m;
  return h;
}

static void
badnext_close (void *handle)
{
  free (handle);
}

/* Writable even when the layer below is not (mistake=readonly). */
static int
badnext_can_write (const struct nbdcbt_next_ops *next_ops,
                   nbdcbt_context *nxdata, void *handle)
{
  return 1;
}

static int
badnext_pwrite (const struct nbdcbt_next_ops *next_ops,
                nbdcbt_context *nxdata, void *handle, const void *buf,
                uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;

  if (h->m == RANGE)
    offset += next_ops->get_size (nxdata);
  else if (h->m == FLAGS)
    flags |= NBDCBT_FLAG_FAST_ZERO;
  return next_ops->pwrite (nxdata, buf, count, offset, flags, err);
}

static struct nbdcbt_filter filter = {
  .name = "badnext",
  .instance_new = badnext_instance_new,
  .instance_free = badnext_instance_free,
  .config = badnext_config,
  .open = badnext_open,
  .close = badnext_close,
  .can_write = badnext_can_write,
  .pwrite = badnext_pwrite,
};

NBDCBT_REGISTER_FILTER (filter)
