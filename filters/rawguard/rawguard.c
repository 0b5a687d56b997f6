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

/* nbdcbt rawguard filter: a raw image whose format was guessed must not
 * be turned into another format by a client.
 *
 * `nbdcbt disk.img` decides that disk.img is raw because its first bytes
 * are no known format's header.  A client may write such a header into
 * the first sector (a guest creating a qcow2 image on its disk, or an
 * attacker): the next time the image is opened by probing (nbdcbt, or
 * QEMU without format=raw) it would be read as that format, whose header
 * can point at any file on the host as its backing file.  As QEMU's raw
 * driver does for probed images, a write that would leave the first
 * sector looking like another format is refused with EPERM.  The
 * shorthand adds this filter to every image it probes as raw; serving
 * the image with an explicit plugin (`nbdcbt file file=disk.img`) lifts
 * the restriction, as format=raw does in QEMU.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "nbdcbt-filter.h"

#define SECTOR 512

/* Formats QEMU (or nbdcbt) would recognize from the first sector. */
static const struct format_magic {
  const char *format;
  uint32_t offset;
  uint32_t len;
  const char *magic;
} formats[] = {
  { "qcow2 (or qcow)", 0, 4, "QFI\xfb" },
  { "QED", 0, 4, "QED\0" },
  { "VMDK", 0, 4, "KDMV" },
  { "VMDK (version 3)", 0, 4, "COWD" },
  { "VMDK (descriptor)", 0, 21, "# Disk DescriptorFile" },
  { "VDI", 64, 4, "\x7f\x10\xda\xbe" },
  { "VHDX", 0, 8, "vhdxfile" },
  { "VHD (vpc)", 0, 8, "conectix" },
  { "LUKS", 0, 6, "LUKS\xba\xbe" },
  { "Parallels", 0, 16, "WithoutFreeSpace" },
  { "Parallels", 0, 16, "WithouFreSpacExt" },
  { "Bochs", 0, 22, "Bochs Virtual HD Image" },
  { "cloop", 0, 23, "#!/bin/sh\n#V2.0 Format\n" },
};

/* The format SECTOR bytes at BUF would be probed as, or NULL for raw. */
static const char *
probe_sector (const unsigned char *buf)
{
  size_t i;

  for (i = 0; i < sizeof formats / sizeof formats[0]; ++i)
    if (memcmp (buf + formats[i].offset, formats[i].magic,
                formats[i].len) == 0)
      return formats[i].format;
  return NULL;
}

/* Writes into the first sector are checked and done one at a time, so
 * that two partial writes cannot together build a header neither shows.
 */
static pthread_mutex_t sector0_lock = PTHREAD_MUTEX_INITIALIZER;

static int
rawguard_pwrite (const struct nbdcbt_next_ops *next_ops,
                 nbdcbt_context *nxdata, void *handle, const void *buf,
                 uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  unsigned char sector[SECTOR];
  const char *format;
  int64_t size;
  uint32_t n;
  int r;

  if (offset >= SECTOR || count == 0)
    return next_ops->pwrite (nxdata, buf, count, offset, flags, err);

  pthread_mutex_lock (&sector0_lock);
  /* The first sector as it will be after this write. */
  n = SECTOR;
  size = next_ops->get_size (nxdata);
  if (size >= 0 && size < SECTOR)
    n = size;
  memset (sector, 0, sizeof sector);
  if (offset + count < n || offset > 0) {
    if (next_ops->pread (nxdata, sector, n, 0, 0, err) == -1) {
      pthread_mutex_unlock (&sector0_lock);
      return -1;
    }
  }
  memcpy (sector + offset, buf,
          offset + count > SECTOR ? SECTOR - offset : count);
  format = probe_sector (sector);
  if (format) {
    pthread_mutex_unlock (&sector0_lock);
    nbdcbt_error ("refusing a write to the first sector of a raw image "
                  "whose format was probed: the image would look like %s "
                  "(serve it with the file plugin named, e.g. 'nbdcbt "
                  "file file=IMAGE', to allow it)", format);
    *err = EPERM;
    return -1;
  }
  r = next_ops->pwrite (nxdata, buf, count, offset, flags, err);
  pthread_mutex_unlock (&sector0_lock);
  return r;
}

/* Zeroes and trims cannot write a header, but they must not slip between
 * a sector-0 check and its write.
 */
static int
rawguard_zero (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  int r;

  if (offset >= SECTOR)
    return next_ops->zero (nxdata, count, offset, flags, err);
  pthread_mutex_lock (&sector0_lock);
  r = next_ops->zero (nxdata, count, offset, flags, err);
  pthread_mutex_unlock (&sector0_lock);
  return r;
}

static int
rawguard_trim (const struct nbdcbt_next_ops *next_ops,
               nbdcbt_context *nxdata, void *handle, uint32_t count,
               uint64_t offset, uint32_t flags, int *err)
{
  int r;

  if (offset >= SECTOR)
    return next_ops->trim (nxdata, count, offset, flags, err);
  pthread_mutex_lock (&sector0_lock);
  r = next_ops->trim (nxdata, count, offset, flags, err);
  pthread_mutex_unlock (&sector0_lock);
  return r;
}

static struct nbdcbt_filter filter = {
  .name = "rawguard",
  .longname = "nbdcbt rawguard filter",
  .version = PACKAGE_VERSION,
  .description = "Refuse writes that would make a probed raw image look "
                 "like another format",
  .pwrite = rawguard_pwrite,
  .zero = rawguard_zero,
  .trim = rawguard_trim,
};

NBDCBT_REGISTER_FILTER (filter)
