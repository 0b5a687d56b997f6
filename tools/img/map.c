/* nbdcbt-img map --bitmap NAME: the dirty map of a persistent bitmap,
 * offline, in the format of nbdinfo --map=qemu:dirty-bitmap:NAME (so the
 * two can be compared directly).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbitmap.h"
#include "qcow2.h"
#include "nbdcbt-img.h"

static void
print_extent (bool json, bool *first, uint64_t offset, uint64_t len,
              bool dirty)
{
  const char *descr = dirty ? "dirty" : "clean";

  if (json) {
    printf ("%s{ \"offset\": %" PRIu64 ", \"length\": %" PRIu64
            ", \"type\": %d, \"description\": \"%s\"}",
            *first ? "" : ",\n", offset, len, dirty, descr);
    *first = false;
  }
  else
    printf ("%10" PRIu64 "  %10" PRIu64 "  %3d  %s\n", offset, len, dirty,
            descr);
}

int
cmd_map (int argc, char *argv[])
{
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "output", required_argument, NULL, 'O' },
    { "format", required_argument, NULL, 'f' },
    { "bitmap", required_argument, NULL, 'B' },
    { NULL }
  };
  enum img_format fmt = FMT_UNKNOWN;
  const char *filename, *bitmap = NULL;
  bool json = false, first = true;
  struct qcow2_bitmap_info *list;
  struct hbitmap *hb = NULL;
  struct qcow2 *q;
  uint64_t size, offset;
  size_t n, i;
  int c, ret = 1;

  while ((c = getopt_long (argc, argv, "+f:B:hU", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'f':
      fmt = parse_format (optarg);
      if (fmt == FMT_UNKNOWN)
        return 1;
      break;
    case 'B': bitmap = optarg; break;
    case 'O':
      if (strcmp (optarg, "json") == 0)
        json = true;
      else if (strcmp (optarg, "human") == 0)
        json = false;
      else {
        img_error ("--output must be used with human or json as argument.");
        return 1;
      }
      break;
    case 'U': break;
    case 'h':
      printf ("usage: %s map --bitmap NAME [-f FMT] [--output=human|json] "
              "FILENAME\n", PROGNAME);
      return 0;
    default:
      return 1;
    }
  }
  if (optind != argc - 1) {
    img_error ("Expecting one image file name");
    return 1;
  }
  filename = argv[optind];
  if (bitmap == NULL) {
    img_error ("map needs --bitmap NAME (only bitmap maps are supported)");
    return 1;
  }
  fmt = probe_format (filename, fmt);
  if (fmt == FMT_UNKNOWN)
    return 1;
  if (fmt != FMT_QCOW2) {
    img_error ("Dirty bitmap '%s' not found: '%s' format images have no "
               "persistent bitmaps yet", bitmap, format_name (fmt));
    return 1;
  }

  q = qcow2_open (filename, QCOW2_OPEN_RDONLY | QCOW2_OPEN_NO_BACKING |
                  QCOW2_OPEN_NO_BITMAP_IN_USE);
  if (q == NULL) {
    img_error ("Could not open '%s': %s", filename, lib_error (filename));
    return 1;
  }
  if (qcow2_bitmap_list (q, &list, &n) == -1) {
    img_error ("Could not read the bitmaps of '%s': %s", filename,
               lib_error (filename));
    goto out;
  }
  for (i = 0; i < n; i++)
    if (strcmp (list[i].name, bitmap) == 0)
      break;
  if (i == n) {
    img_error ("Dirty bitmap '%s' not found", bitmap);
    qcow2_bitmap_list_free (list, n);
    goto out;
  }
  if (list[i].flags & QCOW2_BME_IN_USE) {
    img_error ("Bitmap '%s' is inconsistent and cannot be used", bitmap);
    qcow2_bitmap_list_free (list, n);
    goto out;
  }
  qcow2_bitmap_list_free (list, n);

  hb = qcow2_bitmap_load (q, bitmap);
  if (hb == NULL) {
    img_error ("Could not load bitmap '%s': %s", bitmap, lib_error (filename));
    goto out;
  }

  /* Alternating clean and dirty runs to the end of the disk. */
  size = hbitmap_size (hb);
  if (json)
    printf ("[\n");
  for (offset = 0; offset < size; ) {
    bool dirty = hbitmap_get (hb, offset);
    int64_t next = dirty ? hbitmap_next_clean (hb, offset, size - offset)
                         : hbitmap_next_dirty (hb, offset, size - offset);
    uint64_t end = next < 0 ? size : (uint64_t) next;

    print_extent (json, &first, offset, end - offset, dirty);
    offset = end;
  }
  if (json)
    printf ("%s]\n", first ? "" : "\n");
  ret = 0;

 out:
  hbitmap_free (hb);
  if (qcow2_close (q) == -1 && ret == 0) {
    img_error ("%s: %s", filename, lib_error (filename));
    ret = 1;
  }
  return ret;
}
