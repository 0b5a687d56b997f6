#!/usr/bin/env bash
# -p: a progress bar on a terminal (a pty from script(1)), nothing on
# standard error otherwise.
source "$top_srcdir/tests/functions.sh"
source "$srcdir/backup-functions.sh"
requires script --version

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 0x55 0 8M' "$img" >/dev/null
serve_qemu "$img"

# Not a terminal: quiet.
$BACKUP full "$uri" -o "$tmpdir/a" -p -q 2> "$tmpdir/err"
test ! -s "$tmpdir/err"

# A terminal: the bar, redrawn in place, ending at 100%.
bin=$(command -v $BACKUP)
script -qec "'$bin' full '$uri' -o '$tmpdir/b' -p" /dev/null > "$tmpdir/tty"
tr '\r' '\n' < "$tmpdir/tty" > "$tmpdir/lines"
cat "$tmpdir/lines"
grep -aq '^copying \[#*-*\] *0\.0% 0 MiB' "$tmpdir/lines"
grep -aq '^copying \[#\{40\}\] 100\.0% 8 MiB' "$tmpdir/lines"
grep -aq '^full backup .*backup-0000.qcow2' "$tmpdir/lines"
stop_qemu
