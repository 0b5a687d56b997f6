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

# nbdcbt-img on raw images: bitmap --add/--remove/--clear/--enable/
# --disable/--merge, info (human and JSON), map and check work on the QBM
# sidecar as on qcow2 (the same bitmaps give the same digests and maps as
# a qcow2 twin edited by qemu-img), and a damaged, truncated or
# mismatched sidecar gets a clear message, never a clean bitmap.
source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires qemu-io --help
# In a directory of its own: ../good and ../victim stay in $tmpdir.
mkdir "$tmpdir/w"
cd "$tmpdir/w"

fail=0
expect_rc ()
{
  local want=$1; shift
  set +e; "$@" > out.txt 2>&1; local rc=$?; set -e
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: '$*' exited $rc, expected $want"; cat out.txt; fail=1
  fi
}
expect_msg ()
{
  if ! grep -q -- "$1" out.txt; then
    echo "FAIL: expected message '$1', got:"; cat out.txt; fail=1
  fi
}
sha () { nbdcbt-img info --output=json "$@" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for b in d["format-specific"]["data"].get("bitmaps", []):
    print(b["name"], b["granularity"], ",".join(b["flags"]), b["count"], b["sha256"])
'; }

truncate -s 100M d.raw
qemu-img create -q -f qcow2 t.qcow2 100M

# No sidecar: nothing to check, no bitmap to map; nothing is created.
expect_rc 63 nbdcbt-img check d.raw
expect_rc 1 nbdcbt-img map --bitmap b0 d.raw
expect_msg "Dirty bitmap 'b0' not found"
test ! -e d.raw.qbm || { echo "FAIL: a sidecar appeared"; fail=1; }

# The same edits on the raw image and on its qcow2 twin.
both () { nbdcbt-img bitmap "$@" d.raw "${@: -1}" >/dev/null 2>&1 || true; }
edit ()
{
  local b=${@: -1}; set -- "${@:1:$#-1}"
  expect_rc 0 nbdcbt-img bitmap "$@" d.raw "$b"
  qemu-img bitmap "$@" t.qcow2 "$b"
}
edit --add b0
edit --add -g 4096 b1
# Dirty data: qemu-io writes record into the twin's bitmaps; the raw
# image's bitmaps get the same bits by --merge from the twin.
qemu-io -c 'write 0 64k' -c 'write 5M 1M' -c 'write 99M 4k' -c 'write 1M 8k' \
  t.qcow2 >/dev/null
expect_rc 0 nbdcbt-img bitmap --merge b0 -b t.qcow2 d.raw b0
expect_rc 0 nbdcbt-img bitmap --merge b1 -b t.qcow2 -F qcow2 d.raw b1
edit --disable b1
edit --add b2
edit --merge b1 b2
edit --enable b1
edit --clear b0
edit --add b3
edit --remove b3
sha d.raw > raw.txt
nbdcbt-img info --output=json t.qcow2 | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for b in d["format-specific"]["data"].get("bitmaps", []):
    print(b["name"], b["granularity"], ",".join(b["flags"]), b["count"], b["sha256"])
' > q.txt
if ! diff -u q.txt raw.txt; then
  echo "FAIL: the sidecar's bitmaps differ from the qcow2 twin's"; fail=1
fi
for b in b0 b1 b2; do
  nbdcbt-img map --bitmap $b --output=json d.raw > m1.json
  nbdcbt-img map --bitmap $b --output=json t.qcow2 > m2.json
  cmp m1.json m2.json || { echo "FAIL: map of $b differs"; fail=1; }
done
expect_rc 0 nbdcbt-img check d.raw
expect_msg "No errors were found"
# Errors as on qcow2, nothing changed.
cp d.raw.qbm before.qbm
expect_rc 1 nbdcbt-img bitmap --add d.raw b0
expect_msg "Bitmap already exists: b0"
expect_rc 1 nbdcbt-img bitmap --remove d.raw nope
expect_msg "Dirty bitmap 'nope' not found"
expect_rc 1 nbdcbt-img bitmap --add -g 1000 d.raw x
expect_msg "Granularity must be power of 2"
# Every refusal reads word for word as on the qcow2 twin (one home for
# the rules: common/bitmap/bitmap-rules.h).
long=$(printf 'n%.0s' $(seq 1100))
for args in "--add -g 1000 x" "--add -g 4G x" "--add -g 0 x" "--add ${long}" \
            "--add b0" "--remove nope" "--clear nope" "--merge nope b0" \
            "--enable nope"; do
  set -- $args
  b=${@: -1}; set -- "${@:1:$#-1}"
  set +e
  nbdcbt-img bitmap "$@" d.raw "$b" 2> raw.err
  nbdcbt-img bitmap "$@" t.qcow2 "$b" 2> q.err
  set -e
  if ! test -s q.err || ! cmp -s raw.err q.err; then
    echo "FAIL: bitmap $args: raw and qcow2 messages differ:"
    cat raw.err q.err; fail=1
  fi
done
expect_rc 1 nbdcbt-img bitmap --add d.raw ""
expect_msg "Bitmap name cannot be empty"
cmp before.qbm d.raw.qbm || { echo "FAIL: a refused edit changed the sidecar"; fail=1; }

# The descriptor itself stands for the image; --sidecar names another
# place (a block device's sidecar cannot live in /dev).
expect_rc 0 nbdcbt-img info d.raw.qbm
expect_msg "name: b2"
mkdir side
expect_rc 0 nbdcbt-img bitmap --add --sidecar=side/x.qbm d.raw c0
expect_rc 0 nbdcbt-img info --sidecar=side/x.qbm d.raw
expect_msg "name: c0"
expect_rc 0 nbdcbt-img check --sidecar=side/x.qbm d.raw

# Damage.  Each gets a message naming the problem; nothing reads clean.
cp -a . ../good
restore () { rm -rf ./*; cp -a ../good/. .; }
f=$(/usr/bin/python3 -c 'import json;print(json.load(open("d.raw.qbm"))["QBM"]["bitmaps"]["b2"]["file"])')
printf '\xff' | dd of="$f" bs=1 seek=3 conv=notrunc status=none
expect_rc 2 nbdcbt-img check d.raw
expect_msg "checksum mismatch"
expect_rc 1 nbdcbt-img map --bitmap b2 d.raw
expect_msg "checksum mismatch"
expect_rc 1 nbdcbt-img bitmap --clear d.raw b0
expect_msg "Could not load bitmap 'b2'"
restore
truncate -s 10 "$f"
expect_rc 2 nbdcbt-img check d.raw
expect_msg "truncated or damaged"
restore
head -c 100 d.raw.qbm > x && mv x d.raw.qbm
expect_rc 2 nbdcbt-img check d.raw
expect_msg "truncated"
expect_rc 1 nbdcbt-img info d.raw
restore
truncate -s 200M d.raw
expect_rc 1 nbdcbt-img map --bitmap b0 d.raw
expect_msg "resized without its sidecar"
expect_rc 2 nbdcbt-img check d.raw
restore
cp d.raw e.raw
cp d.raw.qbm e.raw.qbm
expect_rc 1 nbdcbt-img info e.raw
expect_msg "belongs to"

# A descriptor naming files it must not: refused before anything is read
# or deleted (an update unlinks the files the new descriptor no longer
# names: here the image, a file outside the directory, the descriptor).
edit () { /usr/bin/python3 -c '
import json, sys
d = json.load(open("d.raw.qbm"))
q = d["QBM"]
exec(sys.argv[1])
json.dump(d, open("d.raw.qbm", "w"))' "$1"; }
echo keep > ../victim
for bad in '"d.raw"' '"../victim"' "\"$PWD/../victim\"" '"d.raw.qbm"' \
           '"d.raw.qbm.lock"' '".hidden"' '"d.raw.qbm.intent"'; do
  restore
  edit "q['intent'] = {'file': 'd.raw.qbm.intent', 'zone-size': 67108864}
q['bitmaps']['b0']['file'] = $bad"
  before=$(sha256sum d.raw ../victim)
  expect_rc 1 nbdcbt-img bitmap --remove d.raw b0
  expect_msg "must be a plain file name"
  expect_rc 1 nbdcbt-img info d.raw
  expect_msg "must be a plain file name"
  [ "$(sha256sum d.raw ../victim)" = "$before" ] && [ -f d.raw.qbm ] || {
    echo "FAIL: a descriptor naming $bad changed a file"; fail=1; }
done
restore
edit 'q["intent"] = {"file": "d.raw", "zone-size": 67108864}'
expect_rc 1 nbdcbt-img info d.raw
expect_msg "intent.file must be a plain file name"
restore
edit 'q["bitmaps"]["b1"]["file"] = q["bitmaps"]["b0"]["file"]'
expect_rc 1 nbdcbt-img info d.raw
expect_msg "name the same file"
for key in recording in-use inconsistent; do
  restore
  edit "q['bitmaps']['b0']['$key'] = 1"
  expect_rc 1 nbdcbt-img info d.raw
  expect_msg "must be true or false"
done
restore
edit 'q["intent"] = 7'
expect_rc 1 nbdcbt-img info d.raw
expect_msg "intent must be an object"
restore
expect_rc 0 nbdcbt-img info d.raw

exit $fail
