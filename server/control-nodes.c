/* nbdcbt server: the nodes the control socket's commands name.
 *
 * A node is an export: its node name, its export name, its chain (the
 * plugin's name is the node's "drv") and the dirty filter's
 * "dirty-bitmaps" service if the chain has one.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "control.h"
#include "dirty-bitmaps-service.h"

/* Stand-in until the export registry lands: the one chain, node "disk". */
static int
node_fill (struct control_node *node)
{
  struct nbdcbt_backend *b;

  memset (node, 0, sizeof *node);
  for (b = top; b->next; b = b->next)
    ;
  node->node_name = strdup (export_name_setting[0] ? export_name_setting
                            : "disk");
  node->export_name = strdup (export_name_setting);
  node->drv = strdup (b->name);
  if (node->node_name == NULL || node->export_name == NULL
      || node->drv == NULL) {
    control_node_put (node);
    return -1;
  }
  node->read_only = read_only;
  node->bitmaps = nbdcbt_next_service (top, DIRTY_BITMAPS_SERVICE);
  return 0;
}

int
control_nodes_get (struct control_node **nodes, size_t *n,
                   struct qmp_error *err)
{
  *nodes = calloc (1, sizeof **nodes);
  if (*nodes == NULL || node_fill (*nodes) == -1) {
    free (*nodes);
    *nodes = NULL;
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
    return -1;
  }
  *n = 1;
  return 0;
}

void
control_nodes_put (struct control_node *nodes, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    control_node_put (&nodes[i]);
  free (nodes);
}

int
control_node_find (const char *name, struct control_node *node,
                   struct qmp_error *err)
{
  if (strcmp (name, export_name_setting[0] ? export_name_setting
              : "disk") != 0) {
    qmp_error_set (err, QMP_GENERIC_ERROR,
                   "Cannot find device='%s' nor node-name='%s'", name, name);
    return -1;
  }
  if (node_fill (node) == -1) {
    qmp_error_set (err, QMP_GENERIC_ERROR, "%s", strerror (ENOMEM));
    return -1;
  }
  return 0;
}

void
control_node_put (struct control_node *node)
{
  free (node->node_name);
  free (node->export_name);
  free (node->drv);
  memset (node, 0, sizeof *node);
}
