#!/usr/bin/env bash
# Command line: --version, --help, PLUGIN --help, --dump-plugin, and clear
# errors (exit 1) for a missing plugin, a bad parameter or bad options.
source "$top_srcdir/tests/functions.sh"

"$NBDCBT" --version | grep -q '^nbdcbt [0-9]'
"$NBDCBT" --help | grep -q -- '--filter=NAME'
"$NBDCBT" memory --help | grep -q 'size='
"$NBDCBT" --help memory | grep -q 'size='

out=$("$NBDCBT" --dump-plugin memory)
for key in path name version thread_model has_pread has_pwrite; do
  echo "$out" | grep -q "^$key=" || { echo "--dump-plugin lacks $key"; exit 1; }
done
echo "$out" | grep -q '^name=memory$'

# expect_fail PATTERN ARGS...: exit status 1 and PATTERN on stderr.
expect_fail ()
{
  local pattern=$1 status=0; shift
  "$NBDCBT" "$@" 2>"$tmpdir/err" >/dev/null || status=$?
  if [ "$status" -ne 1 ]; then
    echo "nbdcbt $*: exit status $status, expected 1"; exit 1
  fi
  if ! grep -q -- "$pattern" "$tmpdir/err"; then
    echo "nbdcbt $*: error message lacks '$pattern':"; cat "$tmpdir/err"
    exit 1
  fi
}
expect_fail "cannot find plugin 'nosuchplugin'" nosuchplugin
expect_fail "cannot find filter 'nosuchfilter'" --filter=nosuchfilter memory size=1M
expect_fail "no plugin or file given"
expect_fail "could not parse" -t many memory size=1M
expect_fail "cannot be used together" -s -U "$tmpdir/sock" memory size=1M
expect_fail "" -f -U "$tmpdir/sock" memory size=banana
expect_fail "" --no-such-option memory size=1M
# A failed start leaves no socket behind.
[ ! -e "$tmpdir/sock" ]
exit 0
