/* libFuzzer harness for the qcow2 library: header, extensions, bitmap
 * directory and tables, L1/L2 and refcount parsing.
 *
 * Each input is an image file (in a memfd), opened read-only without its
 * backing chain, then listed, checked, and a little of it read.  Any
 * crash, sanitizer report, leak or hang is a bug in the library: a
 * damaged image must only ever give an error.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hbitmap.h"
#include "qcow2.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
ignore_message (void *opaque, const char *text)
{
}

/* Bitmaps whose data would need more than this are not loaded (memory is
 * not what is being tested here).
 */
#define MAX_BITMAP_BYTES (64 * 1024 * 1024)

static void
exercise (struct qcow2 *q)
{
  struct qcow2_bitmap_info *list;
  struct qcow2_check_result result;
  uint64_t disk_size = qcow2_get_size (q), offset = 0;
  size_t n, i;
  int steps;
  static char buf[65536];

  if (qcow2_bitmap_list (q, &list, &n) == 0) {
    for (i = 0; i < n; i++) {
      struct hbitmap *hb;

      if (list[i].granularity == 0 ||
          disk_size / list[i].granularity / 8 > MAX_BITMAP_BYTES)
        continue;
      hb = qcow2_bitmap_load (q, list[i].name);
      if (hb)
        hbitmap_free (hb);
    }
    qcow2_bitmap_list_free (list, n);
  }

  qcow2_check (q, 0, &result, ignore_message, NULL);

  /* Walk a few extents and read the start of the disk: L1/L2 lookups. */
  for (steps = 0; steps < 16 && offset < disk_size; steps++) {
    uint64_t pnum = 0;
    int status, depth;

    if (qcow2_block_status (q, offset, disk_size - offset, &pnum, &status,
                            &depth) == -1 || pnum == 0)
      break;
    offset += pnum;
  }
  if (disk_size > 0)
    qcow2_pread (q, buf, disk_size < sizeof buf ? disk_size : sizeof buf, 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char path[64];
  struct qcow2 *q;
  int fd;

  fd = memfd_create ("fuzz-qcow2", MFD_CLOEXEC);
  if (fd == -1) {
    perror ("memfd_create");
    abort ();
  }
  if (size > 0 && write (fd, data, size) != (ssize_t) size) {
    perror ("write");
    abort ();
  }
  snprintf (path, sizeof path, "/proc/self/fd/%d", fd);

  q = qcow2_open (path, QCOW2_OPEN_RDONLY | QCOW2_OPEN_NO_BACKING |
                  QCOW2_OPEN_NO_BITMAP_IN_USE);
  if (q) {
    exercise (q);
    qcow2_close (q);
  }
  else if (qcow2_last_error () == NULL || qcow2_last_error ()[0] == '\0') {
    /* Every refusal must say why. */
    fprintf (stderr, "qcow2_open failed without a message\n");
    abort ();
  }
  close (fd);
  return 0;
}
