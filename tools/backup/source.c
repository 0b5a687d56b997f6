/* nbdcbt-backup: the connection to the export being backed up. */
#include <config.h>

#include <stddef.h>
#include <stdio.h>

#include "backup.h"

int
bitmap_context_name (const char *bitmap, char **context)
{
  *context = NULL;
  if (bitmap &&
      asprintf (context, "qemu:dirty-bitmap:%s", bitmap) == -1) {
    *context = NULL;
    error_errno ("asprintf");
    return -1;
  }
  return 0;
}

struct nbd_handle *
connect_source (const char *uri, const char *bitmap_context)
{
  struct nbd_handle *h = nbd_create ();

  /* Full info: the export description, part of the disk's identity. */
  if (h == NULL ||
      nbd_set_full_info (h, true) == -1 ||
      nbd_add_meta_context (h, "base:allocation") == -1 ||
      (bitmap_context && nbd_add_meta_context (h, bitmap_context) == -1)) {
    error ("%s: %s", uri, nbd_get_error ());
    nbd_close (h);
    return NULL;
  }
  if (connect_uri_tls (h, uri, uri) == -1) {
    nbd_close (h);
    return NULL;
  }
  return h;
}
