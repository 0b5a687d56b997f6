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

# A libnbd C client (dirty-map) reads the same dirty map from each server
# after the same workload, and agrees with nbdinfo --map.
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdinfo --version
: "${INTEROP_SERVER:=both}"

$PYTHON - "$tmpdir" <<'PYEOF'
import os, sys
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "interop"))
from interop import SERVERS, requirements, start, connect, replay, workload
requirements()
ops = workload(4242, 4096)
for name in SERVERS:
    with start(name, 4096) as srv:
        h = connect(srv)
        replay(h, ops)
        h.shutdown()
        rc = os.system("./dirty-map '%s' qemu:dirty-bitmap:b0 > %s/map-%s"
                       % (srv.uri, sys.argv[1], name))
        assert rc == 0, "dirty-map failed on " + name
        rc = os.system("nbdinfo --map=qemu:dirty-bitmap:b0 '%s' | "
                       "awk '{print $1, $2, $3}' > %s/nbdinfo-%s"
                       % (srv.uri, sys.argv[1], name))
        assert rc == 0
PYEOF
n=0
for f in "$tmpdir"/map-*; do
  s=${f##*/map-}
  diff -u "$tmpdir/nbdinfo-$s" "$f"
  grep -q ' 1$' "$f"
  n=$((n + 1))
done
[ $n -ge 1 ]
if [ -e "$tmpdir/map-qemu-nbd" ] && [ -e "$tmpdir/map-nbdcbt" ]; then
  diff -u "$tmpdir/map-qemu-nbd" "$tmpdir/map-nbdcbt"
fi
