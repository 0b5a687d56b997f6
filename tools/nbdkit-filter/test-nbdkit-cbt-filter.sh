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

# nbdkit-cbt-filter: the dirty filter's code inside real nbdkit.  Writes
# through nbdkit land in the raw image's QBM sidecar; nbdcbt-img map reads
# the map afterwards; the bitmap keeps recording across restarts; after
# nbdkit is killed (no clean store) the map is still a superset of the
# writes (the intent record).
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdkit --version
requires nbdsh --version

filter="$top_builddir/tools/nbdkit-filter/.libs/nbdkit-cbt-filter.so"
# An --enable-sanitizers build instruments the filter, but nbdkit itself
# is Debian's, without the sanitizer runtimes: such a filter cannot be
# loaded into it (ASan must come first), and preloading the runtimes
# into nbdkit is not a configuration this test can vouch for.
if ldd "$filter" | grep -Eq 'lib(asan|ubsan)\.so'; then
  echo "$0: skipped: the filter is built with sanitizers; Debian's nbdkit is not"
  exit 77
fi
img="$tmpdir/disk.raw"
truncate -s 16M "$img"

# start_nbdkit N ARGS...: nbdkit with the filter on socket $tmpdir/kN.
start_nbdkit ()
{
  local n=$1; shift
  nbdkit -f -U "$tmpdir/k$n" -P "$tmpdir/k$n.pid" --filter="$filter" \
    file "$img" "$@" &
  nkpid=$!
  cleanup_fn "kill $nkpid 2>/dev/null"
  wait_for_file "$tmpdir/k$n.pid"
}
stop_nbdkit ()
{
  kill "$nkpid"
  wait "$nkpid"
}
write () # N OFFSET LENGTH
{
  nbdsh -u "nbd+unix:///?socket=$tmpdir/k$1" \
    -c "h.pwrite(b'\\x55' * $3, $2)"
}
map () # the dirty extents of b0 as "OFFSET LENGTH" lines
{
  nbdcbt-img map --bitmap=b0 "$img" | awk '$4 == "dirty" {print $1, $2}'
}

# Bad parameters: nbdkit refuses to start, with the dirty filter's words.
if nbdkit -U "$tmpdir/bad" --filter="$filter" file "$img" bitmap=b0:1000 \
     --run true 2> "$tmpdir/err"; then
  echo "$0: a bad granularity was accepted" >&2; exit 1
fi
grep -q "power of 2" "$tmpdir/err"
if nbdkit -U "$tmpdir/bad" --filter="$filter" memory 1M bitmap=b0 \
     --run true 2> "$tmpdir/err"; then
  echo "$0: no image, but accepted" >&2; exit 1
fi
grep -q "cbt-image=PATH" "$tmpdir/err"

# 1. Writes through nbdkit; the map after a clean stop is the workload.
start_nbdkit 1 bitmap=b0
write 1 $((1024*1024)) 4096
write 1 $((5*1024*1024 + 100)) 70000
stop_nbdkit
test -f "$img.qbm"
map > "$tmpdir/map1"
cat "$tmpdir/map1"
diff -u - "$tmpdir/map1" <<MAP
1048576 65536
5242880 131072
MAP

# 2. Restarted, the same bitmap goes on recording (no bitmap= needed).
start_nbdkit 2
write 2 $((9*1024*1024)) 512
stop_nbdkit
map > "$tmpdir/map2"
diff -u - "$tmpdir/map2" <<MAP
1048576 65536
5242880 131072
9437184 65536
MAP
# The data went to the image.
cmp -n 4096 -i $((1024*1024)):0 "$img" <(printf '\x55%.0s' $(seq 4096))

# 3. nbdkit killed after a write: no clean store, but the intent record
# covers the write (a superset, never a miss).
start_nbdkit 3
write 3 $((13*1024*1024)) 4096
kill -9 "$nkpid"
wait "$nkpid" || :
map > "$tmpdir/map3"
cat "$tmpdir/map3"
"$PYTHON" - "$tmpdir/map3" <<'PY'
import sys
ext = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
def covered(off, ln):
    return any(o <= off and off + ln <= o + n for o, n in ext)
for off, ln in ((1 << 20, 4096), (5 * 2**20 + 100, 70000),
                (9 * 2**20, 512), (13 * 2**20, 4096)):
    assert covered(off, ln), (off, ln, ext)
print("superset ok")
PY
nbdcbt-img check "$img" || true
