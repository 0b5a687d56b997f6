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

# Several exports in one server (--export=NAME=IMAGE): listed, each with
# its own chain and bitmaps (two qcow2 images through two instances of the
# same plugin and filter, differently configured, and a raw image), each
# stored at shutdown; node names; "" is no export unless one is named so;
# bad --export, --node-name and -D placement, and abbreviated long options
# are refused with a clear message.
source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires nbdinfo --version
[ -e "$top_builddir/plugins/qcow2/.libs/nbdcbt-qcow2-plugin.so" ] || {
  echo "$0: skipped: the qcow2 plugin was not built"; exit 77; }

sock=$tmpdir/sock pid=$tmpdir/pid
uri () { echo "nbd+unix:///${1:-}?socket=$sock"; }

qemu-img create -q -f qcow2 "$tmpdir/a.qcow2" 1M
qemu-img bitmap --add "$tmpdir/a.qcow2" b0
qemu-img create -q -f qcow2 "$tmpdir/b.qcow2" 2M
qemu-img bitmap --add -g 4096 "$tmpdir/b.qcow2" b0
truncate -s 3M "$tmpdir/c.raw"

start_server "$pid" "$sock" -v \
  --export=a="$tmpdir/a.qcow2" -D "disk a" \
  --export=b="$tmpdir/b.qcow2" --node-name=node-b \
  --export=raw="$tmpdir/c.raw" 2>"$tmpdir/log"

# nbdinfo --list shows every export with its own size and contexts.
nbdinfo --list --json "nbd+unix://?socket=$sock" >"$tmpdir/list"
$PYTHON - "$tmpdir/list" <<'EOF'
import json, sys
exports = {e["export-name"]: e for e in json.load(open(sys.argv[1]))["exports"]}
assert sorted(exports) == ["a", "b", "raw"], sorted(exports)
assert exports["a"]["export-size"] == 1 << 20
assert exports["b"]["export-size"] == 2 << 20
assert exports["raw"]["export-size"] == 3 << 20
assert exports["a"].get("description") == "disk a", exports["a"]
assert "description" not in exports["b"]
for n in "a", "b":
    assert "qemu:dirty-bitmap:b0" in exports[n]["contexts"], exports[n]
assert not any(c.startswith("qemu:dirty-bitmap:")
               for c in exports["raw"]["contexts"]), exports["raw"]
EOF

# The node names: the export name unless --node-name gave one.
grep -q "export 'a' (node a) added" "$tmpdir/log"
grep -q "export 'b' (node node-b) added" "$tmpdir/log"
grep -q "export 'raw' (node raw) added" "$tmpdir/log"

# With several exports "" is no export (as qemu-nbd and
# qemu-storage-daemon: an export is found by its name only).
if nbdinfo "$(uri)" >/dev/null 2>"$tmpdir/err"; then
  echo "the default export exists with --export"; exit 1
fi

# Writes to one export mark its bitmaps only.
nbdsh -u "$(uri a)" -c 'h.pwrite(b"x" * 512, 70000)'
nbdsh -u "$(uri raw)" -c 'h.pwrite(b"y" * 512, 0)'
map_a=$(nbdinfo --map=qemu:dirty-bitmap:b0 "$(uri a)")
map_b=$(nbdinfo --map=qemu:dirty-bitmap:b0 "$(uri b)")
[ "$map_a" = "$(printf '%10d %11d %4d  %s\n' 0 65536 0 clean 65536 65536 1 dirty 131072 917504 0 clean)" ] || {
  echo "map of a:"; echo "$map_a"; exit 1; }
[ "$map_b" = "$(printf '%10d %11d %4d  %s' 0 2097152 0 clean)" ] || {
  echo "map of b:"; echo "$map_b"; exit 1; }
nbdsh -u "$(uri b)" -c 'h.zero(4096, 8192)'
map_b=$(nbdinfo --map=qemu:dirty-bitmap:b0 "$(uri b)")
[ "$map_b" = "$(printf '%10d %11d %4d  %s\n' 0 8192 0 clean 8192 4096 1 dirty 12288 2084864 0 clean)" ] || {
  echo "map of b after zero:"; echo "$map_b"; exit 1; }
[ "$(nbdinfo --map=qemu:dirty-bitmap:b0 "$(uri a)")" = "$map_a" ]
stop_server "$pid"

# Each export's chain stored its own bitmaps at shutdown.
for img in a b; do
  qemu-img info --output=json "$tmpdir/$img.qcow2" >"$tmpdir/info"
  $PYTHON - "$tmpdir/info" <<'EOF'
import json, sys
bm = json.load(open(sys.argv[1]))["format-specific"]["data"]["bitmaps"]
assert [b["name"] for b in bm] == ["b0"], bm
assert "in-use" not in bm[0]["flags"], bm
EOF
done
rm -f "$pid"
start_server "$pid" "$sock" --export=a="$tmpdir/a.qcow2" \
  --export=b="$tmpdir/b.qcow2"
[ "$(nbdinfo --map=qemu:dirty-bitmap:b0 "$(uri a)")" = "$map_a" ]
[ "$(nbdinfo --map=qemu:dirty-bitmap:b0 "$(uri b)")" = "$map_b" ]
stop_server "$pid"
rm -f "$pid"

# An export named "" is the default export.
start_server "$pid" "$sock" --export=="$tmpdir/c.raw" --node-name=raw0 \
  --export=a="$tmpdir/a.qcow2"
[ "$(nbdinfo --size "$(uri)")" = $((3 << 20)) ]
[ "$(nbdinfo --size "$(uri a)")" = $((1 << 20)) ]
stop_server "$pid"
rm -f "$pid"

# The single export: its node name is the -e name, else "disk".
start_server "$pid" "$sock" -v -e vm1 memory size=1M 2>"$tmpdir/log"
grep -q "export 'vm1' (node vm1) added" "$tmpdir/log"
[ "$(nbdinfo --size "$(uri)")" = $((1 << 20)) ]
[ "$(nbdinfo --size "$(uri vm1)")" = $((1 << 20)) ]
stop_server "$pid"
rm -f "$pid"
start_server "$pid" "$sock" -v memory size=1M 2>"$tmpdir/log"
grep -q "export '' (node disk) added" "$tmpdir/log"
stop_server "$pid"
rm -f "$pid"
start_server "$pid" "$sock" -v --node-name=vm2 memory size=1M 2>"$tmpdir/log"
grep -q "export '' (node vm2) added" "$tmpdir/log"
stop_server "$pid"

# expect_fail PATTERN ARGS...: exit status 1, PATTERN on stderr, no
# socket left behind.
expect_fail ()
{
  local pattern=$1 status=0; shift
  "$NBDCBT" -f -U "$tmpdir/sock2" "$@" 2>"$tmpdir/err" >/dev/null || status=$?
  if [ "$status" -ne 1 ]; then
    echo "nbdcbt $*: exit status $status, expected 1"; exit 1
  fi
  if ! grep -q -- "$pattern" "$tmpdir/err"; then
    echo "nbdcbt $*: error message lacks '$pattern':"; cat "$tmpdir/err"
    exit 1
  fi
  [ ! -e "$tmpdir/sock2" ]
}
raw=$tmpdir/c.raw
# Bad --export syntax and combinations.
expect_fail "expected --export=NAME=IMAGE" --export=a
expect_fail "expected --export=NAME=IMAGE" --export=a=
expect_fail "export 'a' is given twice" --export=a="$raw" --export=a="$raw"
expect_fail "missing.img: No such file" --export=a="$tmpdir/missing.img"
expect_fail "give no PLUGIN, FILE or KEY=VALUE" --export=a="$raw" memory size=1M
expect_fail "cannot be used with --filter" --filter=log --export=a="$raw"
expect_fail "cannot be used with -e" -e x --export=a="$raw"
expect_fail "export name longer than 4096" \
  --export="$(head -c 5000 /dev/zero | tr '\0' x)=$raw"
# Node names.
expect_fail "'my disk' is not a valid node name.*--node-name" \
  --export="my disk=$raw"
expect_fail "--node-name=9a: not a valid node name" \
  --export=a="$raw" --node-name=9a
expect_fail "not a valid node name" --node-name="$(head -c 32 /dev/zero | tr '\0' x)" memory size=1M
expect_fail "node name 'n' is in use already" \
  --export=a="$raw" --node-name=n --export=b="$raw" --node-name=n
expect_fail "has a node name already" \
  --export=a="$raw" --node-name=n --node-name=m
expect_fail "--node-name before the first --export" \
  --node-name=n --export=a="$raw"
expect_fail "-D before the first --export" -D text --export=a="$raw"
expect_fail "has a description already" --export=a="$raw" -D x -D y
# Long options are never taken abbreviated.
expect_fail "option '--exportn' is an abbreviation of '--exportname'" \
  --exportn=x memory size=1M
expect_fail "option '--desc' is an abbreviation of '--description'" \
  --desc x memory size=1M
expect_fail "option '--read' is an abbreviation of '--readonly'" \
  --read memory size=1M
# --export is not --exportname any more.
expect_fail "expected --export=NAME=IMAGE" --export=vm1 memory size=1M
exit 0
