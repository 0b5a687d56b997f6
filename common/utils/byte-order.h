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

/* Load/store helpers for on-disk and on-wire structures: big-endian
 * (qcow2, NBD) and little-endian 64-bit words (qcow2 bitmap data).
 */
#ifndef NBDCBT_BYTE_ORDER_H
#define NBDCBT_BYTE_ORDER_H
#include <endian.h>
#include <stdint.h>
#include <string.h>
static inline uint16_t
load_be16 (const void *p)
{
  uint16_t v;
  memcpy (&v, p, 2);
  return be16toh (v);
}
static inline uint32_t
load_be32 (const void *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return be32toh (v);
}
static inline uint64_t
load_be64 (const void *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return be64toh (v);
}
static inline void
store_be16 (void *p, uint16_t v)
{
  v = htobe16 (v);
  memcpy (p, &v, 2);
}
static inline void
store_be32 (void *p, uint32_t v)
{
  v = htobe32 (v);
  memcpy (p, &v, 4);
}
static inline void
store_be64 (void *p, uint64_t v)
{
  v = htobe64 (v);
  memcpy (p, &v, 8);
}
static inline uint64_t
load_le64 (const void *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return le64toh (v);
}
static inline void
store_le64 (void *p, uint64_t v)
{
  v = htole64 (v);
  memcpy (p, &v, 8);
}
#endif
