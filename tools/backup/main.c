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

/* nbdcbt-backup: command line. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "s3.h"
#include "bitmap-rules.h"
#include "utils.h"

struct options opts = {
  .until = -1,
  .tls = -1,
};

const char *message_prefix;

/* --control (repeatable with several disks).  Static, as opts.nodes, so
 * that it stays reachable until exit.
 */
static const char **controls;
static size_t ncontrols;

void
error (const char *fs, ...)
{
  va_list args;

  fprintf (stderr, PROG ": ");
  if (message_prefix)
    fprintf (stderr, "%s: ", message_prefix);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, "\n");
}

void
error_errno (const char *fs, ...)
{
  int err = errno;
  va_list args;

  fprintf (stderr, PROG ": ");
  if (message_prefix)
    fprintf (stderr, "%s: ", message_prefix);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, ": %s\n", strerror (err));
}

void
info (const char *fs, ...)
{
  va_list args;

  if (opts.quiet)
    return;
  if (message_prefix)
    printf ("%s: ", message_prefix);
  va_start (args, fs);
  vprintf (fs, args);
  va_end (args);
  printf ("\n");
  fflush (stdout);
}

static void
usage (FILE *fp)
{
  fprintf (fp,
"Usage:\n"
"  " PROG " full URI -o DIR [--bitmap NAME] [--disk-id ID] [-p]\n"
"             [--control SOCKET --node NODE [--node NODE...]]\n"
"  " PROG " inc URI -o DIR --bitmap NAME [--disk-id ID] [-p]\n"
"  " PROG " auto URI -o DIR --bitmap NAME [--disk-id ID] [-p]\n"
"  " PROG " full|inc|auto [NAME=]URI... -o DIR [--jobs N]\n"
"             [--control NAME=SOCKET [--node NAME=NODE]]...\n"
"                                          (each disk into DIR/NAME)\n"
"                                          (auto is also: inc --auto)\n"
"  " PROG " verify DIR\n"
"  " PROG " restore DIR [--until N] -o FILE|URI [-O raw|qcow2] [-p]\n"
"  " PROG " list DIR\n"
"  " PROG " prune DIR|URL --keep N\n"
"\n"
"Pull backups from an NBD server into a chain of qcow2 files: a full\n"
"backup, then incrementals holding only the extents reported dirty in\n"
"the metadata context qemu:dirty-bitmap:NAME, each backed by the\n"
"previous one.\n"
"\n"
"Options:\n"
"  -o, --output DIR|FILE|URI  backup directory, or restore target\n"
"  -b, --bitmap NAME          dirty bitmap exported by the server\n"
"      --disk-id ID           name of the disk, recorded by the full backup;\n"
"                             an incremental must give the same\n"
"      --control SOCKET       back up a running disk: begin a backup\n"
"                             session on the server's control socket\n"
"      --node NODE            the disk (node name) to back up; repeat for\n"
"                             several disks at one instant (-o DIR/NODE)\n"
"      --jobs N               with several disks: how many at once\n"
"                             (default 2)\n"
"      --auto                 with inc: full backup when DIR holds no\n"
"                             usable chain\n"
"  -n, --until N              restore the image as of backup N (0 = full)\n"
"      --keep N               prune: keep at most N restore points (N >= 1)\n"
"  -O, --output-format FMT    restore as raw (default for files) or qcow2\n"
"  -C, --connections N        NBD connections if the server allows\n"
"                             multi-conn (default 4)\n"
"  -R, --requests N           requests in flight per connection (default 16)\n"
"  -S, --request-size SIZE    bytes per read request (default 256K)\n"
"      --tls=off|on|require   TLS to the server (nbds:// URIs: require;\n"
"                             with --tls-certificates/--tls-psk: require)\n"
"      --tls-certificates DIR X.509: ca-cert.pem [client-cert.pem,\n"
"                             client-key.pem] in DIR\n"
"      --tls-psk FILE         pre-shared keys (psktool's format)\n"
"      --tls-username USER    the PSK's user (or USER@ in the URI)\n"
"\n"
"S3 (DIR may be s3://BUCKET/PREFIX; credentials from AWS_ACCESS_KEY_ID,\n"
"AWS_SECRET_ACCESS_KEY [AWS_SESSION_TOKEN] or ~/.aws/credentials):\n"
"      --s3-endpoint URL      https://HOST[:PORT] (http:// only if given)\n"
"      --s3-region REGION     (default: AWS_REGION, ~/.aws/config, us-east-1)\n"
"      --s3-profile NAME      profile of ~/.aws/{credentials,config}\n"
"      --s3-addressing-style path|virtual|auto   (--s3-path-style: path)\n"
"      --s3-ca-bundle FILE    CA certificates to check the server with\n"
"      --s3-part-size SIZE    multipart upload part size (default 8M)\n"
"      --s3-uploads N         parts uploaded at once (default 4)\n"
"      --s3-retries N         retries of a failed request (default 5)\n"
"      --s3-timeout SECONDS   a stalled request fails after (default 30)\n"
"  -p, --progress             show a progress bar\n"
"  -q, --quiet                print nothing but errors\n"
"      --help                 show this help\n"
"  -V, --version              show the version\n"
"\n"
"See " PROG "(1).\n");
}

enum {
  HELP_OPTION = CHAR_MAX + 1, AUTO_OPTION, DISK_ID_OPTION,
  TLS_OPTION, TLS_CERTIFICATES_OPTION, TLS_PSK_OPTION, TLS_USERNAME_OPTION,
  CONTROL_OPTION, NODE_OPTION, KEEP_OPTION, JOBS_OPTION,
  S3_ENDPOINT_OPTION, S3_REGION_OPTION, S3_PROFILE_OPTION,
  S3_ADDRESSING_OPTION, S3_PATH_STYLE_OPTION, S3_CA_BUNDLE_OPTION,
  S3_PART_SIZE_OPTION, S3_UPLOADS_OPTION, S3_RETRIES_OPTION,
  S3_TIMEOUT_OPTION,
};

static const struct option long_options[] = {
  { "output", required_argument, NULL, 'o' },
  { "bitmap", required_argument, NULL, 'b' },
  { "auto", no_argument, NULL, AUTO_OPTION },
  { "disk-id", required_argument, NULL, DISK_ID_OPTION },
  { "control", required_argument, NULL, CONTROL_OPTION },
  { "node", required_argument, NULL, NODE_OPTION },
  { "until", required_argument, NULL, 'n' },
  { "keep", required_argument, NULL, KEEP_OPTION },
  { "jobs", required_argument, NULL, JOBS_OPTION },
  { "output-format", required_argument, NULL, 'O' },
  { "connections", required_argument, NULL, 'C' },
  { "requests", required_argument, NULL, 'R' },
  { "request-size", required_argument, NULL, 'S' },
  { "progress", no_argument, NULL, 'p' },
  { "quiet", no_argument, NULL, 'q' },
  { "tls", required_argument, NULL, TLS_OPTION },
  { "tls-certificates", required_argument, NULL, TLS_CERTIFICATES_OPTION },
  { "tls-psk", required_argument, NULL, TLS_PSK_OPTION },
  { "tls-username", required_argument, NULL, TLS_USERNAME_OPTION },
  { "s3-endpoint", required_argument, NULL, S3_ENDPOINT_OPTION },
  { "s3-region", required_argument, NULL, S3_REGION_OPTION },
  { "s3-profile", required_argument, NULL, S3_PROFILE_OPTION },
  { "s3-addressing-style", required_argument, NULL, S3_ADDRESSING_OPTION },
  { "s3-path-style", no_argument, NULL, S3_PATH_STYLE_OPTION },
  { "s3-ca-bundle", required_argument, NULL, S3_CA_BUNDLE_OPTION },
  { "s3-part-size", required_argument, NULL, S3_PART_SIZE_OPTION },
  { "s3-uploads", required_argument, NULL, S3_UPLOADS_OPTION },
  { "s3-retries", required_argument, NULL, S3_RETRIES_OPTION },
  { "s3-timeout", required_argument, NULL, S3_TIMEOUT_OPTION },
  { "help", no_argument, NULL, HELP_OPTION },
  { "version", no_argument, NULL, 'V' },
  { NULL },
};

static bool
is_backup_command (const char *cmd)
{
  return strcmp (cmd, "full") == 0 || strcmp (cmd, "inc") == 0 ||
    strcmp (cmd, "auto") == 0;
}

/* NAME=URI (an '=' before the "://"). */
static bool
is_named_disk (const char *arg)
{
  const char *scheme = strstr (arg, "://"), *eq = strchr (arg, '=');

  return scheme && eq && eq < scheme;
}

static int
parse_int (const char *opt, const char *arg, long min, long max, long *ret)
{
  char *end;
  long v;

  errno = 0;
  v = strtol (arg, &end, 10);
  if (errno || end == arg || *end || v < min || v > max) {
    error ("%s: '%s' is not a number between %ld and %ld", opt, arg, min, max);
    return -1;
  }
  *ret = v;
  return 0;
}

int
main (int argc, char *argv[])
{
  bool auto_flag = false;
  int64_t keep = -1;
  int jobs = 0;
  bool many;
  const char *cmd, *arg;
  long v;
  int c;

  /* Options may come before or after the command and its argument. */
  while ((c = getopt_long (argc, argv, "o:b:n:O:C:R:S:pqV",
                           long_options, NULL)) != -1) {
    switch (c) {
    case 'o': opts.output = optarg; break;
    case 'b':
      if (bitmap_name_error (optarg)) {
        error ("--bitmap: %s", bitmap_name_error (optarg));
        exit (EXIT_FAILURE);
      }
      opts.bitmap = optarg;
      break;
    case AUTO_OPTION: auto_flag = true; break;
    case DISK_ID_OPTION: {
      const unsigned char *p;
      if (*optarg == '\0' || strlen (optarg) > 1023) {
        error ("--disk-id: a disk id is 1 to 1023 bytes");
        exit (EXIT_FAILURE);
      }
      for (p = (const unsigned char *) optarg; *p; ++p)
        if (*p < 0x20 || *p == 0x7f) {
          error ("--disk-id: control characters are not allowed");
          exit (EXIT_FAILURE);
        }
      opts.disk_id = optarg;
      break;
    }
    case CONTROL_OPTION: {
      const char **cv = realloc (controls, (ncontrols + 1) * sizeof *cv);
      if (cv == NULL) {
        error_errno ("realloc");
        exit (EXIT_FAILURE);
      }
      controls = cv;
      controls[ncontrols++] = optarg;
      break;
    }
    case JOBS_OPTION:
      if (parse_int ("--jobs", optarg, 1, 64, &v) == -1)
        exit (EXIT_FAILURE);
      jobs = v;
      break;
    case NODE_OPTION: {
      const char **nv;
      size_t i;

      for (i = 0; i < opts.nnodes; i++)
        if (strcmp (opts.nodes[i], optarg) == 0) {
          error ("--node %s: given twice", optarg);
          exit (EXIT_FAILURE);
        }
      if (*optarg == '\0' || strchr (optarg, '/') || strcmp (optarg, ".") == 0
          || strcmp (optarg, "..") == 0) {
        error ("--node '%s': not a node name", optarg);
        exit (EXIT_FAILURE);
      }
      nv = realloc (opts.nodes, (opts.nnodes + 1) * sizeof *nv);
      if (nv == NULL) {
        error_errno ("realloc");
        exit (EXIT_FAILURE);
      }
      opts.nodes = nv;
      opts.nodes[opts.nnodes++] = optarg;
      break;
    }
    case 'n':
      if (parse_int ("--until", optarg, 0, INT_MAX, &v) == -1)
        exit (EXIT_FAILURE);
      opts.until = v;
      break;
    case KEEP_OPTION:
      if (parse_int ("--keep", optarg, 0, INT_MAX, &v) == -1)
        exit (EXIT_FAILURE);
      if (v == 0) {
        error ("--keep 0: a chain keeps at least one restore point (its "
               "full backup); to delete a chain, remove its directory");
        exit (EXIT_FAILURE);
      }
      keep = v;
      break;
    case 'O':
      if (strcmp (optarg, "raw") != 0 && strcmp (optarg, "qcow2") != 0) {
        error ("-O: output format must be 'raw' or 'qcow2', not '%s'",
               optarg);
        exit (EXIT_FAILURE);
      }
      opts.out_format = optarg;
      break;
    case 'C':
      if (parse_int ("--connections", optarg, 1, 64, &v) == -1)
        exit (EXIT_FAILURE);
      opts.connections = v;
      break;
    case 'R':
      if (parse_int ("--requests", optarg, 1, 1024, &v) == -1)
        exit (EXIT_FAILURE);
      opts.requests = v;
      break;
    case 'S': {
      const char *err;
      int64_t s = parse_human_size (optarg, &err);
      if (s == -1) {
        error ("--request-size: '%s': %s", optarg, err);
        exit (EXIT_FAILURE);
      }
      if (s < 4096 || s > 32 * 1024 * 1024 || (s & (s - 1)) != 0) {
        error ("--request-size: must be a power of two from 4K to 32M");
        exit (EXIT_FAILURE);
      }
      opts.request_size = s;
      break;
    }
    case TLS_OPTION:
      opts.tls = parse_tls_mode (optarg);
      if (opts.tls == -1) {
        error ("--tls: expected off, on or require, not '%s'", optarg);
        exit (EXIT_FAILURE);
      }
      break;
    case TLS_CERTIFICATES_OPTION: opts.tls_certificates = optarg; break;
    case TLS_PSK_OPTION: opts.tls_psk_file = optarg; break;
    case TLS_USERNAME_OPTION: opts.tls_username = optarg; break;
    case S3_ENDPOINT_OPTION: s3_opts.endpoint = optarg; break;
    case S3_REGION_OPTION: s3_opts.region = optarg; break;
    case S3_PROFILE_OPTION: s3_opts.profile = optarg; break;
    case S3_ADDRESSING_OPTION: s3_opts.addressing_style = optarg; break;
    case S3_PATH_STYLE_OPTION: s3_opts.addressing_style = "path"; break;
    case S3_CA_BUNDLE_OPTION: s3_opts.ca_bundle = optarg; break;
    case S3_PART_SIZE_OPTION: {
      const char *err;
      int64_t s = parse_human_size (optarg, &err);
      if (s == -1) {
        error ("--s3-part-size: '%s': %s", optarg, err);
        exit (EXIT_FAILURE);
      }
      if (s < 5 * 1024 * 1024 || s > INT64_C (1) << 30) {
        error ("--s3-part-size: must be from 5M (S3's minimum) to 1G");
        exit (EXIT_FAILURE);
      }
      s3_opts.part_size = s;
      break;
    }
    case S3_UPLOADS_OPTION:
      if (parse_int ("--s3-uploads", optarg, 1, 64, &v) == -1)
        exit (EXIT_FAILURE);
      s3_opts.uploads = v;
      break;
    case S3_RETRIES_OPTION:
      if (parse_int ("--s3-retries", optarg, 0, 100, &v) == -1)
        exit (EXIT_FAILURE);
      s3_opts.retries = v;
      break;
    case S3_TIMEOUT_OPTION:
      if (parse_int ("--s3-timeout", optarg, 1, 3600, &v) == -1)
        exit (EXIT_FAILURE);
      s3_opts.timeout = v;
      break;
    case 'p': opts.progress = true; break;
    case 'q': opts.quiet = true; break;
    case HELP_OPTION: usage (stdout); exit (EXIT_SUCCESS);
    case 'V': printf ("%s %s\n", PROG, PACKAGE_VERSION); exit (EXIT_SUCCESS);
    default:
      usage (stderr);
      exit (EXIT_FAILURE);
    }
  }

  if (opts.tls_certificates && opts.tls_psk_file) {
    error ("--tls-certificates and --tls-psk cannot be used together");
    exit (EXIT_FAILURE);
  }
  /* Credentials mean TLS is wanted, as for the server. */
  if (opts.tls == -1 && (opts.tls_certificates || opts.tls_psk_file))
    opts.tls = LIBNBD_TLS_REQUIRE;
  if (opts.tls == LIBNBD_TLS_DISABLE
      && (opts.tls_certificates || opts.tls_psk_file)) {
    error ("--tls=off cannot be used with --tls-certificates or --tls-psk");
    exit (EXIT_FAILURE);
  }

  /* Several disks, or one named (NAME=URI), or --jobs: a run over many
   * disks (many.c), each into OUTPUT/NAME.
   */
  many = argc - optind >= 2 && is_backup_command (argv[optind]) &&
    (argc - optind > 2 || jobs > 0 || is_named_disk (argv[optind + 1]));
  if (argc - optind != 2 && !many) {
    if (argc - optind < 1)
      error ("missing command (full, inc, auto, verify, restore, list, "
             "prune); "
             "try --help");
    else if (argc - optind < 2)
      error ("%s: missing argument; try --help", argv[optind]);
    else
      error ("unexpected argument '%s'%s; try --help", argv[optind + 2],
             is_backup_command (argv[optind]) ? "" :
             " (several disks are for full, inc and auto)");
    exit (EXIT_FAILURE);
  }
  cmd = argv[optind];
  arg = argv[optind + 1];
  if (!many && ncontrols > 1) {
    error ("%s: --control is given %zu times: several servers need several "
           "disks, named (NAME=URI --control NAME=SOCKET)", cmd, ncontrols);
    exit (EXIT_FAILURE);
  }
  if (!many && ncontrols == 1)
    opts.control = controls[0];

  if (opts.connections == 0) opts.connections = 4;
  if (opts.requests == 0) opts.requests = 16;
  /* 256K requests, 16 per connection: the data read, checksummed and
   * written stays in the CPU cache, and a full backup (4 GiB, 2 cores)
   * ran 10-30% faster than with 1M (scripts/bench-backup).
   */
  if (opts.request_size == 0) opts.request_size = 256 * 1024;
  if (opts.progress && !isatty (STDERR_FILENO))
    opts.progress = false;

  if (strcmp (cmd, "full") == 0 || strcmp (cmd, "inc") == 0 ||
      strcmp (cmd, "auto") == 0) {
    enum backup_mode mode;

    if (strcmp (cmd, "full") == 0) {
      if (auto_flag) {
        error ("--auto goes with 'inc', not 'full'");
        exit (EXIT_FAILURE);
      }
      mode = MODE_FULL;
    }
    else if (strcmp (cmd, "auto") == 0 || auto_flag)
      mode = MODE_AUTO;
    else
      mode = MODE_INC;
    if (!opts.output) {
      error ("%s: the backup directory is missing (-o DIR)", cmd);
      exit (EXIT_FAILURE);
    }
    if (mode != MODE_FULL && !opts.bitmap) {
      error ("%s: an incremental backup needs --bitmap NAME", cmd);
      exit (EXIT_FAILURE);
    }
    if (opts.until != -1 || opts.out_format) {
      error ("%s: --until and -O are options of 'restore'", cmd);
      exit (EXIT_FAILURE);
    }
    if (keep != -1) {
      error ("%s: --keep is an option of 'prune'", cmd);
      exit (EXIT_FAILURE);
    }
    if (many) {
      if (opts.disk_id) {
        error ("%s: --disk-id names one disk; with several, each chain is "
               "named by its disk (NAME=URI)", cmd);
        exit (EXIT_FAILURE);
      }
      exit (do_many_backups (mode, argv + optind + 1, argc - optind - 1,
                             controls, ncontrols, jobs ? jobs : 2) == 0
            ? EXIT_SUCCESS : EXIT_FAILURE);
    }
    if (opts.control && opts.nnodes == 0) {
      error ("%s: --control needs the disk to back up (--node NODE)", cmd);
      exit (EXIT_FAILURE);
    }
    if (!opts.control && opts.nnodes > 1) {
      error ("%s: several --node need --control SOCKET", cmd);
      exit (EXIT_FAILURE);
    }
    exit (do_backup (mode, arg) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
  }
  if (keep != -1 && strcmp (cmd, "prune") != 0) {
    error ("%s: --keep is an option of 'prune'", cmd);
    exit (EXIT_FAILURE);
  }
  if (jobs) {
    error ("%s: --jobs is an option of 'full', 'inc' and 'auto'", cmd);
    exit (EXIT_FAILURE);
  }
  if (opts.control || opts.nnodes) {
    error ("%s: --control and --node are options of 'full', 'inc' and "
           "'auto'", cmd);
    exit (EXIT_FAILURE);
  }
  if (opts.disk_id) {
    error ("%s: --disk-id is an option of 'full', 'inc' and 'auto'", cmd);
    exit (EXIT_FAILURE);
  }
  if (strcmp (cmd, "verify") == 0)
    exit (do_verify (arg) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
  else if (strcmp (cmd, "restore") == 0) {
    if (!opts.output) {
      error ("restore: the target is missing (-o FILE|URI)");
      exit (EXIT_FAILURE);
    }
    exit (do_restore (arg) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
  }
  else if (strcmp (cmd, "list") == 0)
    exit (do_list (arg) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
  else if (strcmp (cmd, "prune") == 0) {
    if (keep == -1) {
      error ("prune: how many restore points to keep? (--keep N)");
      exit (EXIT_FAILURE);
    }
    if (opts.output || opts.until != -1 || opts.out_format) {
      error ("prune: -o, --until and -O are not options of 'prune'");
      exit (EXIT_FAILURE);
    }
    exit (do_prune (arg, keep) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
  }
  else if (strcmp (cmd, "copy-raw") == 0) {
    /* Undocumented: the copy engine into a raw file, for testing and
     * benchmarking it alone.
     */
    if (!opts.output) {
      error ("copy-raw: -o FILE is missing");
      exit (EXIT_FAILURE);
    }
    exit (do_copy_raw (arg) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
  }

  else if (strcmp (cmd, "extents") == 0)      /* undocumented, tests */
    exit (do_print_extents (arg) == 0 ? EXIT_SUCCESS : EXIT_FAILURE);

  error ("unknown command '%s' (full, inc, auto, verify, restore, list, "
         "prune); "
         "try --help", cmd);
  exit (EXIT_FAILURE);
}
