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

/* nbdcbt-backup --control: backup sessions on a running server.
 *
 * A small QMP client: it connects to the server's control socket,
 * negotiates capabilities, begins the sessions (one backup-begin, or a
 * transaction of several with completion-mode "grouped"), and ends each
 * with backup-end once its backup is published (success) or has failed.
 * The sessions are begun with end-on-disconnect, so if this program dies
 * (a signal, kill -9, a crash) the server ends them as failed when the
 * control connection closes: the bitmap is reclaimed and the next
 * incremental still covers every change.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backup.h"
#include "cleanup.h"

struct control {
  int fd;
  const char *path;
  char *buf;                    /* received, not yet parsed */
  size_t len, cap;
};

/* One line (a QMP message) into a JSON object; events are skipped.
 * NULL after printing an error.
 */
static json_object *
read_message (struct control *c, bool skip_events)
{
  for (;;) {
    char *nl = c->len ? memchr (c->buf, '\n', c->len) : NULL;

    if (nl) {
      json_object *o;
      size_t n = nl - c->buf + 1;

      *nl = '\0';
      o = json_tokener_parse (c->buf);
      memmove (c->buf, c->buf + n, c->len - n);
      c->len -= n;
      if (o == NULL || !json_object_is_type (o, json_type_object)) {
        json_object_put (o);
        error ("%s: the server sent something that is not QMP", c->path);
        return NULL;
      }
      if (skip_events && json_object_object_get_ex (o, "event", NULL)) {
        json_object_put (o);
        continue;
      }
      return o;
    }
    if (c->len + 4096 > c->cap) {
      char *nb = realloc (c->buf, c->cap + 65536);
      if (nb == NULL) {
        error_errno ("realloc");
        return NULL;
      }
      c->buf = nb;
      c->cap += 65536;
    }
    {
      ssize_t r = read (c->fd, c->buf + c->len, c->cap - c->len - 1);
      if (r == -1 && errno == EINTR)
        continue;
      if (r <= 0) {
        if (r == 0)
          error ("%s: the server closed the control connection", c->path);
        else
          error_errno ("%s: read", c->path);
        return NULL;
      }
      c->len += r;
    }
  }
}

/* Execute CMD with ARGS (consumed, may be NULL).  Returns the "return"
 * value (a new reference), or NULL after printing the server's error.
 */
static json_object *
execute (struct control *c, const char *cmd, json_object *args)
{
  json_object *req = json_object_new_object (), *reply, *ret, *err;
  const char *text;
  size_t len;

  json_object_object_add (req, "execute", json_object_new_string (cmd));
  if (args)
    json_object_object_add (req, "arguments", args);
  text = json_object_to_json_string_ext (req, JSON_C_TO_STRING_PLAIN);
  len = strlen (text);
  if (write (c->fd, text, len) != (ssize_t) len
      || write (c->fd, "\n", 1) != 1) {
    error_errno ("%s: write", c->path);
    json_object_put (req);
    return NULL;
  }
  json_object_put (req);

  reply = read_message (c, true);
  if (reply == NULL)
    return NULL;
  if (json_object_object_get_ex (reply, "return", &ret)) {
    json_object_get (ret);
    json_object_put (reply);
    return ret;
  }
  if (json_object_object_get_ex (reply, "error", &err)) {
    json_object *desc;
    const char *d = "unknown error";

    if (json_object_object_get_ex (err, "desc", &desc))
      d = json_object_get_string (desc);
    error ("%s: %s: %s", c->path, cmd, d);
  }
  else
    error ("%s: %s: no answer", c->path, cmd);
  json_object_put (reply);
  return NULL;
}

static struct control *
control_open (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct control *c;
  json_object *o;

  if (strlen (path) >= sizeof addr.sun_path) {
    error ("--control: %s: the path is too long for a Unix socket", path);
    return NULL;
  }
  c = calloc (1, sizeof *c);
  if (c == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  c->path = path;
  strcpy (addr.sun_path, path);
  c->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd == -1 || connect (c->fd, (struct sockaddr *) &addr,
                              sizeof addr) == -1) {
    error_errno ("--control: %s", path);
    goto err;
  }
  o = read_message (c, true);   /* the greeting */
  if (o == NULL)
    goto err;
  if (!json_object_object_get_ex (o, "QMP", NULL)) {
    json_object_put (o);
    error ("--control: %s: no QMP greeting", path);
    goto err;
  }
  json_object_put (o);
  o = execute (c, "qmp_capabilities", NULL);
  if (o == NULL)
    goto err;
  json_object_put (o);
  return c;

 err:
  if (c->fd >= 0)
    close (c->fd);
  free (c->buf);
  free (c);
  return NULL;
}

static void
control_close (struct control *c)
{
  if (c) {
    close (c->fd);
    free (c->buf);
    free (c);
  }
}

static char *
get_string (json_object *o, const char *key)
{
  json_object *v;

  if (!json_object_object_get_ex (o, key, &v)
      || !json_object_is_type (v, json_type_string))
    return NULL;
  return strdup (json_object_get_string (v));
}

static json_object *
begin_args (const char *node, const char *bitmap, bool full)
{
  json_object *a = json_object_new_object ();

  json_object_object_add (a, "node", json_object_new_string (node));
  if (bitmap)
    json_object_object_add (a, "bitmap", json_object_new_string (bitmap));
  /* A full backup reads every granule: the view must keep them all. */
  json_object_object_add (a, "sync",
                          json_object_new_string (full || !bitmap ? "full"
                                                  : "bitmap"));
  json_object_object_add (a, "end-on-disconnect",
                          json_object_new_boolean (true));
  return a;
}

struct sessions *
control_sessions_begin (const char *path, const char *const *nodes, size_t n,
                        const char *bitmap, bool full)
{
  struct sessions *ss = calloc (1, sizeof *ss);
  json_object *ret = NULL;
  size_t i;

  if (ss == NULL) {
    error_errno ("calloc");
    return NULL;
  }
  ss->n = n;
  ss->ids = calloc (n, sizeof *ss->ids);
  ss->exports = calloc (n, sizeof *ss->exports);
  if (ss->ids == NULL || ss->exports == NULL) {
    error_errno ("calloc");
    goto err;
  }
  ss->c = control_open (path);
  if (ss->c == NULL)
    goto err;

  if (n == 1) {
    ret = execute (ss->c, "backup-begin", begin_args (nodes[0], bitmap, full));
    if (ret == NULL)
      goto err;
    ss->ids[0] = get_string (ret, "id");
    ss->exports[0] = get_string (ret, "export");
  }
  else {
    /* Several disks: one instant, completed together. */
    json_object *args = json_object_new_object ();
    json_object *actions = json_object_new_array ();
    json_object *props = json_object_new_object ();
    json_object *list;

    for (i = 0; i < n; i++) {
      json_object *a = json_object_new_object ();
      json_object *data = begin_args (nodes[i], bitmap, full);
      char id[64];

      /* Our own ids, to find each session's export afterwards. */
      snprintf (id, sizeof id, "nbdcbt-backup-%ld-%zu", (long) getpid (), i);
      json_object_object_add (data, "id", json_object_new_string (id));
      json_object_object_add (a, "type",
                              json_object_new_string ("backup-begin"));
      json_object_object_add (a, "data", data);
      json_object_array_add (actions, a);
      ss->ids[i] = strdup (id);
    }
    json_object_object_add (props, "completion-mode",
                            json_object_new_string ("grouped"));
    json_object_object_add (args, "actions", actions);
    json_object_object_add (args, "properties", props);
    ret = execute (ss->c, "transaction", args);
    if (ret == NULL)
      goto err;
    json_object_put (ret);
    ret = execute (ss->c, "query-backups", NULL);
    if (ret == NULL)
      goto err;
    list = ret;
    for (i = 0; i < n; i++) {
      size_t k;

      for (k = 0; k < json_object_array_length (list); k++) {
        json_object *o = json_object_array_get_idx (list, k);
        char *id = get_string (o, "id");

        if (id && ss->ids[i] && strcmp (id, ss->ids[i]) == 0)
          ss->exports[i] = get_string (o, "export");
        free (id);
      }
    }
  }
  for (i = 0; i < n; i++)
    if (ss->ids[i] == NULL || ss->exports[i] == NULL) {
      error ("--control: %s: the server's answer names no session or "
             "export", path);
      goto err;
    }
  json_object_put (ret);
  return ss;

 err:
  json_object_put (ret);
  control_sessions_end (ss, false);
  return NULL;
}

int
control_session_end (struct sessions *ss, size_t i, bool success)
{
  json_object *a, *ret;

  if (ss->ids[i] == NULL || ss->ended_mask & (UINT64_C (1) << i))
    return 0;
  ss->ended_mask |= UINT64_C (1) << i;
  a = json_object_new_object ();
  json_object_object_add (a, "id", json_object_new_string (ss->ids[i]));
  json_object_object_add (a, "success", json_object_new_boolean (success));
  ret = execute (ss->c, "backup-end", a);
  if (ret == NULL)
    return -1;
  json_object_put (ret);
  return 0;
}

void
control_sessions_end (struct sessions *ss, bool success)
{
  size_t i;

  if (ss == NULL)
    return;
  for (i = 0; ss->c && i < ss->n; i++)
    control_session_end (ss, i, success);
  control_close (ss->c);
  for (i = 0; i < ss->n; i++) {
    free (ss->ids[i]);
    free (ss->exports[i]);
  }
  free (ss->ids);
  free (ss->exports);
  free (ss);
}

/* URI with its export name replaced by EXPORT (percent-encoded). */
char *
uri_with_export (const char *uri, const char *export)
{
  const char *p = strstr (uri, "://"), *path, *query;
  char *out = NULL;
  size_t cap, len = 0;
  const char *e;

  if (p == NULL) {
    error ("%s: not an NBD URI", uri);
    return NULL;
  }
  path = strchr (p + 3, '/');
  query = strchr (p + 3, '?');
  if (path == NULL || (query && query < path))
    path = query ? query : uri + strlen (uri);
  cap = (path - uri) + 3 * strlen (export) + 2 + (query ? strlen (query) : 0);
  out = malloc (cap + 1);
  if (out == NULL) {
    error_errno ("malloc");
    return NULL;
  }
  memcpy (out, uri, path - uri);
  len = path - uri;
  out[len++] = '/';
  for (e = export; *e; e++) {
    unsigned char ch = *e;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
        || (ch >= '0' && ch <= '9') || strchr ("-._~", ch))
      out[len++] = ch;
    else
      len += sprintf (out + len, "%%%02X", ch);
  }
  if (query) {
    strcpy (out + len, query);
    len += strlen (query);
  }
  out[len] = '\0';
  return out;
}
