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

/* Scope-bound cleanup, as nbdkit's common/utils/cleanup.h. */
#ifndef NBDCBT_CLEANUP_H
#define NBDCBT_CLEANUP_H
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

extern void cleanup_free (void *ptr);
#define CLEANUP_FREE __attribute__ ((cleanup (cleanup_free)))
extern void cleanup_close (int *fd);
#define CLEANUP_CLOSE __attribute__ ((cleanup (cleanup_close)))

extern void cleanup_mutex_unlock (pthread_mutex_t **ptr);
#define CLEANUP_MUTEX_UNLOCK __attribute__ ((cleanup (cleanup_mutex_unlock)))
#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex)                                 \
  CLEANUP_MUTEX_UNLOCK pthread_mutex_t *_lock_##__LINE__ = (mutex);           \
  do {                                                                        \
    int _r = pthread_mutex_lock (_lock_##__LINE__);                           \
    if (_r)                                                                   \
      abort ();                                                               \
  } while (0)

extern void cleanup_rwlock_unlock (pthread_rwlock_t **ptr);
#define CLEANUP_RWLOCK_UNLOCK __attribute__ ((cleanup (cleanup_rwlock_unlock)))
#define ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(rw)                                  \
  CLEANUP_RWLOCK_UNLOCK pthread_rwlock_t *_rwlock_##__LINE__ = (rw);          \
  do {                                                                        \
    if (pthread_rwlock_rdlock (_rwlock_##__LINE__))                           \
      abort ();                                                               \
  } while (0)
#define ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(rw)                                  \
  CLEANUP_RWLOCK_UNLOCK pthread_rwlock_t *_rwlock_##__LINE__ = (rw);          \
  do {                                                                        \
    if (pthread_rwlock_wrlock (_rwlock_##__LINE__))                           \
      abort ();                                                               \
  } while (0)
#endif
