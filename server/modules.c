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

/* Modules: finding plugin and filter shared objects, loading each once,
 * and checking what they register against this server's module API.
 * What a loaded plugin or filter does is plugins.c's and filters.c's.
 */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "nbdkit-host.h"

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

/* Every module loaded so far.  A chain takes its modules from here, so
 * that one .so is loaded (and its load called) once however many exports
 * use it.
 */
static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nbdcbt_module *modules;

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

/* The registration must match this server's API and carry a valid name.
 * An old module's struct may be shorter than ours: only its first two
 * fields, which every version has, are read before the version check.
 */
static int
module_check (const char *kind, const char *path, int api_version,
              size_t struct_size, size_t want_size, const char *const *name)
{
  if (api_version != NBDCBT_API_VERSION) {
    nbdcbt_error ("%s: this %s was built for nbdcbt module API version %d, "
                  "but this server needs version %d%s: rebuild it against "
                  "this server's nbdcbt-%s.h",
                  path, kind, api_version, NBDCBT_API_VERSION,
                  api_version < NBDCBT_API_VERSION
                  ? " (per-instance state)" : "", kind);
    return -1;
  }
  if (struct_size != want_size) {
    nbdcbt_error ("%s: %s was built for a different nbdcbt API "
                  "(struct size %zu, expected %zu)", path, kind,
                  struct_size, want_size);
    return -1;
  }
  if (!is_module_name (*name)) {
    nbdcbt_error ("%s: %s has an invalid name", path, kind);
    return -1;
  }
  return 0;
}

/* Open, check and register the module at PATH (which it takes).
 * MODULES_LOCK held.
 */
static struct nbdcbt_module *
module_load (const char *name, char *path, bool is_plugin)
{
  const char *kind = is_plugin ? "plugin" : "filter";
  struct nbdcbt_plugin *(*preg) (void);
  struct nbdcbt_filter *(*freg) (void);
  const struct nbdcbt_plugin *p = NULL;
  const struct nbdcbt_filter *f = NULL;
  struct nbdcbt_module *m;
  void *dl;

  dl = module_open (name, path, kind, is_plugin ? "nbdcbt_register_plugin"
                    : "nbdcbt_register_filter",
                    is_plugin ? (void **) &preg : (void **) &freg);
  if (dl == NULL)
    goto fail;
  if (is_plugin)
    p = preg ();
  else
    f = freg ();
  if (p == NULL && f == NULL) {
    nbdcbt_error ("%s: %s registered nothing", path, kind);
    goto fail;
  }
  /* The API check first: only then are the callbacks where we look. */
  if (p ? module_check (kind, path, p->_api_version, p->_struct_size,
                        sizeof *p, &p->name)
      : module_check (kind, path, f->_api_version, f->_struct_size,
                      sizeof *f, &f->name))
    goto fail;
  if (p && (p->pread == NULL || p->get_size == NULL)) {
    nbdcbt_error ("%s: plugin must have pread and get_size callbacks", path);
    goto fail;
  }
  m = calloc (1, sizeof *m);
  if (m == NULL || (m->name = strdup (p ? p->name : f->name)) == NULL) {
    nbdcbt_error ("calloc: %m");
    free (m);
    goto fail;
  }
  m->filename = path;
  m->dl = dl;
  m->plugin = p;
  m->filter = f;
  m->ops = p ? &plugin_ops : &filter_ops;
  if (p && p->load)
    p->load ();
  if (f && f->load)
    f->load ();
  m->list_next = modules;
  modules = m;
  return m;

 fail:
  if (dl)
    dlclose (dl);
  free (path);
  return NULL;
}

struct nbdcbt_module *
module_get (const char *name, bool is_plugin, bool quiet)
{
  const char *kind = is_plugin ? "plugin" : "filter";
  char *path;
  struct nbdcbt_module *m;

  /* An nbdkit module: nbdkit-host.c adapts it to this API. */
  if (nbdkit_module_wanted (name, is_plugin)) {
    m = nbdkit_module_get (name, is_plugin);
    if (m && m->ops == NULL)
      m->ops = m->plugin ? &plugin_ops : &filter_ops;
    return m;
  }
  path = module_find (name, is_plugin);

  if (path == NULL && strchr (name, '/')) {
    if (!quiet)
      nbdcbt_error ("cannot open %s '%s': %m", kind, name);
    return NULL;
  }
  if (path == NULL) {
    if (!quiet)
      nbdcbt_error ("cannot find %s '%s' (looked for nbdcbt-%s-%s.so in "
                    "$NBDCBT_%s_PATH and %s)", kind, name, name, kind,
                    is_plugin ? "PLUGIN" : "FILTER",
                    is_plugin ? PLUGINDIR : FILTERDIR);
    return NULL;
  }

  pthread_mutex_lock (&modules_lock);
  for (m = modules; m; m = m->list_next)
    if (strcmp (m->filename, path) == 0)
      break;
  if (m && (m->plugin != NULL) != is_plugin) {
    nbdcbt_error ("%s is a %s, not a %s", path, is_plugin ? "filter"
                  : "plugin", kind);
    m = NULL;
  }
  else if (m)
    free (path);
  else
    m = module_load (name, path, is_plugin);
  pthread_mutex_unlock (&modules_lock);
  return m;
}

void
modules_unload (void)
{
  struct nbdcbt_module *m, *next;

  pthread_mutex_lock (&modules_lock);
  for (m = modules; m; m = next) {
    next = m->list_next;
    if (m->plugin && m->plugin->unload)
      m->plugin->unload ();
    if (m->filter && m->filter->unload)
      m->filter->unload ();
    /* Modules stay mapped: a thread-local destructor or atexit handler in
     * a module may still run.  The process exits right after this.
     */
    free (m->name);
    free (m->filename);
    free (m);
  }
  modules = NULL;
  pthread_mutex_unlock (&modules_lock);
  nbdkit_modules_unload ();
}

