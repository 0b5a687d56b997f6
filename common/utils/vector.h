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

/* Growable typed arrays:
 *   DEFINE_VECTOR_TYPE (uint64_vector, uint64_t);
 *   uint64_vector v = empty_vector;
 *   if (uint64_vector_append (&v, 42) == -1) ...;
 *   free (v.ptr);
 */
#ifndef NBDCBT_VECTOR_H
#define NBDCBT_VECTOR_H
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define empty_vector { .ptr = NULL, .len = 0, .cap = 0 }

#define DEFINE_VECTOR_TYPE(name, type)                                        \
  typedef struct {                                                            \
    type *ptr;                                                                \
    size_t len;                                                               \
    size_t cap;                                                               \
  } name;                                                                     \
  static inline int __attribute__ ((__unused__))                              \
  name##_reserve (name *v, size_t n)                                          \
  {                                                                           \
    if (v->cap - v->len >= n)                                                 \
      return 0;                                                               \
    size_t ncap = v->cap ? v->cap : 16;                                       \
    while (ncap - v->len < n) {                                               \
      if (ncap > SIZE_MAX / 2 / sizeof (type)) {                              \
        errno = ENOMEM;                                                       \
        return -1;                                                            \
      }                                                                       \
      ncap *= 2;                                                              \
    }                                                                         \
    type *p = realloc (v->ptr, ncap * sizeof (type));                         \
    if (p == NULL)                                                            \
      return -1;                                                              \
    v->ptr = p;                                                               \
    v->cap = ncap;                                                            \
    return 0;                                                                 \
  }                                                                           \
  static inline int __attribute__ ((__unused__))                              \
  name##_append (name *v, type elem)                                          \
  {                                                                           \
    if (name##_reserve (v, 1) == -1)                                          \
      return -1;                                                              \
    v->ptr[v->len++] = elem;                                                  \
    return 0;                                                                 \
  }                                                                           \
  static inline void __attribute__ ((__unused__))                             \
  name##_reset (name *v)                                                      \
  {                                                                           \
    free (v->ptr);                                                            \
    v->ptr = NULL;                                                            \
    v->len = v->cap = 0;                                                      \
  }
#endif
