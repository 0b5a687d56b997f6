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

/* nbdcbt server: one control client's QMP session.
 *
 * The wire protocol as QEMU speaks it (monitor/qmp.c, qapi/qmp-dispatch.c):
 * a greeting, then JSON objects in either direction.  A message ends
 * where its JSON value ends (not at a newline), so one message may span
 * several reads and one read may carry several messages.  Before
 * qmp_capabilities only qmp_capabilities is accepted; every error has
 * QEMU's class and wording, and a request's "id" is echoed in its answer.
 *
 * Nothing here touches a socket: bytes come in through qmp_session_feed
 * and answers leave through the session's output function, so the fuzz
 * harness drives exactly this code.
 */
#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "json-text.h"
#include "nbdcbt-common.h"

struct qmp_session {
  qmp_output_fn *output;
  void *opaque;
  json_tokener *tok;
  struct json_text_scan scan;   /* the text of the message being read */
  size_t pending;          /* bytes of the message being parsed */
  bool negotiated;
  bool skip_line;          /* after a second parse error: drop up to a
                            * newline */
  bool resync;             /* after a parse error: drop up to a '{' */
  unsigned errors;         /* parse errors since a message or newline */
  bool held_backslash;     /* the last read ended inside a string on a
                            * backslash, not yet given to json-c */
};

/* Set by quit; acted on once its answer is sent. */
static bool quit_requested;

void
qmp_error_set (struct qmp_error *err, const char *klass, const char *fs, ...)
{
  va_list args;
  char *msg;

  va_start (args, fs);
  if (vasprintf (&msg, fs, args) == -1)
    msg = NULL;
  va_end (args);
  qmp_error_take (err, klass, msg);
}

void
qmp_error_take (struct qmp_error *err, const char *klass, char *desc)
{
  free (err->desc);
  err->klass = klass;
  err->desc = desc;
}

void
qmp_error_clear (struct qmp_error *err)
{
  free (err->desc);
  err->desc = NULL;
  err->klass = NULL;
}

char *
control_json_text (json_object *obj, size_t *len)
{
  const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
  size_t n;
  const char *str = json_object_to_json_string_length (obj, flags, &n);

  return str ? json_text_utf8 (str, n, len) : NULL;
}

static int
send_object (struct qmp_session *s, json_object *obj)
{
  char *str;
  size_t len;
  int r;

  if (obj == NULL)
    return -1;                  /* out of memory: drop the client */
  str = control_json_text (obj, &len);
  r = str ? s->output (s->opaque, str, len) : -1;
  free (str);
  json_object_put (obj);
  return r;
}

/* {"error": {"class", "desc"}} with ID (borrowed) if not NULL. */
static int
send_error (struct qmp_session *s, json_object *id, const char *klass,
            const char *desc)
{
  json_object *rsp = json_object_new_object ();
  json_object *e = json_object_new_object ();

  if (rsp == NULL || e == NULL) {
    json_object_put (rsp);
    json_object_put (e);
    return -1;
  }
  json_object_object_add (e, "class", json_object_new_string (klass));
  json_object_object_add (e, "desc",
                          json_object_new_string (desc ? desc
                                                  : "out of memory"));
  json_object_object_add (rsp, "error", e);
  if (id)
    json_object_object_add (rsp, "id", json_object_get (id));
  return send_object (s, rsp);
}

static int
send_return (struct qmp_session *s, json_object *id, json_object *ret)
{
  json_object *rsp = json_object_new_object ();

  if (rsp == NULL) {
    json_object_put (ret);
    return -1;
  }
  json_object_object_add (rsp, "return", ret);
  if (id)
    json_object_object_add (rsp, "id", json_object_get (id));
  return send_object (s, rsp);
}

/* CommandNotFound for the command named by the string NAME, which may
 * hold NUL characters (the message keeps them, as QEMU's does).
 */
static int
send_not_found (struct qmp_session *s, json_object *id, json_object *name)
{
  static const char pre[] = "The command ", post[] = " has not been found";
  size_t n = json_object_get_string_len (name);
  json_object *rsp = json_object_new_object ();
  json_object *e = json_object_new_object ();
  char *desc = malloc (sizeof pre + n + sizeof post);

  if (rsp == NULL || e == NULL || desc == NULL) {
    json_object_put (rsp);
    json_object_put (e);
    free (desc);
    return -1;
  }
  memcpy (desc, pre, sizeof pre - 1);
  memcpy (desc + sizeof pre - 1, json_object_get_string (name), n);
  memcpy (desc + sizeof pre - 1 + n, post, sizeof post);
  json_object_object_add (e, "class",
                          json_object_new_string (QMP_COMMAND_NOT_FOUND));
  json_object_object_add (e, "desc", json_object_new_string_len
                          (desc, sizeof pre - 1 + n + sizeof post - 1));
  free (desc);
  json_object_object_add (rsp, "error", e);
  if (id)
    json_object_object_add (rsp, "id", json_object_get (id));
  return send_object (s, rsp);
}

static __thread struct qmp_session *current_client;

const void *
control_current_client (void)
{
  return current_client;
}

struct qmp_session *
qmp_session_new (qmp_output_fn *output, void *opaque)
{
  struct qmp_session *s = calloc (1, sizeof *s);

  if (s == NULL)
    return NULL;
  s->output = output;
  s->opaque = opaque;
  s->tok = json_tokener_new_ex (CONTROL_MAX_DEPTH);
  if (s->tok == NULL) {
    free (s);
    return NULL;
  }
  /* Not JSON_TOKENER_STRICT: it refuses anything after a complete value,
   * so two messages in one read would fail.  The lenient mode accepts a
   * few extensions (single-quoted strings, which QEMU's parser accepts
   * too).  Strings must be UTF-8 as in QEMU: a bitmap name that is not
   * would make every later query's answer invalid JSON.
   */
#ifdef JSON_TOKENER_VALIDATE_UTF8
  json_tokener_set_flags (s->tok, JSON_TOKENER_VALIDATE_UTF8);
#endif
  json_text_scan_init (&s->scan);
  return s;
}

void
qmp_session_free (struct qmp_session *s)
{
  if (s) {
    json_tokener_free (s->tok);
    free (s);
  }
}

bool
qmp_session_negotiated (struct qmp_session *s)
{
  return __atomic_load_n (&s->negotiated, __ATOMIC_SEQ_CST);
}

/* The version QEMU's clients read: nbdcbt's own, in QEMU's shape. */
json_object *
control_version_object (void)
{
  unsigned major = 0, minor = 0, micro = 0;
  json_object *v = json_object_new_object ();
  json_object *q = json_object_new_object ();

  if (v == NULL || q == NULL) {
    json_object_put (v);
    json_object_put (q);
    return NULL;
  }
  sscanf (PACKAGE_VERSION, "%u.%u.%u", &major, &minor, &micro);
  json_object_object_add (q, "micro", json_object_new_int (micro));
  json_object_object_add (q, "minor", json_object_new_int (minor));
  json_object_object_add (q, "major", json_object_new_int (major));
  json_object_object_add (v, "qemu", q);
  json_object_object_add (v, "package",
                          json_object_new_string ("nbdcbt " PACKAGE_VERSION));
  return v;
}

int
qmp_session_greet (struct qmp_session *s)
{
  json_object *g = json_object_new_object ();
  json_object *qmp = json_object_new_object ();
  json_object *v = control_version_object ();

  if (g == NULL || qmp == NULL || v == NULL) {
    json_object_put (g);
    json_object_put (qmp);
    json_object_put (v);
    return -1;
  }
  json_object_object_add (qmp, "version", v);
  json_object_object_add (qmp, "capabilities", json_object_new_array ());
  json_object_object_add (g, "QMP", qmp);
  return send_object (s, g);
}

/* qmp_capabilities is handled here: it changes the session. */
static json_object *
capabilities (struct qmp_session *s, json_object *args,
              struct qmp_error *err)
{
  static const struct control_arg spec[] = {
    { "enable", ARG_ARRAY, true },
    CONTROL_ARGS_END
  };
  json_object *enable;
  size_t i;

  if (control_args_check (args, spec, "", err) == -1)
    return NULL;
  enable = json_object_object_get (args, "enable");
  for (i = 0; enable && i < json_object_array_length (enable); i++) {
    json_object *c = json_object_array_get_idx (enable, i);

    if (!json_object_is_type (c, json_type_string)) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Invalid parameter type for "
                     "'enable[%zu]', expected: string", i);
      return NULL;
    }
    if (strcmp (json_object_get_string (c), "oob") != 0) {
      qmp_error_set (err, QMP_GENERIC_ERROR, "Parameter 'enable[%zu]' does "
                     "not accept value '%s'", i, json_object_get_string (c));
      return NULL;
    }
    qmp_error_set (err, QMP_GENERIC_ERROR, "Capability 'oob' not available");
    return NULL;
  }
  __atomic_store_n (&s->negotiated, true, __ATOMIC_SEQ_CST);
  return json_object_new_object ();
}

void
control_quit_after_reply (void)
{
  __atomic_store_n (&quit_requested, true, __ATOMIC_SEQ_CST);
}

/* json-c reads NaN and Infinity as numbers (even in strict mode) and
 * writes them back as such, which is not JSON: an "id" holding one would
 * be echoed in an answer no client can parse.  QEMU refuses them.
 */
static bool
has_nonfinite (json_object *v)
{
  size_t i;

  switch (json_object_get_type (v)) {
  case json_type_double:
    return !isfinite (json_object_get_double (v));
  case json_type_object: {
    json_object_object_foreach (v, key, val) {
      (void) key;
      if (has_nonfinite (val))
        return true;
    }
    return false;
  }
  case json_type_array:
    for (i = 0; i < json_object_array_length (v); i++)
      if (has_nonfinite (json_object_array_get_idx (v, i)))
        return true;
    return false;
  default:
    return false;
  }
}

/* One complete JSON value from the client.  -1: close the connection. */
static int
handle_message (struct qmp_session *s, json_object *req)
{
  const struct control_command *cmd;
  struct qmp_error err = { 0 };
  json_object *id = NULL, *args = NULL, *ret;
  const char *name = NULL;
  bool nul_in_name = false;
  int r;

  if (has_nonfinite (req))
    return send_error (s, NULL, QMP_GENERIC_ERROR,
                       "JSON parse error, NaN and Infinity are not JSON "
                       "numbers");
  if (!json_object_is_type (req, json_type_object))
    return send_error (s, NULL, QMP_GENERIC_ERROR,
                       "QMP input must be a JSON object");

  /* The envelope, member by member as QEMU checks it. */
  id = json_object_object_get (req, "id");
  json_object_object_foreach (req, key, val) {
    if (strcmp (key, "execute") == 0) {
      if (!json_object_is_type (val, json_type_string))
        return send_error (s, id, QMP_GENERIC_ERROR,
                           "QMP input member 'execute' must be a string");
      name = json_object_get_string (val);
      /* "query-version\u0000x" is not query-version. */
      nul_in_name = strlen (name) != (size_t) json_object_get_string_len (val);
    }
    else if (strcmp (key, "arguments") == 0) {
      if (!json_object_is_type (val, json_type_object))
        return send_error (s, id, QMP_GENERIC_ERROR,
                           "QMP input member 'arguments' must be an object");
      args = val;
    }
    else if (strcmp (key, "id") != 0) {
      char *msg = NULL;

      if (asprintf (&msg, "QMP input member '%s' is unexpected", key) == -1)
        msg = NULL;
      r = send_error (s, id, QMP_GENERIC_ERROR, msg);
      free (msg);
      return r;
    }
  }
  if (name == NULL)
    return send_error (s, id, QMP_GENERIC_ERROR,
                       "QMP input lacks member 'execute'");

  cmd = nul_in_name ? NULL : control_command_find (name);
  if (!qmp_session_negotiated (s)) {
    if (cmd == NULL || !cmd->before_negotiation)
      return send_error (s, id, QMP_COMMAND_NOT_FOUND,
                         "Expecting capabilities negotiation with "
                         "'qmp_capabilities'");
  }
  else if (cmd && cmd->before_negotiation)
    return send_error (s, id, QMP_COMMAND_NOT_FOUND,
                       "Capabilities negotiation is already complete, "
                       "command ignored");
  if (cmd == NULL)
    return send_not_found (s, id, json_object_object_get (req, "execute"));

  /* Commands see an object, empty when "arguments" was not given. */
  if (args == NULL) {
    args = json_object_new_object ();
    if (args == NULL)
      return -1;
  }
  else
    json_object_get (args);

  control_commands_lock ();
  current_client = s;
  if (cmd->before_negotiation)
    ret = capabilities (s, args, &err);
  else
    ret = cmd->fn (args, &err);
  current_client = NULL;
  control_commands_unlock ();
  json_object_put (args);

  if (ret == NULL)
    r = send_error (s, id, err.klass ? err.klass : QMP_GENERIC_ERROR,
                    err.desc);
  else
    r = send_return (s, id, ret);
  qmp_error_clear (&err);

  if (__atomic_exchange_n (&quit_requested, false, __ATOMIC_SEQ_CST))
    control_request_quit ();
  return r;
}

/* A control character other than whitespace: a lexical error wherever
 * it comes, as in QEMU's lexer (json-c takes it inside a string).  The
 * QMP specification tells clients to send one to bring the server's
 * parser back to a known state after input they abandoned.
 */
static bool
is_control (char c)
{
  return (unsigned char) c < 0x20 && c != '\t' && c != '\n' && c != '\r';
}

/* Answer a parse error, then resynchronise: as QEMU, at the next '{'
 * (so "garbage{...}" and "{...}}{...}" still run their command), or at a
 * control character or a newline.  A second error with no message and
 * no newline since the first drops the rest of the line instead, so that
 * hostile input ("{{{{...") gets two errors, not one per byte.
 */
static int
parse_error (struct qmp_session *s, const char *desc)
{
  char msg[256];

  json_tokener_reset (s->tok);
  json_text_scan_init (&s->scan);
  s->pending = 0;
  s->held_backslash = false;
  snprintf (msg, sizeof msg, "JSON parse error, %s", desc);
  if (send_error (s, NULL, QMP_GENERIC_ERROR, msg) == -1)
    return -1;
  if (++s->errors >= 2)
    s->skip_line = true;
  else
    s->resync = true;
  return 0;
}

/* LEN more bytes of the message being read: -1 (answered) once it is
 * longer than a message may be, and the connection must close.
 */
static int
grow_pending (struct qmp_session *s, size_t len)
{
  char msg[128];

  s->pending += len;
  if (s->pending <= CONTROL_MAX_MESSAGE)
    return 0;
  snprintf (msg, sizeof msg, "JSON message too long (more than %d "
            "bytes): closing the connection", CONTROL_MAX_MESSAGE);
  send_error (s, NULL, QMP_GENERIC_ERROR, msg);
  return -1;
}

/* Inside a string, and not right after its backslash: where an escape
 * may start.  The scanner has seen every byte before BUF.
 */
static bool
at_string_char (const struct qmp_session *s)
{
  return s->scan.quote != 0 && !s->scan.escape;
}

/* Give json-c TEXT, standing for the LEN_IN bytes of input IN (the
 * scanner and the message's length take those).  Only for pieces inside
 * a string, which cannot complete a value.  1 = taken; 0 = json-c
 * refused it and the error is answered; -1 = the connection must close.
 */
static int
feed_inside_string (struct qmp_session *s, const char *text,
                    const char *in, size_t len_in)
{
  json_object *obj = json_tokener_parse_ex (s->tok, text, strlen (text));
  enum json_tokener_error jerr = json_tokener_get_error (s->tok);

  json_object_put (obj);
  if (jerr != json_tokener_continue)
    return parse_error (s, json_tokener_error_desc (jerr));
  json_text_scan_feed (&s->scan, in, len_in);
  return grow_pending (s, len_in) == -1 ? -1 : 1;
}

int
qmp_session_feed (struct qmp_session *s, const char *buf, size_t len)
{
  while (len > 0) {
    json_object *obj;
    enum json_tokener_error jerr;
    const char *bad;
    size_t used, n;

    if (s->skip_line) {
      const char *nl = memchr (buf, '\n', len);

      if (nl == NULL)
        return 0;
      len -= nl + 1 - buf;
      buf = nl + 1;
      s->skip_line = false;
      s->errors = 0;
      continue;
    }
    if (s->resync) {
      while (len > 0 && *buf != '{' && *buf != '\n' && !is_control (*buf)) {
        buf++;
        len--;
      }
      if (len == 0)
        return 0;
      s->resync = false;
    }

    /* Whitespace between messages is not part of any message. */
    if (s->pending == 0) {
      while (len > 0 && (*buf == ' ' || *buf == '\n' || *buf == '\r'
                         || *buf == '\t')) {
        if (*buf == '\n')
          s->errors = 0;
        buf++;
        len--;
      }
      if (len == 0)
        return 0;
    }

    if (is_control (*buf)) {
      buf++;
      len--;
      if (parse_error (s, "control character") == -1)
        return -1;
      s->resync = false;        /* the next byte starts afresh */
      continue;
    }
    /* QEMU's parser takes the escape \' in strings, json-c's does not:
     * json-c is given \u0027 for it.  A backslash that ends the read is
     * held until the next byte comes.
     */
    if (s->held_backslash) {
      bool quote = *buf == '\'';
      int r;

      s->held_backslash = false;
      /* The scanner has the backslash already: it gets the quote, if it
       * is one; any other byte goes on below, as the escape's second.
       */
      r = feed_inside_string (s, quote ? "\\u0027" : "\\", buf, quote);
      if (r == -1)
        return -1;
      if (r == 0)
        continue;
      if (quote) {
        buf++;
        len--;
        continue;
      }
    }
    n = 0;
    if (*buf == '\\' && at_string_char (s)) {
      if (len == 1) {
        s->held_backslash = true;
        json_text_scan_feed (&s->scan, buf, 1);
        return grow_pending (s, 1);
      }
      if (buf[1] == '\'') {
        int r = feed_inside_string (s, "\\u0027", buf, 2);

        if (r == -1)
          return -1;
        if (r == 1) {
          buf += 2;
          len -= 2;
        }
        continue;
      }
      n = is_control (buf[1]) ? 1 : 2; /* any other escape, as it is */
    }
    /* Otherwise json-c sees the bytes up to the next control character
     * or backslash (which may start \').
     */
    if (n == 0)
      for (n = 1; n < len && !is_control (buf[n]) && buf[n] != '\\'; n++)
        ;

    obj = json_tokener_parse_ex (s->tok, buf, n > INT32_MAX ? INT32_MAX
                                 : (int) n);
    jerr = json_tokener_get_error (s->tok);
    used = json_tokener_get_parse_end (s->tok);
    if (used > n)
      used = n;

    if (jerr == json_tokener_continue) {
      if (used == 0)
        used = n;
      json_text_scan_feed (&s->scan, buf, used);
      if (grow_pending (s, used) == -1)
        return -1;
      buf += used;
      len -= used;
      continue;
    }

    if (jerr != json_tokener_success) {
      /* USED is where json-c stopped: drop the offending byte, unless it
       * is a '{' that may start the next message.
       */
      if (used < n && buf[used] != '{')
        used++;
      buf += used;
      len -= used;
      if (parse_error (s, json_tokener_error_desc (jerr)) == -1)
        return -1;
      continue;
    }
    json_tokener_reset (s->tok);
    s->pending = 0;
    s->errors = 0;
    if (used == 0)
      used = n;
    json_text_scan_feed (&s->scan, buf, used);
    buf += used;
    len -= used;

    /* A complete value that json-c took and QEMU would not (a duplicate
     * key, a comment, a trailing comma): refused whole, nothing to
     * resynchronise.
     */
    if ((bad = json_text_scan_finish (&s->scan, obj)) != NULL) {
      char msg[64];

      snprintf (msg, sizeof msg, "JSON parse error, %s", bad);
      json_text_scan_init (&s->scan);
      json_object_put (obj);
      if (send_error (s, NULL, QMP_GENERIC_ERROR, msg) == -1)
        return -1;
      continue;
    }
    json_text_scan_init (&s->scan);

    if (handle_message (s, obj) == -1) {
      json_object_put (obj);
      return -1;
    }
    json_object_put (obj);
  }
  return 0;
}
