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

/* An nbdkit filter (nbdkit 1.32, filter API 6) as a layer of nbdcbt's
 * chain.
 *
 * Each loaded nbdkit filter gets a slot: a copy of its struct, and an
 * adapter struct nbdcbt_filter whose callbacks call the filter's.  The
 * server-wide callbacks find their slot through the layer below (every
 * layer has its own), except thread_model and unload, which take no
 * argument and so have one trampoline per slot.
 *
 * Per connection the adapter's handle (struct fhandle) holds the nbdkit
 * filter's handle and the "next" object the filter calls: a struct
 * nbdkit_next_ops (the part nbdkit's header shows) followed by the nbdcbt
 * context it forwards to.  A filter may open further contexts of the
 * layers below (nbdkit_next_context_open, as the retry filter does to
 * reconnect) and swap them in (nbdkit_context_set_next); those are
 * whole chains of their own, closed with the connection.  The chain the
 * server opened for the connection stays open until the connection
 * closes, even if the filter "closes" it.
 */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "internal.h"
#include "nbdkit-host.h"
#include "tls.h"
#include "minmax.h"

#define MAX_SLOTS 16

struct slot {
  struct nbdcbt_filter adapter;
  struct nbdkit_filter f;               /* the module's, copied */
  struct nbdcbt_module module;          /* its registration */
  nbdcbt_backend *below;                /* the layer below its instance */
  bool instantiated;
};
static struct slot slots[MAX_SLOTS];
static size_t nslots;

struct next {
  struct nbdkit_next_ops ops;           /* first: this is a nbdkit_next */
  struct nbdcbt_context *c;
  bool owned;                           /* opened by the filter */
  bool readonly;                        /* opened read-only */
};

struct fhandle {
  struct slot *s;
  void *h;                              /* the nbdkit filter's handle */
  struct next *next;                    /* what the filter calls now */
  struct next chain;                    /* the server's chain below */
  /* Contexts the filter opened, closed with the connection. */
  struct next **opened;
  size_t nopened;
  /* For the filter's open. */
  nbdcbt_next_open *open_next;
  int readonly;
};

/* The next object: forwarding to an nbdcbt context. */

#define N(nx) ((struct next *) (nx))

static int
nx_prepare (nbdkit_next *nx)
{
  return 0;     /* nbdcbt contexts are prepared when they are opened */
}

static int
nx_finalize (nbdkit_next *nx)
{
  return 0;     /* finalized by the server when closed */
}

static int64_t
nx_get_size (nbdkit_next *nx)
{
  return next_ops.get_size (N (nx)->c);
}

static const char *
nx_export_description (nbdkit_next *nx)
{
  return NULL;
}

static int
nx_block_size (nbdkit_next *nx, uint32_t *mn, uint32_t *pr, uint32_t *mx)
{
  return next_ops.block_size (N (nx)->c, mn, pr, mx);
}

#define NX_CAP(fn)                                                      \
  static int nx_##fn (nbdkit_next *nx)                                  \
  {                                                                     \
    return next_ops.fn (N (nx)->c);                                  \
  }
NX_CAP (can_flush)
NX_CAP (is_rotational)
NX_CAP (can_extents)
NX_CAP (can_multi_conn)
NX_CAP (can_cache)

/* As nbdkit's backend: a layer opened read-only cannot write, and one
 * that cannot write offers no trim, zero or FUA.
 */
static int
nx_can_write (nbdkit_next *nx)
{
  return N (nx)->readonly ? 0 : next_ops.can_write (N (nx)->c);
}

#define NX_WRITE_CAP(fn)                                                \
  static int nx_##fn (nbdkit_next *nx)                                  \
  {                                                                     \
    int r = nx_can_write (nx);                                          \
    return r != 1 ? r : next_ops.fn (N (nx)->c);                     \
  }
NX_WRITE_CAP (can_trim)
NX_WRITE_CAP (can_zero)
NX_WRITE_CAP (can_fua)

static int
nx_can_fast_zero (nbdkit_next *nx)
{
  int r = nx_can_zero (nx);

  return r <= NBDKIT_ZERO_NONE ? r : next_ops.can_fast_zero (N (nx)->c);
}

static int
nx_pread (nbdkit_next *nx, void *buf, uint32_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  return next_ops.pread (N (nx)->c, buf, count, offset,
                            nbdkit_flags_to_nbdcbt (flags), err);
}

static int
nx_pwrite (nbdkit_next *nx, const void *buf, uint32_t count,
           uint64_t offset, uint32_t flags, int *err)
{
  return next_ops.pwrite (N (nx)->c, buf, count, offset,
                             nbdkit_flags_to_nbdcbt (flags), err);
}

static int
nx_flush (nbdkit_next *nx, uint32_t flags, int *err)
{
  return next_ops.flush (N (nx)->c, 0, err);
}

static int
nx_trim (nbdkit_next *nx, uint32_t count, uint64_t offset, uint32_t flags,
         int *err)
{
  return next_ops.trim (N (nx)->c, count, offset,
                           nbdkit_flags_to_nbdcbt (flags), err);
}

static int
nx_zero (nbdkit_next *nx, uint32_t count, uint64_t offset, uint32_t flags,
         int *err)
{
  return next_ops.zero (N (nx)->c, count, offset,
                           nbdkit_flags_to_nbdcbt (flags), err);
}

static int
nx_extents (nbdkit_next *nx, uint32_t count, uint64_t offset,
            uint32_t flags, struct nbdkit_extents *extents, int *err)
{
  return next_ops.extents (N (nx)->c, count, offset,
                              nbdkit_flags_to_nbdcbt (flags),
                              (struct nbdcbt_extents *) extents, err);
}

static int
nx_cache (nbdkit_next *nx, uint32_t count, uint64_t offset, uint32_t flags,
          int *err)
{
  return next_ops.cache (N (nx)->c, count, offset, 0, err);
}

static const struct nbdkit_next_ops next_ops_template = {
  .prepare = nx_prepare,
  .finalize = nx_finalize,
  .get_size = nx_get_size,
  .export_description = nx_export_description,
  .block_size = nx_block_size,
  .can_write = nx_can_write,
  .can_flush = nx_can_flush,
  .is_rotational = nx_is_rotational,
  .can_trim = nx_can_trim,
  .can_zero = nx_can_zero,
  .can_fast_zero = nx_can_fast_zero,
  .can_extents = nx_can_extents,
  .can_fua = nx_can_fua,
  .can_multi_conn = nx_can_multi_conn,
  .can_cache = nx_can_cache,
  .pread = nx_pread,
  .pwrite = nx_pwrite,
  .flush = nx_flush,
  .trim = nx_trim,
  .zero = nx_zero,
  .extents = nx_extents,
  .cache = nx_cache,
};

/* Contexts a filter manages itself (nbdkit-filter(3), "Filter
 * contexts").
 */

nbdkit_backend *
nbdkit_context_get_backend (nbdkit_context *context)
{
  struct fhandle *fh = (struct fhandle *) context;

  return (nbdkit_backend *) fh->s->below;
}

nbdkit_next *
nbdkit_next_context_open (nbdkit_backend *backend, int readonly,
                          const char *exportname, int shared)
{
  struct next *n = calloc (1, sizeof *n);

  if (n == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  n->ops = next_ops_template;
  n->owned = true;
  n->readonly = readonly;
  n->c = backend_open ((struct nbdcbt_backend *) backend, readonly);
  if (n->c == NULL) {
    free (n);
    return NULL;
  }
  return (nbdkit_next *) n;
}

void
nbdkit_next_context_close (nbdkit_next *nx)
{
  struct next *n = N (nx);

  if (n == NULL || !n->owned)
    return;     /* the server's chain: closed with the connection */
  backend_close (n->c);
  n->c = NULL;
  /* The struct itself stays listed in its fhandle until close, which
   * frees it: a filter may still compare the pointer.
   */
}

nbdkit_next *
nbdkit_context_set_next (nbdkit_context *context, nbdkit_next *nx)
{
  struct fhandle *fh = (struct fhandle *) context;
  struct next *old = fh->next, *n = N (nx);
  struct next **v;

  if (n && n->owned) {
    v = realloc (fh->opened, (fh->nopened + 1) * sizeof *v);
    if (v == NULL) {
      /* Cannot track it: keep the old one rather than leak silently. */
      nbdkit_error ("realloc: %m");
      return (nbdkit_next *) old;
    }
    fh->opened = v;
    fh->opened[fh->nopened++] = n;
  }
  fh->next = n;
  return (nbdkit_next *) old;
}

/* nbdkit_extents_full: ask NEXT until the whole range is described. */
struct nbdkit_extents *
nbdkit_extents_full (nbdkit_next *nx, uint32_t count, uint64_t offset,
                     uint32_t flags, int *err)
{
  struct nbdkit_extents *ret, *part;
  uint64_t end = offset + count, pos = offset;
  size_t i;

  ret = nbdkit_extents_new (offset, end);
  if (ret == NULL) {
    *err = errno;
    return NULL;
  }
  flags &= ~NBDKIT_FLAG_REQ_ONE;
  while (pos < end) {
    part = nbdkit_extents_new (pos, end);
    if (part == NULL) {
      *err = errno;
      goto fail;
    }
    if (nx->extents (nx, end - pos, pos, flags, part, err) == -1) {
      nbdkit_extents_free (part);
      goto fail;
    }
    if (nbdkit_extents_count (part) == 0) {
      nbdkit_extents_free (part);
      nbdkit_error ("nbdkit_extents_full: the layer below returned no "
                    "extents");
      *err = EIO;
      goto fail;
    }
    for (i = 0; i < nbdkit_extents_count (part); ++i) {
      struct nbdkit_extent e = nbdkit_get_extent (part, i);

      if (nbdkit_add_extent (ret, e.offset, e.length, e.type) == -1) {
        *err = errno;
        nbdkit_extents_free (part);
        goto fail;
      }
      pos = e.offset + e.length;
    }
    nbdkit_extents_free (part);
  }
  return ret;

 fail:
  nbdkit_extents_free (ret);
  return NULL;
}

/* nbdkit_extents_aligned: the extents of [OFFSET, OFFSET+COUNT) from
 * NEXT, with every boundary but the last a multiple of ALIGN.  Where an
 * aligned block mixes types, it gets the types' intersection (a block is
 * a hole, or reads as zero, only if all of it does).
 */
int
nbdkit_extents_aligned (nbdkit_next *nx, uint32_t count, uint64_t offset,
                        uint32_t flags, uint32_t align,
                        struct nbdkit_extents *extents, int *err)
{
  struct nbdkit_extents *all;
  uint64_t end, pos, blk_end;
  uint32_t type;
  size_t i, n;

  if (align == 0 || (align & (align - 1)) != 0 || offset % align) {
    nbdkit_error ("nbdkit_extents_aligned: bad alignment");
    *err = EINVAL;
    return -1;
  }
  all = nbdkit_extents_full (nx, count, offset, flags, err);
  if (all == NULL)
    return -1;
  n = nbdkit_extents_count (all);
  end = offset + count;
  pos = offset;
  i = 0;
  while (pos < end && i < n) {
    struct nbdkit_extent e = nbdkit_get_extent (all, i);
    uint64_t e_end = e.offset + e.length;

    if (e_end - pos >= align || e_end == end) {
      /* Whole aligned blocks inside this extent. */
      uint64_t stop = e_end == end ? end : e_end - (e_end - pos) % align;

      if (stop > pos) {
        if (nbdkit_add_extent (extents, pos, stop - pos, e.type) == -1)
          goto fail_errno;
        pos = stop;
      }
      if (pos >= e_end)
        i++;
      continue;
    }
    /* An aligned block [pos, pos+align) spanning extents: intersect. */
    blk_end = MIN (pos + align, end);
    type = e.type;
    while (i < n) {
      e = nbdkit_get_extent (all, i);
      e_end = e.offset + e.length;
      type &= e.type;
      if (e_end > blk_end)
        break;
      i++;
      if (e_end == blk_end)
        break;
    }
    if (nbdkit_add_extent (extents, pos, blk_end - pos, type) == -1)
      goto fail_errno;
    pos = blk_end;
    if ((flags & NBDKIT_FLAG_REQ_ONE) && nbdkit_extents_count (extents))
      break;
  }
  nbdkit_extents_free (all);
  return 0;

 fail_errno:
  *err = errno;
  nbdkit_extents_free (all);
  return -1;
}

/* The adapter: server-wide callbacks. */

static int
nk_next_config (nbdkit_backend *b, const char *key, const char *value)
{
  return backend_config ((struct nbdcbt_backend *) b, key, value);
}

static int
nk_next_config_complete (nbdkit_backend *b)
{
  return backend_config_complete ((struct nbdcbt_backend *) b);
}

/* The instance is the slot.  The layer below is noted whenever a
 * callback shows it (the filter context API and .after_fork need it).
 */
static int
ad_config (nbdcbt_next_config *next, nbdcbt_backend *nxdata, void *instance,
           const char *key, const char *value)
{
  struct slot *s = instance;

  s->below = nxdata;
  if (s->f.config)
    return s->f.config (nk_next_config, (nbdkit_backend *) nxdata, key,
                        value);
  return backend_config (nxdata, key, value);
}

static int
ad_config_complete (nbdcbt_next_config_complete *next,
                    nbdcbt_backend *nxdata, void *instance)
{
  struct slot *s = instance;

  s->below = nxdata;
  if (s->f.config_complete)
    return s->f.config_complete (nk_next_config_complete,
                                 (nbdkit_backend *) nxdata);
  return backend_config_complete (nxdata);
}

static int
ad_get_ready (nbdcbt_backend *nxdata, void *instance)
{
  struct slot *s = instance;

  s->below = nxdata;
  return s->f.get_ready (thread_model);
}

static void
ad_cleanup (nbdcbt_backend *nxdata, void *instance)
{
  struct slot *s = instance;

  s->f.cleanup ((nbdkit_backend *) nxdata);
}

static int
ad_thread_model (void *instance)
{
  struct slot *s = instance;

  return s->f.thread_model ();
}

/* instance_new has no argument: one trampoline per slot. */
static void *
slot_instance_new (size_t i)
{
  if (slots[i].instantiated) {
    nbdcbt_error ("%s is already used (in this chain or by another "
                  "export): an nbdkit module keeps its settings in global "
                  "variables, so one process can hold one instance of it",
                  slots[i].module.name);
    return NULL;
  }
  slots[i].instantiated = true;
  return &slots[i];
}

#define TRAMPOLINE(i)                                                   \
  static void *instance_new_##i (void) { return slot_instance_new (i); }
TRAMPOLINE (0) TRAMPOLINE (1) TRAMPOLINE (2) TRAMPOLINE (3)
TRAMPOLINE (4) TRAMPOLINE (5) TRAMPOLINE (6) TRAMPOLINE (7)
TRAMPOLINE (8) TRAMPOLINE (9) TRAMPOLINE (10) TRAMPOLINE (11)
TRAMPOLINE (12) TRAMPOLINE (13) TRAMPOLINE (14) TRAMPOLINE (15)
static void *(*const instance_news[MAX_SLOTS]) (void) = {
  instance_new_0, instance_new_1, instance_new_2, instance_new_3,
  instance_new_4, instance_new_5, instance_new_6, instance_new_7,
  instance_new_8, instance_new_9, instance_new_10, instance_new_11,
  instance_new_12, instance_new_13, instance_new_14, instance_new_15,
};

/* The adapter: per connection. */

/* The layers below run their own .preconnect in their open. */
static int
nk_next_preconnect (nbdkit_backend *b, int readonly)
{
  return 0;
}

static int
nk_next_open (nbdkit_context *context, int readonly, const char *exportname)
{
  struct fhandle *fh = (struct fhandle *) context;

  fh->chain.readonly = readonly;
  return fh->open_next (fh->chain.c, readonly);
}

static void *
ad_open (nbdcbt_next_open *next, nbdcbt_context *nxdata, void *instance,
         int readonly)
{
  struct slot *s = instance;
  struct fhandle *fh = calloc (1, sizeof *fh);
  const char *exportname = nbdcbt_export_name ();

  if (fh == NULL) {
    nbdcbt_error ("calloc: %m");
    return NULL;
  }
  fh->s = s;
  fh->chain.ops = next_ops_template;
  fh->chain.c = nxdata;
  fh->next = &fh->chain;
  fh->open_next = next;
  fh->readonly = readonly;
  if (exportname == NULL)
    exportname = "";

  /* See the plugin adapter: .preconnect runs at open. */
  if (s->f.preconnect
      && s->f.preconnect (nk_next_preconnect, (nbdkit_backend *) nxdata->b,
                          readonly) == -1)
    goto fail;
  if (s->f.open) {
    fh->h = s->f.open (nk_next_open, (nbdkit_context *) fh, readonly,
                       exportname,
                       current_conn
                       && tls_active (&current_conn->transport));
    if (fh->h == NULL)
      goto fail;
  }
  else {
    if (next (nxdata, readonly) == -1)
      goto fail;
    fh->h = NBDKIT_HANDLE_NOT_NEEDED;
  }
  return fh;

 fail:
  free (fh);
  return NULL;
}

static void
ad_close (void *handle)
{
  struct fhandle *fh = handle;
  size_t i;

  if (fh->s->f.close)
    fh->s->f.close (fh->h);
  for (i = 0; i < fh->nopened; ++i) {
    if (fh->opened[i]->c)
      backend_close (fh->opened[i]->c);
    free (fh->opened[i]);
  }
  free (fh->opened);
  free (fh);
}

static int
ad_prepare (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
            void *handle, int readonly)
{
  struct fhandle *fh = handle;

  return fh->s->f.prepare ((nbdkit_next *) fh->next, fh->h, readonly);
}

static int
ad_finalize (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
             void *handle)
{
  struct fhandle *fh = handle;

  return fh->s->f.finalize ((nbdkit_next *) fh->next, fh->h);
}

/* The filter's callback, or straight to its current next.  A filter that
 * dropped its next (set_next NULL) and still passes a request down gets
 * EIO.
 */
#define FH ((struct fhandle *) handle)
#define NEXT ((nbdkit_next *) FH->next)

static int64_t
ad_get_size (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
             void *handle)
{
  if (FH->s->f.get_size)
    return FH->s->f.get_size (NEXT, FH->h);
  return FH->next ? NEXT->get_size (NEXT) : -1;
}

static int
ad_block_size (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
               void *handle, uint32_t *mn, uint32_t *pr, uint32_t *mx)
{
  uint32_t a = 0, b = 0, c = 0;

  if (FH->s->f.block_size) {
    if (FH->s->f.block_size (NEXT, FH->h, &a, &b, &c) == -1)
      return -1;
    if (a == 0 && b == 0 && c == 0)
      return 0;          /* no constraints: keep what the server has */
    *mn = a;
    *pr = b;
    *mx = c;
    return 0;
  }
  return FH->next ? NEXT->block_size (NEXT, mn, pr, mx) : -1;
}

#define AD_CAP(fn)                                                      \
  static int ad_##fn (const struct nbdcbt_next_ops *ops,                \
                      nbdcbt_context *nxdata, void *handle)             \
  {                                                                     \
    if (FH->s->f.fn)                                                    \
      return FH->s->f.fn (NEXT, FH->h);                                 \
    return FH->next ? NEXT->fn (NEXT) : -1;                             \
  }
AD_CAP (can_write)
AD_CAP (can_flush)
AD_CAP (is_rotational)
AD_CAP (can_trim)
AD_CAP (can_zero)
AD_CAP (can_fast_zero)
AD_CAP (can_extents)
AD_CAP (can_fua)
AD_CAP (can_multi_conn)
AD_CAP (can_cache)

#define NO_NEXT()                                                       \
  do {                                                                  \
    if (FH->next == NULL) {                                             \
      *err = EIO;                                                       \
      return -1;                                                        \
    }                                                                   \
  } while (0)

static int
ad_pread (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
          void *handle, void *buf, uint32_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  uint32_t f = nbdcbt_flags_to_nbdkit (flags);

  if (FH->s->f.pread)
    return FH->s->f.pread (NEXT, FH->h, buf, count, offset, f, err);
  NO_NEXT ();
  return NEXT->pread (NEXT, buf, count, offset, f, err);
}

static int
ad_pwrite (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
           void *handle, const void *buf, uint32_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  uint32_t f = nbdcbt_flags_to_nbdkit (flags);

  if (FH->s->f.pwrite)
    return FH->s->f.pwrite (NEXT, FH->h, buf, count, offset, f, err);
  NO_NEXT ();
  return NEXT->pwrite (NEXT, buf, count, offset, f, err);
}

static int
ad_flush (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
          void *handle, uint32_t flags, int *err)
{
  if (FH->s->f.flush)
    return FH->s->f.flush (NEXT, FH->h, 0, err);
  NO_NEXT ();
  return NEXT->flush (NEXT, 0, err);
}

static int
ad_trim (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
         void *handle, uint32_t count, uint64_t offset, uint32_t flags,
         int *err)
{
  uint32_t f = nbdcbt_flags_to_nbdkit (flags);

  if (FH->s->f.trim)
    return FH->s->f.trim (NEXT, FH->h, count, offset, f, err);
  NO_NEXT ();
  return NEXT->trim (NEXT, count, offset, f, err);
}

static int
ad_zero (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
         void *handle, uint32_t count, uint64_t offset, uint32_t flags,
         int *err)
{
  uint32_t f = nbdcbt_flags_to_nbdkit (flags);

  if (FH->s->f.zero)
    return FH->s->f.zero (NEXT, FH->h, count, offset, f, err);
  NO_NEXT ();
  return NEXT->zero (NEXT, count, offset, f, err);
}

static int
ad_extents (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
            void *handle, uint32_t count, uint64_t offset, uint32_t flags,
            struct nbdcbt_extents *extents, int *err)
{
  uint32_t f = nbdcbt_flags_to_nbdkit (flags);
  struct nbdkit_extents *e = (struct nbdkit_extents *) extents;

  if (FH->s->f.extents)
    return FH->s->f.extents (NEXT, FH->h, count, offset, f, e, err);
  NO_NEXT ();
  return NEXT->extents (NEXT, count, offset, f, e, err);
}

static int
ad_cache (const struct nbdcbt_next_ops *ops, nbdcbt_context *nxdata,
          void *handle, uint32_t count, uint64_t offset, uint32_t flags,
          int *err)
{
  if (FH->s->f.cache)
    return FH->s->f.cache (NEXT, FH->h, count, offset, 0, err);
  NO_NEXT ();
  return NEXT->cache (NEXT, count, offset, 0, err);
}

#undef FH
#undef NEXT

/* Metadata contexts other than base:allocation do not exist for nbdkit
 * filters: the request goes down the server's chain (a context owned by
 * a layer below, a qcow2 plugin's allocation depth, passes through).
 * Left NULL in the adapter.
 */

struct nbdcbt_module *
nbdkit_filter_module (const char *name)
{
  struct nbdkit_filter *(*init) (void);
  const struct nbdkit_filter *f;
  struct slot *s;
  char *path, want[32];
  void *dl;
  size_t i;

  path = nbdkit_module_path (name, false);
  if (path == NULL)
    return NULL;
  if (nbdkit_module_refused (path)) {
    nbdcbt_error ("nbdkit filter %s cannot be used in nbdcbt: %s", name,
                  nbdkit_module_refused (path));
    free (path);
    return NULL;
  }
  /* Loaded already: the same module (instance_new refuses a second
   * instance).
   */
  for (i = 0; i < nslots; ++i) {
    if (strcmp (slots[i].module.filename, path) == 0) {
      free (path);
      return &slots[i].module;
    }
  }
  if (nslots == MAX_SLOTS) {
    nbdcbt_error ("%s: at most %d nbdkit filters can be loaded", name,
                  MAX_SLOTS);
    goto fail_path;
  }
  dl = nbdkit_module_open (path, "filter", "filter_init", (void **) &init);
  if (dl == NULL)
    goto fail_path;
  f = init ();
  if (f == NULL || f->_api_version != NBDKIT_FILTER_API_VERSION) {
    nbdcbt_error ("%s: nbdkit filter API version %d is not supported "
                  "(nbdcbt hosts API %d, as nbdkit %d.%d)", path,
                  f ? f->_api_version : -1, NBDKIT_FILTER_API_VERSION,
                  NBDKIT_VERSION_MAJOR, NBDKIT_VERSION_MINOR);
    goto fail_dl;
  }
  /* Filters have no ABI guarantee beyond _api_version and _version:
   * nbdkit only loads filters built with its own version.  The struct
   * is the same throughout a stable series.
   */
  snprintf (want, sizeof want, "%d.%d.", NBDKIT_VERSION_MAJOR,
            NBDKIT_VERSION_MINOR);
  if (f->_version == NULL || strncmp (f->_version, want, strlen (want))) {
    nbdcbt_error ("%s: built for nbdkit %s; nbdcbt hosts filters built "
                  "for nbdkit %s (the filter structure of other versions "
                  "differs)", path, f->_version ? f->_version : "?",
                  NBDKIT_VERSION_STRING);
    goto fail_dl;
  }
  if (f->name == NULL) {
    nbdcbt_error ("%s: nbdkit filter has no name", path);
    goto fail_dl;
  }
  if (nbdkit_debug_flags_apply (dl, f->name) == -1)
    goto fail_dl;

  s = &slots[nslots];
  memset (s, 0, sizeof *s);
  s->f = *f;
  if (asprintf (&s->module.name, "nbdkit:%s", s->f.name) == -1) {
    nbdcbt_error ("asprintf: %m");
    goto fail_dl;
  }
  s->module.filename = path;
  s->module.dl = dl;
  s->module.filter = &s->adapter;
  s->adapter._struct_size = sizeof s->adapter;
  s->adapter._api_version = NBDCBT_API_VERSION;
  s->adapter.name = s->f.name;
  s->adapter.longname = s->f.longname;
  s->adapter.description = s->f.description;
  s->adapter.config_help = s->f.config_help;
  s->adapter.instance_new = instance_news[nslots];
  s->adapter.config = ad_config;
  s->adapter.config_complete = ad_config_complete;
  s->adapter.thread_model = s->f.thread_model ? ad_thread_model : NULL;
  s->adapter.get_ready = s->f.get_ready ? ad_get_ready : NULL;
  s->adapter.cleanup = s->f.cleanup ? ad_cleanup : NULL;
  s->adapter.open = ad_open;
  s->adapter.close = ad_close;
  s->adapter.prepare = s->f.prepare ? ad_prepare : NULL;
  s->adapter.finalize = s->f.finalize ? ad_finalize : NULL;
  s->adapter.get_size = ad_get_size;
  s->adapter.block_size = ad_block_size;
  s->adapter.can_write = ad_can_write;
  s->adapter.can_flush = ad_can_flush;
  s->adapter.is_rotational = ad_is_rotational;
  s->adapter.can_trim = ad_can_trim;
  s->adapter.can_zero = ad_can_zero;
  s->adapter.can_fast_zero = ad_can_fast_zero;
  s->adapter.can_extents = ad_can_extents;
  s->adapter.can_fua = ad_can_fua;
  s->adapter.can_multi_conn = ad_can_multi_conn;
  s->adapter.can_cache = ad_can_cache;
  s->adapter.pread = ad_pread;
  s->adapter.pwrite = ad_pwrite;
  s->adapter.flush = ad_flush;
  s->adapter.trim = ad_trim;
  s->adapter.zero = ad_zero;
  s->adapter.extents = ad_extents;
  s->adapter.cache = ad_cache;
  nslots++;
  if (s->f.load)
    s->f.load ();
  return &s->module;

 fail_dl:
  dlclose (dl);
 fail_path:
  free (path);
  return NULL;
}

void
nbdkit_filters_unload (void)
{
  size_t i;

  for (i = nslots; i > 0; --i) {
    struct slot *s = &slots[i - 1];

    if (s->f.unload)
      s->f.unload ();
    free (s->module.name);
    free (s->module.filename);
  }
  nslots = 0;
}

int
nbdkit_modules_after_fork (void)
{
  size_t i;

  /* Bottom up, as get_ready. */
  if (nbdkit_plugin_after_fork () == -1)
    return -1;
  for (i = 0; i < nslots; ++i)
    if (slots[i].instantiated && slots[i].f.after_fork
        && slots[i].f.after_fork ((nbdkit_backend *) slots[i].below) == -1)
      return -1;
  return 0;
}
