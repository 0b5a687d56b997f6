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

# libnbd's tools against the file plugin on a sparse file: nbdinfo --map
# equals what nbdkit's file plugin says for the same file; nbdinfo --json
# sanity; nbdcopy round trip (file -> export -> file).
. "$top_srcdir/tests/functions.sh" || exit 99
. "$srcdir/protocol-functions.sh"
requires nbdinfo --version
requires nbdcopy --version
requires nbdkit file --version

# A sparse file with data and holes.
f=$tmpdir/sparse.raw
truncate -s 8M "$f"
for off in 0 256 1280 1344 2047; do   # in 4 KiB blocks
  dd if=/dev/urandom of="$f" bs=4096 seek=$off count=16 conv=notrunc \
     status=none
done
truncate -s 8M "$f"

start_file "$f"
ours=$uri
nbdinfo --map "$ours" > "$tmpdir/map.ours"

# nbdkit's view of the same file.
refsock=$tmpdir/ref.sock
nbdkit -f -U "$refsock" -P "$tmpdir/ref.pid" -r file "$f" &
refpid=$!
cleanup_fn "kill $refpid 2>/dev/null; wait $refpid 2>/dev/null"
wait_for_file "$tmpdir/ref.pid" 30
nbdinfo --map "nbd+unix:///?socket=$refsock" > "$tmpdir/map.ref"
if ! cmp -s "$tmpdir/map.ours" "$tmpdir/map.ref"; then
  echo "$0: nbdinfo --map differs from nbdkit's file plugin" >&2
  diff -u "$tmpdir/map.ref" "$tmpdir/map.ours" >&2
  exit 1
fi

# nbdinfo --json: size, writable, the usual capabilities.
nbdinfo --json "$ours" > "$tmpdir/info.json"
$PYTHON - "$tmpdir/info.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
e = j["exports"][0]
want = {"export-size": 8 << 20, "is_read_only": False, "can_flush": True}
bad = {k: (v, e.get(k)) for k, v in want.items() if e.get(k) != v}
if j.get("protocol") != "newstyle-fixed":
    bad["protocol"] = ("newstyle-fixed", j.get("protocol"))
if "base:allocation" not in e.get("contexts", []):
    bad["contexts"] = ("base:allocation", e.get("contexts"))
if bad:
    sys.exit("nbdinfo --json: (expected, got): %r" % bad)
PY
nbdinfo --can flush "$ours"
nbdinfo --can write "$ours"

# nbdcopy: export -> file is identical to the file; file -> export too.
nbdcopy "$ours" "$tmpdir/copy.raw"
cmp "$f" "$tmpdir/copy.raw"
dd if=/dev/urandom of="$tmpdir/new.raw" bs=1M count=8 status=none
nbdcopy "$tmpdir/new.raw" "$ours"
nbdcopy "$ours" "$tmpdir/back.raw"
cmp "$tmpdir/new.raw" "$tmpdir/back.raw"
cmp "$tmpdir/new.raw" "$f"     # the export really is the file
