/* nbdcbt-backup: a progress bar on stderr (only with -p on a terminal). */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "backup.h"

static const char *what;
static uint64_t total;
static int last_shown = -1;
static bool active;

void
progress_start (const char *name, uint64_t bytes)
{
  what = name;
  total = bytes;
  last_shown = -1;
  active = opts.progress;
  progress_update (0);
}

void
progress_update (uint64_t done)
{
  const int width = 40;
  int permille, filled, i;

  if (!active)
    return;
  permille = total ? (int) (done * 1000 / total) : 1000;
  if (permille > 1000)
    permille = 1000;
  if (permille == last_shown)
    return;
  last_shown = permille;
  filled = permille * width / 1000;
  fprintf (stderr, "\r%s [", what);
  for (i = 0; i < width; ++i)
    fputc (i < filled ? '#' : '-', stderr);
  fprintf (stderr, "] %3d.%d%% %" PRIu64 " MiB", permille / 10, permille % 10,
           done >> 20);
  fflush (stderr);
}

void
progress_end (void)
{
  if (!active)
    return;
  fputc ('\n', stderr);
  active = false;
}
