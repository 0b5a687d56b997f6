#!/usr/bin/env bash
# Several connections when the server offers multi-conn (nbdkit's file
# plugin does): small requests from 4 connections written concurrently
# into one qcow2 file give an exact copy; holes stay unallocated.
source "$top_srcdir/tests/functions.sh"
source "$srcdir/backup-functions.sh"
requires nbdkit --filter=log file --version

raw=$tmpdir/disk.raw
truncate -s 64M "$raw"
$PYTHON - "$raw" <<'EOT'
import os, random, sys
r = random.Random(7)
with open(sys.argv[1], "r+b") as f:
    for i in range(40):
        f.seek(r.randrange(0, 63 << 20))
        f.write(os.urandom(r.randrange(1, 1 << 20)))
EOT
nbdkit -f -U "$tmpdir/sock" -P "$tmpdir/pid" --filter=log \
  file "$raw" logfile="$tmpdir/log" &
npid=$!
cleanup_fn "kill $npid 2>/dev/null; wait $npid 2>/dev/null"
wait_for_file "$tmpdir/pid" 30
uri="nbd+unix:///?socket=$tmpdir/sock"

$BACKUP full "$uri" -o "$tmpdir/b" -C 4 -R 8 -S 64K
kill $npid; wait $npid || :
qemu-img compare -q -f qcow2 -F raw "$tmpdir/b/backup-0000.qcow2" "$raw"
qemu-img check -q "$tmpdir/b/backup-0000.qcow2"
$BACKUP verify "$tmpdir/b" -q
conns=$(grep -c 'connection=[0-9]* Connect' "$tmpdir/log" || :)
echo "connections: $conns"
test "$conns" -eq 4
# Holes were not copied.
test "$(layer_data_bytes "$tmpdir/b/backup-0000.qcow2")" -lt $(( 48 << 20 ))
