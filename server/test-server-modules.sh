#!/usr/bin/env bash
# The module API: a module built for an older API version is refused with
# a clear message; the same plugin and filter serve as differently
# configured instances in one server (see also test-server-exports.sh and
# test-exports), and each module's load runs once.
source "$top_srcdir/tests/functions.sh"

old=$top_builddir/server/.libs/nbdcbt-oldapi-plugin.so
[ -e "$old" ] || { echo "$0: skipped: $old was not built"; exit 77; }
status=0
"$NBDCBT" -f -U "$tmpdir/sock" "$old" 2>"$tmpdir/err" || status=$?
[ $status -eq 1 ] || { echo "old plugin: exit status $status"; exit 1; }
grep -q "nbdcbt-oldapi-plugin.so: this plugin was built for nbdcbt module API version 1, but this server needs version 2 (per-instance state): rebuild it" "$tmpdir/err" || {
  echo "old plugin: unclear message:"; cat "$tmpdir/err"; exit 1; }
[ ! -e "$tmpdir/sock" ]
# --dump-plugin of a current plugin shows the instance callbacks.
"$NBDCBT" --dump-plugin memory >"$tmpdir/dump"
grep -q '^api_version=2$' "$tmpdir/dump"
grep -q '^has_instance_new=1$' "$tmpdir/dump"
exit 0
