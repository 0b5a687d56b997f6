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

# Helpers for the nbdcbt-backup tests (sourced after tests/functions.sh).

requires qemu-img --version
requires qemu-io --version
requires qemu-nbd --version
requires nbdcbt-backup --version

BACKUP=nbdcbt-backup

# serve_qemu IMAGE [ARGS]: serve a qcow2 image with bitmap b0 exported on
# $tmpdir/sock; sets $uri and $qpid.  Stop with stop_qemu.
serve_qemu ()
{
  local img=$1; shift
  rm -f "$tmpdir/qpid" "$tmpdir/sock"
  qemu-nbd -t -f qcow2 "$@" -k "$tmpdir/sock" --pid-file="$tmpdir/qpid" \
    "$img" &
  qpid=$!
  cleanup_fn "kill $qpid 2>/dev/null; wait $qpid 2>/dev/null"
  wait_for_file "$tmpdir/qpid" 30
  uri="nbd+unix:///?socket=$tmpdir/sock"
}

stop_qemu ()
{
  kill "$qpid" 2>/dev/null || :
  wait "$qpid" 2>/dev/null || :
}

# random_writes IMAGE SEED: a few data writes (some unaligned), zero
# writes and discards through qemu-io, which records them in the
# image's enabled bitmaps.
random_writes ()
{
  local img=$1 i off len args=()
  RANDOM=$2
  for i in 1 2 3 4 5 6; do
    off=$(( (RANDOM % 1000) * 61440 + RANDOM % 4096 ))
    len=$(( (RANDOM % 64 + 1) * 4096 + RANDOM % 512 ))
    args+=(-c "write -P $(( RANDOM % 255 + 1 )) $off $len")
  done
  for i in 1 2; do
    off=$(( (RANDOM % 900) * 65536 ))
    args+=(-c "write -z $off $(( (RANDOM % 8 + 1) * 65536 ))")
    off=$(( (RANDOM % 900) * 65536 ))
    args+=(-c "discard $off $(( (RANDOM % 8 + 1) * 65536 ))")
  done
  qemu-io -f qcow2 "${args[@]}" "$img" >/dev/null
}

# expect_refusal MESSAGE CMD...: CMD exits 1 saying MESSAGE, and the
# chain in $dir is unchanged (its manifest as recorded in $manifest, no
# part file left).
expect_refusal ()
{
  expect_error "$@"
  test "$(cat "$dir/manifest.json")" = "$manifest"
  test -z "$(ls -a "$dir" | grep '\.part$')"
}

# nbd_random_writes SOCKET SEED: a few data writes (some unaligned), zero
# writes and trims over NBD, then a flush.
nbd_random_writes ()
{
  $PYTHON - "$1" "$2" <<'EOT'
import nbd, random, sys
r = random.Random(int(sys.argv[2]))
h = nbd.NBD()
h.connect_unix(sys.argv[1])
size = h.get_size()
for i in range(6):
    off = r.randrange(0, size - (300 << 10))
    h.pwrite(bytes([r.randrange(1, 256)]) * r.randrange(1, 300 << 10), off)
for i in range(2):
    h.zero(r.randrange(1, 9) << 16, r.randrange(0, 900) << 16)
    h.trim(r.randrange(1, 9) << 16, r.randrange(0, 900) << 16)
h.flush()
h.shutdown()
EOT
}

# check_stored_bound N FILE EXTENTS: incremental N (FILE) stores no more
# data than the dirty extents ("nbdcbt-backup extents" output) plus one
# 64 KiB granule each.  Prints the limit in $limit.
check_stored_bound ()
{
  local n=$1 file=$2 extents=$3 stored
  stored=$(layer_data_bytes "$file")
  limit=$(awk '$3 == "data" { s += $2 + 65536 } END { print s + 0 }' \
          "$extents")
  echo "backup $n: stored $stored bytes of data, limit $limit"
  if [ "$stored" -gt "$limit" ]; then
    echo "$0: incremental $n stores $stored bytes, more than $limit" >&2
    exit 1
  fi
}

# layer_data_bytes FILE: bytes of data allocated in this qcow2 layer alone.
layer_data_bytes ()
{
  qemu-img map --output=json \
    "json:{\"driver\":\"qcow2\",\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"$1\"}}" |
    $PYTHON -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin)
          if e["data"] and e.get("depth", 0) == 0))'
}

# make_chain IMG DIR: a 64M qcow2 disk IMG with bitmap b0, a full backup
# and five incrementals of it into DIR (random writes, zero writes and
# discards in between), the disk as of backup N in $tmpdir/point-N.raw.
make_chain ()
{
  local img=$1 dir=$2 n
  qemu-img create -q -f qcow2 "$img" 64M
  qemu-io -f qcow2 -c 'write -P 0x55 0 40M' -c 'write -P 0x66 48M 2M' \
    -c 'write -P 0x77 63M 1M' "$img" >/dev/null
  qemu-img bitmap --add "$img" b0
  for n in 0 1 2 3 4 5; do
    [ $n -eq 0 ] || random_writes "$img" $n
    serve_qemu "$img" -B b0
    $BACKUP auto "$uri" -o "$dir" --bitmap b0 -q
    stop_qemu
    qemu-img convert -f qcow2 -O raw "$img" "$tmpdir/point-$n.raw"
    qemu-img bitmap --clear "$img" b0
  done
}

# chain_indexes DIR: the indexes of the backups DIR's manifest lists.
chain_indexes ()
{
  $PYTHON -c 'import json, sys
print(*[b["index"] for b in json.load(open(sys.argv[1]))["backups"]])' \
    "$1/manifest.json"
}

# check_points DIR: DIR verifies and every point it lists restores to
# $tmpdir/point-N.raw.
check_points ()
{
  local dir=$1 n
  $BACKUP verify -q "$dir"
  for n in $(chain_indexes "$dir"); do
    $BACKUP restore "$dir" --until $n -o "$tmpdir/restored.raw" -q
    cmp "$tmpdir/restored.raw" "$tmpdir/point-$n.raw"
  done
}

# write_odd_round SOCKET N: round N of the odd-size tests' writes through
# the server on SOCKET: 64 KiB at N * 3000000 and the export's last 129
# bytes (its last byte apart), each round with its own pattern.
write_odd_round ()
{
  $PYTHON - "$1" "$2" <<'EOT'
import nbd, sys
n = int(sys.argv[2])
h = nbd.NBD()
h.connect_unix(sys.argv[1])
size = h.get_size()
h.pwrite(bytes([n + 1]) * 65536, n * 3000000)
h.pwrite(bytes([n + 0x40]) * 129, size - 129)
h.pwrite(bytes([n + 0x80]), size - 1)
h.shutdown()
EOT
}
