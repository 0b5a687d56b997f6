/* nbdcbt-backup list: print the chain's identity and its backups. */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>

#include "backup.h"

int
do_list (const char *dir)
{
  struct manifest m;
  size_t i;
  int r = manifest_load (dir, &m);

  if (r == -1)
    return -1;
  if (r == 1) {
    error ("%s holds no backup chain", dir);
    return -1;
  }
  printf ("chain:        %s\n", m.chain_id);
  printf ("virtual size: %" PRIu64 "\n", m.virtual_size);
  printf ("bitmap:       %s\n", m.bitmap ? m.bitmap : "(none)");
  printf ("export name:  \"%s\"\n", m.export_name);
  if (m.export_description)
    printf ("description:  \"%s\"\n", m.export_description);
  printf ("disk id:      %s\n", m.disk_id ? m.disk_id : "(none)");
  printf ("%-5s %-11s %-20s %-20s %14s %14s\n", "N", "TYPE", "FILE",
          "FINISHED", "DATA", "FILE SIZE");
  for (i = 0; i < m.backups.len; ++i) {
    const struct backup_entry *b = &m.backups.ptr[i];
    printf ("%-5" PRIi64 " %-11s %-20s %-20s %14" PRIu64 " %14" PRIu64 "\n",
            b->index, b->full ? "full" : "incremental", b->file, b->finished,
            b->data_bytes, b->file_size);
  }
  manifest_free (&m);
  return 0;
}
