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

/* The copy-before-write engine (see cbw.h for the model and the rules). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbw.h"
#include "hbitmap.h"

#define DEFAULT_GRANULARITY UINT64_C(65536)
/* The old data of a large write is copied in pieces of this size. */
#define COPY_CHUNK (UINT64_C(1) << 20)

/* A range in flight: a view reading the disk (or its store), or a copy. */
enum inflight_kind { INFLIGHT_READ, INFLIGHT_COPY };
struct inflight {
  uint64_t start, end;
  enum inflight_kind kind;
  struct inflight *next, *prev;
};

struct cbw_disk {
  uint64_t size;                /* 0 until known (cbw_disk_set_size) */
  pthread_rwlock_t gate;        /* writes shared, quiesce exclusive */
  /* The thread holding the gate exclusively and how many times it
   * quiesced (nested quiesces by one thread: a transaction holds the
   * disk, then an action in it quiesces again).
   */
  pthread_t quiesce_owner;
  unsigned quiesce_depth;       /* written by the owner only */
  pthread_mutex_t lock;         /* everything below */
  pthread_cond_t cond;          /* an in-flight range went away */
  struct cbw_session *sessions;
  size_t nsessions;             /* changed only with the gate exclusive */
  struct inflight *inflight;
};

struct cbw_session {
  struct cbw_disk *disk;
  uint64_t granularity;
  unsigned gbits;
  uint64_t ngranules;
  /* One bit per granule.  NEEDED, COPIED and GONE are exclusive; none of
   * them set is OPEN.  DIRTY is the mask (NULL: every granule).  READ
   * (independent of the others) marks the granules a read of the view
   * has returned whole: what the client has copied.
   */
  uint64_t *needed, *copied, *gone, *dirty, *read;
  int store_fd;
  bool release_on_read;
  bool need_all;                /* every granule was needed at the start */
  bool attached;
  char failure_msg[256];
  const char *failure;          /* NULL or failure_msg */
  unsigned refs;
  uint64_t copied_bytes;
  struct cbw_session *next;
};

/* Bit arrays. */
static inline bool
bit_get (const uint64_t *w, uint64_t i)
{
  return (w[i >> 6] >> (i & 63)) & 1;
}

static void
bits_assign (uint64_t *w, uint64_t a, uint64_t b, bool v)
{
  while (a < b) {
    unsigned sh = a & 63;
    uint64_t n = 64 - sh;
    uint64_t mask;

    if (n > b - a)
      n = b - a;
    mask = (n == 64 ? ~UINT64_C(0) : (UINT64_C(1) << n) - 1) << sh;
    if (v)
      w[a >> 6] |= mask;
    else
      w[a >> 6] &= ~mask;
    a += n;
  }
}

/* First index in [a, b) whose bit is V, or b. */
static uint64_t
bits_next (const uint64_t *w, uint64_t a, uint64_t b, bool v)
{
  while (a < b) {
    uint64_t word = v ? w[a >> 6] : ~w[a >> 6];

    word >>= a & 63;
    if (word) {
      a += __builtin_ctzll (word);
      return a < b ? a : b;
    }
    a = ((a >> 6) + 1) << 6;
  }
  return b;
}

/* Last index in [a, b) whose bit is set, or b. */
static uint64_t
bits_last (const uint64_t *w, uint64_t a, uint64_t b)
{
  uint64_t i = b;

  while (i > a) {
    uint64_t top = i - 1;
    uint64_t word = w[top >> 6];
    unsigned keep = (top & 63) + 1;

    if (keep < 64)
      word &= (UINT64_C(1) << keep) - 1;
    if (word) {
      uint64_t r = (top & ~UINT64_C(63)) + 63 - __builtin_clzll (word);
      return r >= a ? r : b;
    }
    i = top & ~UINT64_C(63);
  }
  return b;
}

static uint64_t *
bits_new (uint64_t n)
{
  return calloc ((n + 63) / 64 ? (n + 63) / 64 : 1, sizeof (uint64_t));
}

struct cbw_disk *
cbw_disk_new (uint64_t size)
{
  struct cbw_disk *d = calloc (1, sizeof *d);
  pthread_rwlockattr_t attr;

  if (d == NULL)
    return NULL;
  d->size = size;
  /* Writer preference: a quiesce must not starve behind a stream of
   * writes.  Writers never take the gate twice.
   */
  pthread_rwlockattr_init (&attr);
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&d->gate, &attr);
  pthread_rwlockattr_destroy (&attr);
  pthread_mutex_init (&d->lock, NULL);
  pthread_cond_init (&d->cond, NULL);
  return d;
}

void
cbw_disk_free (struct cbw_disk *d)
{
  if (d == NULL)
    return;
  pthread_rwlock_destroy (&d->gate);
  pthread_mutex_destroy (&d->lock);
  pthread_cond_destroy (&d->cond);
  free (d);
}

uint64_t
cbw_disk_size (struct cbw_disk *d)
{
  return __atomic_load_n (&d->size, __ATOMIC_ACQUIRE);
}

int
cbw_disk_set_size (struct cbw_disk *d, uint64_t size)
{
  uint64_t zero = 0;

  if (__atomic_compare_exchange_n (&d->size, &zero, size, false,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return 0;
  return zero == size ? 0 : -1;
}

size_t
cbw_disk_sessions (struct cbw_disk *d)
{
  return __atomic_load_n (&d->nsessions, __ATOMIC_ACQUIRE);
}

void
cbw_write_enter (struct cbw_disk *d)
{
  pthread_rwlock_rdlock (&d->gate);
}

void
cbw_write_leave (struct cbw_disk *d)
{
  pthread_rwlock_unlock (&d->gate);
}

void
cbw_quiesce (struct cbw_disk *d)
{
  /* Only the owner can see itself as the owner while the depth is set. */
  if (__atomic_load_n (&d->quiesce_depth, __ATOMIC_ACQUIRE) > 0
      && pthread_equal (d->quiesce_owner, pthread_self ())) {
    d->quiesce_depth++;
    return;
  }
  pthread_rwlock_wrlock (&d->gate);
  d->quiesce_owner = pthread_self ();
  __atomic_store_n (&d->quiesce_depth, 1, __ATOMIC_RELEASE);
}

void
cbw_resume (struct cbw_disk *d)
{
  if (--d->quiesce_depth > 0)
    return;
  __atomic_store_n (&d->quiesce_depth, 0, __ATOMIC_RELEASE);
  pthread_rwlock_unlock (&d->gate);
}

/* In-flight ranges.  D->lock held. */
static void
inflight_add (struct cbw_disk *d, struct inflight *r, uint64_t start,
              uint64_t end, enum inflight_kind kind)
{
  r->start = start;
  r->end = end;
  r->kind = kind;
  r->prev = NULL;
  r->next = d->inflight;
  if (d->inflight)
    d->inflight->prev = r;
  d->inflight = r;
}

static void
inflight_remove (struct cbw_disk *d, struct inflight *r)
{
  if (r->prev)
    r->prev->next = r->next;
  else
    d->inflight = r->next;
  if (r->next)
    r->next->prev = r->prev;
  pthread_cond_broadcast (&d->cond);
}

/* Does [start, end) overlap a range in flight (only copies when
 * COPIES_ONLY), other than SELF?
 */
static bool
inflight_overlaps (struct cbw_disk *d, uint64_t start, uint64_t end,
                   bool copies_only, const struct inflight *self)
{
  const struct inflight *r;

  for (r = d->inflight; r; r = r->next)
    if (r != self && r->start < end && start < r->end
        && (!copies_only || r->kind == INFLIGHT_COPY))
      return true;
  return false;
}

/* Granule geometry. */
static inline uint64_t
g_first (const struct cbw_session *s, uint64_t offset)
{
  return offset >> s->gbits;
}

/* One past the last granule [offset, end) touches (END > OFFSET). */
static inline uint64_t
g_end (const struct cbw_session *s, uint64_t end)
{
  return ((end - 1) >> s->gbits) + 1;
}

static inline uint64_t
g_offset (const struct cbw_session *s, uint64_t g)
{
  uint64_t o = g << s->gbits;
  return o < s->disk->size ? o : s->disk->size;
}

/* Break S: stop copying into it, fail its reads.  D->lock held. */
static void
session_fail (struct cbw_session *s, const char *what, int err)
{
  if (s->failure)
    return;
  snprintf (s->failure_msg, sizeof s->failure_msg, "%s: %s", what,
            strerror (err));
  s->failure = s->failure_msg;
}

static int
pwrite_full (int fd, const char *buf, uint64_t len, uint64_t offset)
{
  while (len > 0) {
    ssize_t r = pwrite (fd, buf, len > INT_MAX ? INT_MAX : len, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    buf += r;
    len -= r;
    offset += r;
  }
  return 0;
}

static int
pread_full (int fd, char *buf, uint64_t len, uint64_t offset)
{
  while (len > 0) {
    ssize_t r = pread (fd, buf, len > INT_MAX ? INT_MAX : len, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {               /* past the store's end: a sparse tail */
      memset (buf, 0, len);
      return 0;
    }
    buf += r;
    len -= r;
    offset += r;
  }
  return 0;
}

/* Copy into S's store the granules of [pos, pos+n) that S needs, from
 * BUF (the old data of [pos, pos+n)).  The caller's copy range covers
 * them, so they cannot change meanwhile; the lock is taken to find
 * them (other bits of the same words may be changing).
 */
static void
copy_to_store (struct cbw_session *s, const char *buf, uint64_t pos,
               uint64_t n)
{
  struct cbw_disk *d = s->disk;
  uint64_t g = g_first (s, pos), gend = g_end (s, pos + n);

  while (g < gend) {
    uint64_t ge, start, end;
    int r;

    pthread_mutex_lock (&d->lock);
    if (s->failure) {
      pthread_mutex_unlock (&d->lock);
      return;
    }
    g = bits_next (s->needed, g, gend, true);
    ge = g < gend ? bits_next (s->needed, g, gend, false) : gend;
    pthread_mutex_unlock (&d->lock);
    if (g == gend)
      return;

    /* The copy range is granule-aligned for every session; clip to the
     * piece in BUF all the same.
     */
    start = g_offset (s, g);
    end = g_offset (s, ge);
    if (start < pos)
      start = pos;
    if (end > pos + n)
      end = pos + n;
    r = pwrite_full (s->store_fd, buf + (start - pos), end - start, start);
    if (r == -1) {
      int e = errno;

      pthread_mutex_lock (&d->lock);
      session_fail (s, "cannot write the session store", e);
      pthread_mutex_unlock (&d->lock);
      return;
    }
    __atomic_add_fetch (&s->copied_bytes, end - start, __ATOMIC_RELAXED);
    g = ge;
  }
}

void
cbw_before_write (struct cbw_disk *d, uint64_t offset, uint64_t count,
                  cbw_read_fn *read, void *opaque)
{
  struct cbw_session *s;
  struct inflight copy;
  uint64_t end, cs = UINT64_MAX, ce = 0, pos;
  char *buf;

  /* The gate is held: sessions come and go only while it is exclusive. */
  if (count == 0 || d->nsessions == 0 || offset >= d->size)
    return;
  end = offset + count > d->size ? d->size : offset + count;

  pthread_mutex_lock (&d->lock);
  while (inflight_overlaps (d, offset, end, false, NULL))
    pthread_cond_wait (&d->cond, &d->lock);

  for (s = d->sessions; s; s = s->next) {
    uint64_t g0 = g_first (s, offset), g1 = g_end (s, end);
    uint64_t first, last, w;

    if (s->failure)
      continue;
    /* OPEN granules the write touches are GONE: not needed, and the disk
     * will no longer hold their old data.
     */
    for (w = g0; w < g1; ) {
      uint64_t wi = w >> 6, sh = w & 63;
      uint64_t n = 64 - sh < g1 - w ? 64 - sh : g1 - w;
      uint64_t mask = (n == 64 ? ~UINT64_C(0) : (UINT64_C(1) << n) - 1) << sh;

      s->gone[wi] |= mask & ~(s->needed[wi] | s->copied[wi]);
      w += n;
    }
    first = bits_next (s->needed, g0, g1, true);
    if (first == g1)
      continue;
    last = bits_last (s->needed, first, g1);
    if (g_offset (s, first) < cs)
      cs = g_offset (s, first);
    if (g_offset (s, last + 1) > ce)
      ce = g_offset (s, last + 1);
  }
  if (ce == 0) {
    pthread_mutex_unlock (&d->lock);
    return;
  }
  inflight_add (d, &copy, cs, ce, INFLIGHT_COPY);
  pthread_mutex_unlock (&d->lock);

  buf = malloc (ce - cs < COPY_CHUNK ? ce - cs : COPY_CHUNK);
  for (pos = cs; pos < ce; ) {
    uint64_t n = ce - pos < COPY_CHUNK ? ce - pos : COPY_CHUNK;
    int err = ENOMEM;

    if (buf == NULL || read (opaque, buf, n, pos, &err) == -1) {
      /* The old data is lost to every session that needed it. */
      pthread_mutex_lock (&d->lock);
      for (s = d->sessions; s; s = s->next) {
        uint64_t g0 = g_first (s, pos), g1 = g_end (s, pos + n);
        if (bits_next (s->needed, g0, g1, true) < g1)
          session_fail (s, "cannot read the old data to copy", err);
      }
      pthread_mutex_unlock (&d->lock);
    }
    else
      for (s = d->sessions; s; s = s->next)
        copy_to_store (s, buf, pos, n);
    pos += n;
  }
  free (buf);

  /* What was needed in the write's granules is in the stores now. */
  pthread_mutex_lock (&d->lock);
  for (s = d->sessions; s; s = s->next) {
    uint64_t g0 = g_first (s, offset), g1 = g_end (s, end), g, ge;

    if (s->failure)
      continue;
    for (g = bits_next (s->needed, g0, g1, true); g < g1;
         g = bits_next (s->needed, ge, g1, true)) {
      ge = bits_next (s->needed, g, g1, false);
      bits_assign (s->needed, g, ge, false);
      bits_assign (s->copied, g, ge, true);
    }
  }
  inflight_remove (d, &copy);
  pthread_mutex_unlock (&d->lock);
}

/* The store: an unlinked sparse file in DIR. */
static int
store_create (const char *dir, uint64_t size, char **errp)
{
  int fd;

#ifdef O_TMPFILE
  fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd == -1 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    goto err;
  if (fd == -1)
#endif
  {
    char *template;

    if (asprintf (&template, "%s/nbdcbt-session-XXXXXX", dir) == -1)
      goto err;
    fd = mkostemp (template, O_CLOEXEC);
    if (fd == -1) {
      int e = errno;
      free (template);
      errno = e;
      goto err;
    }
    unlink (template);
    free (template);
  }
  if (ftruncate (fd, size) == -1) {
    int e = errno;
    close (fd);
    errno = e;
    goto err;
  }
  return fd;

 err:
  {
    int e = errno;
    if (asprintf (errp, "cannot create the session store in %s: %s", dir,
                  strerror (e)) == -1)
      *errp = NULL;
    errno = e;
  }
  return -1;
}

struct mark_walk {
  struct cbw_session *s;
};

static int
mark_dirty_area (void *opaque, uint64_t start, uint64_t len)
{
  struct cbw_session *s = ((struct mark_walk *) opaque)->s;

  bits_assign (s->dirty, g_first (s, start), g_end (s, start + len), true);
  return 0;
}

/* Closing the store frees its blocks, which takes a while for gigabytes
 * of copied data: done by a thread of its own, so that the end of a
 * session does not wait for it.
 */
static void *
close_store_thread (void *arg)
{
  close ((int) (intptr_t) arg);
  return NULL;
}

static void
close_store (int fd)
{
  pthread_attr_t attr;
  pthread_t t;
  int r;

  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  r = pthread_create (&t, &attr, close_store_thread, (void *) (intptr_t) fd);
  pthread_attr_destroy (&attr);
  if (r != 0)
    close (fd);
}

static void
session_free (struct cbw_session *s)
{
  if (s->store_fd >= 0)
    close_store (s->store_fd);
  free (s->needed);
  free (s->copied);
  free (s->gone);
  free (s->dirty);
  free (s->read);
  free (s);
}

struct cbw_session *
cbw_session_new (struct cbw_disk *d, const struct cbw_session_opts *o,
                 char **errp)
{
  struct cbw_session *s;
  uint64_t gran = o->granularity;
  uint64_t words;

  *errp = NULL;
  if (d->size == 0) {
    if (asprintf (errp, "the disk's size is not known yet") == -1)
      *errp = NULL;
    errno = EINVAL;
    return NULL;
  }
  if (gran == 0) {
    gran = o->dirty ? hbitmap_granularity (o->dirty) : DEFAULT_GRANULARITY;
    if (gran < o->min_granularity)
      gran = o->min_granularity;
  }
  if (gran < 512 || (gran & (gran - 1)) != 0) {
    if (asprintf (errp, "granularity %" PRIu64 " is not a power of two "
                  ">= 512", gran) == -1)
      *errp = NULL;
    errno = EINVAL;
    return NULL;
  }
  if (o->dirty && hbitmap_size (o->dirty) != d->size) {
    if (asprintf (errp, "the bitmap covers %" PRIu64 " bytes, the disk "
                  "has %" PRIu64, hbitmap_size (o->dirty), d->size) == -1)
      *errp = NULL;
    errno = EINVAL;
    return NULL;
  }

  s = calloc (1, sizeof *s);
  if (s == NULL)
    goto nomem;
  s->disk = d;
  s->store_fd = -1;
  s->granularity = gran;
  s->gbits = __builtin_ctzll (gran);
  s->ngranules = (d->size + gran - 1) >> s->gbits;
  s->release_on_read = o->release_on_read;
  s->need_all = o->dirty == NULL || o->need_all;
  s->refs = 1;
  words = (s->ngranules + 63) / 64;
  s->needed = bits_new (s->ngranules);
  s->copied = bits_new (s->ngranules);
  s->gone = bits_new (s->ngranules);
  s->read = bits_new (s->ngranules);
  if (s->needed == NULL || s->copied == NULL || s->gone == NULL
      || s->read == NULL)
    goto nomem;
  if (o->dirty) {
    struct mark_walk w = { .s = s };

    s->dirty = bits_new (s->ngranules);
    if (s->dirty == NULL)
      goto nomem;
    if (d->size > 0)
      hbitmap_walk_dirty (o->dirty, 0, d->size, mark_dirty_area, &w);
    if (!o->need_all)
      memcpy (s->needed, s->dirty, words * sizeof (uint64_t));
  }
  if (o->dirty == NULL || o->need_all)
    bits_assign (s->needed, 0, s->ngranules, true);

  s->store_fd = store_create (o->dir, d->size, errp);
  if (s->store_fd == -1) {
    int e = errno;
    session_free (s);
    errno = e;
    return NULL;
  }

  pthread_mutex_lock (&d->lock);
  s->attached = true;
  s->next = d->sessions;
  d->sessions = s;
  __atomic_store_n (&d->nsessions, d->nsessions + 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&d->lock);
  return s;

 nomem:
  if (s)
    session_free (s);
  if (asprintf (errp, "cannot allocate the session: %s",
                strerror (ENOMEM)) == -1)
    *errp = NULL;
  errno = ENOMEM;
  return NULL;
}

void
cbw_session_detach (struct cbw_session *s)
{
  struct cbw_disk *d = s->disk;
  struct cbw_session **p;

  pthread_mutex_lock (&d->lock);
  if (s->attached) {
    for (p = &d->sessions; *p; p = &(*p)->next)
      if (*p == s) {
        *p = s->next;
        break;
      }
    s->attached = false;
    s->next = NULL;
    __atomic_store_n (&d->nsessions, d->nsessions - 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast (&d->cond);
  }
  pthread_mutex_unlock (&d->lock);
}

void
cbw_session_ref (struct cbw_session *s)
{
  __atomic_add_fetch (&s->refs, 1, __ATOMIC_RELAXED);
}

void
cbw_session_unref (struct cbw_session *s)
{
  if (s && __atomic_sub_fetch (&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    /* The last reference: nothing can reach S any more. */
    if (s->attached)
      cbw_session_detach (s);
    session_free (s);
  }
}

/* The kind of granule G.  D->lock held. */
static enum cbw_where
where_of (const struct cbw_session *s, uint64_t g)
{
  if (bit_get (s->copied, g))
    return CBW_STORE;
  if (bit_get (s->gone, g))
    return CBW_GONE;
  return CBW_DISK;              /* NEEDED or OPEN */
}

static bool
dirty_of (const struct cbw_session *s, uint64_t g)
{
  return s->dirty == NULL || bit_get (s->dirty, g);
}

/* The run of granules from G (< GEND) with G's kind and dirtiness;
 * returns one past its last granule.  D->lock held.
 */
static uint64_t
run_end (const struct cbw_session *s, uint64_t g, uint64_t gend,
         enum cbw_where *where, bool *dirty)
{
  enum cbw_where w = where_of (s, g);
  bool dy = dirty_of (s, g);
  uint64_t e, x;

  switch (w) {
  case CBW_STORE:
    e = bits_next (s->copied, g, gend, false);
    break;
  case CBW_GONE:
    e = bits_next (s->gone, g, gend, false);
    break;
  default:
    e = bits_next (s->copied, g, gend, true);
    x = bits_next (s->gone, g, gend, true);
    if (x < e)
      e = x;
  }
  if (s->dirty) {
    x = bits_next (s->dirty, g, e, !dy);
    if (x < e)
      e = x;
  }
  *where = w;
  *dirty = dy;
  return e;
}

int
cbw_session_read (struct cbw_session *s, void *buf, uint32_t count,
                  uint64_t offset, bool delta, cbw_read_fn *read,
                  void *opaque, int *err)
{
  struct cbw_disk *d = s->disk;
  struct inflight rd;
  uint64_t end = offset + count, pos;
  uint64_t *punch = NULL;
  size_t npunch = 0;
  int r = -1;

  if (count == 0)
    return 0;
  if (offset >= d->size || count > d->size - offset) {
    *err = EINVAL;
    return -1;
  }

  pthread_mutex_lock (&d->lock);
  while (s->attached && !s->failure
         && inflight_overlaps (d, offset, end, true, NULL))
    pthread_cond_wait (&d->cond, &d->lock);
  if (!s->attached || s->failure) {
    *err = s->attached ? EIO : ESHUTDOWN;
    pthread_mutex_unlock (&d->lock);
    return -1;
  }
  inflight_add (d, &rd, offset, end, INFLIGHT_READ);
  pthread_mutex_unlock (&d->lock);

  for (pos = offset; pos < end; ) {
    uint64_t g = g_first (s, pos), ge, rend;
    enum cbw_where where;
    bool dirty;
    char *p = (char *) buf + (pos - offset);

    pthread_mutex_lock (&d->lock);
    ge = run_end (s, g, g_end (s, end), &where, &dirty);
    pthread_mutex_unlock (&d->lock);
    rend = g_offset (s, ge);
    if (rend > end)
      rend = end;

    if (delta && !dirty && !s->need_all) {
      /* Not kept: the instant's data may be gone.  Never zeroes, which
       * a mirror would take for the data.
       */
      *err = EIO;
      goto out;
    }
    else if (where == CBW_STORE) {
      if (pread_full (s->store_fd, p, rend - pos, pos) == -1) {
        *err = errno;
        goto out;
      }
    }
    else if (where == CBW_GONE) {
      *err = EIO;
      goto out;
    }
    else {
      uint64_t q;

      /* READ takes 32-bit counts; the request's fits. */
      for (q = pos; q < rend; ) {
        uint64_t n = rend - q > UINT32_MAX ? UINT32_MAX : rend - q;
        if (read (opaque, (char *) buf + (q - offset), n, q, err) == -1)
          goto out;
        q += n;
      }
    }
    pos = rend;
  }
  r = 0;

 out:
  pthread_mutex_lock (&d->lock);
  /* A read that raced with the end of the session may have seen writes
   * that no longer copied: it must not succeed.
   */
  if (r == 0 && (!s->attached || s->failure)) {
    *err = s->attached ? EIO : ESHUTDOWN;
    r = -1;
  }
  if (r == 0) {
    /* Granules read whole are copied by the client, and (with
     * release_on_read) no longer needed.
     */
    uint64_t g0 = (offset + s->granularity - 1) >> s->gbits;
    uint64_t g1 = end == d->size ? s->ngranules : end >> s->gbits;
    uint64_t g;

    for (g = g0; g < g1; g++) {
      bits_assign (s->read, g, g + 1, true);
      if (!s->release_on_read)
        continue;
      if (bit_get (s->needed, g))
        bits_assign (s->needed, g, g + 1, false);
      else if (bit_get (s->copied, g)
               && !inflight_overlaps (d, g_offset (s, g),
                                      g_offset (s, g + 1), false, &rd)) {
        uint64_t *np = realloc (punch, (npunch + 1) * sizeof *punch);
        if (np == NULL)
          break;                /* keep it: harmless */
        punch = np;
        punch[npunch++] = g;
        bits_assign (s->copied, g, g + 1, false);
        bits_assign (s->gone, g, g + 1, true);
      }
    }
  }
  inflight_remove (d, &rd);
  pthread_mutex_unlock (&d->lock);

  /* Give the space of store granules read whole back (they are GONE now,
   * so nothing reads them).
   */
  {
    size_t i;
    for (i = 0; i < npunch; i++) {
      uint64_t a = g_offset (s, punch[i]), b = g_offset (s, punch[i] + 1);
#ifdef FALLOC_FL_PUNCH_HOLE
      fallocate (s->store_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 a, b - a);
#else
      (void) a; (void) b;
#endif
    }
  }
  free (punch);
  return r;
}

int
cbw_session_map (struct cbw_session *s, uint64_t offset, uint64_t count,
                 cbw_map_fn *fn, void *opaque)
{
  struct cbw_disk *d = s->disk;
  uint64_t end, pos;
  int r = 0;

  if (offset >= d->size || count == 0)
    return 0;
  end = count > d->size - offset ? d->size : offset + count;
  pthread_mutex_lock (&d->lock);
  for (pos = offset; pos < end && r == 0; ) {
    enum cbw_where where;
    bool dirty;
    uint64_t ge = run_end (s, g_first (s, pos), g_end (s, end), &where,
                           &dirty);
    uint64_t rend = g_offset (s, ge);

    if (rend > end)
      rend = end;
    r = fn (opaque, pos, rend - pos, where, dirty);
    pos = rend;
  }
  pthread_mutex_unlock (&d->lock);
  return r;
}

struct cbw_hold {
  struct cbw_disk *d;
  struct inflight range;
};

struct cbw_hold *
cbw_session_hold (struct cbw_session *s, uint64_t offset, uint64_t count,
                  int *err)
{
  struct cbw_disk *d = s->disk;
  struct cbw_hold *h;
  uint64_t end;

  if (offset >= d->size || count == 0) {
    *err = EINVAL;
    return NULL;
  }
  end = count > d->size - offset ? d->size : offset + count;
  h = malloc (sizeof *h);
  if (h == NULL) {
    *err = ENOMEM;
    return NULL;
  }
  h->d = d;
  pthread_mutex_lock (&d->lock);
  while (s->attached && !s->failure
         && inflight_overlaps (d, offset, end, true, NULL))
    pthread_cond_wait (&d->cond, &d->lock);
  if (!s->attached || s->failure) {
    *err = s->attached ? EIO : ESHUTDOWN;
    pthread_mutex_unlock (&d->lock);
    free (h);
    return NULL;
  }
  inflight_add (d, &h->range, offset, end, INFLIGHT_READ);
  pthread_mutex_unlock (&d->lock);
  return h;
}

void
cbw_session_unhold (struct cbw_hold *h)
{
  if (h == NULL)
    return;
  pthread_mutex_lock (&h->d->lock);
  inflight_remove (h->d, &h->range);
  pthread_mutex_unlock (&h->d->lock);
  free (h);
}

static uint64_t
count_bits (const uint64_t *w, uint64_t n)
{
  uint64_t i, c = 0;

  for (i = 0; i < (n + 63) / 64; i++)
    c += __builtin_popcountll (w[i]);
  return c;
}

void
cbw_session_stats (struct cbw_session *s, struct cbw_session_stats *st)
{
  struct cbw_disk *d = s->disk;
  struct stat sb;
  uint64_t needed;

  pthread_mutex_lock (&d->lock);
  needed = count_bits (s->needed, s->ngranules) << s->gbits;
  /* The last granule may be short. */
  if (needed && bit_get (s->needed, s->ngranules - 1))
    needed -= (s->ngranules << s->gbits) - d->size;
  pthread_mutex_unlock (&d->lock);
  st->granularity = s->granularity;
  st->needed = needed > d->size ? d->size : needed;
  st->copied = __atomic_load_n (&s->copied_bytes, __ATOMIC_RELAXED);
  st->store_bytes = fstat (s->store_fd, &sb) == 0
    ? (uint64_t) sb.st_blocks * 512 : 0;
}

struct unread_walk {
  struct hbitmap *out;
};

static int
set_area (void *opaque, uint64_t start, uint64_t len)
{
  hbitmap_set (((struct unread_walk *) opaque)->out, start, len);
  return 0;
}

struct hbitmap *
cbw_session_unread (struct cbw_session *s, const struct hbitmap *mask,
                    uint64_t *bytes)
{
  struct cbw_disk *d = s->disk;
  struct unread_walk w;
  uint64_t g = 0, ge;

  if (mask && hbitmap_size (mask) != d->size) {
    errno = EINVAL;
    return NULL;
  }
  w.out = hbitmap_new (d->size,
                       mask ? hbitmap_granularity (mask) : s->granularity);
  if (w.out == NULL)
    return NULL;
  pthread_mutex_lock (&d->lock);
  while (g < s->ngranules) {
    uint64_t start, end;

    /* The next run of granules not read... */
    g = bits_next (s->read, g, s->ngranules, false);
    if (g == s->ngranules)
      break;
    ge = bits_next (s->read, g, s->ngranules, true);
    /* ...and within it, those the session needed at its start. */
    if (!s->need_all) {
      g = bits_next (s->dirty, g, ge, true);
      if (g == ge)
        continue;
      ge = bits_next (s->dirty, g, ge, false);
    }
    start = g_offset (s, g);
    end = g_offset (s, ge);
    if (mask)
      hbitmap_walk_dirty (mask, start, end, set_area, &w);
    else
      hbitmap_set (w.out, start, end - start);
    g = ge;
  }
  pthread_mutex_unlock (&d->lock);
  if (bytes)
    *bytes = hbitmap_count (w.out);
  return w.out;
}

void
cbw_unread_free (struct hbitmap *hb)
{
  hbitmap_free (hb);
}

const char *
cbw_session_failed (struct cbw_session *s)
{
  const char *r;

  pthread_mutex_lock (&s->disk->lock);
  r = s->failure;
  pthread_mutex_unlock (&s->disk->lock);
  return r;
}
