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

# The module API: a module built for an older API version is refused with
# a clear message; the same plugin and filter serve as differently
# configured instances in one server (see also test-server-exports.sh and
# test-exports), and each module's load runs once.
source "$top_srcdir/tests/functions.sh" || exit 99

old=$top_builddir/server/.libs/nbdcbt-oldapi-plugin.so
[ -e "$old" ] || { echo "$0: skipped: $old was not built"; exit 77; }
status=0
"$NBDCBT" -f -U "$tmpdir/sock" "$old" 2>"$tmpdir/err" || status=$?
[ $status -eq 1 ] || { echo "old plugin: exit status $status"; exit 1; }
grep -q "nbdcbt-oldapi-plugin.so: this plugin was built for nbdcbt module API version 1, but this server needs version 2 (per-instance state): rebuild it" "$tmpdir/err" || {
  echo "old plugin: unclear message:"; cat "$tmpdir/err"; exit 1; }
[ ! -e "$tmpdir/sock" ]
# --dump-plugin of a current plugin shows the instance callbacks.
"$NBDCBT" --dump-plugin memory >"$tmpdir/dump"
grep -q '^api_version=2$' "$tmpdir/dump"
grep -q '^has_instance_new=1$' "$tmpdir/dump"
exit 0
