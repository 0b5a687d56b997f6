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


# Damaged or hand-edited sidecars: each is refused with a clear error
# and changes nothing, or is handled so that no bitmap is lost.
#  - a descriptor whose generation lags the names of its files (edited,
#    or restored from a backup): the next update must not write a new
#    bitmap file under a name in use;
#  - a generation that cannot grow: the update is refused (before, the
#    writer wrapped it to a negative number and made a descriptor that no
#    reader takes);
#  - a bitmap file named D.intent or D.intent.tmp, which the first
#    read-write open replaces with the intent record;
#  - a key twice in one JSON object (json-c keeps the last silently), and
#    non-JSON (comments);
#  - a FIFO where a sidecar file should be: an error, not a hang;
#  - `nbdcbt IMAGE.qbm` with a damaged descriptor, or one of another
#    version: before, it served the descriptor file itself as a disk.

source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires qemu-io --version
requires timeout --version
mkdir "$tmpdir/w"
cd "$tmpdir/w"

fail=0
expect ()
{
  local want=$1 pat=$2 rc=0; shift 2
  timeout 20 "$@" > out.txt 2>&1 || rc=$?
  if [ "$rc" -ne "$want" ] || { [ -n "$pat" ] && ! grep -qF -- "$pat" out.txt; }; then
    echo "FAIL: '$*' exited $rc, expected $want with '$pat':"; cat out.txt
    fail=1
  fi
}
edit () { $PYTHON -c '
import json, os, sys
d = json.load(open("d.raw.qbm"))
q = d["QBM"]
exec(sys.argv[1])
json.dump(d, open("d.raw.qbm", "w"), indent=1)' "$1"; }
counts () { nbdcbt-img info d.raw | grep -E 'name:|count:' | tr -s ' \n' ' '; }

truncate -s 16M d.raw
qemu-img create -q -f qcow2 t.qcow2 16M
qemu-img bitmap --add t.qcow2 x
qemu-io -c 'write 1M 64k' t.qcow2 >/dev/null
nbdcbt-img bitmap --add d.raw b0
nbdcbt-img bitmap --add d.raw b1
nbdcbt-img bitmap --merge x -b t.qcow2 -F qcow2 d.raw b1
cp -a . ../good
restore () { rm -rf ./*; cp -a ../good/. .; }

# The generation lags: b1's file has the name the next update would
# give b0's new data.
edit 'g = q["generation"]
f = "d.raw.qbm.%d.0.bitmap" % (g + 1)
os.rename(q["bitmaps"]["b1"]["file"], f)
q["bitmaps"]["b1"]["file"] = f
q["generation"] = g'
expect 0 '' nbdcbt-img check d.raw
qemu-io -c 'write 5M 64k' t.qcow2 >/dev/null
expect 0 '' nbdcbt-img bitmap --merge x -b t.qcow2 -F qcow2 d.raw b0
expect 0 'No errors were found' nbdcbt-img check d.raw
[ "$(counts)" = " name: b0 count: 131072 name: b1 count: 65536 " ] || {
  echo "FAIL: after an update of a lagging descriptor: $(counts)"; fail=1; }

# A generation that cannot grow.
restore
edit 'q["generation"] = 2**63 - 1'
cp d.raw.qbm before.qbm
expect 1 'generation cannot grow' nbdcbt-img bitmap --add d.raw b2
expect 1 'generation cannot grow' nbdcbt-img bitmap --remove d.raw b0
cmp -s before.qbm d.raw.qbm || { echo "FAIL: a refused edit changed it"; fail=1; }
expect 0 'name: b1' nbdcbt-img info d.raw

# Bitmap files under the names the intent record is written to.
for bad in d.raw.qbm.intent d.raw.qbm.intent.tmp; do
  restore
  edit "os.rename(q['bitmaps']['b1']['file'], '$bad')
q['bitmaps']['b1']['file'] = '$bad'"
  expect 1 'must be a plain file name' nbdcbt-img info d.raw
  expect 1 'must be a plain file name' "$NBDCBT" -f -U sock d.raw
  cmp -s "$bad" ../good/"$(cd ../good && ls d.raw.qbm.*.bitmap | tail -1)" \
    || { echo "FAIL: $bad changed"; fail=1; }
done

# A key twice: which entry counts would be the parser's whim.
for what in 'bitmaps' 'b1' 'in-use'; do
  restore
  $PYTHON - "$what" <<'PY'
import json, sys
t = open("d.raw.qbm").read()
q = json.loads(t)["QBM"]
b1 = dict(q["bitmaps"]["b1"], **{"in-use": True})
key = sys.argv[1]
val = {"bitmaps": {"b1": b1}, "b1": b1, "in-use": True}[key]
i = t.index('"%s": ' % key)
t = t[:i] + '"%s": %s, ' % (key, json.dumps(val)) + t[i:]
open("d.raw.qbm", "w").write(t)
PY
  cp d.raw.qbm before.qbm
  expect 1 'same key twice' nbdcbt-img info d.raw
  expect 1 'same key twice' nbdcbt-img bitmap --remove d.raw b0
  expect 1 'same key twice' "$NBDCBT" -f -U sock d.raw
  cmp -s before.qbm d.raw.qbm || { echo "FAIL: refused, but changed"; fail=1; }
done
restore
sed -i 's|"QBM": {|"QBM": { /* "b1": { } */|' d.raw.qbm
expect 1 'not valid JSON' nbdcbt-img info d.raw

# The descriptor given in the image's place, damaged or of another
# version: an error, never the descriptor served as a disk.
for damage in "sed -i s/\"version\":.1/\"version\":2/ d.raw.qbm" \
              "truncate -s 100 d.raw.qbm"; do
  restore
  $damage
  grep -q '"QBM"' d.raw.qbm || { echo "FAIL: $damage: no QBM left"; fail=1; }
  cp d.raw.qbm before.qbm
  expect 1 'd.raw.qbm: ' "$NBDCBT" -f -U sock d.raw.qbm
  grep -qE 'unsupported QBM version 2|truncated' out.txt || {
    echo "FAIL: $damage: served, or another error:"; cat out.txt; fail=1; }
  expect 1 'd.raw.qbm: ' nbdcbt-img info d.raw.qbm
  grep -q 'd.raw.qbm.qbm' out.txt && { echo "FAIL: info took it for an image"; fail=1; }
  expect 1 'd.raw.qbm: ' nbdcbt-img bitmap --add d.raw.qbm x
  cmp -s before.qbm d.raw.qbm && [ ! -e d.raw.qbm.qbm ] || {
    echo "FAIL: $damage: the descriptor changed or got a sidecar"; fail=1; }
done

# FIFOs in the sidecar's place: errors, not hangs.
restore
rm d.raw.qbm && mkfifo d.raw.qbm
expect 1 'd.raw.qbm: not a regular file' nbdcbt-img info d.raw
expect 1 'd.raw.qbm: not a regular file' "$NBDCBT" -f -U sock d.raw
restore
f=$($PYTHON -c 'import json;print(json.load(open("d.raw.qbm"))["QBM"]["bitmaps"]["b1"]["file"])')
rm "$f" && mkfifo "$f"
expect 1 "bitmap 'b1': not a regular file" nbdcbt-img map --bitmap b1 d.raw
expect 1 "bitmap 'b1': not a regular file" "$NBDCBT" -f -U sock d.raw
restore
edit 'q["intent"] = {"file": "d.raw.qbm.intent", "zone-size": 1 << 20}
q["bitmaps"]["b1"]["in-use"] = True'
mkfifo d.raw.qbm.intent
expect 1 'is inconsistent' nbdcbt-img map --bitmap b1 d.raw
expect 2 'not a regular file' nbdcbt-img check d.raw

exit $fail
