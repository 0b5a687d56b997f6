/* nbdcbt-backup: taking backups into a chain directory (full, inc,
 * auto), and listing it.
 *
 * A new backup is written as DIR/.backup-NNNN.qcow2.part, flushed and
 * fsync'd, its checksum list as DIR/.backup-NNNN.sums.part (fsync'd),
 * both renamed to DIR/backup-NNNN.{qcow2,sums}, and only then is the
 * manifest replaced (atomically, the directory fsync'd).  An
 * interrupted backup therefore leaves the chain as it was; the next run
 * removes the leftover parts.
 * A full backup into a directory that holds a chain moves the old chain
 * into DIR/chain-UUID/ (never deletes it).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "backup.h"
#include "cleanup.h"
#include "qcow2.h"

#define SAMPLES 32
#define SAMPLE_SIZE (64 * 1024)

char *
dir_file (const char *dir, const char *name)
{
  char *s;

  if (asprintf (&s, "%s/%s", dir, name) == -1) {
    error_errno ("asprintf");
    return NULL;
  }
  return s;
}

/* Only one backup at a time writes into a directory. */
static int
lock_dir (const char *dir)
{
  CLEANUP_FREE char *path = dir_file (dir, ".lock");
  int fd;

  if (path == NULL)
    return -1;
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd == -1) {
    error_errno ("%s", path);
    return -1;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      error ("%s: another backup is running in this directory", dir);
    else
      error_errno ("%s: flock", path);
    close (fd);
    return -1;
  }
  return fd;                    /* held until exit */
}

/* The part files being written, removed if we are interrupted. */
static char *volatile part_path;
static char *volatile sums_part_path;

/* Set once the manifest names the new backup: a signal held back
 * during the publishing (see do_backup) then arrives too late to undo it.
 */
static volatile sig_atomic_t published;

static void
interrupted (int sig)
{
  static const char msg[] =
    "\n" PROG ": interrupted; the chain is unchanged\n";
  static const char late_msg[] =
    "\n" PROG ": interrupted after the backup was complete\n";
  char *p = part_path, *s = sums_part_path;
  const char *text = published ? late_msg : msg;
  size_t len = published ? sizeof late_msg - 1 : sizeof msg - 1;

  if (p)
    unlink (p);
  if (s)
    unlink (s);
  if (write (STDERR_FILENO, text, len) == -1) {
    /* nothing to do */
  }
  _exit (EXIT_FAILURE);
}

static sigset_t publish_signals;

static void
catch_signals (void)
{
  struct sigaction sa = { .sa_handler = interrupted };

  sigemptyset (&publish_signals);
  sigaddset (&publish_signals, SIGINT);
  sigaddset (&publish_signals, SIGTERM);
  sigaddset (&publish_signals, SIGHUP);
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);
}

/* Leftovers of interrupted runs (we hold the lock, so none is live). */
static void
remove_stale_parts (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *ent;

  if (d == NULL)
    return;
  while ((ent = readdir (d)) != NULL) {
    size_t len = strlen (ent->d_name);
    if (strncmp (ent->d_name, ".backup-", 8) == 0 && len > 5 &&
        strcmp (ent->d_name + len - 5, ".part") == 0) {
      CLEANUP_FREE char *p = dir_file (dir, ent->d_name);
      if (p && unlink (p) == 0)
        info ("removed %s left by an interrupted backup", p);
    }
  }
  closedir (d);
}

static struct nbd_handle *
connect_source (const char *uri, const char *bitmap_context)
{
  struct nbd_handle *h = nbd_create ();

  /* Full info: the export description, part of the disk's identity. */
  if (h == NULL ||
      nbd_set_full_info (h, true) == -1 ||
      nbd_add_meta_context (h, "base:allocation") == -1 ||
      (bitmap_context && nbd_add_meta_context (h, bitmap_context) == -1) ||
      nbd_connect_uri (h, uri) == -1) {
    error ("%s: %s", uri, nbd_get_error ());
    nbd_close (h);
    return NULL;
  }
  return h;
}

static void __attribute__ ((format (printf, 2, 3)))
set_why (char **why, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  if (vasprintf (why, fs, args) == -1)
    *why = NULL;
  va_end (args);
}

/* What the server tells about the disk, compared with the chain's
 * record of it before an incremental is added.
 */
struct disk_identity {
  const char *export_name;
  const char *description;      /* NULL if the server sent none */
  uint64_t size;
};

static bool
same_string (const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp (a, b) == 0;
}

/* Is the export the disk the chain was taken from, as far as the
 * reliable facts go: the user's --disk-id, the export name, the
 * export description, the size.  Returns 0, or -1 with *why set.
 */
static int
check_identity (const struct manifest *m, const struct disk_identity *id,
                char **why)
{
  if (!same_string (m->disk_id, opts.disk_id)) {
    if (m->disk_id == NULL)
      set_why (why, "the chain was started without --disk-id, this backup "
                "gives --disk-id '%s'", opts.disk_id);
    else if (opts.disk_id == NULL)
      set_why (why, "the chain belongs to --disk-id '%s', this backup "
                "gives no --disk-id", m->disk_id);
    else
      set_why (why, "the chain belongs to --disk-id '%s', not '%s'",
                m->disk_id, opts.disk_id);
    return -1;
  }
  if (!same_string (m->export_name, id->export_name)) {
    set_why (why, "the chain was taken from export \"%s\", this is export "
              "\"%s\"", m->export_name, id->export_name);
    return -1;
  }
  if (m->description_known &&
      !same_string (m->export_description, id->description)) {
    if (m->export_description == NULL)
      set_why (why, "the chain's export had no description, this one has "
                "\"%s\"", id->description);
    else if (id->description == NULL)
      set_why (why, "the chain's export had the description \"%s\", this "
                "one has none", m->export_description);
    else
      set_why (why, "the chain's export had the description \"%s\", this "
                "one has \"%s\"", m->export_description, id->description);
    return -1;
  }
  if (id->size != m->virtual_size) {
    set_why (why, "the disk size changed (the chain has %" PRIu64
              " bytes, the export %" PRIu64 ")", m->virtual_size, id->size);
    return -1;
  }
  return 0;
}

/* A random number below N (N > 0); not for secrets.  Only spreads the
 * spot check's samples differently at each backup.
 */
static uint64_t
random_below (uint64_t n)
{
  uint64_t r = 0;

  if (gnutls_rnd (GNUTLS_RND_NONCE, &r, sizeof r) < 0)
    r = (uint64_t) time (NULL) * UINT64_C (6364136223846793005);
  return r % n;
}

/* The spot check: where the bitmap says nothing changed since the last
 * backup, the export must read exactly as the chain does.  SAMPLES
 * reads of SAMPLE_SIZE bytes, one at a random place in each of SAMPLES
 * equal slices of the clean bytes.  It is a heuristic: it finds a
 * bitmap that was cleared or recreated without a backup in between, or
 * a chain of another disk, only if a sample falls where they differ.
 * Returns 0, or -1 with *why set.
 */
static int
spot_check (const char *top, struct nbd_handle *h, uint64_t size,
            const extent_list *list, char **why)
{
  CLEANUP_FREE char *srcbuf = NULL, *chainbuf = NULL;
  struct qcow2 *q = NULL;
  uint64_t clean_total = 0, step, base, pos[SAMPLES];
  size_t i, k, nsamples;
  int r = -1;

  for (i = 0; i < list->len; ++i)
    if (list->ptr[i].kind == EXTENT_CLEAN)
      clean_total += list->ptr[i].length;
  if (clean_total == 0)
    return 0;

  /* Sample K starts at POS[K] counted in clean bytes (increasing). */
  step = clean_total / SAMPLES;
  nsamples = step == 0 ? 1 : SAMPLES;
  for (k = 0; k < nsamples; ++k)
    pos[k] = step == 0 ? 0 : k * step + random_below (step);

  q = qcow2_open (top, QCOW2_OPEN_RDONLY | QCOW2_OPEN_NO_BITMAP_IN_USE);
  if (q == NULL) {
    set_why (why, "the last backup %s cannot be opened: %s", top,
              qcow2_last_error ());
    return -1;
  }
  /* Chains made before the size was rounded up have the exact size. */
  if (qcow2_get_size (q) != QCOW2_SIZE (size) && qcow2_get_size (q) != size) {
    set_why (why, "the last backup %s is not of the disk's size", top);
    goto out;
  }
  srcbuf = malloc (SAMPLE_SIZE);
  chainbuf = malloc (SAMPLE_SIZE);
  if (!srcbuf || !chainbuf) {
    set_why (why, "out of memory");
    goto out;
  }
  base = 0;                     /* clean bytes before extent I */
  for (i = 0, k = 0; k < nsamples && i < list->len; ++i) {
    const struct extent *x = &list->ptr[i];

    if (x->kind != EXTENT_CLEAN)
      continue;
    while (k < nsamples && pos[k] < base + x->length) {
      uint64_t off = x->offset + (pos[k] - base);
      uint64_t len = x->offset + x->length - off;

      if (len > SAMPLE_SIZE)
        len = SAMPLE_SIZE;
      if (nbd_pread (h, srcbuf, len, off, 0) == -1) {
        set_why (why, "read at %" PRIu64 ": %s", off, nbd_get_error ());
        goto out;
      }
      if (qcow2_pread (q, chainbuf, len, off) == -1) {
        set_why (why, "%s: read at %" PRIu64 ": %s", top, off,
                  qcow2_last_error ());
        goto out;
      }
      if (memcmp (srcbuf, chainbuf, len) != 0) {
        set_why (why, "the export differs from the chain at offset %"
                  PRIu64 " where bitmap '%s' reports no change: the chain "
                  "belongs to another disk, or the bitmap missed writes or "
                  "was cleared without a backup (found by sampling %zu "
                  "places of the unchanged areas, a heuristic that cannot "
                  "catch every case)", off, opts.bitmap, nsamples);
        goto out;
      }
      k++;
    }
    base += x->length;
  }
  r = 0;

 out:
  qcow2_close (q);
  return r;
}

/* Is the chain usable as the base of an incremental of this export?
 * Returns 0, or -1 with the reason in *why (malloc'd).  On success the
 * dirty work list is in *list.
 */
static int
check_chain (const char *dir, const struct manifest *m,
             struct nbd_handle *h, const struct disk_identity *id,
             const char *bitmap_context, extent_list *list, char **why)
{
  const struct backup_entry *last = &m->backups.ptr[m->backups.len - 1];
  CLEANUP_FREE char *top = dir_file (dir, last->file);
  struct stat st;

  *why = NULL;
  if (top == NULL)
    return -1;
  if (check_identity (m, id, why) == -1)
    return -1;
  if (m->bitmap && strcmp (m->bitmap, opts.bitmap) != 0) {
    set_why (why, "the chain follows bitmap '%s', not '%s'", m->bitmap,
              opts.bitmap);
    return -1;
  }
  if (nbd_can_meta_context (h, bitmap_context) != 1) {
    set_why (why, "the server does not offer '%s': the bitmap is missing, "
              "inconsistent, or not exported", bitmap_context);
    return -1;
  }
  if (stat (top, &st) == -1) {
    set_why (why, "the last backup %s is missing: %m", top);
    return -1;
  }
  if ((uint64_t) st.st_size != last->file_size) {
    set_why (why, "the last backup %s has changed size since it was "
              "written (damaged?)", top);
    return -1;
  }
  if (get_extents (h, id->size, bitmap_context, list) == -1) {
    set_why (why, "the dirty extents could not be read");
    return -1;
  }
  return spot_check (top, h, id->size, list, why);
}

/* Move the chain of M out of the way into DIR/chain-UUID/: the backup
 * files first, the manifest last, so that an interruption leaves either
 * a chain with missing files (which nothing trusts) or none.
 */
static int
archive_chain (const char *dir, const struct manifest *m)
{
  CLEANUP_FREE char *sub = NULL, *sub_path = NULL;
  CLEANUP_FREE char *man = dir_file (dir, MANIFEST_NAME);
  CLEANUP_FREE char *man_to = NULL;
  size_t i;

  if (man == NULL || asprintf (&sub, "chain-%s", m->chain_id) == -1 ||
      (sub_path = dir_file (dir, sub)) == NULL ||
      (man_to = dir_file (sub_path, MANIFEST_NAME)) == NULL) {
    error_errno ("malloc");
    return -1;
  }
  if (mkdir (sub_path, 0755) == -1 && errno != EEXIST) {
    error_errno ("mkdir %s", sub_path);
    return -1;
  }
  for (i = 0; i < 2 * m->backups.len; ++i) {
    const struct backup_entry *b = &m->backups.ptr[i / 2];
    const char *name = i % 2 ? b->sums_file : b->file;
    CLEANUP_FREE char *from = NULL, *to = NULL;

    if (name == NULL)
      continue;
    from = dir_file (dir, name);
    to = dir_file (sub_path, name);
    if (!from || !to)
      return -1;
    if (rename (from, to) == -1 && errno != ENOENT) {
      error_errno ("rename %s to %s", from, to);
      return -1;
    }
  }
  if (rename (man, man_to) == -1) {
    error_errno ("rename %s to %s", man, man_to);
    return -1;
  }
  info ("the previous chain %s was moved to %s", m->chain_id, sub_path);
  return 0;
}

/* With NBDCBT_BACKUP_DEBUG=1 in the environment, time each phase. */
static void
debug_time (const char *phase)
{
  static struct timespec last;
  struct timespec now;

  if (!getenv ("NBDCBT_BACKUP_DEBUG"))
    return;
  clock_gettime (CLOCK_MONOTONIC, &now);
  if (last.tv_sec)
    fprintf (stderr, PROG ": debug: %s: %.3f s\n", phase,
             (now.tv_sec - last.tv_sec) + (now.tv_nsec - last.tv_nsec) / 1e9);
  last = now;
}

/* fsync PATH and get its size (if SIZE is not NULL).  For the qcow2
 * file the library synced it on close and this finds nothing to do, but
 * the backup's durability does not depend on how the library closes.
 */
static int
seal_file (const char *path, uint64_t *size)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1) {
    error_errno ("%s", path);
    return -1;
  }
  if (fsync (fd) == -1 || fstat (fd, &st) == -1) {
    error_errno ("%s: fsync", path);
    close (fd);
    return -1;
  }
  close (fd);
  if (size)
    *size = st.st_size;
  return 0;
}

int
do_backup (enum backup_mode mode, const char *uri)
{
  const char *dir = opts.output;
  CLEANUP_FREE char *bitmap_context = NULL, *why = NULL;
  CLEANUP_FREE char *file = NULL, *part = NULL, *final = NULL;
  CLEANUP_FREE char *sums_file = NULL, *sums_part = NULL, *sums_final = NULL;
  CLEANUP_FREE char *started = NULL, *export_name = NULL;
  CLEANUP_FREE char *description = NULL;
  struct disk_identity id;
  struct manifest m = { 0 };
  extent_list list = empty_vector;
  struct nbd_handle *h = NULL;
  struct qcow2_create_opts copts = { 0 };
  struct qcow2 *q = NULL;
  struct sink *sink = NULL;
  sum_list sums = empty_vector;
  struct sum_params sum_params;
  struct copy_stats stats = { .sums = &sums, .sum_params = &sum_params };
  struct backup_entry entry = { 0 };
  struct writeback *wb = NULL;
  struct qcow2_info qi;
  char hex[65];
  int64_t size;
  int have_chain, ret = -1;
  bool full;

  if (mkdir (dir, 0755) == -1 && errno != EEXIST) {
    error_errno ("mkdir %s", dir);
    return -1;
  }
  if (lock_dir (dir) == -1)
    return -1;
  catch_signals ();
  remove_stale_parts (dir);

  have_chain = manifest_load (dir, &m);
  if (have_chain == -1) {
    error ("%s: the chain's manifest is damaged; run '" PROG " verify' "
           "and move the directory aside before starting a new chain", dir);
    return -1;
  }
  have_chain = have_chain == 0;
  if (mode == MODE_INC && !have_chain) {
    error ("%s holds no backup chain: take a full backup first "
           "(or use --auto)", dir);
    return -1;
  }

  if (opts.bitmap &&
      asprintf (&bitmap_context, "qemu:dirty-bitmap:%s", opts.bitmap) == -1) {
    error_errno ("asprintf");
    return -1;
  }
  h = connect_source (uri, bitmap_context);
  if (h == NULL)
    goto out;
  size = nbd_get_size (h);
  if (size == -1) {
    error ("%s: %s", uri, nbd_get_error ());
    goto out;
  }
  export_name = nbd_get_export_name (h);
  if (export_name == NULL) {
    error ("%s: %s", uri, nbd_get_error ());
    goto out;
  }
  /* NULL when the server sent no description (not an error). */
  description = nbd_get_export_description (h);
  id = (struct disk_identity) { .export_name = export_name,
                                .description = description, .size = size };
  started = now_iso8601 ();
  debug_time ("connect");

  full = mode == MODE_FULL || !have_chain;
  if (!full) {
    if (check_chain (dir, &m, h, &id, bitmap_context, &list, &why) == -1) {
      if (mode == MODE_AUTO) {
        info ("%s; taking a full backup", why ? why : "the chain is unusable");
        full = true;
        list.len = 0;
      }
      else {
        error ("cannot take an incremental backup into %s: %s%s", dir,
               why ? why : "the chain is unusable",
               "\n(take a full backup, or use --auto)");
        goto out;
      }
    }
  }
  if (full && mode == MODE_FULL && bitmap_context &&
      nbd_can_meta_context (h, bitmap_context) != 1) {
    error ("the server does not offer '%s': the bitmap is missing, "
           "inconsistent, or not exported", bitmap_context);
    goto out;
  }
  if (full) {
    list.len = 0;
    if (get_extents (h, size, NULL, &list) == -1)
      goto out;
  }
  debug_time (full ? "extents" : "extents+chain check");

  entry.index = full ? 0 : (int64_t) m.backups.len;
  entry.full = full;
  if (asprintf (&file, "backup-%04" PRIi64 ".qcow2", entry.index) == -1 ||
      asprintf (&part, "%s/.%s.part", dir, file) == -1 ||
      asprintf (&final, "%s/%s", dir, file) == -1 ||
      asprintf (&sums_file, "backup-%04" PRIi64 ".sums", entry.index) == -1 ||
      asprintf (&sums_part, "%s/.%s.part", dir, sums_file) == -1 ||
      asprintf (&sums_final, "%s/%s", dir, sums_file) == -1) {
    error_errno ("asprintf");
    goto out;
  }

  /* Write the new layer under its temporary name. */
  copts.size = QCOW2_SIZE ((uint64_t) size);
  if (!full) {
    copts.backing_file = m.backups.ptr[m.backups.len - 1].file;
    copts.backing_format = "qcow2";
  }
  part_path = part;
  if (qcow2_create (part, &copts) == -1) {
    error ("%s: %s", part, qcow2_last_error ());
    goto out;
  }
  q = qcow2_open (part, QCOW2_OPEN_NO_BITMAP_IN_USE);
  if (q == NULL) {
    error ("%s: %s", part, qcow2_last_error ());
    goto out;
  }
  qcow2_get_info (q, &qi);
  if (sum_params_new (&sum_params) == -1)
    goto out;
  sink = sink_qcow2_wrap (q);
  if (sink == NULL)
    goto out;
  q = NULL;
  wb = writeback_start (part);
  debug_time ("create");
  if (copy_extents (uri, h, &list, sink, full, qi.cluster_size,
                    &stats) == -1)
    goto out;
  debug_time ("copy");
  sums_part_path = sums_part;
  if (sums_save (sums_part, &sum_params, &sums, hex) == -1)
    goto out;
  if (sink->ops->close (sink) == -1) {
    sink = NULL;
    goto out;
  }
  sink = NULL;
  writeback_stop (wb);
  wb = NULL;
  debug_time ("close");
  if (seal_file (part, &entry.file_size) == -1 ||
      seal_file (sums_part, NULL) == -1)
    goto out;
  debug_time ("fsync");

  /* Publish: old chain aside (full), rename, manifest.  The signals
   * that would interrupt us wait until that is done (or has failed), so
   * that Ctrl-C cannot leave the old chain moved aside without the new
   * one in its place.
   */
  sigprocmask (SIG_BLOCK, &publish_signals, NULL);
  if (full && have_chain) {
    if (archive_chain (dir, &m) == -1)
      goto out;
    manifest_free (&m);
  }
  if (rename (part, final) == -1) {
    error_errno ("rename %s to %s", part, final);
    goto out;
  }
  part_path = NULL;
  if (rename (sums_part, sums_final) == -1) {
    error_errno ("rename %s to %s", sums_part, sums_final);
    goto out;
  }
  sums_part_path = NULL;

  if (full) {
    manifest_free (&m);
    m.chain_id = new_uuid ();
    m.virtual_size = size;
    m.export_name = strdup (export_name);
    m.export_description = description ? strdup (description) : NULL;
    m.description_known = true;
    m.disk_id = opts.disk_id ? strdup (opts.disk_id) : NULL;
    m.bitmap = opts.bitmap ? strdup (opts.bitmap) : NULL;
    if (!m.chain_id || !m.export_name || (opts.bitmap && !m.bitmap) ||
        (description && !m.export_description) ||
        (opts.disk_id && !m.disk_id)) {
      error ("out of memory");
      goto out;
    }
  }
  else if (m.bitmap == NULL && (m.bitmap = strdup (opts.bitmap)) == NULL) {
    error ("out of memory");
    goto out;
  }
  entry.file = strdup (file);
  entry.backing = full ? NULL : strdup (copts.backing_file);
  entry.started = started;
  entry.finished = now_iso8601 ();
  entry.data_bytes = stats.data_bytes;
  entry.zero_bytes = stats.zero_bytes;
  entry.sums_file = strdup (sums_file);
  entry.sums_sha256 = strdup (hex);
  started = NULL;
  if (!entry.file || (!full && !entry.backing) || !entry.started ||
      !entry.finished || !entry.sums_file || !entry.sums_sha256 ||
      backup_list_append (&m.backups, entry) == -1) {
    error_errno ("malloc");
    goto out;
  }
  memset (&entry, 0, sizeof entry);
  if (manifest_save (dir, &m) == -1)
    goto out;
  published = 1;

  info ("%s backup %s: %" PRIu64 " bytes of data, %" PRIu64
        " bytes of zeroes, file %" PRIu64 " bytes",
        full ? "full" : "incremental", final, stats.data_bytes,
        stats.zero_bytes, m.backups.ptr[m.backups.len - 1].file_size);
  ret = 0;

 out:
  if (sink)
    sink->ops->close (sink);
  writeback_stop (wb);
  if (part_path) {
    unlink (part_path);
    part_path = NULL;
  }
  if (sums_part_path) {
    unlink (sums_part_path);
    sums_part_path = NULL;
  }
  sigprocmask (SIG_UNBLOCK, &publish_signals, NULL);
  if (q)
    qcow2_close (q);
  if (h) {
    nbd_shutdown (h, 0);
    nbd_close (h);
  }
  free (entry.file);
  free (entry.backing);
  free (entry.started);
  free (entry.finished);
  free (entry.sha256);
  free (entry.sums_file);
  free (entry.sums_sha256);
  free (list.ptr);
  free (sums.ptr);
  manifest_free (&m);
  return ret;
}

int
do_list (const char *dir)
{
  struct manifest m;
  size_t i;
  int r = manifest_load (dir, &m);

  if (r == -1)
    return -1;
  if (r == 1) {
    error ("%s holds no backup chain", dir);
    return -1;
  }
  printf ("chain:        %s\n", m.chain_id);
  printf ("virtual size: %" PRIu64 "\n", m.virtual_size);
  printf ("bitmap:       %s\n", m.bitmap ? m.bitmap : "(none)");
  printf ("export name:  \"%s\"\n", m.export_name);
  if (m.export_description)
    printf ("description:  \"%s\"\n", m.export_description);
  printf ("disk id:      %s\n", m.disk_id ? m.disk_id : "(none)");
  printf ("%-5s %-11s %-20s %-20s %14s %14s\n", "N", "TYPE", "FILE",
          "FINISHED", "DATA", "FILE SIZE");
  for (i = 0; i < m.backups.len; ++i) {
    const struct backup_entry *b = &m.backups.ptr[i];
    printf ("%-5" PRIi64 " %-11s %-20s %-20s %14" PRIu64 " %14" PRIu64 "\n",
            b->index, b->full ? "full" : "incremental", b->file, b->finished,
            b->data_bytes, b->file_size);
  }
  manifest_free (&m);
  return 0;
}

int
do_copy_raw (const char *uri)
{
  struct nbd_handle *h = connect_source (uri, NULL);
  extent_list list = empty_vector;
  struct copy_stats stats = { 0 };
  struct sink *sink = NULL;
  int64_t size;
  int ret = -1;

  if (h == NULL)
    return -1;
  size = nbd_get_size (h);
  if (size == -1) {
    error ("%s: %s", uri, nbd_get_error ());
    goto out;
  }
  if (get_extents (h, size, NULL, &list) == -1)
    goto out;
  sink = sink_raw_create (opts.output, size);
  if (sink == NULL)
    goto out;
  if (copy_extents (uri, h, &list, sink, sink->reads_zero, 0, &stats) == -1)
    goto out;
  ret = sink->ops->close (sink);
  sink = NULL;

 out:
  if (sink)
    sink->ops->close (sink);
  free (list.ptr);
  nbd_close (h);
  return ret;
}

/* Undocumented: print the work list (testing the dirty x allocation
 * crossing on its own).
 */
int
do_print_extents (const char *uri)
{
  CLEANUP_FREE char *ctx = NULL;
  struct nbd_handle *h;
  extent_list list = empty_vector;
  static const char *const names[] = { "data", "zero", "clean" };
  int64_t size;
  size_t i;
  int ret = -1;

  if (opts.bitmap &&
      asprintf (&ctx, "qemu:dirty-bitmap:%s", opts.bitmap) == -1) {
    error_errno ("asprintf");
    return -1;
  }
  h = connect_source (uri, ctx);
  if (h == NULL)
    return -1;
  size = nbd_get_size (h);
  if (size == -1)
    error ("%s: %s", uri, nbd_get_error ());
  else if (get_extents (h, size, ctx, &list) == 0) {
    for (i = 0; i < list.len; ++i)
      printf ("%" PRIu64 " %" PRIu64 " %s\n", list.ptr[i].offset,
              list.ptr[i].length, names[list.ptr[i].kind]);
    ret = 0;
  }
  free (list.ptr);
  nbd_close (h);
  return ret;
}
