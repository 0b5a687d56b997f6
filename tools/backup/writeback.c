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

/* nbdcbt-backup: start writeback of the backup file while it is written.
 *
 * Left to itself the kernel keeps gigabytes of a fresh backup dirty in
 * the page cache, and the fsync before the file is published then waits
 * for all of it; worse, the qcow2 library syncs in the middle of the
 * copy (a new refcount block is made durable before anything points to
 * it) with the metadata lock held, stalling every writer for as long.
 * A helper thread asks for writeback of whatever is dirty every few tens
 * of milliseconds (sync_file_range SYNC_FILE_RANGE_WRITE does not wait
 * for the data), so the disk works in parallel with the copy and those
 * syncs find little to do.
 *
 * This is only a hint: durability still comes from the fsync of the
 * file before it is renamed.  An I/O error seen here is seen by that
 * fsync too (errors are tracked per open file, and the library's
 * descriptor is not this one).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"

#define INTERVAL_NS (50 * 1000 * 1000)

struct writeback {
  int fd;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
};

static void *
writeback_run (void *opaque)
{
  struct writeback *wb = opaque;
  struct timespec t;

  pthread_mutex_lock (&wb->lock);
  while (!wb->stop) {
    clock_gettime (CLOCK_REALTIME, &t);
    t.tv_nsec += INTERVAL_NS;
    if (t.tv_nsec >= 1000000000) {
      t.tv_sec++;
      t.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait (&wb->cond, &wb->lock, &t);
    if (wb->stop)
      break;
    pthread_mutex_unlock (&wb->lock);
#ifdef SYNC_FILE_RANGE_WRITE
    if (sync_file_range (wb->fd, 0, 0, SYNC_FILE_RANGE_WRITE) == -1 &&
        (errno == ENOSYS || errno == EINVAL || errno == ESPIPE)) {
      /* Not supported here: nothing else to do. */
      pthread_mutex_lock (&wb->lock);
      break;
    }
#endif
    pthread_mutex_lock (&wb->lock);
  }
  pthread_mutex_unlock (&wb->lock);
  return NULL;
}

struct writeback *
writeback_start (const char *path)
{
  struct writeback *wb = calloc (1, sizeof *wb);

  if (wb == NULL)
    return NULL;
  wb->fd = open (path, O_RDONLY | O_CLOEXEC);
  if (wb->fd == -1) {
    free (wb);
    return NULL;
  }
  pthread_mutex_init (&wb->lock, NULL);
  pthread_cond_init (&wb->cond, NULL);
  if (pthread_create (&wb->thread, NULL, writeback_run, wb) != 0) {
    close (wb->fd);
    pthread_mutex_destroy (&wb->lock);
    pthread_cond_destroy (&wb->cond);
    free (wb);
    return NULL;
  }
  return wb;
}

void
writeback_stop (struct writeback *wb)
{
  if (wb == NULL)
    return;
  pthread_mutex_lock (&wb->lock);
  wb->stop = true;
  pthread_cond_signal (&wb->cond);
  pthread_mutex_unlock (&wb->lock);
  pthread_join (wb->thread, NULL);
  close (wb->fd);
  pthread_mutex_destroy (&wb->lock);
  pthread_cond_destroy (&wb->cond);
  free (wb);
}
