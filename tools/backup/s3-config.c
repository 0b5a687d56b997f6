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

/* nbdcbt-backup: where the S3 endpoint is and who we are, as aws-cli
 * finds them: options, then AWS_* variables, then the shared files
 * (~/.aws/config and ~/.aws/credentials, or AWS_CONFIG_FILE and
 * AWS_SHARED_CREDENTIALS_FILE).
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "cleanup.h"
#include "s3.h"

struct s3_options s3_opts = { .retries = -1 };

static char *
trim (char *s)
{
  char *e;

  while (isspace ((unsigned char) *s))
    s++;
  e = s + strlen (s);
  while (e > s && isspace ((unsigned char) e[-1]))
    *--e = '\0';
  return s;
}

/* KEY's value in section SECTION of the INI file PATH (malloc'd), or
 * NULL.  Keys of nested blocks ("s3 =" followed by indented lines) are
 * found as well.
 */
static char *
ini_get (const char *path, const char *section, const char *key)
{
  FILE *fp = fopen (path, "r");
  char line[4096], *value = NULL;
  bool in_section = false;

  if (fp == NULL)
    return NULL;
  while (fgets (line, sizeof line, fp)) {
    char *s = trim (line), *eq;

    if (*s == '#' || *s == ';' || *s == '\0')
      continue;
    if (*s == '[') {
      char *end = strchr (s, ']');
      if (end) {
        *end = '\0';
        in_section = strcmp (trim (s + 1), section) == 0;
      }
      continue;
    }
    if (!in_section || (eq = strchr (s, '=')) == NULL)
      continue;
    *eq = '\0';
    if (strcmp (trim (s), key) == 0) {
      free (value);
      value = strdup (trim (eq + 1));
    }
  }
  fclose (fp);
  return value;
}

static char *
home_file (const char *env, const char *name)
{
  const char *p = getenv (env), *home;
  char *s;

  if (p && *p)
    return strdup (p);
  home = getenv ("HOME");
  if (home == NULL || asprintf (&s, "%s/.aws/%s", home, name) == -1)
    return NULL;
  return s;
}

/* A setting of the profile: the config file's section is "default" or
 * "profile NAME", the credentials file's is "NAME".
 */
static char *
profile_get (const char *profile, bool credentials, const char *key)
{
  char *path = credentials
    ? home_file ("AWS_SHARED_CREDENTIALS_FILE", "credentials")
    : home_file ("AWS_CONFIG_FILE", "config");
  char *section = NULL, *v = NULL;

  if (path == NULL)
    return NULL;
  if (credentials || strcmp (profile, "default") == 0)
    section = strdup (profile);
  else if (asprintf (&section, "profile %s", profile) == -1)
    section = NULL;
  if (section)
    v = ini_get (path, section, key);
  free (section);
  free (path);
  return v;
}

static char *
first_of (const char *opt, const char *env1, const char *env2)
{
  const char *v = opt;

  if (v == NULL || *v == '\0')
    v = env1 ? getenv (env1) : NULL;
  if ((v == NULL || *v == '\0') && env2)
    v = getenv (env2);
  return v && *v ? strdup (v) : NULL;
}

/* Can BUCKET be a host name label (virtual-hosted style)? */
static bool
dns_compatible (const char *bucket)
{
  size_t n = strlen (bucket), i;

  if (n < 3 || n > 63)
    return false;
  for (i = 0; i < n; ++i) {
    char c = bucket[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  return bucket[0] != '-' && bucket[n - 1] != '-';
}

/* HOST[:PORT] an IPv4 or bracketed IPv6 address? */
static bool
host_is_ip_literal (const char *host)
{
  size_t n = strcspn (host, ":"), i;

  if (host[0] == '[')
    return true;
  for (i = 0; i < n; ++i)
    if (!isdigit ((unsigned char) host[i]) && host[i] != '.')
      return false;
  return n > 0;
}

int
s3_config_load (const char *bucket, struct s3_config *cfg)
{
  const char *profile = s3_opts.profile;
  CLEANUP_FREE char *endpoint = NULL;
  char *style = NULL;
  const char *p;

  memset (cfg, 0, sizeof *cfg);
  if (profile == NULL || *profile == '\0')
    profile = getenv ("AWS_PROFILE");
  if (profile == NULL || *profile == '\0')
    profile = "default";

  cfg->region = first_of (s3_opts.region, "AWS_REGION", "AWS_DEFAULT_REGION");
  if (cfg->region == NULL)
    cfg->region = profile_get (profile, false, "region");
  if (cfg->region == NULL)
    cfg->region = strdup ("us-east-1");

  endpoint = first_of (s3_opts.endpoint, "AWS_ENDPOINT_URL_S3",
                       "AWS_ENDPOINT_URL");
  if (endpoint == NULL)
    endpoint = profile_get (profile, false, "endpoint_url");
  if (endpoint) {
    size_t len;

    cfg->custom_endpoint = true;
    if (strncmp (endpoint, "https://", 8) == 0) {
      cfg->scheme = strdup ("https");
      p = endpoint + 8;
    }
    else if (strncmp (endpoint, "http://", 7) == 0) {
      cfg->scheme = strdup ("http");
      p = endpoint + 7;
    }
    else {
      error ("S3 endpoint '%s': it must start with https:// (or http:// "
             "for an unencrypted connection)", endpoint);
      goto fail;
    }
    cfg->host = strdup (p);
    len = cfg->host ? strlen (cfg->host) : 0;
    while (len > 0 && cfg->host[len - 1] == '/')
      cfg->host[--len] = '\0';
    if (len == 0 || strchr (cfg->host, '/') || strchr (cfg->host, '?')) {
      error ("S3 endpoint '%s': expected SCHEME://HOST[:PORT] without a "
             "path", endpoint);
      goto fail;
    }
  }
  else {
    cfg->scheme = strdup ("https");
    if (asprintf (&cfg->host, "s3.%s.amazonaws.com", cfg->region) == -1)
      cfg->host = NULL;
  }

  cfg->access_key = first_of (NULL, "AWS_ACCESS_KEY_ID", NULL);
  cfg->secret_key = first_of (NULL, "AWS_SECRET_ACCESS_KEY", NULL);
  if (cfg->access_key || cfg->secret_key)
    cfg->session_token = first_of (NULL, "AWS_SESSION_TOKEN", NULL);
  else {
    cfg->access_key = profile_get (profile, true, "aws_access_key_id");
    cfg->secret_key = profile_get (profile, true, "aws_secret_access_key");
    cfg->session_token = profile_get (profile, true, "aws_session_token");
  }
  if (cfg->access_key == NULL || cfg->secret_key == NULL) {
    error ("no S3 credentials: set AWS_ACCESS_KEY_ID and "
           "AWS_SECRET_ACCESS_KEY, or give profile '%s' "
           "aws_access_key_id and aws_secret_access_key in "
           "~/.aws/credentials", profile);
    goto fail;
  }

  style = first_of (s3_opts.addressing_style, NULL, NULL);
  if (style == NULL)
    style = profile_get (profile, false, "addressing_style");
  if (style == NULL || strcmp (style, "auto") == 0)
    /* As the SDKs: virtual-hosted at AWS; path-style for other
     * servers (a local endpoint has no wildcard DNS), and for bucket
     * names that cannot be host names.
     */
    cfg->path_style = cfg->custom_endpoint || !dns_compatible (bucket);
  else if (strcmp (style, "path") == 0)
    cfg->path_style = true;
  else if (strcmp (style, "virtual") == 0) {
    if (!dns_compatible (bucket)) {
      error ("bucket '%s' cannot be addressed virtual-hosted style (not a "
             "DNS name); use --s3-addressing-style=path", bucket);
      goto fail;
    }
    if (host_is_ip_literal (cfg->host)) {
      error ("S3 endpoint '%s': virtual-hosted style needs a host name "
             "(BUCKET.HOST), not an IP address; use "
             "--s3-addressing-style=path", cfg->host);
      goto fail;
    }
    cfg->path_style = false;
  }
  else {
    error ("--s3-addressing-style: '%s': expected path, virtual or auto",
           style);
    goto fail;
  }
  free (style);
  style = NULL;

  /* As aws-cli: --s3-ca-bundle, AWS_CA_BUNDLE, the profile's ca_bundle. */
  cfg->ca_bundle = first_of (s3_opts.ca_bundle, "AWS_CA_BUNDLE", NULL);
  if (cfg->ca_bundle == NULL)
    cfg->ca_bundle = profile_get (profile, false, "ca_bundle");
  if (cfg->ca_bundle && access (cfg->ca_bundle, R_OK) == -1) {
    error_errno ("S3 CA bundle '%s' (--s3-ca-bundle, AWS_CA_BUNDLE or "
                 "ca_bundle in ~/.aws/config)", cfg->ca_bundle);
    goto fail;
  }
  cfg->retries = s3_opts.retries >= 0 ? s3_opts.retries : 5;
  cfg->timeout = s3_opts.timeout > 0 ? s3_opts.timeout : 30;
  if (!cfg->scheme || !cfg->host || !cfg->region) {
    error_errno ("malloc");
    goto fail;
  }
  return 0;

 fail:
  free (style);
  s3_config_free (cfg);
  return -1;
}

void
s3_config_free (struct s3_config *cfg)
{
  free (cfg->scheme);
  free (cfg->host);
  free (cfg->region);
  free (cfg->access_key);
  if (cfg->secret_key)
    memset (cfg->secret_key, 0, strlen (cfg->secret_key));
  free (cfg->secret_key);
  free (cfg->session_token);
  free (cfg->ca_bundle);
  memset (cfg, 0, sizeof *cfg);
}
