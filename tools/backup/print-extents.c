/* nbdcbt-backup print-extents (undocumented): print the work list, to
 * test the crossing of the dirty bitmap with base:allocation on its own.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "backup.h"
#include "cleanup.h"

int
do_print_extents (const char *uri)
{
  CLEANUP_FREE char *ctx = NULL;
  struct nbd_handle *h;
  extent_list list = empty_vector;
  static const char *const names[] = { "data", "zero", "clean" };
  int64_t size;
  size_t i;
  int ret = -1;

  if (bitmap_context_name (opts.bitmap, &ctx) == -1)
    return -1;
  h = connect_source (uri, ctx);
  if (h == NULL)
    return -1;
  size = nbd_get_size (h);
  if (size == -1)
    error ("%s: %s", uri, nbd_get_error ());
  else if (get_extents (h, size, ctx, &list) == 0) {
    for (i = 0; i < list.len; ++i)
      printf ("%" PRIu64 " %" PRIu64 " %s\n", list.ptr[i].offset,
              list.ptr[i].length, names[list.ptr[i].kind]);
    ret = 0;
  }
  free (list.ptr);
  nbd_close (h);
  return ret;
}
