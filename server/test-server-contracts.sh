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

# Backend contracts: a filter that calls the layer below outside its
# contract (past the end, with a flag the layer did not advertise, a write
# to a layer opened read-only) gets an error for that request, with a
# message naming the layer and what was wrong; nothing reaches the plugin,
# and the server keeps serving.
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdsh --version

filter=$top_builddir/server/.libs/nbdcbt-badnext-filter.so
[ -e "$filter" ] || { echo "$0: skipped: $filter was not built"; exit 77; }
sock=$tmpdir/sock pid=$tmpdir/pid
truncate -s 1M "$tmpdir/disk"

for mistake in range flags readonly; do
  rm -f "$pid"
  start_server "$pid" "$sock" --filter="$filter" file "$tmpdir/disk" \
    mistake=$mistake 2>"$tmpdir/err"
  nbdsh -u "nbd+unix:///?socket=$sock" -c '
try:
    h.pwrite(b"x" * 512, 0)
    raise AssertionError("the broken write succeeded")
except nbd.Error as e:
    print(e)
# The connection and the server go on.
assert h.pread(512, 0) == bytes(512)
'
  stop_server "$pid"
  case $mistake in
    range) why="the range is not inside the export" ;;
    flags) why="flags the layer did not advertise" ;;
    readonly) why="the layer is read-only" ;;
  esac
  grep -q "error: file: write from the layer above refused: $why" \
    "$tmpdir/err" || { echo "mistake=$mistake:"; cat "$tmpdir/err"; exit 1; }
  # Nothing was written.
  cmp -s "$tmpdir/disk" <(head -c 1M /dev/zero) || {
    echo "mistake=$mistake: the disk changed"; exit 1; }
done
exit 0
