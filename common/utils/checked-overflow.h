/* Overflow-checked arithmetic: true when the result overflowed. */
#ifndef NBDCBT_CHECKED_OVERFLOW_H
#define NBDCBT_CHECKED_OVERFLOW_H
#define ADD_OVERFLOW(a, b, r) __builtin_add_overflow ((a), (b), (r))
#define MUL_OVERFLOW(a, b, r) __builtin_mul_overflow ((a), (b), (r))
#endif
