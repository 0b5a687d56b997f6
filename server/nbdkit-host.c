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

/* Finding and opening nbdkit modules (see nbdkit-host.h). */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "internal.h"
#include "nbdkit-host.h"

#ifndef NBDKIT_PLUGINDIR
#define NBDKIT_PLUGINDIR "/usr/lib/x86_64-linux-gnu/nbdkit/plugins"
#endif
#ifndef NBDKIT_FILTERDIR
#define NBDKIT_FILTERDIR "/usr/lib/x86_64-linux-gnu/nbdkit/filters"
#endif

struct debug_flag {
  char *module, *flag;
  int value;
  bool used;
};
static struct debug_flag *flags;
static size_t nflags;

static void
free_flags (void)
{
  size_t i;

  for (i = 0; i < nflags; ++i) {
    free (flags[i].module);
    free (flags[i].flag);
  }
  free (flags);
}

int
nbdkit_debug_flag_add (const char *arg)
{
  const char *dot = strchr (arg, '.'), *eq = strchr (arg, '=');
  struct debug_flag *v, f = { 0 };

  if (dot == NULL || eq == NULL || eq < dot || dot == arg || eq == dot + 1) {
    nbdcbt_error ("--nbdkit-debug=%s: expected MODULE.FLAG=N "
                  "(for example file.zero=1)", arg);
    return -1;
  }
  if (nbdkit_parse_int ("--nbdkit-debug", eq + 1, &f.value) == -1)
    return -1;
  f.module = strndup (arg, dot - arg);
  f.flag = strndup (dot + 1, eq - dot - 1);
  v = f.module && f.flag ? realloc (flags, (nflags + 1) * sizeof *v) : NULL;
  if (v == NULL) {
    nbdcbt_error ("malloc: %m");
    free (f.module);
    free (f.flag);
    return -1;
  }
  if (flags == NULL)
    atexit (free_flags);
  flags = v;
  flags[nflags++] = f;
  return 0;
}

static void
underscores (char *s)
{
  for (; *s; ++s)
    if (*s == '-' || *s == '.')
      *s = '_';
}

int
nbdkit_debug_flags_apply (void *dl, const char *name)
{
  size_t i;
  char *sym;
  int *var;

  for (i = 0; i < nflags; ++i) {
    if (strcmp (flags[i].module, name) != 0)
      continue;
    if (asprintf (&sym, "%s_debug_%s", name, flags[i].flag) == -1) {
      nbdcbt_error ("asprintf: %m");
      return -1;
    }
    underscores (sym);
    var = dlsym (dl, sym);
    if (var == NULL) {
      nbdcbt_error ("--nbdkit-debug=%s.%s: nbdkit module %s has no such "
                    "debug flag (no symbol %s)", flags[i].module,
                    flags[i].flag, name, sym);
      free (sym);
      return -1;
    }
    *var = flags[i].value;
    flags[i].used = true;
    free (sym);
  }
  return 0;
}

int
nbdkit_debug_flags_check (void)
{
  size_t i;

  for (i = 0; i < nflags; ++i)
    if (!flags[i].used) {
      nbdcbt_error ("--nbdkit-debug=%s.%s: no nbdkit module %s is loaded",
                    flags[i].module, flags[i].flag, flags[i].module);
      return -1;
    }
  return 0;
}

static bool
has_prefix (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

static bool
has_suffix (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);

  return n >= m && strcmp (s + n - m, suffix) == 0;
}

bool
nbdkit_module_wanted (const char *name, bool is_plugin)
{
  const char *base;

  if (has_prefix (name, "nbdkit:"))
    return true;
  if (strchr (name, '/') == NULL)
    return false;
  base = strrchr (name, '/') + 1;
  return has_prefix (base, "nbdkit-")
    && has_suffix (base, is_plugin ? "-plugin.so" : "-filter.so");
}

/* nbdkit modules known not to work in nbdcbt's chain, and why. */
static const struct {
  const char *file;
  const char *why;
} refused[] = {
  { "nbdkit-ext2-filter.so",
    "it opens the layer below once and shares it between connections "
    "(no next_open in .open, nbdkit_context_set_next in .prepare), "
    "while nbdcbt opens the chain below a filter for each connection" },
  { "nbdkit-exportname-filter.so",
    "it works by answering NBD_OPT_LIST and choosing the default export "
    "(.list_exports, .default_export), which nbdcbt does not route "
    "through its chain" },
};

const char *
nbdkit_module_refused (const char *path)
{
  const char *base = strrchr (path, '/') ? strrchr (path, '/') + 1 : path;
  size_t i;

  for (i = 0; i < sizeof refused / sizeof refused[0]; ++i)
    if (strcmp (base, refused[i].file) == 0)
      return refused[i].why;
  return NULL;
}

char *
nbdkit_module_path (const char *name, bool is_plugin)
{
  const char *kind = is_plugin ? "plugin" : "filter";
  const char *dir;
  char *path;

  if (!has_prefix (name, "nbdkit:")) {
    if (access (name, R_OK) == -1) {
      nbdcbt_error ("cannot open nbdkit %s %s: %m", kind, name);
      return NULL;
    }
    return nbdcbt_absolute_path (name);
  }
  name += strlen ("nbdkit:");
  if (!is_module_name (name)) {
    nbdcbt_error ("nbdkit:%s: not a valid nbdkit %s name", name, kind);
    return NULL;
  }
  dir = getenv (is_plugin ? "NBDKIT_PLUGINDIR" : "NBDKIT_FILTERDIR");
  if (dir == NULL || *dir == '\0')
    dir = is_plugin ? NBDKIT_PLUGINDIR : NBDKIT_FILTERDIR;
  if (asprintf (&path, "%s/nbdkit-%s-%s.so", dir, name, kind) == -1) {
    nbdcbt_error ("asprintf: %m");
    return NULL;
  }
  if (access (path, R_OK) == -1) {
    nbdcbt_error ("cannot find nbdkit %s '%s' (looked for %s: %m; is the "
                  "nbdkit package that ships it installed?)", kind, name,
                  path);
    free (path);
    return NULL;
  }
  return path;
}

void *
nbdkit_module_open (const char *path, const char *kind, const char *symbol,
                    void **init)
{
  void *dl = dlopen (path, RTLD_NOW | RTLD_GLOBAL);

  if (dl == NULL) {
    nbdcbt_error ("cannot open nbdkit %s %s: %s", kind, path, dlerror ());
    return NULL;
  }
  dlerror ();
  *init = dlsym (dl, symbol);
  if (*init == NULL) {
    nbdcbt_error ("%s is not an nbdkit %s: no %s symbol", path, kind,
                  symbol);
    dlclose (dl);
    return NULL;
  }
  return dl;
}

struct nbdcbt_module *
nbdkit_module_get (const char *name, bool is_plugin)
{
  return is_plugin ? nbdkit_plugin_module (name) : nbdkit_filter_module (name);
}

void
nbdkit_modules_unload (void)
{
  nbdkit_filters_unload ();
  nbdkit_plugin_unload ();
}
