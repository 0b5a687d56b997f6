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

/* nbdcbt: command line, startup, signals and shutdown. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "tls.h"
#include "control.h"
#include "nbdkit-host.h"
#include "sessions.h"

static bool foreground;

enum {
  OPT_FILTER = 256,
  OPT_DUMP_PLUGIN,
  OPT_MAX_CONNECTIONS,
  OPT_HANDSHAKE_LIMIT,
  OPT_IDLE_TIMEOUT,
  OPT_MAX_IN_FLIGHT,
  OPT_EXIT_WITH_PARENT,
  OPT_TLS,
  OPT_TLS_CERTIFICATES,
  OPT_TLS_PSK,
  OPT_TLS_VERIFY_PEER,
  OPT_EXPORT,
  OPT_NODE_NAME,
  OPT_CONTROL,
  OPT_NBDKIT_DEBUG,
};

static const char short_options[] = "D:e:fhi:p:P:rst:U:vV";
static const struct option long_options[] = {
  { "control", required_argument, NULL, OPT_CONTROL },
  { "description", required_argument, NULL, 'D' },
  { "dump-plugin", no_argument, NULL, OPT_DUMP_PLUGIN },
  { "exit-with-parent", no_argument, NULL, OPT_EXIT_WITH_PARENT },
  { "export", required_argument, NULL, OPT_EXPORT },
  { "exportname", required_argument, NULL, 'e' },
  { "export-name", required_argument, NULL, 'e' },
  { "filter", required_argument, NULL, OPT_FILTER },
  { "foreground", no_argument, NULL, 'f' },
  { "no-fork", no_argument, NULL, 'f' },
  { "node-name", required_argument, NULL, OPT_NODE_NAME },
  { "help", no_argument, NULL, 'h' },
  { "ipaddr", required_argument, NULL, 'i' },
  { "handshake-limit", required_argument, NULL, OPT_HANDSHAKE_LIMIT },
  { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
  { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
  { "max-in-flight", required_argument, NULL, OPT_MAX_IN_FLIGHT },
  { "nbdkit-debug", required_argument, NULL, OPT_NBDKIT_DEBUG },
  { "port", required_argument, NULL, 'p' },
  { "pidfile", required_argument, NULL, 'P' },
  { "readonly", no_argument, NULL, 'r' },
  { "read-only", no_argument, NULL, 'r' },
  { "single", no_argument, NULL, 's' },
  { "stdin", no_argument, NULL, 's' },
  { "threads", required_argument, NULL, 't' },
  { "tls", required_argument, NULL, OPT_TLS },
  { "tls-certificates", required_argument, NULL, OPT_TLS_CERTIFICATES },
  { "tls-psk", required_argument, NULL, OPT_TLS_PSK },
  { "tls-verify-peer", no_argument, NULL, OPT_TLS_VERIFY_PEER },
  { "unix", required_argument, NULL, 'U' },
  { "verbose", no_argument, NULL, 'v' },
  { "version", no_argument, NULL, 'V' },
  { NULL, 0, NULL, 0 },
};

static void
usage (void)
{
  printf ("nbdcbt: an NBD server with persistent changed-block tracking\n"
          "\n"
          "usage:\n"
          "  nbdcbt [-U SOCKET | -p PORT [-i ADDR] | -s] [-r] [-f] [-P PIDFILE]\n"
          "         [-e EXPORTNAME] [-D DESCRIPTION] [-t THREADS] [-v]\n"
          "         [--filter=NAME]...\n"
          "         PLUGIN [[KEY=]VALUE]...\n"
          "  nbdcbt [OPTIONS] FILE     (probe FILE and pick the plugin)\n"
          "  nbdcbt [OPTIONS] --export=NAME=FILE [--node-name=NODE] [-D TEXT]\n"
          "         [--export=NAME=FILE ...]...\n"
          "  nbdcbt PLUGIN --help | --dump-plugin PLUGIN | --version\n"
          "\n"
          "options:\n"
          "  -U, --unix=SOCKET       listen on a Unix domain socket\n"
          "  -p, --port=PORT         listen on TCP PORT (default 10809)\n"
          "  -i, --ipaddr=ADDR       listen only on ADDR\n"
          "  -s, --single            serve one client on stdin/stdout\n"
          "  -r, --readonly          read-only export\n"
          "  -f, --foreground        do not fork into the background\n"
          "  -P, --pidfile=FILE      write the pid once the server accepts\n"
          "  -e, --exportname=NAME   export name besides \"\" (default \"\")\n"
          "  -D, --description=TEXT  export description shown to clients\n"
          "      --export=NAME=FILE  serve FILE as export NAME (repeatable)\n"
          "      --node-name=NODE    node name of the export (after --export:\n"
          "                          of that export)\n"
          "  -t, --threads=N         worker threads per connection (16)\n"
          "      --filter=NAME       add a filter (first is outermost)\n"
          "      --control=SOCKET    QMP control socket (bitmap commands)\n"
          "      --max-connections=N at most N clients at once (100)\n"
          "      --tls=off|on|require  TLS (require when credentials are given)\n"
          "      --tls-certificates=DIR  X.509: DIR/server-cert.pem, server-key.pem,\n"
          "                          ca-cert.pem, ca-crl.pem\n"
          "      --tls-psk=FILE      pre-shared keys (psktool's format)\n"
          "      --tls-verify-peer   require client certificates signed by the CA\n"
          "      --handshake-limit=S drop a client still negotiating after S\n"
          "                          seconds (10; 0 = no limit)\n"
          "      --idle-timeout=S    drop a client that sends no request for S\n"
          "                          seconds while none is in flight (0 = never)\n"
          "      --max-in-flight=SIZE request buffers per connection (64M)\n"
          "      --exit-with-parent  exit when the parent process exits\n"
          "      --nbdkit-debug=MODULE.FLAG=N  an nbdkit module's debug flag\n"
          "      --dump-plugin       print facts about PLUGIN and exit\n"
          "  -v, --verbose           debug messages\n"
          "  -V, --version           print the version and exit\n"
          "  -h, --help              this help, or PLUGIN's with a plugin\n"
          "\n"
          "See nbdcbt(1).\n");
}

/* KEY in KEY=VALUE: a letter, then letters, digits, '_', '-', '.'. */
static bool
is_config_key (const char *s, size_t n)
{
  size_t i;

  if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
    return false;
  for (i = 1; i < n; ++i)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
          || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'
          || s[i] == '.'))
      return false;
  return true;
}

static bool
ends_with (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);
  return n >= m && strcmp (s + n - m, suffix) == 0;
}

/* A name with '/' or '.' cannot be a plugin name: it is a file. */
static bool
looks_like_file (const char *arg)
{
  return strchr (arg, '/') != NULL || strchr (arg, '.') != NULL;
}

static bool
module_exists (const char *name)
{
  char *p = module_find (name, true);
  free (p);
  return p != NULL;
}

static char *
absolute_or_exit (const char *path)
{
  char *r = nbdcbt_absolute_path (path);
  if (r == NULL)
    exit (EXIT_FAILURE);
  return r;
}

static int
write_pidfile (const char *pidfile)
{
  char *tmp = NULL;
  FILE *fp;

  if (asprintf (&tmp, "%s.%ld~", pidfile, (long) getpid ()) == -1)
    return -1;
  fp = fopen (tmp, "w");
  if (fp == NULL) {
    nbdcbt_error ("%s: %m", tmp);
    free (tmp);
    return -1;
  }
  fprintf (fp, "%ld\n", (long) getpid ());
  if (fclose (fp) == EOF || rename (tmp, pidfile) == -1) {
    nbdcbt_error ("%s: %m", pidfile);
    unlink (tmp);
    free (tmp);
    return -1;
  }
  free (tmp);
  return 0;
}

static void
daemonize (void)
{
  pid_t pid = fork ();
  int fd;

  if (pid == -1) {
    nbdcbt_error ("fork: %m");
    exit (EXIT_FAILURE);
  }
  if (pid > 0)
    _exit (EXIT_SUCCESS);
  setsid ();
  if (chdir ("/") == -1)
    nbdcbt_debug ("chdir /: %m");
  fd = open ("/dev/null", O_RDWR);
  if (fd >= 0) {
    dup2 (fd, 0);
    dup2 (fd, 1);
    dup2 (fd, 2);
    if (fd > 2)
      close (fd);
  }
  log_to_syslog = true;
}

/* A long option must be written out in full: getopt_long takes any
 * unambiguous prefix, and "--export" used to be read as "--exportname".
 * TEXT is the argument the option came from.
 */
static void
check_not_abbreviated (const char *text, const char *name)
{
  size_t n;

  if (text == NULL || strncmp (text, "--", 2) != 0)
    return;
  text += 2;
  n = strcspn (text, "=");
  if (n != strlen (name) || strncmp (text, name, n) != 0) {
    nbdcbt_error ("option '--%.*s' is an abbreviation of '--%s': write "
                  "options out in full", (int) n, text, name);
    exit (EXIT_FAILURE);
  }
}

/* One --export=NAME=IMAGE and what follows it on the command line. */
struct export_arg {
  char *name;
  const char *image;
  const char *node_name;        /* --node-name after it */
  const char *description;      /* -D after it */
};
DEFINE_VECTOR_TYPE (export_arg_vector, struct export_arg);

static void
parse_export (const char *arg, export_arg_vector *v)
{
  const char *eq = strchr (arg, '=');
  struct export_arg ea = { 0 };
  size_t i;

  if (eq == NULL || eq[1] == '\0') {
    nbdcbt_error ("--export=%s: expected --export=NAME=IMAGE (for the name "
                  "of a single export use -e/--exportname)", arg);
    exit (EXIT_FAILURE);
  }
  if (eq - arg > NBD_MAX_STRING) {
    nbdcbt_error ("--export: export name longer than %d bytes",
                  NBD_MAX_STRING);
    exit (EXIT_FAILURE);
  }
  ea.name = strndup (arg, eq - arg);
  if (ea.name == NULL) {
    perror ("nbdcbt");
    exit (EXIT_FAILURE);
  }
  for (i = 0; i < v->len; ++i)
    if (strcmp (v->ptr[i].name, ea.name) == 0) {
      nbdcbt_error ("--export=%s: export '%s' is given twice", arg, ea.name);
      exit (EXIT_FAILURE);
    }
  ea.image = eq + 1;
  if (export_arg_vector_append (v, ea) == -1) {
    perror ("nbdcbt");
    exit (EXIT_FAILURE);
  }
}

/* The node name of the single export: --node-name, else its export name
 * if that is a valid node name, else "disk".
 */
#define DEFAULT_NODE_NAME "disk"

/* The chain for one image: the plugin (and filters above it) the probe
 * picks, FILE given as the plugin's magic parameter (file=FILE).
 */
static struct nbdcbt_backend *
image_chain (const char *file)
{
  const_string_vector filters = empty_vector;
  const char *plugin;
  struct nbdcbt_backend *top;

  plugin = probe_image (file, &filters);
  if (plugin == NULL)
    return NULL;
  top = backend_chain_new (plugin, filters.ptr, filters.len);
  const_string_vector_reset (&filters);
  if (top == NULL)
    return NULL;
  if (backend_config (top, backend_magic_config_key (top), file) == -1
      || backend_config_complete (top) == -1) {
    backend_chain_free (top);
    return NULL;
  }
  return top;
}

static const_string_vector filters = empty_vector;

/* The KEY strings given to the modules' .config (see the parameters in
 * main).
 */
static char **config_keys;
static size_t nconfig_keys;

static void
free_config_keys (void)
{
  size_t i;

  for (i = 0; i < nconfig_keys; i++)
    free (config_keys[i]);
  free (config_keys);
  config_keys = NULL;
  nconfig_keys = 0;
}

int
main (int argc, char *argv[])
{
  const char *unix_socket = NULL, *port = NULL, *ipaddr = NULL;
  const char *pidfile_arg = NULL, *plugin_arg = NULL;
  const char *export_name = NULL, *description = NULL, *node_name = NULL;
  const char *control_arg = NULL;
  char *unix_path = NULL, *pidfile = NULL, *control_path = NULL;
  bool single = false, help = false, dump = false, exit_with_parent = false;
  bool activated = false, is_file = false;
  export_arg_vector export_args = empty_vector;
  struct export_arg *last_export = NULL;
  struct export **exps = NULL;
  size_t nexps = 0;
  struct nbdcbt_backend *top = NULL;
  struct stat st;
  uint32_t u;
  int c, i, longindex;
  size_t k;

  for (;;) {
    longindex = -1;
    c = getopt_long (argc, argv, short_options, long_options, &longindex);
    if (c == -1)
      break;
    if (longindex >= 0)
      /* The option's own argument: OPTARG may be the next one. */
      check_not_abbreviated (optarg && optind >= 2 && optarg == argv[optind - 1]
                             ? argv[optind - 2] : argv[optind - 1],
                             long_options[longindex].name);
    switch (c) {
    case 'e':
      if (strlen (optarg) > NBD_MAX_STRING) {
        nbdcbt_error ("-e: export name longer than %d bytes",
                      NBD_MAX_STRING);
        exit (EXIT_FAILURE);
      }
      export_name = optarg;
      break;
    case 'D':
      if (strlen (optarg) > NBD_MAX_STRING) {
        nbdcbt_error ("-D: description longer than %d bytes",
                      NBD_MAX_STRING);
        exit (EXIT_FAILURE);
      }
      if (last_export) {
        if (last_export->description) {
          nbdcbt_error ("-D: export '%s' has a description already",
                        last_export->name);
          exit (EXIT_FAILURE);
        }
        last_export->description = optarg;
      }
      else
        description = optarg;
      break;
    case 'f': foreground = true; break;
    case 'h': help = true; break;
    case 'i': ipaddr = optarg; break;
    case 'p': port = optarg; break;
    case 'P': pidfile_arg = optarg; break;
    case 'r': read_only = true; break;
    case 's': single = true; break;
    case 't':
      if (nbdcbt_parse_uint32 ("-t", optarg, &u) == -1)
        exit (EXIT_FAILURE);
      if (u < 1 || u > 1024) {
        nbdcbt_error ("-t: threads must be between 1 and 1024");
        exit (EXIT_FAILURE);
      }
      threads = u;
      break;
    case 'U': unix_socket = optarg; break;
    case 'v': verbose = true; break;
    case 'V':
      printf ("nbdcbt %s\n", PACKAGE_VERSION);
      exit (EXIT_SUCCESS);
    case OPT_FILTER:
      if (const_string_vector_append (&filters, optarg) == -1) {
        perror ("nbdcbt");
        exit (EXIT_FAILURE);
      }
      break;
    case OPT_EXPORT:
      if (description || node_name) {
        nbdcbt_error ("%s before the first --export: give it after the "
                      "--export it belongs to",
                      description ? "-D" : "--node-name");
        exit (EXIT_FAILURE);
      }
      parse_export (optarg, &export_args);
      last_export = &export_args.ptr[export_args.len - 1];
      break;
    case OPT_NODE_NAME:
      if (!is_node_name (optarg)) {
        nbdcbt_error ("--node-name=%s: not a valid node name (a letter, "
                      "then letters, digits, '-', '.' or '_', at most %d "
                      "bytes)", optarg, NODE_NAME_MAX);
        exit (EXIT_FAILURE);
      }
      if (last_export ? last_export->node_name != NULL : node_name != NULL) {
        nbdcbt_error ("--node-name=%s: the export has a node name already "
                      "(one --node-name after each --export)", optarg);
        exit (EXIT_FAILURE);
      }
      if (last_export)
        last_export->node_name = optarg;
      else
        node_name = optarg;
      break;
    case OPT_DUMP_PLUGIN: dump = true; break;
    case OPT_NBDKIT_DEBUG:
      if (nbdkit_debug_flag_add (optarg) == -1)
        exit (EXIT_FAILURE);
      break;
    case OPT_EXIT_WITH_PARENT: exit_with_parent = true; break;
    case OPT_TLS:
      if (tls_parse_mode (optarg) == -1)
        exit (EXIT_FAILURE);
      break;
    case OPT_TLS_CERTIFICATES: tls_certificates_dir = optarg; break;
    case OPT_TLS_PSK: tls_psk_file = optarg; break;
    case OPT_TLS_VERIFY_PEER: tls_verify_peer = true; break;
    case OPT_CONTROL: control_arg = optarg; break;
    case OPT_MAX_CONNECTIONS:
      if (nbdcbt_parse_uint32 ("--max-connections", optarg, &u) == -1)
        exit (EXIT_FAILURE);
      if (u < 1) {
        nbdcbt_error ("--max-connections must be at least 1");
        exit (EXIT_FAILURE);
      }
      max_connections = u;
      break;
    case OPT_HANDSHAKE_LIMIT:
      if (nbdcbt_parse_uint32 ("--handshake-limit", optarg, &u) == -1)
        exit (EXIT_FAILURE);
      if (u > 86400) {
        nbdcbt_error ("--handshake-limit: at most 86400 seconds");
        exit (EXIT_FAILURE);
      }
      handshake_limit = u;
      break;
    case OPT_IDLE_TIMEOUT:
      if (nbdcbt_parse_uint32 ("--idle-timeout", optarg, &u) == -1)
        exit (EXIT_FAILURE);
      if (u > 86400 * 365) {
        nbdcbt_error ("--idle-timeout: at most a year (31536000 seconds)");
        exit (EXIT_FAILURE);
      }
      idle_timeout = u;
      break;
    case OPT_MAX_IN_FLIGHT: {
      int64_t sz = nbdcbt_parse_size (optarg);
      if (sz == -1)
        exit (EXIT_FAILURE);
      if (sz < 1024 * 1024) {
        nbdcbt_error ("--max-in-flight: at least 1M");
        exit (EXIT_FAILURE);
      }
      max_in_flight = sz;
      break;
    }
    default:
      fprintf (stderr, "Try 'nbdcbt --help' for more information.\n");
      exit (EXIT_FAILURE);
    }
    /* -D and --node-name bind to the --export just before them. */
    if (c != OPT_EXPORT && c != 'D' && c != OPT_NODE_NAME)
      last_export = NULL;
  }

  if (export_args.len > 0) {
    if (optind < argc) {
      nbdcbt_error ("--export: '%s': with --export, give no PLUGIN, FILE "
                    "or KEY=VALUE arguments", argv[optind]);
      exit (EXIT_FAILURE);
    }
    if (filters.len > 0 || export_name || help || dump) {
      nbdcbt_error ("--export cannot be used with %s",
                    filters.len > 0 ? "--filter" : export_name ? "-e"
                    : help ? "--help" : "--dump-plugin");
      exit (EXIT_FAILURE);
    }
  }
  else if (optind >= argc) {
    if (help) {
      usage ();
      exit (EXIT_SUCCESS);
    }
    nbdcbt_error ("no plugin or file given; try 'nbdcbt --help'");
    exit (EXIT_FAILURE);
  }
  if ((unix_socket != NULL) + (port != NULL || ipaddr != NULL) + single > 1) {
    nbdcbt_error ("-U, -p/-i and -s cannot be used together");
    exit (EXIT_FAILURE);
  }

  if (export_args.len > 0) {
    /* Several exports: each image gets the shorthand chain. */
    exps = calloc (export_args.len, sizeof *exps);
    if (exps == NULL) {
      perror ("nbdcbt");
      exit (EXIT_FAILURE);
    }
    for (k = 0; k < export_args.len; ++k) {
      struct export_arg *ea = &export_args.ptr[k];

      top = image_chain (ea->image);
      if (top == NULL)
        exit (EXIT_FAILURE);
      exps[nexps] = export_new (ea->name, ea->node_name, ea->description, top,
                                false);
      if (exps[nexps] == NULL)
        exit (EXIT_FAILURE);
      nexps++;
      free (ea->name);
    }
    export_arg_vector_reset (&export_args);
    goto configured;
  }

  /* PLUGIN, path to a plugin .so, or an image FILE. */
  plugin_arg = argv[optind++];
  if (ends_with (plugin_arg, ".so") && strchr (plugin_arg, '/'))
    ;
  else if (nbdkit_module_wanted (plugin_arg, true))
    ;                           /* nbdkit:NAME */
  else if (is_module_name (plugin_arg) && module_exists (plugin_arg))
    ;
  else if ((stat (plugin_arg, &st) == 0
            && (S_ISREG (st.st_mode) || S_ISBLK (st.st_mode)))
           || looks_like_file (plugin_arg)) {
    /* An image FILE (or something that can only be meant as one: the
     * probe hands what it cannot read to the raw plugin, which says what
     * is wrong with it).
     */
    const char *file = plugin_arg;

    plugin_arg = probe_image (file, &filters);
    if (plugin_arg == NULL)
      exit (EXIT_FAILURE);
    is_file = true;
    optind--;                   /* FILE becomes file=FILE below */
    argv[optind] = (char *) file;
  }
  top = backend_chain_new (plugin_arg, filters.ptr, filters.len);
  if (top == NULL)
    exit (EXIT_FAILURE);
  const_string_vector_reset (&filters);

  if (help) {
    struct nbdcbt_backend *p;
    for (p = top; p->next; p = p->next)
      filter_usage (p);
    plugin_usage (p);
    exit (EXIT_SUCCESS);
  }
  if (dump) {
    struct nbdcbt_backend *p = top;
    while (p->next)
      p = p->next;
    printf ("nbdcbt_version=%s\n", PACKAGE_VERSION);
    plugin_dump (p);
    exit (EXIT_SUCCESS);
  }

  /* Parameters.  The keys are copies that must outlive the modules:
   * nbdkit's .config contract keeps KEY and VALUE valid for the module's
   * lifetime (the eval plugin keeps its keys), so they are freed only
   * after the modules are unloaded.
   */
  config_keys = calloc (argc, sizeof *config_keys);
  if (config_keys == NULL) {
    perror ("nbdcbt");
    exit (EXIT_FAILURE);
  }
  for (i = optind; i < argc; ++i) {
    const char *eq = strchr (argv[i], '=');
    const char *key;
    char *keybuf = NULL;
    int r;

    if (is_file && i == optind)
      key = backend_magic_config_key (top), eq = NULL;
    else if (eq && is_config_key (argv[i], eq - argv[i])) {
      keybuf = strndup (argv[i], eq - argv[i]);
      if (keybuf == NULL) {
        perror ("nbdcbt");
        exit (EXIT_FAILURE);
      }
      key = config_keys[nconfig_keys++] = keybuf;
    }
    else {
      key = backend_magic_config_key (top);
      eq = NULL;
      if (key == NULL) {
        nbdcbt_error ("parameter '%s' is not KEY=VALUE, and plugin '%s' "
                      "takes no bare VALUE", argv[i], plugin_arg);
        exit (EXIT_FAILURE);
      }
    }
    r = backend_config (top, key, eq ? eq + 1 : argv[i]);
    if (r == -1)
      exit (EXIT_FAILURE);
  }
  if (backend_config_complete (top) == -1)
    exit (EXIT_FAILURE);
  /* The single export: its -e name, and "" too. */
  if (node_name == NULL)
    node_name = export_name && is_node_name (export_name) ? export_name
      : DEFAULT_NODE_NAME;
  exps = calloc (1, sizeof *exps);
  if (exps == NULL) {
    perror ("nbdcbt");
    exit (EXIT_FAILURE);
  }
  exps[0] = export_new (export_name ? export_name : "", node_name,
                        description, top, false);
  if (exps[0] == NULL)
    exit (EXIT_FAILURE);
  exps[0]->default_alias = true;
  nexps = 1;

 configured:
  if (nbdkit_debug_flags_check () == -1)
    exit (EXIT_FAILURE);
  for (k = 0; k < nexps; ++k)
    if (backend_thread_model (exps[k]->top) == -1)
      exit (EXIT_FAILURE);

  if (tls_init () == -1)
    exit (EXIT_FAILURE);
  if (exit_with_parent && prctl (PR_SET_PDEATHSIG, SIGTERM) == -1) {
    nbdcbt_error ("--exit-with-parent: %m");
    exit (EXIT_FAILURE);
  }
  quit_init ();
  quit_on_signals ();

  /* Where to listen. */
  if (!single) {
    int n = sockets_socket_activation ();
    if (n == -1)
      exit (EXIT_FAILURE);
    if (n > 0) {
      activated = true;
      if (unix_socket || port || ipaddr) {
        nbdcbt_error ("socket activation: -U, -p and -i cannot be used");
        exit (EXIT_FAILURE);
      }
    }
  }
  if (pidfile_arg)
    pidfile = absolute_or_exit (pidfile_arg);
  if (control_arg)
    control_path = absolute_or_exit (control_arg);

  nbdkit_stdio_used = single;
  /* Each export's chain gets ready; a failure stops the server before it
   * listens.
   */
  for (k = 0; k < nexps; ++k)
    if (exports_add (exps[k]) == -1)
      exit (EXIT_FAILURE);
  free (exps);
  exports_start ();
  nbdcbt_debug ("thread model: %d", thread_model);
  unsigned long errors_before_shutdown = 0;

  if (single) {
    if (nbdkit_modules_after_fork () == -1)
      exit (EXIT_FAILURE);
    if (control_path && control_start (control_path) == -1)
      exit (EXIT_FAILURE);
    if (pidfile && write_pidfile (pidfile) == -1)
      exit (EXIT_FAILURE);
    handle_single_connection (0, 1);
    errors_before_shutdown = log_error_count ();
  }
  else {
    if (activated)
      ;
    else if (unix_socket) {
      unix_path = absolute_or_exit (unix_socket);
      if (sockets_unix (unix_path) == -1)
        exit (EXIT_FAILURE);
    }
    else if (sockets_tcp (ipaddr, port ? port : "10809") == -1)
      exit (EXIT_FAILURE);

    if (!foreground && !activated)
      daemonize ();
    if (nbdkit_modules_after_fork () == -1) {
      if (unix_path)
        unlink (unix_path);
      exit (EXIT_FAILURE);
    }
    /* After the fork: threads do not survive it. */
    if (control_path && control_start (control_path) == -1) {
      if (unix_path)
        unlink (unix_path);
      exit (EXIT_FAILURE);
    }
    if (pidfile && write_pidfile (pidfile) == -1) {
      if (unix_path)
        unlink (unix_path);
      exit (EXIT_FAILURE);
    }
    sockets_accept_loop ();
    errors_before_shutdown = log_error_count ();
    /* Stop accepting, then let every connection finish. */
    sockets_close ();
    if (unix_path)
      unlink (unix_path);
    set_quit ();
    connections_shutdown (NULL);
    connections_wait ();
  }
  control_stop ();
  nbdcbt_debug ("shutting down");

  /* Backup sessions still open end as failed (their bitmaps reclaimed,
   * their views removed) before the disks' chains go.
   */
  sessions_end_all ();
  exports_remove_all ();
  modules_unload ();
  free_config_keys ();
  tls_cleanup ();
  if (pidfile)
    unlink (pidfile);
  free (pidfile);
  free (unix_path);
  free (control_path);
  /* Errors while stopping (data or bitmaps that could not be stored) must
   * not look like a clean stop to whoever supervises the server.
   */
  return log_error_count () > errors_before_shutdown ? EXIT_FAILURE
                                                     : EXIT_SUCCESS;
}
