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
for m in server/nbdcbt tools/img/nbdcbt-img \
         plugins/qcow2/.libs/nbdcbt-qcow2-plugin.so \
         filters/dirty/.libs/nbdcbt-dirty-filter.so; do
  if [ ! -e "$top_builddir/$m" ]; then
    echo "$0: skipped: $m is not built yet"
    exit 77
  fi
done
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

# writes N: random data writes (some unaligned), zeroes and trims.
writes ()
{
  $PYTHON - "$tmpdir/sock" $1 <<'EOT'
import nbd, random, sys
r = random.Random(int(sys.argv[2]) * 7919)
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

serve
$BACKUP full "$uri" -o "$dir" --bitmap b0 --disk-id disk1 -q
nbdcopy "$uri" "$tmpdir/point-0.raw"
$BACKUP list "$dir" | grep -q '^description: *"test disk"$'

for n in 1 2 3 4 5; do
  stop_server "$tmpdir/pid"
  "$IMG_TOOL" bitmap --clear "$img" b0
  serve
  writes $n
  # What the bitmap reports, to bound what the incremental stores.
  $BACKUP extents "$uri" --bitmap b0 > "$tmpdir/extents-$n"
  nbdcopy "$uri" "$tmpdir/point-$n.raw"
  $BACKUP inc "$uri" -o "$dir" --bitmap b0 --disk-id disk1 -q

  file=$dir/backup-000$n.qcow2
  stored=$(layer_data_bytes "$file")
  limit=$(awk '$3 == "data" { s += $2 + 65536 } END { print s + 0 }' \
          "$tmpdir/extents-$n")
  echo "backup $n: stored $stored bytes of data, limit $limit"
  if [ "$stored" -gt "$limit" ]; then
    echo "$0: incremental $n stores $stored bytes, more than $limit" >&2
    exit 1
  fi
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
