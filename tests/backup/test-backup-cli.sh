#!/usr/bin/env bash
# nbdcbt
# Copyright (C) 2026 the nbdcbt authors
# All rights reserved.
#
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions are
# met:
#
# * Redistributions of source code must retain the above copyright
# notice, this list of conditions and the following disclaimer.
#
# * Redistributions in binary form must reproduce the above copyright
# notice, this list of conditions and the following disclaimer in the
# documentation and/or other materials provided with the distribution.
#
# * Neither the name of the nbdcbt authors nor the names of its
# contributors may be used to endorse or promote products derived from
# this software without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
# "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
# LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
# PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
# HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
# SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
# LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
# DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
# THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
# (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
# OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

# Command line: help, version, and clear errors for bad usage.
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdcbt-backup --version

nbdcbt-backup --help | grep -q "nbdcbt-backup full URI -o DIR"
nbdcbt-backup --version | grep -q "^nbdcbt-backup "

# expect_backup_error MESSAGE CMD...: CMD exits 1 and says MESSAGE as
# nbdcbt-backup's error.
expect_backup_error ()
{
  expect_error "$@" >/dev/null
  grep -q "^nbdcbt-backup: " "$tmpdir/out"
}

expect_backup_error "missing command" nbdcbt-backup
expect_backup_error "unknown command" nbdcbt-backup frobnicate x
expect_backup_error "missing argument" nbdcbt-backup full
expect_backup_error "(-o DIR)" nbdcbt-backup full nbd://localhost
expect_backup_error "needs --bitmap" nbdcbt-backup inc nbd://localhost -o "$tmpdir/d"
expect_backup_error "needs --bitmap" nbdcbt-backup inc --auto nbd://localhost -o "$tmpdir/d"
expect_backup_error "not a number" nbdcbt-backup restore "$tmpdir" --until x -o f
expect_backup_error "output format" nbdcbt-backup restore "$tmpdir" -O vmdk -o f
expect_backup_error "power of two" nbdcbt-backup full nbd://x -o d -S 3000
expect_backup_error "between 1 and 64" nbdcbt-backup full nbd://x -o d -C 0
expect_backup_error "Bitmap name cannot be empty" nbdcbt-backup inc nbd://x -o d --bitmap ''
expect_backup_error "a disk id is 1 to 1023 bytes" \
  nbdcbt-backup full nbd://x -o d --disk-id ''
expect_backup_error "control characters" \
  nbdcbt-backup full nbd://x -o d --disk-id "$(printf 'a\tb')"
expect_backup_error "option of 'full', 'inc' and 'auto'" \
  nbdcbt-backup verify "$tmpdir" --disk-id x
expect_backup_error "holds no backup chain" nbdcbt-backup verify "$tmpdir"
expect_backup_error "holds no backup chain" nbdcbt-backup list "$tmpdir"
expect_backup_error "holds no backup chain" nbdcbt-backup restore "$tmpdir" -o "$tmpdir/x"

# A damaged manifest is reported, not trusted.
mkdir "$tmpdir/bad"
echo '{ "format": "nbdcbt-backup", "version": 1, ' > "$tmpdir/bad/manifest.json"
expect_backup_error "damaged manifest" nbdcbt-backup verify "$tmpdir/bad"
echo '{ "format": "nbdcbt-backup", "version": 1 }' > "$tmpdir/bad/manifest.json"
expect_backup_error "damaged manifest: \"chain-id\"" nbdcbt-backup list "$tmpdir/bad"
echo '[]' > "$tmpdir/bad/manifest.json"
expect_backup_error "not a JSON object" nbdcbt-backup list "$tmpdir/bad"
# ... and a backup into that directory refuses to run.
expect_backup_error "manifest is damaged" \
  nbdcbt-backup full "nbd+unix:///?socket=$tmpdir/nosock" -o "$tmpdir/bad"

# An incremental into an empty directory.
expect_backup_error "holds no backup chain" \
  nbdcbt-backup inc "nbd+unix:///?socket=$tmpdir/nosock" -o "$tmpdir/empty" \
  --bitmap b0
# An unreachable server.
expect_backup_error "nbdcbt-backup: nbd+unix" \
  nbdcbt-backup full "nbd+unix:///?socket=$tmpdir/nosock" -o "$tmpdir/empty"
test ! -e "$tmpdir/empty/manifest.json"
