/* A plugin as a module built for the first nbdcbt module API (before
 * per-instance state) registers itself: the server must refuse it with a
 * message that says so, not call into a struct of another shape.
 */
#include <config.h>

#include <stddef.h>

#include "nbdcbt-plugin.h"

/* Version 1's struct began with the same three fields. */
struct old_plugin {
  size_t _struct_size;
  int _api_version;
  const char *name;
  void *callbacks[40];
};

static struct old_plugin plugin = { .name = "oldapi" };

extern struct nbdcbt_plugin *nbdcbt_register_plugin (void);

struct nbdcbt_plugin *
nbdcbt_register_plugin (void)
{
  plugin._struct_size = sizeof plugin;
  plugin._api_version = 1;
  return (struct nbdcbt_plugin *) &plugin;
}
