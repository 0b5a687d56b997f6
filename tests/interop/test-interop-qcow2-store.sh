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

# The dirty filter over the qcow2 plugin's bitmap store, checked with
# QEMU's own tools:
# - stored bitmaps are loaded (recording or not), exported, and marked
#   in_use while a writable server runs;
# - bitmap= adds a new persistent bitmap;
# - a clean shutdown stores them: qemu-img info shows the flags QEMU
#   would write, qemu-img check is clean, and qemu-nbd -B exports the same
#   map nbdcbt did;
# - qemu:allocation-depth passes through the filter to the plugin;
# - a bitmap QEMU left in_use (qemu-nbd killed) is inconsistent: not
#   exported, and bitmap= naming it is an error.
source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires qemu-nbd --version
requires nbdinfo --version

img="$tmpdir/disk.qcow2"
sock="$tmpdir/sock"
uri="nbd+unix:///?socket=$sock"
qemu-img create -q -f qcow2 "$img" 4M
qemu-img bitmap --add -g 4096 "$img" b0
qemu-img bitmap --add -g 65536 --disable "$img" off

start_server "$tmpdir/pid" "$sock" --filter=dirty qcow2 "$img" bitmap=new:8k
nbdinfo --list "$uri" > "$tmpdir/list"
for b in b0 off new; do
  grep -q "qemu:dirty-bitmap:$b\$" "$tmpdir/list" || {
    echo "$0: bitmap $b not listed" >&2; cat "$tmpdir/list"; exit 1; }
done
$PYTHON - "$sock" <<'PYEOF'
import sys
import nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
h.pwrite(b"x" * 10, 5000)
h.zero(70000, 1 << 20)
h.flush()
h.shutdown()
PYEOF
# While running read-write, QEMU sees every bitmap in use.
qemu-img info -U --output=json "$img" > "$tmpdir/info.json"
$PYTHON - "$tmpdir/info.json" <<'PYEOF'
import json, sys
bm = json.load(open(sys.argv[1]))["format-specific"]["data"]["bitmaps"]
flags = {b["name"]: b["flags"] for b in bm}
assert all("in-use" in f for f in flags.values()), flags
PYEOF
for b in b0 off new; do
  nbdinfo --map="qemu:dirty-bitmap:$b" "$uri" > "$tmpdir/map-$b"
done
# Contexts the filter does not own pass down to the plugin.
nbdinfo --map=qemu:allocation-depth "$uri" > "$tmpdir/map-depth"
stop_server "$tmpdir/pid"

# Stored as QEMU stores them.
qemu-img check -q "$img"
qemu-img info --output=json "$img" > "$tmpdir/info.json"
$PYTHON - "$tmpdir/info.json" <<'PYEOF'
import json, sys
bm = json.load(open(sys.argv[1]))["format-specific"]["data"]["bitmaps"]
got = {b["name"]: (b["granularity"], b["flags"]) for b in bm}
exp = {"b0": (4096, ["auto"]), "off": (65536, []), "new": (8192, ["auto"])}
assert got == exp, got
PYEOF
# The disabled bitmap recorded nothing; b0 recorded the writes.
grep -q dirty "$tmpdir/map-off" && { echo "$0: 'off' recorded" >&2; exit 1; }
grep -q dirty "$tmpdir/map-b0" || { echo "$0: b0 is clean" >&2; exit 1; }

# qemu-nbd exports what nbdcbt stored.
qsock="$tmpdir/qsock"
qemu-nbd -t -f qcow2 -A -B b0 -B new -k "$qsock" --pid-file "$tmpdir/qpid" \
  "$img" &
qpid=$!
cleanup_fn "kill $qpid 2>/dev/null; wait $qpid 2>/dev/null"
wait_for_file "$tmpdir/qpid"
quri="nbd+unix:///?socket=$qsock"
for b in b0 new; do
  nbdinfo --map="qemu:dirty-bitmap:$b" "$quri" > "$tmpdir/qmap-$b"
  diff -u "$tmpdir/map-$b" "$tmpdir/qmap-$b"
done
nbdinfo --map=qemu:allocation-depth "$quri" > "$tmpdir/qmap-depth"
diff -u "$tmpdir/map-depth" "$tmpdir/qmap-depth"
# Killed, qemu-nbd leaves its bitmaps in_use: inconsistent for us.
kill -9 $qpid; wait $qpid 2>/dev/null || :
rm -f "$sock" "$tmpdir/pid"
start_server "$tmpdir/pid" "$sock" --filter=dirty qcow2 "$img"
nbdinfo --list "$uri" > "$tmpdir/list"
if grep -q "qemu:dirty-bitmap:b0" "$tmpdir/list"; then
  echo "$0: inconsistent bitmap b0 exported" >&2; exit 1
fi
stop_server "$tmpdir/pid"
r=0
timeout 30 "$NBDCBT" -f -U "$sock.2" --filter=dirty qcow2 "$img" bitmap=b0 \
  > "$tmpdir/out" 2>&1 || r=$?
[ $r -eq 1 ] && grep -q "inconsistent" "$tmpdir/out" || {
  echo "$0: bitmap=b0 on an inconsistent bitmap: exit $r" >&2
  cat "$tmpdir/out"; exit 1; }
