/* nbdcbt
 * Copyright (C) 2026 the nbdcbt authors
 * All rights reserved.
 *
 * Redistribution and use in source and binary forms, with or without
 * modification, are permitted provided that the following conditions are
 * met:
 *
 * * Redistributions of source code must retain the above copyright
 * notice, this list of conditions and the following disclaimer.
 *
 * * Redistributions in binary form must reproduce the above copyright
 * notice, this list of conditions and the following disclaimer in the
 * documentation and/or other materials provided with the distribution.
 *
 * * Neither the name of the nbdcbt authors nor the names of its
 * contributors may be used to endorse or promote products derived from
 * this software without specific prior written permission.
 *
 * THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
 * "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
 * LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
 * PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
 * HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
 * SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
 * LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
 * DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
 * THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
 * (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
 * OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
 */

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
/* As bitmap_name_error, and also for a name about to be created: it must
 * be UTF-8, since NBD carries it in the metadata context name
 * qemu:dirty-bitmap:NAME and the NBD protocol requires UTF-8 there.
 * QEMU does not check this; bitmaps already stored under such a name
 * (by another program) still load, under bitmap_name_error alone.
 */
extern const char *bitmap_new_name_error (const char *name);
extern bool bitmap_name_is_utf8 (const char *name);

/* The refusal of a new name that is not UTF-8, in every layer's message. */
#define BITMAP_NAME_NOT_UTF8 "Bitmap name is not valid UTF-8"
/* NAME for an error message, in BUF of LEN bytes (LEN >= 8): bytes that
 * are not UTF-8, control bytes and the backslash as \xNN (\\), cut with
 * "..." where it does not fit.  Returns BUF.
 */
extern const char *bitmap_name_quote (const char *name, char *buf,
                                      size_t len);
extern const char *bitmap_granularity_error (uint64_t granularity);
/* COUNT: how many bitmaps there would be with the one being added. */
extern const char *bitmap_count_error (size_t count);

static inline bool
bitmap_granularity_valid (uint64_t granularity)
{
  return bitmap_granularity_error (granularity) == NULL;
}

#endif /* NBDCBT_BITMAP_RULES_H */
