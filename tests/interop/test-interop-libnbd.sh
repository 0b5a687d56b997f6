#!/usr/bin/env bash
# A libnbd C client (dirty-map) reads the same dirty map from each server
# after the same workload, and agrees with nbdinfo --map.
source "$top_srcdir/tests/functions.sh"
requires nbdinfo --version
: "${INTEROP_SERVER:=both}"

$PYTHON - "$tmpdir" <<'PYEOF'
import os, sys
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "interop"))
from interop import SERVERS, requirements, start, connect, replay, workload
requirements()
ops = workload(4242, 4096)
for name in SERVERS:
    with start(name, 4096) as srv:
        h = connect(srv)
        replay(h, ops)
        h.shutdown()
        rc = os.system("./dirty-map '%s' qemu:dirty-bitmap:b0 > %s/map-%s"
                       % (srv.uri, sys.argv[1], name))
        assert rc == 0, "dirty-map failed on " + name
        rc = os.system("nbdinfo --map=qemu:dirty-bitmap:b0 '%s' | "
                       "awk '{print $1, $2, $3}' > %s/nbdinfo-%s"
                       % (srv.uri, sys.argv[1], name))
        assert rc == 0
PYEOF
n=0
for f in "$tmpdir"/map-*; do
  s=${f##*/map-}
  diff -u "$tmpdir/nbdinfo-$s" "$f"
  grep -q ' 1$' "$f"
  n=$((n + 1))
done
[ $n -ge 1 ]
if [ -e "$tmpdir/map-qemu-nbd" ] && [ -e "$tmpdir/map-nbdcbt" ]; then
  diff -u "$tmpdir/map-qemu-nbd" "$tmpdir/map-nbdcbt"
fi
