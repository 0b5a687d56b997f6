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

/* nbdcbt-img: offline tool for qcow2 and raw images and their persistent
 * dirty bitmaps.  Subcommands and their output follow qemu-img's.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qcow2.h"
#include "nbdcbt-img.h"

void
img_error (const char *fs, ...)
{
  va_list args;
  int err = errno;

  fprintf (stderr, "%s: ", PROGNAME);
  va_start (args, fs);
  errno = err;
  vfprintf (stderr, fs, args);
  va_end (args);
  fputc ('\n', stderr);
}

const char *
lib_error (const char *path)
{
  const char *msg = qcow2_last_error ();
  size_t len = path ? strlen (path) : 0;

  if (msg == NULL)
    return "unknown error";
  if (len && strncmp (msg, path, len) == 0 && strncmp (msg + len, ": ", 2) == 0)
    return msg + len + 2;
  return msg;
}

enum img_format
parse_format (const char *name)
{
  if (strcmp (name, "qcow2") == 0)
    return FMT_QCOW2;
  if (strcmp (name, "raw") == 0)
    return FMT_RAW;
  img_error ("Unknown file format '%s' (supported: qcow2, raw)", name);
  return FMT_UNKNOWN;
}

int
parse_output_format (const char *arg, bool *json)
{
  if (strcmp (arg, "json") == 0)
    *json = true;
  else if (strcmp (arg, "human") == 0)
    *json = false;
  else {
    img_error ("--output must be used with human or json as argument.");
    return -1;
  }
  return 0;
}

int
img_common_option (int c, const char *arg, struct img_common_opts *o)
{
  switch (c) {
  case 'f':
    o->fmt = parse_format (arg);
    return o->fmt == FMT_UNKNOWN ? -1 : 1;
  case 'O':
    return parse_output_format (arg, &o->json) == -1 ? -1 : 1;
  case 'U':
    o->force_share = true;
    img_sidecar_force_share = true;
    return 1;
  case 'S':
    img_sidecar_path = arg;
    return 1;
  default:
    return 0;
  }
}

const char *
format_name (enum img_format fmt)
{
  return fmt == FMT_QCOW2 ? "qcow2" : fmt == FMT_RAW ? "raw" : "unknown";
}

enum img_format
probe_format (const char *path, enum img_format fmt)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  bool is_qcow2;

  if (fd == -1) {
    img_error ("Could not open '%s': %m", path);
    return FMT_UNKNOWN;
  }
  is_qcow2 = qcow2_probe_fd (fd);
  close (fd);
  if (fmt != FMT_UNKNOWN)
    return fmt;
  return is_qcow2 ? FMT_QCOW2 : FMT_RAW;
}

void
size_to_str (uint64_t val, char *buf, size_t len)
{
  static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi",
                                          "Ei" };
  int i;

  /* As QEMU: switch to the next unit once the value reaches 1000. */
  frexp (val / (1000.0 / 1024.0), &i);
  i = (i - 1) / 10;
  snprintf (buf, len, "%0.3g %sB", (double) val / (double) (1ULL << (i * 10)),
            suffixes[i]);
}

void
json_print_string (const char *str)
{
  const unsigned char *p;

  putchar ('"');
  for (p = (const unsigned char *) str; *p; p++) {
    switch (*p) {
    case '"': fputs ("\\\"", stdout); break;
    case '\\': fputs ("\\\\", stdout); break;
    case '\b': fputs ("\\b", stdout); break;
    case '\f': fputs ("\\f", stdout); break;
    case '\n': fputs ("\\n", stdout); break;
    case '\r': fputs ("\\r", stdout); break;
    case '\t': fputs ("\\t", stdout); break;
    default:
      if (*p < 0x20)
        printf ("\\u%04x", *p);
      else
        putchar (*p);
    }
  }
  putchar ('"');
}

uint64_t
default_bitmap_granularity (uint32_t cluster_size)
{
  uint64_t g = cluster_size;

  if (g < 4096)
    g = 4096;
  if (g > 65536)
    g = 65536;
  return g;
}

static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: %s COMMAND [OPTIONS] ...\n"
"\n"
"Commands:\n"
"  create [-q] [-f FMT] [-b BACKING [-F BACKING_FMT]] [-o OPTIONS] FILENAME [SIZE]\n"
"  info [-f FMT] [--output=human|json] FILENAME\n"
"  check [-q] [-f FMT] [--output=human|json] [-r leaks] FILENAME\n"
"  bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)...\n"
"         [-b SOURCE_FILE [-F SOURCE_FMT]] [-g GRANULARITY] [-f FMT] FILENAME BITMAP\n"
"  map --bitmap NAME [-f FMT] [--output=human|json] FILENAME\n"
"\n"
"See nbdcbt-img(1).\n",
           PROGNAME);
}

int
main (int argc, char *argv[])
{
  const char *cmd;

  if (argc < 2) {
    usage (stderr);
    return 1;
  }
  cmd = argv[1];
  if (strcmp (cmd, "--help") == 0 || strcmp (cmd, "-h") == 0 ||
      strcmp (cmd, "help") == 0) {
    usage (stdout);
    return 0;
  }
  if (strcmp (cmd, "--version") == 0 || strcmp (cmd, "-V") == 0) {
    printf ("%s %s\n", PROGNAME, PACKAGE_VERSION);
    return 0;
  }

  /* Each subcommand parses its own options from argv[1] on. */
  argc--;
  argv++;
  if (strcmp (cmd, "create") == 0)
    return cmd_create (argc, argv);
  if (strcmp (cmd, "info") == 0)
    return cmd_info (argc, argv);
  if (strcmp (cmd, "check") == 0)
    return cmd_check (argc, argv);
  if (strcmp (cmd, "bitmap") == 0)
    return cmd_bitmap (argc, argv);
  if (strcmp (cmd, "map") == 0)
    return cmd_map (argc, argv);

  img_error ("Command not found: %s", cmd);
  usage (stderr);
  return 1;
}
