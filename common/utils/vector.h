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
