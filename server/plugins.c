/* Finding and loading plugin modules; --dump-plugin and plugin --help. */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#ifndef PLUGINDIR
#define PLUGINDIR "/usr/local/lib/nbdcbt/plugins"
#endif
#ifndef FILTERDIR
#define FILTERDIR "/usr/local/lib/nbdcbt/filters"
#endif

/* [a-z0-9_-]+, starting with a letter or digit. */
bool
is_module_name (const char *name)
{
  const char *p;

  if (name == NULL || *name == '\0' || *name == '-' || strlen (name) > 64)
    return false;
  for (p = name; *p; ++p)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
          || *p == '_' || *p == '-'))
      return false;
  return true;
}

/* The file of module NAME: a path given directly (contains '/'), or
 * nbdcbt-NAME-{plugin,filter}.so in $NBDCBT_{PLUGIN,FILTER}_PATH, then in
 * the installed directory.  NULL if not found.
 */
char *
module_find (const char *name, bool is_plugin)
{
  const char *kind = is_plugin ? "plugin" : "filter";
  const char *env = getenv (is_plugin ? "NBDCBT_PLUGIN_PATH"
                            : "NBDCBT_FILTER_PATH");
  const char *dir = is_plugin ? PLUGINDIR : FILTERDIR;
  char *path = NULL, *dirs, *saveptr = NULL, *d;

  if (strchr (name, '/')) {
    if (access (name, R_OK) == 0)
      return nbdcbt_absolute_path (name);
    return NULL;
  }
  if (!is_module_name (name))
    return NULL;

  dirs = env ? strdup (env) : NULL;
  for (d = dirs ? strtok_r (dirs, ":", &saveptr) : NULL; d;
       d = strtok_r (NULL, ":", &saveptr)) {
    if (asprintf (&path, "%s/nbdcbt-%s-%s.so", d, name, kind) == -1) {
      path = NULL;
      break;
    }
    if (access (path, R_OK) == 0)
      break;
    free (path);
    path = NULL;
  }
  free (dirs);
  if (path)
    return path;
  if (asprintf (&path, "%s/nbdcbt-%s-%s.so", dir, name, kind) == -1)
    return NULL;
  if (access (path, R_OK) == 0)
    return path;
  free (path);
  return NULL;
}

static void *
module_open (const char *name, const char *path, const char *kind,
             const char *symbol, void **fn)
{
  void *dl;

  dl = dlopen (path, RTLD_NOW | RTLD_GLOBAL);
  if (dl == NULL) {
    nbdcbt_error ("cannot open %s '%s' (%s): %s", kind, name, path,
                  dlerror ());
    return NULL;
  }
  dlerror ();
  *fn = dlsym (dl, symbol);
  if (*fn == NULL) {
    nbdcbt_error ("%s is not an nbdcbt %s: no %s symbol", path, kind,
                  symbol);
    dlclose (dl);
    return NULL;
  }
  return dl;
}

/* What plugins and filters share once a module is open: its registration
 * must match this server's API and carry a valid name; then it becomes a
 * backend.  On failure the module is closed and PATH freed.
 */
static struct nbdcbt_backend *
module_backend (const char *kind, char *path, void *dl, int api_version,
                size_t struct_size, size_t want_size, const char *name)
{
  struct nbdcbt_backend *b;

  if (api_version != NBDCBT_API_VERSION || struct_size != want_size) {
    nbdcbt_error ("%s: %s was built for a different nbdcbt API", path, kind);
    goto fail;
  }
  if (!is_module_name (name)) {
    nbdcbt_error ("%s: %s has an invalid name", path, kind);
    goto fail;
  }
  b = calloc (1, sizeof *b);
  if (b == NULL || (b->name = strdup (name)) == NULL) {
    nbdcbt_error ("calloc: %m");
    free (b);
    goto fail;
  }
  b->filename = path;
  b->dl = dl;
  return b;

 fail:
  dlclose (dl);
  free (path);
  return NULL;
}

struct nbdcbt_backend *
plugin_load (const char *name, bool quiet)
{
  struct nbdcbt_plugin *(*reg) (void);
  const struct nbdcbt_plugin *p;
  struct nbdcbt_backend *b;
  char *path = module_find (name, true);
  void *dl;

  if (path == NULL && strchr (name, '/')) {
    if (!quiet)
      nbdcbt_error ("cannot open plugin '%s': %m", name);
    return NULL;
  }
  if (path == NULL) {
    if (!quiet)
      nbdcbt_error ("cannot find plugin '%s' (looked for "
                    "nbdcbt-%s-plugin.so in $NBDCBT_PLUGIN_PATH and %s)",
                    name, name, PLUGINDIR);
    return NULL;
  }
  dl = module_open (name, path, "plugin", "nbdcbt_register_plugin",
                    (void **) &reg);
  if (dl == NULL) {
    free (path);
    return NULL;
  }
  p = reg ();
  if (p == NULL) {
    nbdcbt_error ("%s: plugin registered nothing", path);
    dlclose (dl);
    free (path);
    return NULL;
  }
  /* The API check first: only then are the callbacks where we look. */
  b = module_backend ("plugin", path, dl, p->_api_version, p->_struct_size,
                      sizeof (struct nbdcbt_plugin), p->name);
  if (b == NULL)
    return NULL;
  if (p->pread == NULL || p->get_size == NULL) {
    nbdcbt_error ("%s: plugin must have pread and get_size callbacks",
                  b->filename);
    dlclose (b->dl);
    free (b->filename);
    free (b->name);
    free (b);
    return NULL;
  }
  b->plugin = p;
  if (p->load)
    p->load ();
  return b;
}

struct nbdcbt_backend *
filter_load (const char *name, struct nbdcbt_backend *next)
{
  struct nbdcbt_filter *(*reg) (void);
  const struct nbdcbt_filter *f;
  struct nbdcbt_backend *b;
  char *path = module_find (name, false);
  void *dl;

  if (path == NULL) {
    nbdcbt_error ("cannot find filter '%s' (looked for "
                  "nbdcbt-%s-filter.so in $NBDCBT_FILTER_PATH and %s)",
                  name, name, FILTERDIR);
    return NULL;
  }
  dl = module_open (name, path, "filter", "nbdcbt_register_filter",
                    (void **) &reg);
  if (dl == NULL) {
    free (path);
    return NULL;
  }
  f = reg ();
  if (f == NULL) {
    nbdcbt_error ("%s: filter registered nothing", path);
    dlclose (dl);
    free (path);
    return NULL;
  }
  b = module_backend ("filter", path, dl, f->_api_version, f->_struct_size,
                      sizeof (struct nbdcbt_filter), f->name);
  if (b == NULL)
    return NULL;
  b->filter = f;
  b->next = next;
  b->i = next->i + 1;
  if (f->load)
    f->load ();
  return b;
}

void
plugin_usage (struct nbdcbt_backend *b)
{
  const struct nbdcbt_plugin *p = b->plugin;

  printf ("%s", p->name);
  if (p->longname)
    printf (" (%s)", p->longname);
  printf ("\n");
  if (p->description)
    printf ("%s\n", p->description);
  if (p->magic_config_key)
    printf ("\nA bare VALUE means %s=VALUE.\n", p->magic_config_key);
  if (p->config_help)
    printf ("\n%s\n", p->config_help);
}

void
filter_usage (struct nbdcbt_backend *b)
{
  const struct nbdcbt_filter *f = b->filter;

  printf ("filter: %s", f->name);
  if (f->longname)
    printf (" (%s)", f->longname);
  printf ("\n");
  if (f->description)
    printf ("%s\n", f->description);
  if (f->config_help)
    printf ("\n%s\n", f->config_help);
  printf ("\n");
}

void
plugin_dump (struct nbdcbt_backend *b)
{
  const struct nbdcbt_plugin *p = b->plugin;
  int model;

  printf ("path=%s\n", b->filename);
  printf ("name=%s\n", p->name);
  if (p->version)
    printf ("version=%s\n", p->version);
  printf ("api_version=%d\n", p->_api_version);
  printf ("struct_size=%zu\n", p->_struct_size);
  model = p->thread_model ? p->thread_model ()
    : NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS;
  printf ("thread_model=%s\n",
          model == NBDCBT_THREAD_MODEL_SERIALIZE_CONNECTIONS
          ? "serialize_connections"
          : model == NBDCBT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS
          ? "serialize_all_requests"
          : model == NBDCBT_THREAD_MODEL_SERIALIZE_REQUESTS
          ? "serialize_requests"
          : model == NBDCBT_THREAD_MODEL_PARALLEL ? "parallel" : "invalid");
  if (p->magic_config_key)
    printf ("magic_config_key=%s\n", p->magic_config_key);
#define HAS(field) printf ("has_%s=%d\n", #field, p->field != NULL)
  HAS (longname);
  HAS (description);
  HAS (load);
  HAS (unload);
  HAS (config);
  HAS (config_complete);
  HAS (config_help);
  HAS (thread_model);
  HAS (get_ready);
  HAS (cleanup);
  HAS (get_service);
  HAS (open);
  HAS (close);
  HAS (get_size);
  HAS (block_size);
  HAS (can_write);
  HAS (can_flush);
  HAS (is_rotational);
  HAS (can_trim);
  HAS (can_zero);
  HAS (can_fast_zero);
  HAS (can_extents);
  HAS (can_fua);
  HAS (can_multi_conn);
  HAS (can_cache);
  HAS (pread);
  HAS (pwrite);
  HAS (flush);
  HAS (trim);
  HAS (zero);
  HAS (extents);
  HAS (cache);
  HAS (list_meta_contexts);
  HAS (meta_extents);
#undef HAS
  fflush (stdout);
  if (p->dump_plugin)
    p->dump_plugin ();
}
