/* nbdcbt-backup copy-raw: a plain copy of the export into a raw file
 * (no chain, no checksums), through the same extents and copy engine.
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>

#include "backup.h"

int
do_copy_raw (const char *uri)
{
  struct nbd_handle *h = connect_source (uri, NULL);
  extent_list list = empty_vector;
  struct copy_stats stats = { 0 };
  struct sink *sink = NULL;
  int64_t size;
  int ret = -1;

  if (h == NULL)
    return -1;
  size = nbd_get_size (h);
  if (size == -1) {
    error ("%s: %s", uri, nbd_get_error ());
    goto out;
  }
  if (get_extents (h, size, NULL, &list) == -1)
    goto out;
  sink = sink_raw_create (opts.output, size);
  if (sink == NULL)
    goto out;
  if (copy_extents (uri, h, &list, sink, sink->reads_zero, 0, &stats) == -1)
    goto out;
  ret = sink->ops->close (sink);
  sink = NULL;

 out:
  if (sink)
    sink->ops->close (sink);
  free (list.ptr);
  nbd_close (h);
  return ret;
}
