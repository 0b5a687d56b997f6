/* QEMU's bitmap rules and messages: see bitmap-rules.h. */
#include <config.h>

#include <string.h>

#include "bitmap-rules.h"

/* The limits written into the messages below. */
_Static_assert (BITMAP_NAME_MAX == 1023, "name message");
_Static_assert (BITMAP_GRANULARITY_MIN == 512, "granularity message");
_Static_assert (BITMAP_GRANULARITY_MAX == UINT64_C (2147483648),
                "granularity message");

/* The messages are QEMU's: block/monitor/bitmap-qmp-cmds.c for an empty
 * name and a bad granularity, block/qcow2-bitmap.c for the rest.
 */
const char *
bitmap_name_error (const char *name)
{
  if (name == NULL || name[0] == '\0')
    return "Bitmap name cannot be empty";
  if (strnlen (name, BITMAP_NAME_MAX + 1) > BITMAP_NAME_MAX)
    return "Name length exceeds maximum (1023 characters)";
  return NULL;
}

const char *
bitmap_granularity_error (uint64_t granularity)
{
  if (granularity < BITMAP_GRANULARITY_MIN ||
      (granularity & (granularity - 1)) != 0)
    return "Granularity must be power of 2 and at least 512";
  if (granularity > BITMAP_GRANULARITY_MAX)
    return "Granularity exceeds maximum (2147483648 bytes)";
  return NULL;
}

const char *
bitmap_count_error (size_t count)
{
  if (count > BITMAP_COUNT_MAX)
    return "Maximum number of persistent bitmaps is already reached";
  return NULL;
}
