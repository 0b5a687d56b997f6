/* Thread-local error messages for qcow2_last_error. */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "qcow2-internal.h"

static __thread char last_error[1024];

const char *
qcow2_last_error (void)
{
  return last_error[0] ? last_error : "no error";
}

static void
set_error (const char *fs, va_list args)
{
  vsnprintf (last_error, sizeof last_error, fs, args);
}

/* Records the message, sets errno and returns -1. */
int
qcow2_error (int errnum, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  set_error (fs, args);
  va_end (args);
  errno = errnum;
  return -1;
}

void *
qcow2_error_null (int errnum, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  set_error (fs, args);
  va_end (args);
  errno = errnum;
  return NULL;
}
