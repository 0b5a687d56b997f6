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

# A qcow2 image on a read-only mount, served without -r: the plugin warns
# and serves it read-only (as the file plugin does with an unwritable
# file); reads work, writes fail, nothing is written, a clean stop exits 0.
# With the dirty filter (nbdcbt IMAGE) the image's bitmaps stay exported
# and untouched.  Needs a private mount namespace (unshare -m).
source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires qemu-io --version
requires unshare -m true

img_tool=$top_builddir/tools/img/nbdcbt-img
ro=$tmpdir/ro
mkdir "$ro"
qemu-img create -q -f qcow2 "$ro/plain.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 7 0 64k' "$ro/plain.qcow2" >/dev/null
qemu-img create -q -f qcow2 "$ro/bitmaps.qcow2" 16M
qemu-img bitmap --add "$ro/bitmaps.qcow2" b0
qemu-io -f qcow2 -c 'write -P 8 1M 64k' "$ro/bitmaps.qcow2" >/dev/null
with_bitmaps=1
sha256sum "$ro"/*.qcow2 > "$tmpdir/before"

cat > "$tmpdir/client.py" <<'EOF'
import sys, nbd
h = nbd.NBD()
for c in sys.argv[3:]:
    h.add_meta_context(c)
h.connect_unix(sys.argv[1])
assert h.is_read_only(), "export is not read-only"
assert h.pread(4, int(sys.argv[2])) == bytes([7 if sys.argv[2] == "0" else 8]) * 4
try:
    h.pwrite(b"x" * 512, 0)
    sys.exit("a write succeeded")
except nbd.Error:
    pass
for c in sys.argv[3:]:
    assert h.can_meta_context(c), "context %s not exported" % c
h.shutdown()
EOF

cat > "$tmpdir/inner.sh" <<EOF
set -e
mount --bind "$ro" "$ro"
mount -o remount,ro,bind "$ro"
serve () {  # serve ARGS...: run the client against nbdcbt ARGS
  rm -f "$tmpdir/sock" "$tmpdir/pid"
  "$NBDCBT" -f -U "$tmpdir/sock" -P "$tmpdir/pid" "\$@" 2> "$tmpdir/log" &
  p=\$!
  for i in \$(seq 300); do [ -e "$tmpdir/pid" ] && break; kill -0 \$p; sleep 0.1; done
  $PYTHON "$tmpdir/client.py" "$tmpdir/sock" \$CLIENT_ARGS
  kill \$p
  wait \$p
  cat "$tmpdir/log"
  grep -q "serving it read-only" "$tmpdir/log"
}
CLIENT_ARGS=0 serve qcow2 file="$ro/plain.qcow2"
if [ -n "$with_bitmaps" ]; then
  CLIENT_ARGS="1048576 qemu:dirty-bitmap:b0" serve "$ro/bitmaps.qcow2"
fi
EOF

if ! unshare -m bash -c 'mount --bind / /mnt 2>/dev/null && umount /mnt'; then
  echo "$0: skipped: cannot bind-mount in a private mount namespace"
  exit 77
fi
unshare -m bash "$tmpdir/inner.sh"
sha256sum -c --quiet "$tmpdir/before"
qemu-img check -q "$ro/plain.qcow2"
if [ -n "$with_bitmaps" ]; then
  qemu-img info "$ro/bitmaps.qcow2" | grep -q in-use &&
    { echo "FAIL: a bitmap was marked in use"; exit 1; }
fi
echo "ok"
