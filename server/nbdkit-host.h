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

/* Hosting nbdkit's own plugins and filters (nbdkit 1.32, plugin API 1
 * and 2, filter API 6) in nbdcbt's chain.
 *
 * An nbdkit module is wrapped in an adapter: a struct nbdcbt_plugin or
 * struct nbdcbt_filter whose callbacks call the module's, converting
 * flags, handles and "next" objects.  The rest of the server sees an
 * ordinary layer.  The nbdkit_* functions the modules call are in
 * nbdkit-public.c, exported from the nbdcbt executable.
 *
 * nbdkit modules keep their configuration in globals and dlopen returns
 * the same copy of a file every time, so each module can be in a process
 * once: a second use of the same module is refused.
 */
#ifndef NBDCBT_NBDKIT_HOST_H
#define NBDCBT_NBDKIT_HOST_H

#include <stdbool.h>
#include <stdint.h>

struct nbdcbt_backend;
struct nbdcbt_module;

/* NAME is "nbdkit:NAME" or the path of an nbdkit-*-{plugin,filter}.so. */
extern bool nbdkit_module_wanted (const char *name, bool is_plugin);

/* The module for NAME (loaded at the first use), or NULL with an error
 * logged.  Each nbdkit module can then make one instance per process.
 */
extern struct nbdcbt_module *nbdkit_module_get (const char *name,
                                                bool is_plugin);
extern struct nbdcbt_module *nbdkit_plugin_module (const char *name);
extern struct nbdcbt_module *nbdkit_filter_module (const char *name);

/* The nbdkit modules' .unload (at exit, after the chains are gone). */
extern void nbdkit_modules_unload (void);
extern void nbdkit_plugin_unload (void);
extern void nbdkit_filters_unload (void);
extern int nbdkit_plugin_after_fork (void);

/* True with -s (the protocol is on stdin/stdout): nbdkit_stdio_safe. */
extern bool nbdkit_stdio_used;

/* Run the modules' .after_fork callbacks (after daemonizing, or at once
 * in the foreground).  -1 on failure, logged.
 */
extern int nbdkit_modules_after_fork (void);

/* nbdkit flag bits <-> nbdcbt flag bits (FUA and MAY_TRIM differ). */
extern uint32_t nbdkit_flags_to_nbdcbt (uint32_t flags);
extern uint32_t nbdcbt_flags_to_nbdkit (uint32_t flags);

/* The nbdkit:NAME lookup: DIR/nbdkit-NAME-KIND.so in nbdkit's plugin or
 * filter directory ($NBDKIT_PLUGINDIR / $NBDKIT_FILTERDIR override the
 * directories found by configure with pkg-config).  Caller frees; NULL
 * with an error logged.
 */
extern char *nbdkit_module_path (const char *name, bool is_plugin);

/* --nbdkit-debug=MODULE.FLAG=N, as nbdkit's -D: sets the module's
 * variable MODULE_debug_FLAG (dots and dashes as underscores) when the
 * module is loaded.  _add checks the syntax; _apply runs at each load;
 * _check fails for flags no loaded module had.
 */
extern int nbdkit_debug_flag_add (const char *arg);
extern int nbdkit_debug_flags_apply (void *dl, const char *name);
extern int nbdkit_debug_flags_check (void);

/* Why the module at PATH cannot work in nbdcbt, or NULL. */
extern const char *nbdkit_module_refused (const char *path);

/* Module loading shared by both kinds. */
extern void *nbdkit_module_open (const char *path, const char *kind,
                                 const char *symbol, void **init);

#endif /* NBDCBT_NBDKIT_HOST_H */
