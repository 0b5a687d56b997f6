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

/* nbdcbt-img check: messages and exit codes of qemu-img check
 * (0 clean, 1 check failed, 2 corruptions, 3 leaks only, 63 not supported).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"
#include "nbdcbt-img.h"

static void
print_message (void *opaque, const char *text)
{
  bool quiet = *(bool *) opaque;
  size_t len = strlen (text);

  if (quiet)
    return;
  fprintf (stderr, "%s%s", text, len && text[len-1] == '\n' ? "" : "\n");
}

static void
print_human (const struct qcow2_check_result *r,
             const struct qcow2_check_result *fixed)
{
  if (fixed && (fixed->leaks_fixed || fixed->corruptions_fixed))
    printf ("The following inconsistencies were found and repaired:\n\n"
            "    %" PRIu64 " leaked clusters\n"
            "    %" PRIu64 " corruptions\n\n"
            "Double checking the fixed image now...\n",
            fixed->leaks_fixed, fixed->corruptions_fixed);

  if (r->corruptions == 0 && r->leaks == 0)
    printf ("No errors were found on the image.\n");
  else {
    if (r->corruptions)
      printf ("\n%" PRIu64 " errors were found on the image.\n"
              "Data may be corrupted, or further writes to the image "
              "may corrupt it.\n", r->corruptions);
    if (r->leaks)
      printf ("\n%" PRIu64 " leaked clusters were found on the image.\n"
              "This means waste of disk space, but no harm to data.\n",
              r->leaks);
  }
  if (r->image_end_offset)
    printf ("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

static void
print_json (const char *filename, const struct qcow2_check_result *r,
            const struct qcow2_check_result *fixed, uint64_t total_clusters)
{
  printf ("{\n");
  if (r->image_end_offset)
    printf ("    \"image-end-offset\": %" PRIu64 ",\n", r->image_end_offset);
  printf ("    \"total-clusters\": %" PRIu64 ",\n", total_clusters);
  printf ("    \"check-errors\": 0,\n");
  if (r->corruptions)
    printf ("    \"corruptions\": %" PRIu64 ",\n", r->corruptions);
  if (r->leaks)
    printf ("    \"leaks\": %" PRIu64 ",\n", r->leaks);
  if (fixed && fixed->corruptions_fixed)
    printf ("    \"corruptions-fixed\": %" PRIu64 ",\n",
            fixed->corruptions_fixed);
  if (fixed && fixed->leaks_fixed)
    printf ("    \"leaks-fixed\": %" PRIu64 ",\n", fixed->leaks_fixed);
  if (r->allocated_clusters)
    printf ("    \"allocated-clusters\": %" PRIu64 ",\n",
            r->allocated_clusters);
  printf ("    \"filename\": ");
  json_print_string (filename);
  printf (",\n");
  printf ("    \"format\": \"qcow2\"\n");
  printf ("}\n");
}

int
cmd_check (int argc, char *argv[])
{
  static const struct option long_options[] = {
    IMG_COMMON_LONG_OPTIONS,
    { "repair", required_argument, NULL, 'r' },
    { NULL }
  };
  struct img_common_opts o = { .fmt = FMT_UNKNOWN };
  bool quiet = false, repair = false;
  struct qcow2_check_result first = { 0 }, result = { 0 };
  struct qcow2_info info;
  const char *filename;
  struct qcow2 *q;
  int c, ret;

  while ((c = getopt_long (argc, argv, "+f:r:qhU", long_options,
                           NULL)) != -1) {
    switch (img_common_option (c, optarg, &o)) {
    case -1: return 1;
    case 1: continue;
    }
    switch (c) {
    case 'r':
      if (strcmp (optarg, "leaks") == 0)
        repair = true;
      else if (strcmp (optarg, "all") == 0) {
        img_error ("Repairing corruptions is not supported; "
                   "only '-r leaks' is");
        return 1;
      }
      else {
        img_error ("Unknown option value for -r "
                   "(expecting 'leaks' or 'all'): %s", optarg);
        return 1;
      }
      break;
    case 'q': quiet = true; break;
    case 'h':
      printf ("usage: %s check [-q] [-U] [-f FMT] [--output=human|json] "
              "[-r leaks] [--sidecar=PATH] FILENAME\n", PROGNAME);
      return 0;
    default:
      return 1;
    }
  }
  if (image_argument (argc, argv, o.fmt, &filename, &o.fmt) == -1)
    return 1;
  if (o.fmt != FMT_QCOW2) {
    if (repair) {
      img_error ("This image format does not support checks");
      return 63;
    }
    return sidecar_check (filename, quiet, o.json);
  }

  /* The backing chain is opened too (as qemu-img check does), so a
   * missing backing file or a loop in the chain is reported.
   */
  if (repair && o.force_share) {
    img_error ("--force-share/-U is only for read-only checks, not with -r");
    return 1;
  }
  q = open_qcow2 (filename, QCOW2_OPEN_NO_BITMAP_IN_USE | QCOW2_OPEN_CHECK |
                  (repair ? 0 : QCOW2_OPEN_RDONLY) |
                  (o.force_share ? QCOW2_OPEN_FORCE_SHARE : 0));
  if (q == NULL)
    return 1;

  if (qcow2_check (q, repair ? QCOW2_CHECK_REPAIR_LEAKS : 0, &first,
                   print_message, &quiet) == -1) {
    img_error ("Check failed: %s", lib_error (filename));
    qcow2_close (q);
    return 1;
  }
  result = first;
  if (repair && (first.leaks_fixed || first.corruptions_fixed)) {
    /* Double check, and report what is left. */
    if (qcow2_check (q, 0, &result, print_message, &quiet) == -1) {
      img_error ("Check failed: %s", lib_error (filename));
      qcow2_close (q);
      return 1;
    }
  }
  qcow2_get_info (q, &info);
  if (close_qcow2 (q, filename) == -1)
    return 1;

  if (!quiet) {
    if (o.json) {
      uint64_t total = info.cluster_size
        ? (info.size + info.cluster_size - 1) / info.cluster_size : 0;
      print_json (filename, &result, repair ? &first : NULL, total);
    }
    else
      print_human (&result, repair ? &first : NULL);
  }

  if (result.corruptions)
    ret = 2;
  else if (result.leaks)
    ret = 3;
  else
    ret = 0;
  return ret;
}
