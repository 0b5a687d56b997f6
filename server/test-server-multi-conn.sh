#!/usr/bin/env bash
# NBD_FLAG_CAN_MULTI_CONN is the whole chain's answer: a filter without a
# can_multi_conn callback passes on the layer below's, so the dirty filter
# (bitmaps shared by every connection) over the memory or file plugin
# still advertises it.
source "$top_srcdir/tests/functions.sh"
requires nbdinfo --version

can_mc ()
{
  if ! nbdinfo --can multi-conn -- [ "$NBDCBT" "$@" ]; then
    echo "nbdcbt $*: multi-conn not advertised"; exit 1
  fi
}
can_mc memory size=1M
lib=$top_builddir/filters/dirty/.libs/nbdcbt-dirty-filter.so
[ -e "$lib" ] && can_mc --filter=dirty memory size=1M bitmap=b0
if [ -e "$top_builddir/plugins/file/.libs/nbdcbt-file-plugin.so" ]; then
  truncate -s 1M "$tmpdir/disk.raw"
  can_mc file "$tmpdir/disk.raw"
  can_mc -r "$tmpdir/disk.raw"
  [ -e "$lib" ] && can_mc --filter=dirty file "$tmpdir/disk.raw" bitmap=b0
fi
exit 0
