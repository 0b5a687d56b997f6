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

# nbdcbt-ctl against a running nbdcbt serving a qcow2 image: add, query,
# clear, merge, disable, enable, remove while NBD clients write; a
# persistent bitmap added live is in the image after a restart (and gone
# after --remove); a bitmap added live is offered to new NBD connections;
# messages and exit codes for the server's refusals (1), usage errors (2)
# and a missing server (3).
source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires qemu-io --version
requires nbdinfo --version

ctl=nbdcbt-ctl
img=$tmpdir/disk.qcow2
sock=$tmpdir/nbd.sock
ctlsock=$tmpdir/ctl.sock
pid=$tmpdir/pid
uri="nbd+unix:///disk0?socket=$sock"
qemu-img create -q -f qcow2 "$img" 4M

expect_status ()
{
  local want=$1; shift
  local rc=0
  "$@" >"$tmpdir/out" 2>"$tmpdir/err" || rc=$?
  if [ $rc -ne "$want" ]; then
    echo "$0: '$*' exited $rc, expected $want" >&2
    cat "$tmpdir/out" "$tmpdir/err" >&2
    exit 1
  fi
}

start_server "$pid" "$sock" -e disk0 --control="$ctlsock" "$img"

# Queries answer before any NBD client came.
$ctl -s "$ctlsock" query | tee "$tmpdir/q0"
grep -q '^disk0 .*(no bitmaps)' "$tmpdir/q0"

$ctl -s "$ctlsock" bitmap --add -g 64K disk0 b0
$ctl -s "$ctlsock" bitmap --add --transient -g 512 disk0 t0
qemu-io -f raw -c "write -P 1 0 4k" -c "write -P 2 1M 512" "$uri" >/dev/null
$ctl -s "$ctlsock" query | tee "$tmpdir/q1"
grep -Eq '^disk0 +b0 +64K +128K +recording, persistent$' "$tmpdir/q1"
grep -Eq '^disk0 +t0 +512 +4.5K +recording, transient$' "$tmpdir/q1"

# Offered over NBD to a connection made after the add.
nbdinfo --map=qemu:dirty-bitmap:b0 "$uri" | tee "$tmpdir/map"
grep -Eq '^ +0 +65536 +1 +dirty' "$tmpdir/map"

# JSON output is query-named-block-nodes' answer.
$ctl -s "$ctlsock" query --output=json > "$tmpdir/json"
$PYTHON - "$tmpdir/json" <<'EOF'
import json, sys
nodes = json.load(open(sys.argv[1]))
b = {x["name"]: x for x in nodes[0]["dirty-bitmaps"]}
assert nodes[0]["node-name"] == "disk0"
assert b["b0"]["count"] == 131072 and b["b0"]["persistent"]
assert b["t0"]["granularity"] == 512 and not b["t0"]["persistent"]
EOF

# Several operations: one transaction, in order.
$ctl -s "$ctlsock" bitmap --merge b0 --disable disk0 t0
$ctl -s "$ctlsock" query | grep -Eq '^disk0 +t0 +512 +128K +disabled'
$ctl -s "$ctlsock" bitmap --clear --enable disk0 t0
$ctl -s "$ctlsock" query | grep -Eq '^disk0 +t0 +512 +0 +recording'

# Clear while the disk is written.
qemu-io -f raw -c "write -P 3 2M 64k" "$uri" >/dev/null &
writer=$!
$ctl -s "$ctlsock" bitmap --clear disk0 b0
wait $writer

# Refusals: exit 1 with the server's message, nothing changed.
expect_status 1 $ctl -s "$ctlsock" bitmap --clear disk0 nope
grep -qx "nbdcbt-ctl: nope: Dirty bitmap 'nope' not found" "$tmpdir/err"
expect_status 1 $ctl -s "$ctlsock" bitmap --add disk0 b0
grep -qx "nbdcbt-ctl: b0: Bitmap already exists: b0" "$tmpdir/err"
expect_status 1 $ctl -s "$ctlsock" bitmap --add -g 1000 disk0 b9
grep -q "Granularity must be power of 2 and at least 512" "$tmpdir/err"
expect_status 1 $ctl -s "$ctlsock" bitmap --clear --remove nodisk b0
grep -q "Node 'nodisk' not found" "$tmpdir/err"
# The transaction failed at its second action: t0 was not disabled.
expect_status 1 $ctl -s "$ctlsock" bitmap --disable --merge nope disk0 t0
$ctl -s "$ctlsock" query | grep -Eq '^disk0 +t0 +512 +[0-9.K]+ +recording'

# Usage errors: exit 2, nothing sent.
expect_status 2 $ctl -s "$ctlsock" bitmap disk0 b0
grep -q "give at least one of" "$tmpdir/err"
expect_status 2 $ctl -s "$ctlsock" bitmap --add disk0
expect_status 2 $ctl -s "$ctlsock" bitmap --clear -g 64K disk0 b0
expect_status 2 $ctl -s "$ctlsock" bitmap --add -g 12Q disk0 b0
expect_status 2 $ctl bitmap --add disk0 b0
expect_status 2 $ctl -s "$ctlsock" frobnicate
expect_status 2 $ctl -s "$ctlsock" qmp '{"execute": '
# One message: what follows it is not sent unseen.
expect_status 2 $ctl -s "$ctlsock" qmp '{"execute": "query-version"} x'
expect_status 2 $ctl -s "$ctlsock" qmp '{"execute": "query-version"}
{"execute": "quit"}'
grep -qF "expected one JSON object; after it: '{\"execute\": \"quit\"}'" \
  "$tmpdir/err"
expect_status 2 $ctl -s "$ctlsock" qmp 'null'
grep -qF 'expected an object with "execute"' "$tmpdir/err"
expect_status 2 $ctl -s "$ctlsock" query --output=xml
expect_status 2 $ctl -s "$ctlsock" bitmap --rem disk0 t0
grep -q "unknown option '--rem' (options are not abbreviated)" "$tmpdir/err"
expect_status 2 $ctl --sock "$ctlsock" query

# qmp: anything, answered as JSON; an error answer is exit 1.
$ctl -s "$ctlsock" qmp '{"execute": "x-debug-block-dirty-bitmap-sha256",
  "arguments": {"node": "disk0", "name": "t0"}}' | grep -q '"sha256"'
expect_status 1 $ctl -s "$ctlsock" qmp '{"execute": "no-such-command"}'
grep -q CommandNotFound "$tmpdir/out"

# No server: exit 3.
expect_status 3 $ctl -s "$tmpdir/nothing.sock" query
grep -q "cannot connect to" "$tmpdir/err"

# A persistent bitmap added live survives a restart; transient ones go.
stop_server "$pid"
qemu-img info --output=json "$img" > "$tmpdir/info"
$PYTHON - "$tmpdir/info" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
names = [b["name"] for b in info["format-specific"]["data"]["bitmaps"]]
assert names == ["b0"], names
EOF
rm -f "$pid"
start_server "$pid" "$sock" -e disk0 --control="$ctlsock" "$img"
$ctl -s "$ctlsock" query | grep -Eq '^disk0 +b0 +64K +[0-9.K]+ +recording, persistent$'
! $ctl -s "$ctlsock" query | grep -q t0

# --remove deletes it from the image.
$ctl -s "$ctlsock" bitmap --remove disk0 b0
stop_server "$pid"
qemu-img info "$img" | tee "$tmpdir/info2"
! grep -q "name: b0" "$tmpdir/info2"
qemu-img check "$img"
