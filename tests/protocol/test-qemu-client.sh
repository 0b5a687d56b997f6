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

# qemu as the client: qemu-io writes and verifies patterns, qemu-img
# convert (both directions) and compare, qemu-img info and map.
. "$top_srcdir/tests/functions.sh" || exit 99
. "$srcdir/protocol-functions.sh"
requires qemu-img --version
requires qemu-io --version

start_memory 64M

# qemu-io: patterns at a few places, read back through a new connection.
qemu-io -f raw -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k' "$uri" \
  > "$tmpdir/qio.out"
qemu-io -f raw -c 'write -P 0x11 1M 4k' -c 'write -P 0x22 10M 1M' \
  -c 'write -z 10M 64k' -c 'aio_write -P 0x33 32M 512' -c 'aio_flush' \
  -c 'write -P 0x44 67108352 512' "$uri" >> "$tmpdir/qio.out"
qemu-io -f raw -r -c 'read -P 0xab 0 64k' -c 'read -P 0x11 1M 4k' \
  -c 'read -P 0 10M 64k' -c 'read -P 0x22 10304k 960k' \
  -c 'read -P 0x33 32M 512' -c 'read -P 0x44 67108352 512' \
  -c 'read -P 0 2M 1M' "$uri" > "$tmpdir/verify.out"
if grep -i "fail\|pattern" "$tmpdir/qio.out" "$tmpdir/verify.out"; then
  echo "$0: qemu-io pattern check failed" >&2
  cat "$tmpdir/qio.out" "$tmpdir/verify.out" >&2
  exit 1
fi

# qemu-img info: size.
qemu-img info --output=json "$uri" > "$tmpdir/info.json"
$PYTHON - "$tmpdir/info.json" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
if info["virtual-size"] != 64 << 20:
    sys.exit("qemu-img info: virtual-size %r, expected %d"
             % (info["virtual-size"], 64 << 20))
PY

# Export -> file, compare both ways.
qemu-img convert -f raw -O raw "$uri" "$tmpdir/out.raw"
qemu-img compare -q -f raw -F raw "$uri" "$tmpdir/out.raw"
cmp <(head -c 65536 "$tmpdir/out.raw") <(head -c 65536 /dev/zero | tr '\0' '\253')

# File -> export (-n: the target exists), then compare.
$PYTHON -c '
import random, sys
r = random.Random(7)
with open(sys.argv[1], "wb") as f:
    f.truncate(64 << 20)
    for off in (0, 5 << 20, 33 << 20, (64 << 20) - 8192):
        f.seek(off)
        f.write(bytes(r.getrandbits(8) for _ in range(8192)))
' "$tmpdir/src.raw"
qemu-img convert -n -f raw -O raw "$tmpdir/src.raw" "$uri"
qemu-img compare -q -f raw -F raw "$tmpdir/src.raw" "$uri"

# qemu-img map: JSON, covering the whole disk, data where data was written.
qemu-img map --output=json -f raw "$uri" > "$tmpdir/map.json"
$PYTHON - "$tmpdir/map.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
pos = 0
for e in m:
    if e["start"] != pos:
        sys.exit("qemu-img map: gap or overlap at %d: %r" % (pos, e))
    pos += e["length"]
if pos != 64 << 20:
    sys.exit("qemu-img map covers %d bytes, expected %d" % (pos, 64 << 20))
for off in (0, 5 << 20, 33 << 20, (64 << 20) - 8192):
    e = [x for x in m if x["start"] <= off < x["start"] + x["length"]][0]
    if not e["data"]:
        sys.exit("qemu-img map: written data at %d reported as no data: %r"
                 % (off, e))
PY
