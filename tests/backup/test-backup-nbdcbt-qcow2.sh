#!/usr/bin/env bash
# nbdcbt serving a qcow2 image (nbdcbt IMG.qcow2) whose persistent
# bitmap b0 was added by nbdcbt-img: a full backup, then five rounds of
# stop the server (SIGTERM), clear the bitmap offline with nbdcbt-img,
# restart, write over NBD (data, zeroes, trims), incremental.  Each
# incremental stores no more than the dirty data plus one granule per
# extent, and every point restores exactly.  The server's description
# (-D) is recorded in the manifest and checked.
source "$top_srcdir/tests/functions.sh"
source "$srcdir/backup-functions.sh"
requires nbdcopy --version
requires_built server/nbdcbt tools/img/nbdcbt-img \
  plugins/qcow2/.libs/nbdcbt-qcow2-plugin.so \
  filters/dirty/.libs/nbdcbt-dirty-filter.so
IMG_TOOL=$top_builddir/tools/img/nbdcbt-img

img=$tmpdir/disk.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 0x55 0 6M' -c 'write -P 0x66 30M 2M' \
  "$img" >/dev/null
"$IMG_TOOL" bitmap --add "$img" b0
uri="nbd+unix:///?socket=$tmpdir/sock"

serve ()
{
  rm -f "$tmpdir/pid"
  start_server "$tmpdir/pid" "$tmpdir/sock" -D "test disk" "$img"
}

serve
$BACKUP full "$uri" -o "$dir" --bitmap b0 --disk-id disk1 -q
nbdcopy "$uri" "$tmpdir/point-0.raw"
$BACKUP list "$dir" | grep -q '^description: *"test disk"$'

for n in 1 2 3 4 5; do
  stop_server "$tmpdir/pid"
  "$IMG_TOOL" bitmap --clear "$img" b0
  serve
  nbd_random_writes "$tmpdir/sock" $(( n * 7919 ))
  # What the bitmap reports, to bound what the incremental stores.
  $BACKUP extents "$uri" --bitmap b0 > "$tmpdir/extents-$n"
  nbdcopy "$uri" "$tmpdir/point-$n.raw"
  $BACKUP inc "$uri" -o "$dir" --bitmap b0 --disk-id disk1 -q

  check_stored_bound $n "$dir/backup-000$n.qcow2" "$tmpdir/extents-$n"
  # The bitmap was cleared at the last backup: it must be far from
  # holding the whole allocated disk.
  if [ "$limit" -ge $(( 8 << 20 )) ]; then
    echo "$0: the bitmap reports $limit dirty bytes after a clear" >&2
    exit 1
  fi
done
stop_server "$tmpdir/pid"

# Another description: refused.
rm -f "$tmpdir/pid"
start_server "$tmpdir/pid" "$tmpdir/sock" -D "other disk" "$img"
if $BACKUP inc "$uri" -o "$dir" --bitmap b0 --disk-id disk1 \
     2> "$tmpdir/err"; then
  echo "$0: a changed export description was not detected" >&2; exit 1
fi
cat "$tmpdir/err"
grep -qF 'had the description "test disk", this one has "other disk"' \
  "$tmpdir/err"
stop_server "$tmpdir/pid"

$BACKUP verify "$dir" -q
for n in 0 1 2 3 4 5; do
  qemu-img compare -q -f qcow2 -F raw "$dir/backup-000$n.qcow2" \
    "$tmpdir/point-$n.raw"
  $BACKUP restore "$dir" --until $n -o "$tmpdir/restored.raw" -q
  cmp "$tmpdir/restored.raw" "$tmpdir/point-$n.raw"
done
