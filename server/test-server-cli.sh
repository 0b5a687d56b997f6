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

# Command line: --version, --help, PLUGIN --help, --dump-plugin, and clear
# errors (exit 1) for a missing plugin, a bad parameter or bad options.
source "$top_srcdir/tests/functions.sh" || exit 99

"$NBDCBT" --version | grep -q '^nbdcbt [0-9]'
"$NBDCBT" --help | grep -q -- '--filter=NAME'
"$NBDCBT" memory --help | grep -q 'size='
"$NBDCBT" --help memory | grep -q 'size='

out=$("$NBDCBT" --dump-plugin memory)
for key in path name version thread_model has_pread has_pwrite; do
  echo "$out" | grep -q "^$key=" || { echo "--dump-plugin lacks $key"; exit 1; }
done
echo "$out" | grep -q '^name=memory$'

# expect_fail PATTERN ARGS...: exit status 1 and PATTERN on stderr.
expect_fail ()
{
  local pattern=$1 status=0; shift
  "$NBDCBT" "$@" 2>"$tmpdir/err" >/dev/null || status=$?
  if [ "$status" -ne 1 ]; then
    echo "nbdcbt $*: exit status $status, expected 1"; exit 1
  fi
  if ! grep -q -- "$pattern" "$tmpdir/err"; then
    echo "nbdcbt $*: error message lacks '$pattern':"; cat "$tmpdir/err"
    exit 1
  fi
}
expect_fail "cannot find plugin 'nosuchplugin'" nosuchplugin
expect_fail "cannot find filter 'nosuchfilter'" --filter=nosuchfilter memory size=1M
expect_fail "no plugin or file given"
expect_fail "could not parse" -t many memory size=1M
expect_fail "cannot be used together" -s -U "$tmpdir/sock" memory size=1M
expect_fail "" -f -U "$tmpdir/sock" memory size=banana
expect_fail "" --no-such-option memory size=1M
# The FILE shorthand: a missing file (a name with '/' or '.') goes to the
# file plugin, which says what is wrong, not "cannot find plugin".
if [ -e "$top_builddir/plugins/file/.libs/nbdcbt-file-plugin.so" ]; then
  expect_fail "$tmpdir/missing.img: No such file or directory" \
    -f -U "$tmpdir/sock" "$tmpdir/missing.img"
  (cd "$tmpdir" && expect_fail "missing.img: No such file or directory" \
    -f -U "$tmpdir/sock" missing.img)
  expect_fail "is a directory" -f -U "$tmpdir/sock" "$tmpdir"
  if grep -q "cannot find plugin" "$tmpdir/err"; then
    echo "a directory was taken for a plugin name"; exit 1
  fi
fi
expect_fail "cannot open plugin '$tmpdir/nosuch.so': No such file" \
  "$tmpdir/nosuch.so"
expect_fail "-D: description longer than" -D "$(head -c 5000 /dev/zero | tr '\0' x)" memory size=1M
# A failed start leaves no socket behind.
[ ! -e "$tmpdir/sock" ]
exit 0
