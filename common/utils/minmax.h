#ifndef NBDCBT_MINMAX_H
#define NBDCBT_MINMAX_H
#define MIN(a, b)                                                             \
  ({ __auto_type _a = (a); __auto_type _b = (b); _a < _b ? _a : _b; })
#define MAX(a, b)                                                             \
  ({ __auto_type _a = (a); __auto_type _b = (b); _a > _b ? _a : _b; })
#endif
