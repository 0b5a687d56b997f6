# Helpers for the nbdcbt-backup tests (sourced after tests/functions.sh).

requires qemu-img --version
requires qemu-io --version
requires qemu-nbd --version
requires nbdcbt-backup --version

BACKUP=nbdcbt-backup

# serve_qemu IMAGE [ARGS]: serve a qcow2 image with bitmap b0 exported on
# $tmpdir/sock; sets $uri and $qpid.  Stop with stop_qemu.
serve_qemu ()
{
  local img=$1; shift
  rm -f "$tmpdir/qpid" "$tmpdir/sock"
  qemu-nbd -t -f qcow2 "$@" -k "$tmpdir/sock" --pid-file="$tmpdir/qpid" \
    "$img" &
  qpid=$!
  cleanup_fn "kill $qpid 2>/dev/null; wait $qpid 2>/dev/null"
  wait_for_file "$tmpdir/qpid" 30
  uri="nbd+unix:///?socket=$tmpdir/sock"
}

stop_qemu ()
{
  kill "$qpid" 2>/dev/null || :
  wait "$qpid" 2>/dev/null || :
}

# random_writes IMAGE SEED: a few data writes (some unaligned), zero
# writes and discards through qemu-io, which records them in the
# image's enabled bitmaps.
random_writes ()
{
  local img=$1 i off len args=()
  RANDOM=$2
  for i in 1 2 3 4 5 6; do
    off=$(( (RANDOM % 1000) * 61440 + RANDOM % 4096 ))
    len=$(( (RANDOM % 64 + 1) * 4096 + RANDOM % 512 ))
    args+=(-c "write -P $(( RANDOM % 255 + 1 )) $off $len")
  done
  for i in 1 2; do
    off=$(( (RANDOM % 900) * 65536 ))
    args+=(-c "write -z $off $(( (RANDOM % 8 + 1) * 65536 ))")
    off=$(( (RANDOM % 900) * 65536 ))
    args+=(-c "discard $off $(( (RANDOM % 8 + 1) * 65536 ))")
  done
  qemu-io -f qcow2 "${args[@]}" "$img" >/dev/null
}

# layer_data_bytes FILE: bytes of data allocated in this qcow2 layer alone.
layer_data_bytes ()
{
  qemu-img map --output=json \
    "json:{\"driver\":\"qcow2\",\"backing\":null,\"file\":{\"driver\":\"file\",\"filename\":\"$1\"}}" |
    $PYTHON -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin)
          if e["data"] and e.get("depth", 0) == 0))'
}
