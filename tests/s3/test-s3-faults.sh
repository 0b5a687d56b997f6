#!/usr/bin/env bash
# nbdcbt
# Copyright (C) 2026 the nbdcbt authors
# All rights reserved.
#
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions are
# met:
#
# * Redistributions of source code must retain the above copyright
# notice, this list of conditions and the following disclaimer.
#
# * Redistributions in binary form must reproduce the above copyright
# notice, this list of conditions and the following disclaimer in the
# documentation and/or other materials provided with the distribution.
#
# * Neither the name of the nbdcbt authors nor the names of its
# contributors may be used to endorse or promote products derived from
# this software without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
# "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
# LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
# PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
# HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
# SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
# LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
# DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
# THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
# (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
# OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

# Faults against a real S3 server (Ceph's RADOS Gateway): a backup
# killed mid-upload (SIGKILL: nothing visible, the next run aborts the
# stale multipart upload; SIGINT: aborted at once), requests failing
# with 503 or stalling (through s3-fault-proxy.py: retried with backoff,
# the backup completes and restores bit-identical), and the server
# itself killed mid-upload and restarted (the backup fails clearly, the
# chain is unchanged, the next run cleans up and succeeds), and a live
# --control backup of a running nbdcbt interrupted mid-upload (its
# session ends as failed, the bitmap keeps the bits).
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
requires nbdkit --filter=delay file --version
requires jq --version
start_s3

url=s3://$bucket/f
raw=$tmpdir/src.raw
$PYTHON -c 'import os,sys; open(sys.argv[1],"wb").write(os.urandom(24<<20))' "$raw"

# serve_raw [DELAY]: nbdkit serving $raw on $nuri, each read delayed.
serve_raw ()
{
  rm -f "$tmpdir/npid" "$tmpdir/nsock"
  nbdkit -f -U "$tmpdir/nsock" -P "$tmpdir/npid" --filter=delay \
    file "$raw" rdelay=${1:-0} &
  npid=$!
  cleanup_fn "kill $npid 2>/dev/null"
  wait_for_file "$tmpdir/npid"
  nuri="nbd+unix:///?socket=$tmpdir/nsock"
}
stop_raw () { kill $npid 2>/dev/null || :; wait $npid 2>/dev/null || :; }

# wait_upload PREFIX: until a multipart upload is open under PREFIX.
wait_upload ()
{
  local i
  for i in $(seq 300); do
    [ -n "$(s3_uploads "$1")" ] && return 0
    sleep 0.2
  done
  echo "$0: no multipart upload appeared" >&2
  return 1
}

# A slow backup: 2.5 MB/s, so that an upload is open for seconds.
SLOW=(-C 1 -R 1 --s3-part-size 5M "${S3[@]}")

serve_raw
$BACKUP full "$nuri" -o "$url" "${S3[@]}"
stop_raw
s3curl "/$bucket/f/manifest.json" > "$tmpdir/m0"
s3_keys f/ > "$tmpdir/k0"

# SIGKILL mid-upload: the chain is as it was, the upload stays open.
serve_raw 100ms
$BACKUP full "$nuri" -o "$url" "${SLOW[@]}" & bpid=$!
wait_upload f/
kill -9 $bpid; wait $bpid || :
stop_raw
s3curl "/$bucket/f/manifest.json" | cmp - "$tmpdir/m0"
s3_keys f/ | cmp - "$tmpdir/k0"
[ -n "$(s3_uploads f/)" ]
$BACKUP verify "$url" "${S3[@]}" -q
# The next run aborts it.
serve_raw
$BACKUP full "$nuri" -o "$url" "${S3[@]}" 2>&1 | tee "$tmpdir/out"
stop_raw
grep -q 'aborted the unfinished upload' "$tmpdir/out"
[ -z "$(s3_uploads f/)" ]
$BACKUP verify "$url" "${S3[@]}" -q
s3curl "/$bucket/f/manifest.json" > "$tmpdir/m1"
s3_keys f/ > "$tmpdir/k1"

# SIGINT mid-upload: aborted at once.
serve_raw 100ms
$BACKUP full "$nuri" -o "$url" "${SLOW[@]}" 2>"$tmpdir/err" & bpid=$!
wait_upload f/
kill -INT $bpid
rc=0; wait $bpid || rc=$?
stop_raw
cat "$tmpdir/err"
[ $rc -ne 0 ]
grep -q 'interrupted; aborting the upload' "$tmpdir/err"
[ -z "$(s3_uploads f/)" ]
s3curl "/$bucket/f/manifest.json" | cmp - "$tmpdir/m1"
s3_keys f/ | cmp - "$tmpdir/k1"

# 503 on every third request: retried, the backup completes.
start_proxy ()
{
  rm -f "$tmpdir/port"
  $PYTHON "$srcdir/s3-fault-proxy.py" "$tmpdir/port" "${S3_ENDPOINT##*:}" \
    "$@" 2>"$tmpdir/proxy.log" &
  ppid=$!
  cleanup_fn "kill $ppid 2>/dev/null"
  wait_for_file "$tmpdir/port"
  P=(--s3-endpoint "http://127.0.0.1:$(cat "$tmpdir/port")")
}
stop_proxy () { kill $ppid 2>/dev/null || :; wait $ppid 2>/dev/null || :; }

start_proxy --fail-every 3
serve_raw
$BACKUP full "$nuri" -o "s3://$bucket/g" "${P[@]}" --s3-part-size 5M \
  2>&1 | tee "$tmpdir/out"
grep -q 'HTTP 503 SlowDown.*retrying in' "$tmpdir/out"
$BACKUP restore "s3://$bucket/g" -o "$tmpdir/g.raw" "${P[@]}" 2>&1 |
  tee "$tmpdir/out"
grep -q 'retrying in' "$tmpdir/out"
cmp "$tmpdir/g.raw" "$raw"
stop_raw
stop_proxy

# A part upload that stalls: timed out (--s3-timeout) and retried.
start_proxy --stall PUT:1:30
serve_raw
$BACKUP full "$nuri" -o "s3://$bucket/h" "${P[@]}" --s3-part-size 5M \
  --s3-timeout 2 2>&1 | tee "$tmpdir/out"
stop_raw
grep -q 'retrying in' "$tmpdir/out"
grep -q "'stalled': 1" "$tmpdir/proxy.log"
stop_proxy
$BACKUP verify "s3://$bucket/h" "${S3[@]}" -q

# The server killed mid-upload: the backup fails after its retries and
# says why; once the server is back the chain is unchanged and the next
# backup cleans up.
serve_raw 100ms
$BACKUP full "$nuri" -o "$url" "${SLOW[@]}" --s3-retries 2 \
  2>"$tmpdir/err" & bpid=$!
wait_upload f/
kill -9 "$(cat "$s3dir/run/client.rgw.pid")"
rc=0; wait $bpid || rc=$?
stop_raw
cat "$tmpdir/err"
[ $rc -eq 1 ]
grep -q 'after retries' "$tmpdir/err"
radosgw -c "$s3dir/ceph.conf" -n client.rgw
for i in $(seq 120); do
  curl -s -o /dev/null "$S3_ENDPOINT/" && break
  sleep 0.5
done
s3curl "/$bucket/f/manifest.json" | cmp - "$tmpdir/m1"
s3_keys f/ | cmp - "$tmpdir/k1"
$BACKUP verify "$url" "${S3[@]}" -q
serve_raw
$BACKUP full "$nuri" -o "$url" "${S3[@]}" 2>&1 | tee "$tmpdir/out"
stop_raw
[ -z "$(s3_uploads f/)" ]
$BACKUP restore "$url" -o "$tmpdir/f.raw" "${S3[@]}"
cmp "$tmpdir/f.raw" "$raw"

# A live backup session (--control, nbdcbt's backup-begin) interrupted
# while it streams into S3: SIGTERM or SIGINT aborts the multipart
# upload, the chain is as before, and the control connection closing
# ends the session as failed (BACKUP_SESSION_COMPLETED success=false, no
# session left): the frozen bits go back into b0, so the next
# incremental still covers the writes the interrupted ones were copying.
live=$tmpdir/live
mkdir -p "$live"
$PYTHON -c 'import os,sys; open(sys.argv[1],"wb").write(os.urandom(48<<20))' \
  "$live/disk.raw"
"$NBDCBT" -f -U "$live/sock" --control="$live/ctl" -e disk0 --node-name=disk0 \
  --filter=fleece --filter=dirty file "$live/disk.raw" \
  session-dir="$live" bitmap=b0 &
spid=$!
cleanup_fn "kill $spid 2>/dev/null"
wait_for_file "$live/sock" 30
wait_for_file "$live/ctl" 30
luri="nbd+unix:///disk0?socket=$live/sock"
lurl=s3://$bucket/live
LIVE=(--bitmap b0 --control "$live/ctl" --node disk0 "${S3[@]}")

# The server's events, one JSON object a line, from a QMP client of its
# own that stays connected throughout.
$PYTHON - "$live/ctl" "$live/events" <<'PY' &
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
f.write('{"execute": "qmp_capabilities"}\n')
f.flush()
with open(sys.argv[2], "w") as out:
    for line in f:
        m = json.loads(line)
        if "event" in m:
            out.write(json.dumps(m) + "\n")
            out.flush()
PY
epid=$!
cleanup_fn "kill $epid 2>/dev/null"
qmp () { nbdcbt-ctl -s "$live/ctl" qmp "{\"execute\": \"$1\"}"; }
# completed N: wait for the Nth BACKUP_SESSION_COMPLETED, print it.
completed ()
{
  local i
  for i in $(seq 150); do
    [ "$(grep -c '"BACKUP_SESSION_COMPLETED"' "$live/events")" -ge $1 ] && break
    sleep 0.2
  done
  grep '"BACKUP_SESSION_COMPLETED"' "$live/events" | sed -n "$1p" | grep .
}

$BACKUP full "$luri" -o "$lurl" "${LIVE[@]}"
completed 1 | grep -q '"success": true'
qemu-io -f raw -c 'write -P 0x5a 1M 16M' -c 'write -P 0x6b 20M 16M' "$luri" \
  >/dev/null
s3curl "/$bucket/live/manifest.json" > "$tmpdir/lm0"
s3_keys live/ > "$tmpdir/lk0"
# interrupted_inc SIGNAL N: an incremental whose data connection (one:
# -C 1) goes through a proxy that stalls it after 24 MiB of its 32 (by
# then parts are out; the first 5M part stays in memory until the end),
# killed by SIGNAL while its upload is open.  The upload is aborted, the
# chain is as before, and the server ends the session as failed (the
# Nth BACKUP_SESSION_COMPLETED) with none left.
interrupted_inc ()
{
  local sig=$1 n=$2 rc=0
  rm -f "$live/marker" "$live/ppid" "$live/psock"
  $PYTHON "$top_srcdir/tests/backup/nbd-proxy.py" "$live/psock" "$live/sock" \
    $((24 << 20)) stall "$live/marker" "$live/ppid" &
  ppid=$!
  cleanup_fn "kill $ppid 2>/dev/null"
  wait_for_file "$live/ppid" 30
  $BACKUP inc "nbd+unix:///disk0?socket=$live/psock" -o "$lurl" "${LIVE[@]}" \
    -C 1 --s3-part-size 5M 2>"$tmpdir/err" & bpid=$!
  wait_for_file "$live/marker" 60
  wait_upload live/
  qmp query-backups | jq -e '.return | length == 1 and .[0].node == "disk0"'
  kill -$sig $bpid
  wait $bpid || rc=$?
  kill $ppid; wait $ppid 2>/dev/null || :
  cat "$tmpdir/err"
  [ $rc -ne 0 ]
  grep -q 'interrupted; aborting the upload' "$tmpdir/err"
  # The upload aborted, the chain as before.
  [ -z "$(s3_uploads live/)" ]
  s3curl "/$bucket/live/manifest.json" | cmp - "$tmpdir/lm0"
  s3_keys live/ | cmp - "$tmpdir/lk0"
  $BACKUP verify "$lurl" "${S3[@]}" -q
  $BACKUP list "$lurl" "${S3[@]}" | tee "$tmpdir/list"
  grep -q '^0 *full' "$tmpdir/list"
  ! grep -q '^1 ' "$tmpdir/list"
  # The session ended as failed, and none is left.
  completed $n | tee "$tmpdir/done"
  grep -q '"success": false' "$tmpdir/done"
  qmp query-backups | jq -e '.return == []'
}
interrupted_inc TERM 2
qemu-io -f raw -c 'write -P 0x7c 3M 1M' "$luri" >/dev/null
interrupted_inc INT 3
# The next incremental covers the interrupted one's writes and later ones.
qemu-io -f raw -c 'write -P 0x7d 40M 1M' "$luri" >/dev/null
$BACKUP inc "$luri" -o "$lurl" "${LIVE[@]}"
$BACKUP restore "$lurl" -o "$tmpdir/live.raw" "${S3[@]}" -q
cmp "$tmpdir/live.raw" "$live/disk.raw"
completed 4 | grep -q '"success": true'
[ "$(grep -c '"BACKUP_SESSION_COMPLETED"' "$live/events")" -eq 4 ]
kill $spid; wait $spid || :
