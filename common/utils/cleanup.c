#include <config.h>

#include <stdlib.h>
#include <unistd.h>
#include <pthread.h>

#include "cleanup.h"

void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}

void
cleanup_close (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}

void
cleanup_mutex_unlock (pthread_mutex_t **ptr)
{
  if (pthread_mutex_unlock (*ptr))
    abort ();
}

void
cleanup_rwlock_unlock (pthread_rwlock_t **ptr)
{
  if (pthread_rwlock_unlock (*ptr))
    abort ();
}
