/* nbdcbt server: the backup session commands of the control socket
 * (jobs.c): backup-begin, backup-end, query-backups, and backup-begin as
 * a transaction action.
 */
#ifndef NBDCBT_JOBS_H
#define NBDCBT_JOBS_H

#include "control.h"

extern control_command_fn qmp_backup_begin, qmp_backup_end,
  qmp_query_backups;
extern const struct control_arg backup_begin_spec[];
extern int prepare_backup_begin (json_object *data, bool grouped,
                                 struct control_action *act,
                                 struct qmp_error *err);
/* Events from sessions.c go out on the control socket from now on. */
extern void jobs_init (void);

#endif /* NBDCBT_JOBS_H */
