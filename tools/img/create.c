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

/* nbdcbt-img create: new qcow2 (through the library) or sparse raw images. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "qcow2.h"
#include "utils.h"
#include "nbdcbt-img.h"

struct create_params {
  const char *filename;
  enum img_format fmt;
  bool have_size;
  uint64_t size;
  struct qcow2_create_opts q;
};

static int
parse_size_arg (const char *str, uint64_t *r)
{
  const char *err;
  int64_t v = parse_human_size (str, &err);

  if (v < 0) {
    img_error ("Invalid image size specified. You may use k, M, G, T, P or E "
               "suffixes for kilobytes, megabytes, gigabytes, terabytes, "
               "petabytes and exabytes.");
    return -1;
  }
  *r = v;
  return 0;
}

static int
parse_onoff (const char *filename, const char *key, const char *value,
             bool *r)
{
  if (strcmp (value, "on") == 0 || strcmp (value, "true") == 0) {
    *r = true;
    return 0;
  }
  if (strcmp (value, "off") == 0 || strcmp (value, "false") == 0) {
    *r = false;
    return 0;
  }
  img_error ("%s: Parameter '%s' expects 'on' or 'off'", filename, key);
  return -1;
}

/* -o KEY=VALUE[,KEY=VALUE]... */
static int
parse_create_options (struct create_params *p, char *opts)
{
  char *saveptr = NULL, *item;

  for (item = strtok_r (opts, ",", &saveptr); item;
       item = strtok_r (NULL, ",", &saveptr)) {
    char *value = strchr (item, '=');
    const char *key = item;
    uint64_t v;

    if (value == NULL) {
      img_error ("%s: Invalid option '%s' (expected KEY=VALUE)",
                 p->filename, item);
      return -1;
    }
    *value++ = '\0';

    if (strcmp (key, "cluster_size") == 0) {
      if (parse_size_arg (value, &v) == -1)
        return -1;
      if (v < 512 || v > 2 * 1024 * 1024 || (v & (v - 1)) != 0) {
        img_error ("%s: Cluster size must be a power of two between 512 and "
                   "2048k", p->filename);
        return -1;
      }
      p->q.cluster_size = v;
    }
    else if (strcmp (key, "size") == 0) {
      if (parse_size_arg (value, &p->size) == -1)
        return -1;
      p->have_size = true;
    }
    else if (strcmp (key, "compat") == 0) {
      if (strcmp (value, "0.10") == 0 || strcmp (value, "v2") == 0)
        p->q.version = 2;
      else if (strcmp (value, "1.1") == 0 || strcmp (value, "v3") == 0)
        p->q.version = 3;
      else {
        img_error ("%s: Invalid parameter '%s' for compat", p->filename,
                   value);
        return -1;
      }
    }
    else if (strcmp (key, "lazy_refcounts") == 0) {
      if (parse_onoff (p->filename, key, value, &p->q.lazy_refcounts) == -1)
        return -1;
    }
    else if (strcmp (key, "extended_l2") == 0) {
      if (parse_onoff (p->filename, key, value, &p->q.extended_l2) == -1)
        return -1;
    }
    else if (strcmp (key, "refcount_bits") == 0) {
      char *end;
      unsigned long bits;

      errno = 0;
      bits = strtoul (value, &end, 10);
      if (errno || *end || bits < 1 || bits > 64 || (bits & (bits - 1))) {
        img_error ("%s: Refcount width must be a power of two and may not "
                   "exceed 64 bits", p->filename);
        return -1;
      }
      p->q.refcount_bits = bits;
    }
    else if (strcmp (key, "compression_type") == 0) {
      if (strcmp (value, "zlib") == 0)
        p->q.compression_type = 0;
      else if (strcmp (value, "zstd") == 0)
        p->q.compression_type = 1;
      else {
        img_error ("%s: Invalid parameter '%s' for compression_type",
                   p->filename, value);
        return -1;
      }
    }
    else if (strcmp (key, "backing_file") == 0)
      p->q.backing_file = value;
    else if (strcmp (key, "backing_fmt") == 0)
      p->q.backing_format = value;
    else {
      img_error ("%s: Invalid parameter '%s'", p->filename, key);
      return -1;
    }
  }
  return 0;
}

/* Size of the backing file, opened to check that it exists and is what
 * -F says.
 */
static int
backing_size (struct create_params *p, uint64_t *size)
{
  CLEANUP_FREE char *path = backing_path (p->filename, p->q.backing_file);
  enum img_format bfmt;

  if (path == NULL) {
    img_error ("%m");
    return -1;
  }
  if (access (path, R_OK) == -1) {
    img_error ("%s: Could not open '%s': %m", p->filename, path);
    fprintf (stderr, "Could not open backing image.\n");
    return -1;
  }
  bfmt = parse_format (p->q.backing_format);
  if (bfmt == FMT_UNKNOWN)
    return -1;

  if (bfmt == FMT_QCOW2) {
    struct qcow2 *b = qcow2_open (path, QCOW2_OPEN_RDONLY |
                                  QCOW2_OPEN_NO_BITMAP_IN_USE);
    if (b == NULL) {
      img_error ("%s: Could not open backing file '%s': %s", p->filename,
                 path, lib_error (path));
      return -1;
    }
    *size = qcow2_get_size (b);
    qcow2_close (b);
  }
  else {
    struct stat st;

    if (stat (path, &st) == -1) {
      img_error ("%s: Could not open '%s': %m", p->filename, path);
      return -1;
    }
    *size = st.st_size;
  }
  return 0;
}

static int
create_raw (struct create_params *p, bool quiet)
{
  int fd;

  if (!quiet)
    printf ("Formatting '%s', fmt=raw size=%" PRIu64 "\n", p->filename,
            p->size);
  fd = open (p->filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1) {
    img_error ("%s: Could not create '%s': %m", p->filename, p->filename);
    return 1;
  }
  /* Sparse: no data written. */
  if (ftruncate (fd, p->size) == -1) {
    img_error ("%s: Could not resize file: %m", p->filename);
    close (fd);
    return 1;
  }
  if (close (fd) == -1) {
    img_error ("%s: %m", p->filename);
    return 1;
  }
  return 0;
}

static int
create_qcow2 (struct create_params *p, bool quiet)
{
  if (!quiet) {
    printf ("Formatting '%s', fmt=qcow2 cluster_size=%" PRIu32
            " extended_l2=%s compression_type=%s size=%" PRIu64,
            p->filename, p->q.cluster_size,
            p->q.extended_l2 ? "on" : "off",
            p->q.compression_type == 1 ? "zstd" : "zlib", p->size);
    if (p->q.backing_file)
      printf (" backing_file=%s backing_fmt=%s", p->q.backing_file,
              p->q.backing_format);
    if (p->q.version == 2)
      printf (" compat=0.10");
    printf (" lazy_refcounts=%s refcount_bits=%d\n",
            p->q.lazy_refcounts ? "on" : "off", p->q.refcount_bits);
  }
  p->q.size = p->size;
  if (qcow2_create (p->filename, &p->q) == -1) {
    img_error ("%s: %s", p->filename, lib_error (p->filename));
    return 1;
  }
  return 0;
}

int
cmd_create (int argc, char *argv[])
{
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { NULL }
  };
  struct create_params p = {
    .q = { .cluster_size = 65536, .version = 3, .refcount_bits = 16 },
  };
  const char *fmt = "raw";
  char *opts[64];
  size_t nopts = 0, i;
  bool quiet = false;
  int c;

  while ((c = getopt_long (argc, argv, "+f:b:F:o:qhu", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'f': fmt = optarg; break;
    case 'b': p.q.backing_file = optarg; break;
    case 'F': p.q.backing_format = optarg; break;
    case 'o':
      if (nopts >= sizeof opts / sizeof opts[0]) {
        img_error ("too many -o options");
        return 1;
      }
      opts[nopts++] = optarg;
      break;
    case 'q': quiet = true; break;
    case 'u': break; /* qemu-img's "unsafe": we never open the backing file
                      * more than needed anyway. */
    case 'h':
      printf ("usage: %s create [-q] [-f FMT] [-b BACKING [-F BACKING_FMT]] "
              "[-o OPTIONS] FILENAME [SIZE]\n", PROGNAME);
      return 0;
    default:
      return 1;
    }
  }
  if (optind >= argc) {
    img_error ("Expecting image file name");
    return 1;
  }
  p.filename = argv[optind++];
  p.fmt = parse_format (fmt);
  if (p.fmt == FMT_UNKNOWN)
    return 1;

  for (i = 0; i < nopts; i++)
    if (parse_create_options (&p, opts[i]) == -1)
      return 1;

  if (optind < argc) {
    if (parse_size_arg (argv[optind++], &p.size) == -1)
      return 1;
    p.have_size = true;
  }
  if (optind < argc) {
    img_error ("Unexpected argument: %s", argv[optind]);
    return 1;
  }

  if (p.q.backing_file) {
    if (p.fmt == FMT_RAW) {
      img_error ("%s: Backing file not supported for file format 'raw'",
                 p.filename);
      return 1;
    }
    if (p.q.backing_format == NULL) {
      img_error ("%s: Backing file specified without backing format",
                 p.filename);
      return 1;
    }
    if (!p.have_size) {
      if (backing_size (&p, &p.size) == -1)
        return 1;
      p.have_size = true;
    }
    else {
      uint64_t ignored;
      if (backing_size (&p, &ignored) == -1)
        return 1;
    }
  }
  else if (p.q.backing_format) {
    img_error ("-F requires a backing file (-b)");
    return 1;
  }
  if (!p.have_size) {
    img_error ("%s: Image creation needs a size parameter", p.filename);
    return 1;
  }
  if (p.fmt == FMT_QCOW2 && p.q.version == 2 &&
      (p.q.lazy_refcounts || p.q.extended_l2 || p.q.refcount_bits != 16 ||
       p.q.compression_type != 0)) {
    img_error ("%s: these options need compat=1.1 (v3)", p.filename);
    return 1;
  }

  if (p.fmt == FMT_RAW)
    return create_raw (&p, quiet);
  return create_qcow2 (&p, quiet);
}
