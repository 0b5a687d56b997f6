#!/usr/bin/env bash
# file plugin: nbdinfo --map of a sparse file matches nbdkit's file plugin.
source "$top_srcdir/tests/functions.sh"
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
