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
/* A name of its own for each use, so that several locks can be held in
 * one scope or in nested scopes (__COUNTER__ has to be expanded before it
 * is pasted, hence the two levels).
 */
#define CLEANUP_CONCAT_(a, b) a##b
#define CLEANUP_CONCAT(a, b) CLEANUP_CONCAT_ (a, b)
#define CLEANUP_UNIQUE(prefix) CLEANUP_CONCAT (prefix, __COUNTER__)

#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex)                                 \
  ACQUIRE_LOCK_NAMED_ (mutex, CLEANUP_UNIQUE (_lock_))
#define ACQUIRE_LOCK_NAMED_(mutex, name)                                      \
  CLEANUP_MUTEX_UNLOCK pthread_mutex_t *name = (mutex);                       \
  do {                                                                        \
    if (pthread_mutex_lock (name))                                            \
      abort ();                                                               \
  } while (0)

extern void cleanup_rwlock_unlock (pthread_rwlock_t **ptr);
#define CLEANUP_RWLOCK_UNLOCK __attribute__ ((cleanup (cleanup_rwlock_unlock)))
#define ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(rw)                                  \
  ACQUIRE_RWLOCK_NAMED_ (rw, pthread_rwlock_rdlock, CLEANUP_UNIQUE (_rwlock_))
#define ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(rw)                                  \
  ACQUIRE_RWLOCK_NAMED_ (rw, pthread_rwlock_wrlock, CLEANUP_UNIQUE (_rwlock_))
#define ACQUIRE_RWLOCK_NAMED_(rw, lockfn, name)                               \
  CLEANUP_RWLOCK_UNLOCK pthread_rwlock_t *name = (rw);                        \
  do {                                                                        \
    if (lockfn (name))                                                        \
      abort ();                                                               \
  } while (0)
#endif
