/* QEMU's rules for a dirty bitmap's name, granularity and count, with
 * QEMU's messages: the one place that states them.  hbitmap, the bitmap
 * model, the qcow2 library, nbdcbt-img, nbdcbt-backup and the dirty
 * filter all check against these.
 *
 * The limits are those of the qcow2 bitmaps extension (QEMU's
 * block/qcow2-bitmap.c and BDRV_BITMAP_MAX_NAME_SIZE), so that every
 * bitmap we hold can also be stored.
 */
#ifndef NBDCBT_BITMAP_RULES_H
#define NBDCBT_BITMAP_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BITMAP_NAME_MAX 1023    /* bytes, without the NUL */
#define BITMAP_GRANULARITY_MIN UINT64_C (512)
#define BITMAP_GRANULARITY_MAX (UINT64_C (1) << 31)
#define BITMAP_GRANULARITY_DEFAULT UINT64_C (65536)
#define BITMAP_COUNT_MAX 65535

/* Each returns NULL when the rule holds, or else QEMU's message for the
 * broken rule: a constant string that names no bitmap (the caller adds
 * which one, and where, as it reports errors).
 */
extern const char *bitmap_name_error (const char *name);
extern const char *bitmap_granularity_error (uint64_t granularity);
/* COUNT: how many bitmaps there would be with the one being added. */
extern const char *bitmap_count_error (size_t count);

static inline bool
bitmap_granularity_valid (uint64_t granularity)
{
  return bitmap_granularity_error (granularity) == NULL;
}

#endif /* NBDCBT_BITMAP_RULES_H */
