#!/usr/bin/env bash
# memory plugin: size parsing.  Good sizes serve the right size; bad ones
# make the server exit with an error before it serves.
source "$top_srcdir/tests/functions.sh"
requires nbdinfo --version

check_size ()
{
  local arg=$1 want=$2 got
  start_server "$tmpdir/pid.$want" "$tmpdir/sock.$want" memory "$arg"
  got=$(nbdinfo --size "nbd+unix:///?socket=$tmpdir/sock.$want")
  if [ "$got" != "$want" ]; then
    echo "$0: memory $arg: size $got, expected $want" >&2
    exit 1
  fi
  stop_server "$tmpdir/pid.$want"
}

check_size size=1G 1073741824
check_size size=512k 524288
check_size 4096 4096
check_size size=0 0

for bad in size=-1 size=1Q size=abc size= 1G1 size=99999999E; do
  if "$NBDCBT" -U "$tmpdir/bad.sock" memory $bad \
       >"$tmpdir/out" 2>&1 </dev/null; then
    echo "$0: memory $bad: the server accepted a bad size" >&2
    exit 1
  fi
  if ! grep -qi 'size' "$tmpdir/out"; then
    echo "$0: memory $bad: error does not mention the size:" >&2
    cat "$tmpdir/out" >&2
    exit 1
  fi
done

# No size at all.
if "$NBDCBT" -U "$tmpdir/bad.sock" memory >"$tmpdir/out" 2>&1 </dev/null; then
  echo "$0: memory without size was accepted" >&2
  exit 1
fi
grep -q 'size' "$tmpdir/out"
