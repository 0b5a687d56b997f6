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

/* nbdcbt-ctl: manage a running nbdcbt through its control socket.
 *
 *   nbdcbt-ctl -s SOCKET bitmap OPERATION... [-g GRANULARITY] [-b NODE]
 *              NODE NAME
 *   nbdcbt-ctl -s SOCKET query [--output=human|json]
 *   nbdcbt-ctl -s SOCKET qmp '{"execute": ...}'
 *
 * bitmap is spelled as qemu-img bitmap, with a node in place of the
 * image; several operations run in the order given as one transaction
 * (all or nothing).  Exit status: 0 done, 1 the server refused (its
 * message is printed), 2 usage error, 3 no server or a broken answer.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_CONNECTION 3

static const char *program = "nbdcbt-ctl";
static const char *socket_path;
static int sock = -1;
static FILE *in;

static void __attribute__ ((__noreturn__, __format__ (__printf__, 2, 3)))
die (int status, const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "%s: ", program);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fputc ('\n', stderr);
  exit (status);
}

static void __attribute__ ((__noreturn__))
usage (int status)
{
  FILE *fp = status == EXIT_SUCCESS ? stdout : stderr;

  fprintf (fp,
           "usage:\n"
           "  %s -s SOCKET bitmap (--add | --remove | --clear | --enable |\n"
           "         --disable | --merge SOURCE)... [-g GRANULARITY]\n"
           "         [--transient] [-b SOURCE_NODE] NODE NAME\n"
           "  %s -s SOCKET query [--output=human|json]\n"
           "  %s -s SOCKET qmp '{\"execute\": COMMAND, \"arguments\": {...}}'\n"
           "\n"
           "Manage the dirty bitmaps of a running nbdcbt (--control=SOCKET).\n"
           "See nbdcbt-ctl(1).\n", program, program, program);
  exit (status);
}

/* getopt_long takes any unambiguous prefix of a long option; refuse
 * them (nbdcbt does too), so that a typo never means another option.
 * Looks at ARGV up to "--", or up to the first argument that is not an
 * option when STOP_AT_ARG (the command name in main).
 */
static void
check_long_options (int argc, char **argv, const struct option *opts,
                    bool stop_at_arg)
{
  int i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    size_t len;
    const struct option *o;
    bool found = false;

    if (strcmp (a, "--") == 0)
      return;
    if (a[0] != '-' && stop_at_arg)
      return;
    if (strncmp (a, "--", 2) != 0)
      continue;
    len = strcspn (a + 2, "=");
    for (o = opts; o->name; o++)
      if (strlen (o->name) == len && strncmp (o->name, a + 2, len) == 0) {
        found = true;
        /* Its separate argument is not an option. */
        if (o->has_arg == required_argument && a[2 + len] != '=')
          i++;
        break;
      }
    if (!found)
      die (EXIT_USAGE, "unknown option '%.*s' (options are not "
           "abbreviated); try '%s --help'", (int) (len + 2), a, program);
  }
}

/* One message from the server (events are skipped).  NULL at EOF. */
static json_object *
read_message (void)
{
  for (;;) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline (&line, &cap, in);
    json_object *obj;

    if (n == -1) {
      free (line);
      return NULL;
    }
    obj = json_tokener_parse (line);
    free (line);
    if (obj == NULL)
      die (EXIT_CONNECTION, "%s: the server sent something that is not "
           "JSON", socket_path);
    if (json_object_object_get_ex (obj, "event", NULL)) {
      json_object_put (obj);
      continue;
    }
    return obj;
  }
}

static void
send_message (json_object *msg)
{
  const char *json = json_object_to_json_string_ext (msg,
                                                    JSON_C_TO_STRING_PLAIN);
  char *buf, *s;
  size_t len;

  /* The message and its newline in one write: the server acts on a
   * message where its JSON ends, and after "quit" it may be gone before
   * a separate newline arrives (that send failed with EPIPE).
   */
  if (asprintf (&buf, "%s\n", json) == -1)
    die (EXIT_CONNECTION, "asprintf: %s", strerror (errno));
  s = buf;
  len = strlen (s);
  while (len > 0) {
    ssize_t r = send (sock, s, len, MSG_NOSIGNAL);

    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      die (EXIT_CONNECTION, "%s: %s", socket_path, strerror (errno));
    s += r;
    len -= r;
  }
  free (buf);
}

/* Send MSG (consumed); the answer: "return"'s value, or NULL with the
 * error's description in *DESC (malloc'd).
 */
static json_object *
execute (json_object *msg, char **desc)
{
  json_object *rsp, *v;

  send_message (msg);
  json_object_put (msg);
  rsp = read_message ();
  if (rsp == NULL)
    die (EXIT_CONNECTION, "%s: the server closed the connection",
         socket_path);
  if (json_object_object_get_ex (rsp, "return", &v)) {
    json_object_get (v);
    json_object_put (rsp);
    return v;
  }
  if (json_object_object_get_ex (rsp, "error", &v)) {
    json_object *d = json_object_object_get (v, "desc");

    *desc = strdup (d ? json_object_get_string (d) : "unknown error");
    json_object_put (rsp);
    return NULL;
  }
  die (EXIT_CONNECTION, "%s: unexpected answer: %s", socket_path,
       json_object_to_json_string (rsp));
}

static json_object *
command (const char *name, json_object *args)
{
  json_object *msg = json_object_new_object ();

  json_object_object_add (msg, "execute", json_object_new_string (name));
  if (args)
    json_object_object_add (msg, "arguments", args);
  return msg;
}

static void
connect_server (void)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  json_object *greeting, *ret;
  char *desc = NULL;

  if (strlen (socket_path) >= sizeof addr.sun_path)
    die (EXIT_USAGE, "%s: socket path too long", socket_path);
  strcpy (addr.sun_path, socket_path);
  sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock == -1)
    die (EXIT_CONNECTION, "socket: %s", strerror (errno));
  if (connect (sock, (struct sockaddr *) &addr, sizeof addr) == -1)
    die (EXIT_CONNECTION, "cannot connect to %s: %s (is nbdcbt running "
         "with --control=%s?)", socket_path, strerror (errno), socket_path);
  in = fdopen (dup (sock), "r");
  if (in == NULL)
    die (EXIT_CONNECTION, "fdopen: %s", strerror (errno));
  greeting = read_message ();
  if (greeting == NULL || !json_object_object_get_ex (greeting, "QMP", NULL))
    die (EXIT_CONNECTION, "%s: not a QMP server (no greeting)", socket_path);
  json_object_put (greeting);
  ret = execute (command ("qmp_capabilities", NULL), &desc);
  if (ret == NULL)
    die (EXIT_CONNECTION, "%s: qmp_capabilities: %s", socket_path, desc);
  json_object_put (ret);
}

/* ---- bitmap ---- */

enum op { OP_ADD, OP_REMOVE, OP_CLEAR, OP_ENABLE, OP_DISABLE, OP_MERGE };
struct operation {
  enum op op;
  const char *source;           /* --merge */
};

static uint64_t
parse_granularity (const char *s)
{
  char *end;
  unsigned long long v;
  uint64_t mult = 1;

  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno || end == s || s[0] == '-')
    die (EXIT_USAGE, "-g %s: not a size (a number with an optional "
         "K, M or G suffix)", s);
  switch (*end) {
  case 'k': case 'K': mult = 1024; end++; break;
  case 'm': case 'M': mult = 1024 * 1024; end++; break;
  case 'g': case 'G': mult = 1024 * 1024 * 1024; end++; break;
  case 'b': case 'B': case '\0': break;
  default:
    die (EXIT_USAGE, "-g %s: unknown suffix '%s'", s, end);
  }
  if (*end == 'b' || *end == 'B')
    end++;
  if (*end != '\0')
    die (EXIT_USAGE, "-g %s: unknown suffix '%s'", s, end);
  if (v > UINT32_MAX / mult)
    die (EXIT_USAGE, "-g %s: too large", s);
  return v * mult;
}

static int
do_bitmap (int argc, char **argv)
{
  enum { OPT_ADD = 256, OPT_REMOVE, OPT_CLEAR, OPT_ENABLE, OPT_DISABLE,
         OPT_MERGE, OPT_TRANSIENT };
  static const struct option opts[] = {
    { "add", no_argument, NULL, OPT_ADD },
    { "remove", no_argument, NULL, OPT_REMOVE },
    { "clear", no_argument, NULL, OPT_CLEAR },
    { "enable", no_argument, NULL, OPT_ENABLE },
    { "disable", no_argument, NULL, OPT_DISABLE },
    { "merge", required_argument, NULL, OPT_MERGE },
    { "granularity", required_argument, NULL, 'g' },
    { "source-node", required_argument, NULL, 'b' },
    { "transient", no_argument, NULL, OPT_TRANSIENT },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct operation ops[64];
  size_t nops = 0, i;
  const char *source_node = NULL, *node, *name;
  uint64_t granularity = 0;
  bool transient = false, has_add = false;
  json_object *actions, *args, *ret;
  char *desc = NULL;
  int c;

  check_long_options (argc, argv, opts, false);
  optind = 0;                   /* reinitialise getopt */
  while ((c = getopt_long (argc, argv, "g:b:h", opts, NULL)) != -1) {
    if (c >= OPT_ADD && c <= OPT_MERGE) {
      if (nops == sizeof ops / sizeof ops[0])
        die (EXIT_USAGE, "bitmap: too many operations");
      ops[nops].op = c - OPT_ADD;
      ops[nops].source = c == OPT_MERGE ? optarg : NULL;
      has_add |= c == OPT_ADD;
      nops++;
      continue;
    }
    switch (c) {
    case 'g': granularity = parse_granularity (optarg); break;
    case 'b': source_node = optarg; break;
    case OPT_TRANSIENT: transient = true; break;
    case 'h': usage (EXIT_SUCCESS);
    default: usage (EXIT_USAGE);
    }
  }
  if (nops == 0)
    die (EXIT_USAGE, "bitmap: give at least one of --add, --remove, "
         "--clear, --enable, --disable, --merge SOURCE");
  if (argc - optind != 2)
    die (EXIT_USAGE, "bitmap: expected NODE and NAME after the options "
         "(got %d argument%s)", argc - optind,
         argc - optind == 1 ? "" : "s");
  if (granularity && !has_add)
    die (EXIT_USAGE, "bitmap: -g is only for --add");
  if (transient && !has_add)
    die (EXIT_USAGE, "bitmap: --transient is only for --add");
  node = argv[optind];
  name = argv[optind + 1];

  actions = json_object_new_array ();
  for (i = 0; i < nops; i++) {
    static const char *const types[] = {
      "block-dirty-bitmap-add", "block-dirty-bitmap-remove",
      "block-dirty-bitmap-clear", "block-dirty-bitmap-enable",
      "block-dirty-bitmap-disable", "block-dirty-bitmap-merge",
    };
    json_object *a = json_object_new_object ();
    json_object *data = json_object_new_object ();

    json_object_object_add (data, "node", json_object_new_string (node));
    if (ops[i].op == OP_MERGE) {
      json_object *list = json_object_new_array ();
      json_object *src;

      if (source_node) {
        src = json_object_new_object ();
        json_object_object_add (src, "node",
                                json_object_new_string (source_node));
        json_object_object_add (src, "name",
                                json_object_new_string (ops[i].source));
      }
      else
        src = json_object_new_string (ops[i].source);
      json_object_array_add (list, src);
      json_object_object_add (data, "target", json_object_new_string (name));
      json_object_object_add (data, "bitmaps", list);
    }
    else
      json_object_object_add (data, "name", json_object_new_string (name));
    if (ops[i].op == OP_ADD) {
      if (granularity)
        json_object_object_add (data, "granularity",
                                json_object_new_uint64 (granularity));
      json_object_object_add (data, "persistent",
                              json_object_new_boolean (!transient));
    }
    json_object_object_add (a, "type",
                            json_object_new_string (types[ops[i].op]));
    json_object_object_add (a, "data", data);
    json_object_array_add (actions, a);
  }
  args = json_object_new_object ();
  json_object_object_add (args, "actions", actions);

  connect_server ();
  ret = execute (command ("transaction", args), &desc);
  if (ret == NULL) {
    fprintf (stderr, "%s: %s: %s\n", program, name, desc);
    free (desc);
    return EXIT_REFUSED;
  }
  json_object_put (ret);
  return EXIT_SUCCESS;
}

/* ---- query ---- */

static const char *
str_member (json_object *o, const char *key, const char *def)
{
  json_object *v;

  if (json_object_object_get_ex (o, key, &v)
      && json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return def;
}

static bool
bool_member (json_object *o, const char *key)
{
  json_object *v;

  return json_object_object_get_ex (o, key, &v) && json_object_get_boolean (v);
}

static void
human_size (uint64_t n, char *buf, size_t len)
{
  static const char units[] = "KMGTPE";
  int u = -1;
  double d = n;

  while (d >= 1024 && u < 5) {
    d /= 1024;
    u++;
  }
  if (u < 0)
    snprintf (buf, len, "%" PRIu64, n);
  else if (d == (uint64_t) d)
    snprintf (buf, len, "%.0f%c", d, units[u]);
  else
    snprintf (buf, len, "%.1f%c", d, units[u]);
}

static int
do_query (int argc, char **argv)
{
  static const struct option opts[] = {
    { "output", required_argument, NULL, 'o' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool json = false;
  json_object *ret;
  char *desc = NULL;
  size_t i, j;
  int c;

  check_long_options (argc, argv, opts, false);
  optind = 0;
  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'o':
      if (strcmp (optarg, "json") == 0)
        json = true;
      else if (strcmp (optarg, "human") == 0)
        json = false;
      else
        die (EXIT_USAGE, "--output=%s: expected human or json", optarg);
      break;
    case 'h': usage (EXIT_SUCCESS);
    default: usage (EXIT_USAGE);
    }
  }
  if (optind != argc)
    die (EXIT_USAGE, "query: unexpected argument '%s'", argv[optind]);

  connect_server ();
  ret = execute (command ("query-named-block-nodes", NULL), &desc);
  if (ret == NULL) {
    fprintf (stderr, "%s: query-named-block-nodes: %s\n", program, desc);
    free (desc);
    return EXIT_REFUSED;
  }
  if (json) {
    printf ("%s\n", json_object_to_json_string_ext (ret,
                                                    JSON_C_TO_STRING_PRETTY
                                                    | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put (ret);
    return EXIT_SUCCESS;
  }

  printf ("%-16s %-24s %11s %11s  %s\n", "NODE", "BITMAP", "GRANULARITY",
          "DIRTY", "STATE");
  for (i = 0; i < json_object_array_length (ret); i++) {
    json_object *node = json_object_array_get_idx (ret, i);
    const char *node_name = str_member (node, "node-name", "?");
    json_object *bitmaps;

    if (!json_object_object_get_ex (node, "dirty-bitmaps", &bitmaps)
        || json_object_array_length (bitmaps) == 0) {
      printf ("%-16s %-24s %11s %11s  %s\n", node_name, "-", "-", "-",
              "(no bitmaps)");
      continue;
    }
    for (j = 0; j < json_object_array_length (bitmaps); j++) {
      json_object *b = json_object_array_get_idx (bitmaps, j);
      json_object *v;
      char gran[32] = "?", count[32] = "?", state[128];

      if (json_object_object_get_ex (b, "granularity", &v))
        human_size (json_object_get_uint64 (v), gran, sizeof gran);
      if (json_object_object_get_ex (b, "count", &v))
        human_size (json_object_get_uint64 (v), count, sizeof count);
      snprintf (state, sizeof state, "%s%s%s%s",
                bool_member (b, "recording") ? "recording" : "disabled",
                bool_member (b, "persistent") ? ", persistent"
                                              : ", transient",
                bool_member (b, "busy") ? ", busy" : "",
                bool_member (b, "inconsistent") ? ", INCONSISTENT" : "");
      printf ("%-16s %-24s %11s %11s  %s\n", node_name,
              str_member (b, "name", "?"), gran, count, state);
    }
  }
  json_object_put (ret);
  return EXIT_SUCCESS;
}

/* ---- qmp ---- */

static int
do_qmp (int argc, char **argv)
{
  json_object *msg, *rsp;
  enum json_tokener_error jerr;
  json_tokener *tok;
  const char *rest;

  if (argc != 2)
    die (EXIT_USAGE, "qmp: expected one JSON object, e.g. "
         "'{\"execute\": \"query-block\"}'");
  /* One value and nothing after it: a second message would be sent
   * unseen, and its answer never read.
   */
  tok = json_tokener_new ();
  if (tok == NULL)
    die (EXIT_USAGE, "qmp: %s", strerror (errno));
  msg = json_tokener_parse_ex (tok, argv[1], strlen (argv[1]) + 1);
  jerr = json_tokener_get_error (tok);
  rest = argv[1] + json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (jerr != json_tokener_success)
    die (EXIT_USAGE, "qmp: not JSON: %s", json_tokener_error_desc (jerr));
  rest += strspn (rest, " \t\r\n");
  if (*rest != '\0')
    die (EXIT_USAGE, "qmp: expected one JSON object; after it: '%.20s'",
         rest);
  if (msg == NULL || !json_object_is_type (msg, json_type_object)
      || !json_object_object_get_ex (msg, "execute", NULL))
    die (EXIT_USAGE, "qmp: expected an object with \"execute\"");

  connect_server ();
  send_message (msg);
  json_object_put (msg);
  rsp = read_message ();
  if (rsp == NULL)
    die (EXIT_CONNECTION, "%s: the server closed the connection",
         socket_path);
  printf ("%s\n", json_object_to_json_string_ext (rsp,
                                                  JSON_C_TO_STRING_PRETTY
                                                  | JSON_C_TO_STRING_NOSLASHESCAPE));
  if (json_object_object_get_ex (rsp, "error", NULL)) {
    json_object_put (rsp);
    return EXIT_REFUSED;
  }
  json_object_put (rsp);
  return EXIT_SUCCESS;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "socket", required_argument, NULL, 's' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  const char *cmd;
  int c, r;

  check_long_options (argc, argv, opts, true);
  while ((c = getopt_long (argc, argv, "+s:hV", opts, NULL)) != -1) {
    switch (c) {
    case 's': socket_path = optarg; break;
    case 'h': usage (EXIT_SUCCESS);
    case 'V':
      printf ("nbdcbt-ctl %s\n", PACKAGE_VERSION);
      exit (EXIT_SUCCESS);
    default: usage (EXIT_USAGE);
    }
  }
  if (optind >= argc)
    die (EXIT_USAGE, "no command given (bitmap, query or qmp); try "
         "'%s --help'", program);
  if (socket_path == NULL)
    die (EXIT_USAGE, "-s SOCKET is required (the path given to nbdcbt "
         "--control)");
  cmd = argv[optind];
  argc -= optind;
  argv += optind;
  if (strcmp (cmd, "bitmap") == 0)
    r = do_bitmap (argc, argv);
  else if (strcmp (cmd, "query") == 0)
    r = do_query (argc, argv);
  else if (strcmp (cmd, "qmp") == 0)
    r = do_qmp (argc, argv);
  else
    die (EXIT_USAGE, "unknown command '%s' (expected bitmap, query or qmp)",
         cmd);
  if (in)
    fclose (in);
  if (sock >= 0)
    close (sock);
  return r;
}
