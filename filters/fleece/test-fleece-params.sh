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

# The fleece filter: a bad session-dir= is refused before the server
# listens; with no session open, the filter passes every request through
# unchanged and the dirty filter below still marks every change.
source "$top_srcdir/tests/functions.sh" || exit 99

sock="$tmpdir/sock"

bad ()
{
  local pattern=$1 r=0; shift
  timeout 30 "$NBDCBT" -f -U "$sock" --filter=fleece --filter=dirty \
    memory size=1M "$@" > "$tmpdir/out" 2>&1 || r=$?
  if [ $r -ne 1 ]; then
    echo "$0: $* exited with $r, expected 1" >&2; cat "$tmpdir/out"; exit 1
  fi
  if ! grep -q -- "$pattern" "$tmpdir/out"; then
    echo "$0: $*: no '$pattern' in:" >&2; cat "$tmpdir/out"; exit 1
  fi
  if [ -e "$sock" ]; then
    echo "$0: $*: the server created its socket" >&2; exit 1
  fi
}

bad "session-dir=$tmpdir/missing: No such file or directory" \
  session-dir="$tmpdir/missing"
touch "$tmpdir/file"
bad "session-dir=$tmpdir/file: not a directory" session-dir="$tmpdir/file"

start_server "$tmpdir/pid" "$sock" --filter=fleece --filter=dirty \
  memory size=4M bitmap=b0:64K session-dir="$tmpdir"
$PYTHON - "$sock" <<'PYEOF'
import sys
import nbd
h = nbd.NBD()
h.add_meta_context("qemu:dirty-bitmap:b0")
h.connect_unix(sys.argv[1])
h.pwrite(b"\x5a" * 4096, 65536)
h.zero(3 * 65536, 65536)
assert h.pread(4096, 65536) == bytes(4096)
h.trim(6 * 65536, 65536)
h.pwrite(b"\x33" * 100, 10 * 65536 + 7)
assert h.pread(100, 10 * 65536 + 7) == b"\x33" * 100
ext = []
h.block_status(4 << 20, 0,
               lambda ctx, off, e, err: ext.extend(e) or 0)
# 64K..448K marked by the zero and trim, 640K..704K by the write.
assert ext == [65536, 0, 6 * 65536, 1, 3 * 65536, 0, 65536, 1,
               (4 << 20) - 11 * 65536, 0], ext
h.shutdown()
PYEOF
stop_server "$tmpdir/pid"
