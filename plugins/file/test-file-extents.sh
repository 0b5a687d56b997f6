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

# file plugin: nbdinfo --map of a sparse file matches nbdkit's file plugin.
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdinfo --version
requires nbdkit file --version

img=$tmpdir/sparse.img
truncate -s 64M "$img"
for off in 0 3 17 18 40 63; do
  dd if=/dev/urandom of="$img" bs=1M count=1 seek=$off conv=notrunc \
     status=none
done
# A small write in the middle of a megabyte, and data up to the end.
printf 'hello' | dd of="$img" bs=1 seek=$((30 * 1048576 + 77)) \
  conv=notrunc status=none

start_server "$tmpdir/pid" "$tmpdir/sock" file "$img"
nbdkit -f -U "$tmpdir/kit.sock" -P "$tmpdir/kit.pid" file "$img" &
kitpid=$!
cleanup_fn "kill $kitpid 2>/dev/null; wait $kitpid 2>/dev/null"
wait_for_file "$tmpdir/kit.pid"

nbdinfo --map "nbd+unix:///?socket=$tmpdir/sock" > "$tmpdir/ours"
nbdinfo --map "nbd+unix:///?socket=$tmpdir/kit.sock" > "$tmpdir/theirs"
cat "$tmpdir/ours"
if ! cmp -s "$tmpdir/ours" "$tmpdir/theirs"; then
  echo "$0: map differs from nbdkit's:" >&2
  diff -u "$tmpdir/theirs" "$tmpdir/ours" >&2
  exit 1
fi
# Holes really were found (the file system supports SEEK_HOLE here).
if [ "$(stat -c %b "$img")" -lt $(( 64 * 2048 )) ]; then
  grep -q 'hole,zero' "$tmpdir/ours"
fi

# A totally empty file and a fully allocated one.
truncate -s 0 "$img"; truncate -s 4M "$img"
nbdinfo --map "nbd+unix:///?socket=$tmpdir/sock" > "$tmpdir/ours"
nbdinfo --map "nbd+unix:///?socket=$tmpdir/kit.sock" > "$tmpdir/theirs"
cmp "$tmpdir/ours" "$tmpdir/theirs"
