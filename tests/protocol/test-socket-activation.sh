#!/usr/bin/env bash
# Systemd socket activation (LISTEN_FDS/LISTEN_PID) through
# nbdinfo -- [ SERVER ... ], and -s (serve one client on stdin/stdout)
# through nbd_connect_command.
. "$top_srcdir/tests/functions.sh"
. "$srcdir/protocol-functions.sh"
only nbdcbt nbdkit
requires nbdinfo --version

case "$SERVER" in
  nbdcbt) server=("$NBDCBT" memory size=1M) ;;
  nbdkit) server=(nbdkit memory 1M) ;;
esac

nbdinfo --size -- [ "${server[@]}" ] > "$tmpdir/size"
if [ "$(cat "$tmpdir/size")" != 1048576 ]; then
  echo "$0: socket activation: size $(cat "$tmpdir/size"), expected 1048576" >&2
  exit 1
fi
nbdinfo --map -- [ "${server[@]}" ] > "$tmpdir/map"
grep -q "hole\|data" "$tmpdir/map"

$PYTHON - "${server[0]}" "${server[@]:1}" <<'PY'
import sys
import nbd
argv = [sys.argv[1], "-s"] + sys.argv[2:]
h = nbd.NBD()
h.connect_command(argv)
assert h.get_size() == 1 << 20, h.get_size()
h.pwrite(b"stdio", 1000)
got = h.pread(5, 1000)
assert got == b"stdio", got
h.flush()
h.shutdown()
# A second -s server: fresh memory, so the data is gone.
h = nbd.NBD()
h.connect_command(argv)
got = h.pread(5, 1000)
assert got == bytes(5), got
h.shutdown()
PY
