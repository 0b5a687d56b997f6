/* Rounding for powers of two and general divisors. */
#ifndef NBDCBT_ROUNDING_H
#define NBDCBT_ROUNDING_H
#include <stdbool.h>
#include <stdint.h>
#define ROUND_UP(i, n) ((((i) + (n) - 1) / (n)) * (n))
#define ROUND_DOWN(i, n) (((i) / (n)) * (n))
#define DIV_ROUND_UP(i, n) (((i) + (n) - 1) / (n))
#define IS_ALIGNED(i, n) (((i) & ((n) - 1)) == 0) /* n: power of 2 */
static inline bool
is_power_of_2 (uint64_t v)
{
  return v && (v & (v - 1)) == 0;
}
static inline unsigned
log_2_bits (uint64_t v) /* v: power of 2 */
{
  return 63 - __builtin_clzll (v);
}
#endif
