/* The dirty filter: change tracking in named dirty bitmaps.
 *
 * Every write, write-zeroes and trim marks the granules it touches
 * (partial ones too) in every recording bitmap before the request goes
 * down the chain: a request that then fails leaves false dirty bits, which
 * are harmless, and a write can never reach the disk unrecorded.  Reads,
 * cache, flush and block status mark nothing.
 *
 * Each consistent bitmap is exported as the metadata context
 * qemu:dirty-bitmap:NAME (flag 1 = dirty), answered here from the bitmap;
 * any other context (qemu:allocation-depth from a plugin with a backing
 * chain, say) passes down the chain.
 *
 * The bitmaps are sized from the plugin's size, which is known only once
 * a connection is open: the model (struct dirty_bitmaps) is created at the
 * first prepare, under a lock.  Until then the bitmaps exist as a list of
 * pending names, which is what list_meta_contexts reports during the
 * first handshake.
 *
 * With a bitmap store below (the "bitmap-store" service, see
 * bitmap-store.h) the stored bitmaps are loaded at get_ready, marked in
 * use at the first read-write connection and stored at clean shutdown.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdcbt-filter.h>

#include "bitmap-rules.h"
#include "bitmap-store.h"
#include "cleanup.h"
#include "dirty-bitmap.h"
#include "hbitmap.h"
#include "utils.h"

#define CONTEXT_PREFIX "qemu:dirty-bitmap:"
#define CONTEXT_PREFIX_LEN (sizeof CONTEXT_PREFIX - 1)

/* A bitmap known before the model exists: from bitmap= or the store. */
struct pending {
  char *name;
  uint64_t granularity;   /* 0 = default (bitmap=NAME without one) */
  bool persistent;        /* kept in the store */
  bool disabled;          /* stored without "auto" */
  bool inconsistent;      /* stored with in_use */
  struct hbitmap *data;   /* loaded from the store, or NULL */
};

static struct pending *pending;
static size_t npending;

static const struct bitmap_store *store;
static bool store_on_flush;

/* Guards the creation of SET and the store calls. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Written once under LOCK at the first prepare; every data callback of a
 * connection runs after its prepare, so they read it without the lock.
 */
static struct dirty_bitmaps *set;
static bool marked_in_use;

static void
pending_free_all (void)
{
  size_t i;

  for (i = 0; i < npending; i++) {
    free (pending[i].name);
    hbitmap_free (pending[i].data);
  }
  free (pending);
  pending = NULL;
  npending = 0;
}

static struct pending *
pending_find (const char *name)
{
  size_t i;

  for (i = 0; i < npending; i++)
    if (strcmp (pending[i].name, name) == 0)
      return &pending[i];
  return NULL;
}

static struct pending *
pending_append (const char *name)
{
  struct pending *p;

  p = realloc (pending, (npending + 1) * sizeof *p);
  if (p == NULL)
    return NULL;
  pending = p;
  p = &pending[npending];
  memset (p, 0, sizeof *p);
  p->name = strdup (name);
  if (p->name == NULL)
    return NULL;
  npending++;
  return p;
}

static void
dirty_unload (void)
{
  pending_free_all ();
  dirty_bitmaps_free (set);
  set = NULL;
}

/* bitmap=NAME or bitmap=NAME:GRANULARITY.  The granularity follows the
 * last colon, so a name containing colons needs an explicit granularity.
 */
static int
parse_bitmap (const char *value)
{
  CLEANUP_FREE char *name = strdup (value);
  const char *msg;
  uint64_t granularity = 0;
  char *colon;
  struct pending *p;

  if (name == NULL) {
    nbdcbt_error ("strdup: %m");
    return -1;
  }
  colon = strrchr (name, ':');
  if (colon) {
    const char *err;
    int64_t g;

    *colon = '\0';
    g = parse_human_size (colon + 1, &err);
    if (g == -1) {
      nbdcbt_error ("dirty: bitmap=%s: cannot parse granularity '%s': %s",
                    value, colon + 1, err);
      return -1;
    }
    if ((msg = bitmap_granularity_error (g)) != NULL) {
      nbdcbt_error ("dirty: bitmap=%s: %s", value, msg);
      return -1;
    }
    granularity = g;
  }
  if ((msg = bitmap_name_error (name)) != NULL) {
    /* Do not print a 1000-byte name back. */
    nbdcbt_error ("dirty: bitmap=%.*s%s: %s", 64, value,
                  strlen (value) > 64 ? "..." : "", msg);
    return -1;
  }
  if (pending_find (name)) {
    nbdcbt_error ("dirty: bitmap=%s: Bitmap already exists: %s "
                  "(bitmap names must be unique)", value, name);
    return -1;
  }
  if ((msg = bitmap_count_error (npending + 1)) != NULL) {
    nbdcbt_error ("dirty: bitmap=%.*s%s: %s", 64, value,
                  strlen (value) > 64 ? "..." : "", msg);
    return -1;
  }
  p = pending_append (name);
  if (p == NULL) {
    nbdcbt_error ("dirty: %m");
    return -1;
  }
  p->granularity = granularity;
  return 0;
}

static int
dirty_config (nbdcbt_next_config *next, nbdcbt_backend *nxdata,
              const char *key, const char *value)
{
  if (strcmp (key, "bitmap") == 0)
    return parse_bitmap (value);
  if (strcmp (key, "store-on-flush") == 0) {
    int r = nbdcbt_parse_bool (value);
    if (r == -1)
      return -1;
    store_on_flush = r;
    return 0;
  }
  return next (nxdata, key, value);
}

#define dirty_config_help \
  "bitmap=NAME[:GRANULARITY]  Track changes in bitmap NAME (repeatable;\n" \
  "                           granularity 512..2G, default 64K).\n" \
  "store-on-flush=BOOL        Also store persistent bitmaps on flush."

static const char *
store_error (void)
{
  const char *msg = store->last_error ? store->last_error (store->opaque)
    : NULL;
  return msg ? msg : strerror (errno);
}

/* Load the store's bitmaps and reconcile them with bitmap=. */
static int
load_store (void)
{
  struct bitmap_store_info *list = NULL;
  size_t i, n = 0, nconfig = npending;
  int r = -1;

  if (store->list (store->opaque, &list, &n) == -1) {
    /* ENOTSUP: this store can hold no bitmaps at all (a qcow2 v2 image).
     * Fine without bitmap=; a bitmap= one would be lost at shutdown, so
     * refuse it now, as QEMU refuses to make a bitmap persistent there.
     */
    if (errno == ENOTSUP && nconfig == 0) {
      nbdcbt_debug ("dirty: no persistent bitmaps: %s", store_error ());
      store = NULL;
      return 0;
    }
    if (errno == ENOTSUP)
      nbdcbt_error ("dirty: bitmap=%s cannot be kept: %s", pending[0].name,
                    store_error ());
    else
      nbdcbt_error ("dirty: cannot list the bitmaps in the %s store: %s",
                    store->name, store_error ());
    return -1;
  }
  /* Every bitmap= one is persistent too: the store keeps it. */
  for (i = 0; i < nconfig; i++)
    pending[i].persistent = true;

  for (i = 0; i < n; i++) {
    struct pending *p = pending_find (list[i].name);

    if (p) {
      if (list[i].in_use) {
        nbdcbt_error ("dirty: bitmap=%s: the stored bitmap is inconsistent "
                      "(in use: the image was not closed cleanly); remove "
                      "it first", list[i].name);
        goto out;
      }
      if (p->granularity && p->granularity != list[i].granularity) {
        nbdcbt_error ("dirty: bitmap=%s:%" PRIu64 ": the stored bitmap "
                      "has granularity %" PRIu64, p->name, p->granularity,
                      list[i].granularity);
        goto out;
      }
    }
    else {
      p = pending_append (list[i].name);
      if (p == NULL) {
        nbdcbt_error ("dirty: %m");
        goto out;
      }
      p->persistent = true;
    }
    p->granularity = list[i].granularity;
    p->disabled = !list[i].recording;
    p->inconsistent = list[i].in_use;
    if (!p->inconsistent) {
      p->data = store->load (store->opaque, p->name);
      if (p->data == NULL) {
        nbdcbt_error ("dirty: cannot load bitmap '%s' from the %s store: %s",
                      p->name, store->name, store_error ());
        goto out;
      }
    }
    else
      nbdcbt_debug ("dirty: bitmap '%s' is inconsistent: not exported",
                    p->name);
  }
  r = 0;
 out:
  if (store->list_free)
    store->list_free (store->opaque, list, n);
  return r;
}

static int
dirty_get_ready (nbdcbt_backend *nxdata)
{
  store = nbdcbt_next_service (nxdata, BITMAP_STORE_SERVICE);
  if (store) {
    nbdcbt_debug ("dirty: using the %s bitmap store", store->name);
    return load_store ();
  }
  if (store_on_flush)
    nbdcbt_debug ("dirty: store-on-flush ignored: no bitmap store below");
  return 0;
}

/* Create the model from the pending list.  LOCK held. */
static int
create_set (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata)
{
  int64_t size = next_ops->get_size (nxdata);
  struct dirty_bitmaps *s;
  size_t i;

  if (size == -1)
    return -1;
  s = dirty_bitmaps_new (size);
  if (s == NULL) {
    nbdcbt_error ("dirty: %m");
    return -1;
  }
  for (i = 0; i < npending; i++) {
    struct pending *p = &pending[i];
    struct dirty_bitmap_opts opts = {
      .granularity = p->granularity,
      .disabled = p->disabled,
      .persistent = p->persistent,
      .inconsistent = p->inconsistent,
    };
    CLEANUP_FREE char *msg = NULL;

    if (p->data && hbitmap_size (p->data) != (uint64_t) size
        && hbitmap_resize (p->data, size) == -1) {
      nbdcbt_error ("dirty: bitmap '%s': cannot resize to %" PRIi64 ": %m",
                    p->name, size);
      goto err;
    }
    if (dirty_bitmaps_add (s, p->name, &opts, p->data, &msg) == -1) {
      nbdcbt_error ("dirty: %s", msg ? msg : strerror (errno));
      goto err;
    }
    p->data = NULL;             /* the set owns it now */
  }
  set = s;
  nbdcbt_debug ("dirty: %zu bitmap(s) over %" PRIi64 " bytes, %zu "
                "recording", npending, size, dirty_bitmaps_recording_count (s));
  return 0;

 err:
  dirty_bitmaps_free (s);
  return -1;
}

static int
dirty_prepare (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, int readonly)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);

  if (set == NULL && create_set (next_ops, nxdata) == -1)
    return -1;
  if (store && !readonly && !marked_in_use) {
    if (store->mark_in_use (store->opaque) == -1) {
      nbdcbt_error ("dirty: cannot mark the bitmaps in use in the %s "
                    "store: %s", store->name, store_error ());
      return -1;
    }
    marked_in_use = true;
  }
  return 0;
}

/* Store every persistent bitmap.  LOCK held. */
static int
store_all (bool in_use)
{
  struct dirty_bitmap_info *info = NULL;
  struct bitmap_store_entry *entries = NULL;
  struct dirty_bitmap **refs = NULL;
  const char **keep = NULL;
  size_t i, n = 0, nentries = 0, nkeep = 0;
  int r = -1;

  if (dirty_bitmaps_list (set, &info, &n) == -1) {
    nbdcbt_error ("dirty: %m");
    return -1;
  }
  entries = calloc (n + 1, sizeof *entries);
  refs = calloc (n + 1, sizeof *refs);
  keep = calloc (n + 1, sizeof *keep);
  if (entries == NULL || refs == NULL || keep == NULL) {
    nbdcbt_error ("dirty: %m");
    goto out;
  }
  for (i = 0; i < n; i++) {
    if (!info[i].persistent)
      continue;
    if (info[i].inconsistent) {
      keep[nkeep++] = info[i].name;
      continue;
    }
    refs[nentries] = dirty_bitmaps_get (set, info[i].name, NULL);
    if (refs[nentries] == NULL)
      continue;                 /* removed meanwhile */
    entries[nentries].name = info[i].name;
    entries[nentries].bitmap = dirty_bitmap_data (refs[nentries]);
    entries[nentries].recording = info[i].recording;
    entries[nentries].in_use = in_use;
    nentries++;
  }
  if (store->store (store->opaque, entries, nentries, keep, nkeep) == -1) {
    nbdcbt_error ("dirty: cannot store the bitmaps in the %s store: %s",
                  store->name, store_error ());
    goto out;
  }
  r = 0;
 out:
  for (i = 0; i < nentries; i++)
    dirty_bitmap_put (refs[i]);
  free (refs);
  free (entries);
  free (keep);
  dirty_bitmap_info_free (info, n);
  return r;
}

static void
dirty_cleanup (nbdcbt_backend *nxdata)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);

  if (store && set && marked_in_use) {
    struct dirty_bitmap_info *info;
    size_t i, n;

    /* A job still running at shutdown failed: give its successor back. */
    if (dirty_bitmaps_list (set, &info, &n) == 0) {
      for (i = 0; i < n; i++)
        if (info[i].has_successor)
          dirty_bitmaps_reclaim (set, info[i].name, NULL);
      dirty_bitmap_info_free (info, n);
    }
    if (store_all (false) == 0)
      nbdcbt_debug ("dirty: bitmaps stored");
  }
}

static int
dirty_list_meta_contexts (nbdcbt_next_list_meta_contexts *next,
                          nbdcbt_backend *nxdata, const char *export_name,
                          struct nbdcbt_meta_contexts *contexts)
{
  size_t i;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);

    if (set) {
      struct dirty_bitmap_info *info;
      size_t n;

      if (dirty_bitmaps_list (set, &info, &n) == -1) {
        nbdcbt_error ("dirty: %m");
        return -1;
      }
      for (i = 0; i < n; i++) {
        CLEANUP_FREE char *ctx = NULL;

        if (info[i].inconsistent)
          continue;
        if (asprintf (&ctx, CONTEXT_PREFIX "%s", info[i].name) == -1
            || nbdcbt_add_meta_context (contexts, ctx) == -1) {
          dirty_bitmap_info_free (info, n);
          return -1;
        }
      }
      dirty_bitmap_info_free (info, n);
    }
    else {
      for (i = 0; i < npending; i++) {
        CLEANUP_FREE char *ctx = NULL;

        if (pending[i].inconsistent)
          continue;
        if (asprintf (&ctx, CONTEXT_PREFIX "%s", pending[i].name) == -1
            || nbdcbt_add_meta_context (contexts, ctx) == -1)
          return -1;
      }
    }
  }
  return next (nxdata, export_name, contexts);
}

/* The write path. */
static inline void
mark (uint64_t offset, uint32_t count)
{
  if (set)
    dirty_bitmaps_mark (set, offset, count);
}

static int
dirty_pwrite (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
              void *handle, const void *buf, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  mark (offset, count);
  return next_ops->pwrite (nxdata, buf, count, offset, flags, err);
}

static int
dirty_zero (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
            void *handle, uint32_t count, uint64_t offset, uint32_t flags,
            int *err)
{
  mark (offset, count);
  return next_ops->zero (nxdata, count, offset, flags, err);
}

static int
dirty_trim (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
            void *handle, uint32_t count, uint64_t offset, uint32_t flags,
            int *err)
{
  mark (offset, count);
  return next_ops->trim (nxdata, count, offset, flags, err);
}

static int
dirty_flush (const struct nbdcbt_next_ops *next_ops, nbdcbt_context *nxdata,
             void *handle, uint32_t flags, int *err)
{
  if (next_ops->flush (nxdata, flags, err) == -1)
    return -1;
  if (store_on_flush && store && marked_in_use) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);
    if (store_all (true) == -1) {
      *err = EIO;
      return -1;
    }
  }
  return 0;
}

struct extents_walk {
  struct nbdcbt_extents *extents;
  uint64_t pos;                 /* end of what was added so far */
  int err;
};

/* One dirty area: the clean gap before it, then the area.  1 stops the
 * walk once the list is full, -1 on error.
 */
static int
add_dirty_area (void *opaque, uint64_t start, uint64_t len)
{
  struct extents_walk *w = opaque;

  if (start > w->pos
      && nbdcbt_add_extent (w->extents, w->pos, start - w->pos, 0) == -1)
    goto err;
  if (nbdcbt_extents_full (w->extents))
    return 1;
  if (nbdcbt_add_extent (w->extents, start, len, 1) == -1)
    goto err;
  w->pos = start + len;
  return nbdcbt_extents_full (w->extents);
 err:
  w->err = errno;
  return -1;
}

/* Block status of one bitmap, as qemu-nbd answers it: clean and dirty
 * extents alternating, boundaries on granule multiples except where they
 * are clipped to the request and the export end.  One walk under the
 * bitmap's lock (a 4 GiB request over scattered writes has hundreds of
 * areas).
 */
static int
bitmap_extents (struct hbitmap *hb, uint32_t count, uint64_t offset,
                struct nbdcbt_extents *extents, int *err)
{
  struct extents_walk w = { .extents = extents, .pos = offset };
  uint64_t end = offset + count, size = hbitmap_size (hb);
  int r;

  if (end > size)
    end = size;
  r = hbitmap_walk_dirty (hb, offset, end, add_dirty_area, &w);
  if (r == -1) {
    *err = w.err;
    return -1;
  }
  if (r == 0 && w.pos < end
      && nbdcbt_add_extent (extents, w.pos, end - w.pos, 0) == -1) {
    *err = errno;
    return -1;
  }
  return 0;
}

static int
dirty_meta_extents (const struct nbdcbt_next_ops *next_ops,
                    nbdcbt_context *nxdata, void *handle,
                    const char *context, uint32_t count, uint64_t offset,
                    uint32_t flags, struct nbdcbt_extents *extents, int *err)
{
  struct dirty_bitmap *bm;
  int r;

  if (set == NULL || strncmp (context, CONTEXT_PREFIX, CONTEXT_PREFIX_LEN)
      || (bm = dirty_bitmaps_get (set, context + CONTEXT_PREFIX_LEN,
                               NULL)) == NULL)
    /* Not ours: qemu:allocation-depth and the like live below. */
    return next_ops->meta_extents (nxdata, context, count, offset, flags,
                                   extents, err);

  r = bitmap_extents (dirty_bitmap_data (bm), count, offset, extents, err);
  dirty_bitmap_put (bm);
  return r;
}

static struct nbdcbt_filter filter = {
  .name = "dirty",
  .longname = "nbdcbt dirty filter",
  .version = PACKAGE_VERSION,
  .description = "track changes in named dirty bitmaps",
  .config_help = dirty_config_help,
  .unload = dirty_unload,
  .config = dirty_config,
  .get_ready = dirty_get_ready,
  .cleanup = dirty_cleanup,
  .list_meta_contexts = dirty_list_meta_contexts,
  .prepare = dirty_prepare,
  .pwrite = dirty_pwrite,
  .zero = dirty_zero,
  .trim = dirty_trim,
  .flush = dirty_flush,
  .meta_extents = dirty_meta_extents,
};

NBDCBT_REGISTER_FILTER (filter)
