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

/* nbdkit-cbt-filter: nbdcbt's change tracking as a real nbdkit filter.
 *
 *   nbdkit --filter=.../nbdkit-cbt-filter.so file disk.raw bitmap=b0
 *
 * One source, two builds: this file is only an adapter.  It is linked
 * with the dirty filter's own sources (filters/dirty/dirty.c, store.c,
 * control.c) and runs that filter's struct nbdcbt_filter inside nbdkit:
 * nbdkit's callbacks become the dirty filter's, nbdkit's "next" becomes
 * the nbdcbt next_ops the dirty filter calls, and the nbdcbt_* functions
 * the dirty filter uses are provided here on top of nbdkit_*.
 *
 * nbdkit cannot offer qemu:dirty-bitmap:NAME to clients, so the point is
 * persistence: the bitmaps are kept in the raw image's QBM sidecar
 * (IMAGE.qbm, common/qbm) through the same bitmap-store interface and
 * intent record as in nbdcbt, with the same crash guarantee.  The map is
 * read afterwards with nbdcbt-img map, or by serving the image with
 * nbdcbt.
 *
 * The image is the file plugin's file= (this filter sees every parameter
 * on its way down), or cbt-image=PATH; cbt-sidecar=PATH overrides where
 * the sidecar is.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nbdkit-filter.h>

#include "nbdcbt-filter.h"

#include "bitmap-store.h"
#include "qbm.h"
#include "qbm-store.h"

/* The dirty filter, from its own registration (dirty.c). */
extern struct nbdcbt_filter *nbdcbt_register_filter (void);
static const struct nbdcbt_filter *df;

/* The one instance (nbdkit filters are one per process). */
static void *instance;
static char *image, *sidecar;
static struct qbm *qbm;
static const struct bitmap_store *qbm_ops;     /* the sidecar's store */
static const struct bitmap_store *store;       /* what the filter gets */

/* The crash guarantee is the dirty filter's own (filters/dirty/store.c):
 * it starts the sidecar's intent record through the store's start_intent
 * (common/qbm/intent.h), marks the zones before each write, zero and
 * trim goes down, and clears them once the bitmaps are stored.  This
 * adapter only hands it the sidecar's store; driving the record here too
 * started it twice (a second start when the filter fell back to plain
 * mark_in_use) and marked every write twice.
 */

/* What the dirty filter knows as "the next layer" at configuration time
 * and per connection.  nbdcbt keeps these opaque to filters; here they
 * wrap nbdkit's.
 */
struct nbdcbt_backend {
  nbdkit_next_config *config;
  nbdkit_next_config_complete *config_complete;
  nbdkit_backend *nxdata;
};

/* Per connection: nbdkit's next is the nbdcbt context. */
#define NX(c) ((nbdkit_next *) (c))

/* The nbdcbt_* functions the dirty filter calls. */

void
nbdcbt_error (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  nbdkit_verror (fs, args);
  va_end (args);
}

/* nbdkit does not tell a filter whether it runs with -r.  Answering
 * "read-only" is the safe side: the only use is to store bitmaps
 * recovered after a crash at a stop when nobody wrote, and without that
 * store they are simply recovered again (stored data plus the intent
 * record) at the next start.
 */
bool
nbdcbt_read_only (void)
{
  return true;
}

/* nbdkit has no warning level: a warning goes to stderr with its own
 * prefix (nbdkit_error would count it as an error in the user's eyes).
 */
void
nbdcbt_warning (const char *fs, ...)
{
  va_list args;
  int saved_errno = errno;

  flockfile (stderr);
  fputs ("nbdkit: cbt: warning: ", stderr);
  va_start (args, fs);
  errno = saved_errno;          /* for %m */
  vfprintf (stderr, fs, args);
  va_end (args);
  fputc ('\n', stderr);
  funlockfile (stderr);
}

void
nbdcbt_debug (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  nbdkit_vdebug (fs, args);
  va_end (args);
}

int
nbdcbt_parse_bool (const char *str)
{
  return nbdkit_parse_bool (str);
}

const void *
nbdcbt_next_service (nbdcbt_backend *nxdata, const char *name)
{
  if (strcmp (name, "bitmap-store") == 0)
    return store;
  return NULL;
}

/* Block status of other contexts never reaches an nbdkit filter; these
 * exist for the dirty filter's meta_extents, which nbdkit never calls.
 */
int
nbdcbt_add_extent (struct nbdcbt_extents *e, uint64_t offset,
                   uint64_t length, uint32_t type)
{
  errno = ENOTSUP;
  return -1;
}

bool
nbdcbt_extents_full (const struct nbdcbt_extents *e)
{
  return true;
}

int
nbdcbt_add_meta_context (struct nbdcbt_meta_contexts *mc, const char *name)
{
  return 0;
}

/* Flags: nbdkit's FUA and MAY_TRIM bits differ from nbdcbt's. */
static uint32_t
to_cbt (uint32_t f)
{
  return (f & NBDKIT_FLAG_FUA ? NBDCBT_FLAG_FUA : 0)
    | (f & NBDKIT_FLAG_MAY_TRIM ? NBDCBT_FLAG_MAY_TRIM : 0)
    | (f & NBDKIT_FLAG_REQ_ONE ? NBDCBT_FLAG_REQ_ONE : 0)
    | (f & NBDKIT_FLAG_FAST_ZERO ? NBDCBT_FLAG_FAST_ZERO : 0);
}

static uint32_t
to_nbdkit (uint32_t f)
{
  return (f & NBDCBT_FLAG_FUA ? NBDKIT_FLAG_FUA : 0)
    | (f & NBDCBT_FLAG_MAY_TRIM ? NBDKIT_FLAG_MAY_TRIM : 0)
    | (f & NBDCBT_FLAG_REQ_ONE ? NBDKIT_FLAG_REQ_ONE : 0)
    | (f & NBDCBT_FLAG_FAST_ZERO ? NBDKIT_FLAG_FAST_ZERO : 0);
}

/* The next_ops the dirty filter calls: nbdkit's next. */

static int64_t
n_get_size (nbdcbt_context *c)
{
  return NX (c)->get_size (NX (c));
}

static int
n_block_size (nbdcbt_context *c, uint32_t *mn, uint32_t *pr, uint32_t *mx)
{
  return NX (c)->block_size (NX (c), mn, pr, mx);
}

#define N_CAP(fn)                                                       \
  static int n_##fn (nbdcbt_context *c) { return NX (c)->fn (NX (c)); }
N_CAP (can_write)
N_CAP (can_flush)
N_CAP (is_rotational)
N_CAP (can_trim)
N_CAP (can_zero)
N_CAP (can_fast_zero)
N_CAP (can_extents)
N_CAP (can_fua)
N_CAP (can_multi_conn)
N_CAP (can_cache)

static int
n_pread (nbdcbt_context *c, void *buf, uint32_t count, uint64_t offset,
         uint32_t flags, int *err)
{
  return NX (c)->pread (NX (c), buf, count, offset, to_nbdkit (flags), err);
}

static int
n_pwrite (nbdcbt_context *c, const void *buf, uint32_t count,
          uint64_t offset, uint32_t flags, int *err)
{
  return NX (c)->pwrite (NX (c), buf, count, offset, to_nbdkit (flags), err);
}

static int
n_flush (nbdcbt_context *c, uint32_t flags, int *err)
{
  return NX (c)->flush (NX (c), 0, err);
}

static int
n_trim (nbdcbt_context *c, uint32_t count, uint64_t offset, uint32_t flags,
        int *err)
{
  return NX (c)->trim (NX (c), count, offset, to_nbdkit (flags), err);
}

static int
n_zero (nbdcbt_context *c, uint32_t count, uint64_t offset, uint32_t flags,
        int *err)
{
  return NX (c)->zero (NX (c), count, offset, to_nbdkit (flags), err);
}

static int
n_cache (nbdcbt_context *c, uint32_t count, uint64_t offset, uint32_t flags,
         int *err)
{
  return NX (c)->cache (NX (c), count, offset, 0, err);
}

static int
n_extents (nbdcbt_context *c, uint32_t count, uint64_t offset,
           uint32_t flags, struct nbdcbt_extents *e, int *err)
{
  *err = ENOTSUP;       /* the dirty filter does not ask for extents */
  return -1;
}

static int
n_meta_extents (nbdcbt_context *c, const char *context, uint32_t count,
                uint64_t offset, uint32_t flags, struct nbdcbt_extents *e,
                int *err)
{
  *err = ENOTSUP;
  return -1;
}

static const struct nbdcbt_next_ops next_ops = {
  .get_size = n_get_size,
  .block_size = n_block_size,
  .can_write = n_can_write,
  .can_flush = n_can_flush,
  .is_rotational = n_is_rotational,
  .can_trim = n_can_trim,
  .can_zero = n_can_zero,
  .can_fast_zero = n_can_fast_zero,
  .can_extents = n_can_extents,
  .can_fua = n_can_fua,
  .can_multi_conn = n_can_multi_conn,
  .can_cache = n_can_cache,
  .pread = n_pread,
  .pwrite = n_pwrite,
  .flush = n_flush,
  .trim = n_trim,
  .zero = n_zero,
  .extents = n_extents,
  .cache = n_cache,
  .meta_extents = n_meta_extents,
};

/* nbdkit's callbacks. */

static void
cbt_load (void)
{
  df = nbdcbt_register_filter ();
}

static void
cbt_unload (void)
{
  if (instance && df->instance_free)
    df->instance_free (instance);
  instance = NULL;
  if (qbm_ops)
    qbm_store_free (qbm_ops);
  if (qbm)
    qbm_close (qbm);
  free (image);
  free (sidecar);
}

static int
next_config (nbdcbt_backend *b, const char *key, const char *value)
{
  return b->config (b->nxdata, key, value);
}

static int
next_config_complete (nbdcbt_backend *b)
{
  return b->config_complete (b->nxdata);
}

static int
set_path (char **dst, const char *value)
{
  free (*dst);
  *dst = nbdkit_absolute_path (value);
  return *dst ? 0 : -1;
}

static int
cbt_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
            const char *key, const char *value)
{
  struct nbdcbt_backend b = { .config = next, .nxdata = nxdata };

  if (instance == NULL && df->instance_new
      && (instance = df->instance_new ()) == NULL)
    return -1;
  if (strcmp (key, "cbt-image") == 0)
    return set_path (&image, value);
  if (strcmp (key, "cbt-sidecar") == 0)
    return set_path (&sidecar, value);
  /* The file plugin's image: note it, and pass it on. */
  if (strcmp (key, "file") == 0 && set_path (&image, value) == -1)
    return -1;
  return df->config (next_config, &b, instance, key, value);
}

static int
cbt_config_complete (nbdkit_next_config_complete *next,
                     nbdkit_backend *nxdata)
{
  struct nbdcbt_backend b = { .config_complete = next, .nxdata = nxdata };

  if (instance == NULL && df->instance_new
      && (instance = df->instance_new ()) == NULL)
    return -1;
  if (image == NULL) {
    nbdkit_error ("cbt: which image do the bitmaps belong to?  Use the "
                  "file plugin (file=) or give cbt-image=PATH");
    return -1;
  }
  if (df->config_complete)
    return df->config_complete (next_config_complete, &b, instance);
  return next (nxdata);
}

#define cbt_config_help \
  "bitmap=NAME[:GRANULARITY]  Track changes in bitmap NAME (as nbdcbt's\n" \
  "                           dirty filter).\n" \
  "store-on-flush=BOOL        Also store the bitmaps on flush.\n" \
  "cbt-image=PATH             The raw image (default: the file plugin's).\n" \
  "cbt-sidecar=PATH           The QBM sidecar (default: IMAGE.qbm)."

/* Open the sidecar store (the image's size is the file's), then let the
 * dirty filter load it.
 */
static int
cbt_get_ready (int thread_model)
{
  struct nbdcbt_backend b = { 0 };
  struct stat st;

  if (stat (image, &st) == -1) {
    nbdkit_error ("cbt: %s: %m", image);
    return -1;
  }
  if (sidecar == NULL && (sidecar = qbm_default_path (image)) == NULL) {
    nbdkit_error ("cbt: %m");
    return -1;
  }
  qbm = qbm_open (sidecar, image, st.st_size, 0);
  if (qbm == NULL) {
    nbdkit_error ("cbt: %s", qbm_last_error ());
    return -1;
  }
  qbm_ops = qbm_store_new (qbm);
  if (qbm_ops == NULL) {
    nbdkit_error ("cbt: %m");
    return -1;
  }
  store = qbm_ops;
  if (df->get_ready)
    return df->get_ready (&b, instance);
  return 0;
}

static void
cbt_cleanup (nbdkit_backend *backend)
{
  struct nbdcbt_backend b = { .nxdata = backend };

  if (df->cleanup)
    df->cleanup (&b, instance);
}

struct cbt_open {
  nbdkit_next_open *next;
  nbdkit_context *context;
  const char *exportname;
};
static __thread struct cbt_open *opening;

static int
next_open (nbdcbt_context *c, int readonly)
{
  return opening->next (opening->context, readonly, opening->exportname);
}

static void *
cbt_open (nbdkit_next_open *next, nbdkit_context *context, int readonly,
          const char *exportname, int is_tls)
{
  struct cbt_open o = { next, context, exportname };
  void *h;

  if (df->open == NULL) {
    /* As in nbdcbt: a filter without open has its instance as handle. */
    if (next (context, readonly, exportname) == -1)
      return NULL;
    return instance;
  }
  opening = &o;
  h = df->open (next_open, NULL, instance, readonly);
  opening = NULL;
  return h;
}

static void
cbt_close (void *handle)
{
  if (df->close)
    df->close (handle);
}

#define C(next) ((nbdcbt_context *) (next))

static int
cbt_prepare (nbdkit_next *next, void *handle, int readonly)
{
  return df->prepare ? df->prepare (&next_ops, C (next), handle, readonly)
    : 0;
}

static int
cbt_finalize (nbdkit_next *next, void *handle)
{
  return df->finalize ? df->finalize (&next_ops, C (next), handle) : 0;
}

static int
cbt_pwrite (nbdkit_next *next, void *handle, const void *buf,
            uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return df->pwrite (&next_ops, C (next), handle, buf, count, offset,
                     to_cbt (flags), err);
}

static int
cbt_zero (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  return df->zero (&next_ops, C (next), handle, count, offset,
                   to_cbt (flags), err);
}

static int
cbt_trim (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  return df->trim (&next_ops, C (next), handle, count, offset,
                   to_cbt (flags), err);
}

static int
cbt_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  return df->flush (&next_ops, C (next), handle, 0, err);
}

static struct nbdkit_filter filter = {
  .name = "cbt",
  .longname = "nbdcbt change tracking (nbdkit build of the dirty filter)",
  .description = "Track changes in named dirty bitmaps kept in the "
                 "image's QBM sidecar.",
  .config_help = cbt_config_help,
  .load = cbt_load,
  .unload = cbt_unload,
  .config = cbt_config,
  .config_complete = cbt_config_complete,
  .get_ready = cbt_get_ready,
  .cleanup = cbt_cleanup,
  .open = cbt_open,
  .close = cbt_close,
  .prepare = cbt_prepare,
  .finalize = cbt_finalize,
  .pwrite = cbt_pwrite,
  .zero = cbt_zero,
  .trim = cbt_trim,
  .flush = cbt_flush,
};

NBDKIT_REGISTER_FILTER (filter)
