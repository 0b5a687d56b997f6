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
