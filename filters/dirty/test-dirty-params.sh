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

# Bad bitmap= parameters: a clear error naming the problem and exit status
# 1 before the server listens; good ones start.
source "$top_srcdir/tests/functions.sh" || exit 99

sock="$tmpdir/sock"
long=$(printf 'x%.0s' $(seq 1024))
max=$(printf 'y%.0s' $(seq 1023))

# bad PATTERN ARGS...: the server must exit 1, print PATTERN, never listen.
bad ()
{
  local pattern=$1 r=0; shift
  timeout 30 "$NBDCBT" -f -U "$sock" --filter=dirty memory size=1M "$@" \
    > "$tmpdir/out" 2>&1 || r=$?
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

bad "power of 2" bitmap=b0:1000
bad "power of 2 and at least 512" bitmap=b0:256
bad "power of 2" bitmap=b0:0
bad "exceeds maximum" bitmap=b0:4G
bad "cannot parse granularity" bitmap=b0:abc
bad "cannot parse granularity" bitmap=b0:
bad "cannot parse granularity" bitmap=b0:-4k
bad "name cannot be empty" bitmap=
bad "name cannot be empty" bitmap=:4k
bad "already exists: b0" bitmap=b0 bitmap=b0:4k
bad "Name length exceeds maximum (1023 characters)" "bitmap=$long"
bad "Name length exceeds maximum" "bitmap=$long:64k"

# Good ones: sizes with suffixes, the limits, a name with colons.
start_server "$tmpdir/pid" "$sock" --filter=dirty memory size=1M \
  bitmap=b0 bitmap=b1:4k bitmap=b2:64K bitmap=b3:512 bitmap=b4:2G \
  bitmap=vm:disk0:1M "bitmap=$max:4096"
$PYTHON - "$sock" "$max" <<'PYEOF'
import sys
import nbd
sock, maxname = sys.argv[1], sys.argv[2]
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_unix(sock)
h.add_meta_context("qemu:dirty-bitmap:")
names = []
h.opt_list_meta_context(lambda n: names.append(n) or 0)
exp = sorted("qemu:dirty-bitmap:" + b for b in
             ["b0", "b1", "b2", "b3", "b4", "vm:disk0", maxname])
assert sorted(names) == exp, names
h.opt_abort()
PYEOF
stop_server "$tmpdir/pid"
