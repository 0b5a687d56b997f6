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

# An interrupted backup, full or incremental (Ctrl-C, kill -9, or the
# server going away or the connection dropping mid-copy) leaves the chain
# as it was: same manifest, verify passes, and the leftover part file is
# removed by the next backup, which works.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"
requires nbdkit --filter=delay file --version

img=$tmpdir/disk.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 0x55 0 16M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
manifest=$(cat "$dir/manifest.json")

# A slow source: every read takes 0.5 s, one request at a time.
truncate -s 16M "$tmpdir/slow.raw"
$PYTHON -c 'import os,sys; f=open(sys.argv[1],"r+b"); f.write(os.urandom(16<<20))' "$tmpdir/slow.raw"
start_slow ()
{
  rm -f "$tmpdir/npid"
  nbdkit -f -U "$tmpdir/nsock" -P "$tmpdir/npid" --filter=delay \
    file "$tmpdir/slow.raw" rdelay=500ms &
  npid=$!
  cleanup_fn "kill $npid 2>/dev/null; wait $npid 2>/dev/null"
  wait_for_file "$tmpdir/npid" 30
}
slow="nbd+unix:///?socket=$tmpdir/nsock"

check_unchanged ()
{
  test "$(cat "$dir/manifest.json")" = "$manifest"
  $BACKUP verify "$dir" -q
  test ! -e "$dir/chain-"*
}

# SIGINT: the handler removes the part file.
start_slow
$BACKUP full "$slow" -o "$dir" -C 1 -R 1 &
bpid=$!
sleep 1.5
ls -a "$dir" | grep -q '^\.backup-0000\.qcow2\.part$'
kill -INT $bpid
rc=0; wait $bpid || rc=$?
test $rc -eq 1
check_unchanged
test -z "$(ls -a "$dir" | grep '\.part$')"

# SIGKILL: the part file stays behind but the chain is untouched.
$BACKUP full "$slow" -o "$dir" -C 1 -R 1 &
bpid=$!
sleep 1.5
kill -KILL $bpid
wait $bpid || :
check_unchanged
ls -a "$dir" | grep -q '^\.backup-0000\.qcow2\.part$'

# The server goes away mid-backup.
$BACKUP full "$slow" -o "$dir" -C 1 -R 1 2> "$tmpdir/err" &
bpid=$!
sleep 1.5
kill $npid
rc=0; wait $bpid || rc=$?
cat "$tmpdir/err"
test $rc -eq 1
grep -q '^nbdcbt-backup: ' "$tmpdir/err"
check_unchanged

# Interrupted incrementals: the whole disk changed (16M dirty), and the
# backup reads through a proxy that, after 4M of the copy, stops
# answering (then the backup is interrupted) or drops the connection.
qemu-io -f qcow2 -c 'write -P 0x77 0 16M' "$img" >/dev/null
serve_qemu "$img" -B b0
puri="nbd+unix:///?socket=$tmpdir/psock"
start_proxy ()
{
  rm -f "$tmpdir/ppid" "$tmpdir/psock" "$tmpdir/marker"
  $PYTHON "$srcdir/nbd-proxy.py" "$tmpdir/psock" "$tmpdir/sock" \
    $(( 4 << 20 )) $1 "$tmpdir/marker" "$tmpdir/ppid" &
  ppid=$!
  cleanup_fn "kill $ppid 2>/dev/null; wait $ppid 2>/dev/null"
  wait_for_file "$tmpdir/ppid" 30
}
stop_proxy ()
{
  kill $ppid
  wait $ppid 2>/dev/null || :
}

for sig in INT KILL; do
  start_proxy stall
  $BACKUP inc "$puri" -o "$dir" --bitmap b0 -C 1 -R 1 &
  bpid=$!
  wait_for_file "$tmpdir/marker" 30
  # Mid-copy: the part file is there, the backup is waiting for data.
  ls -a "$dir" | grep -q '^\.backup-0001\.qcow2\.part$'
  sleep 0.2
  kill -$sig $bpid
  rc=0; wait $bpid || rc=$?
  stop_proxy
  if [ $sig = INT ]; then
    test $rc -eq 1
    test -z "$(ls -a "$dir" | grep '\.part$')"
  else
    test $rc -eq 137
    ls -a "$dir" | grep -q '^\.backup-0001\.qcow2\.part$'
  fi
  check_unchanged
done

# The connection drops mid-copy, with one or many requests in flight:
# the backup fails, it never stores a short incremental.
for reqs in 1 16; do
  start_proxy drop
  rc=0
  $BACKUP inc "$puri" -o "$dir" --bitmap b0 -C 1 -R $reqs \
    2> "$tmpdir/err" || rc=$?
  stop_proxy
  cat "$tmpdir/err"
  test -e "$tmpdir/marker"
  test $rc -eq 1
  grep -q '^nbdcbt-backup: ' "$tmpdir/err"
  check_unchanged
  test -z "$(ls -a "$dir" | grep '\.part$')"
done
stop_qemu

# The next backup cleans up and works.
serve_qemu "$img" -B b0
$BACKUP inc "$uri" -o "$dir" --bitmap b0 > "$tmpdir/out"
cat "$tmpdir/out"
stop_qemu
test -z "$(ls -a "$dir" | grep '\.part$')"
$BACKUP verify "$dir"
$BACKUP restore "$dir" -o "$tmpdir/restored.raw" -q
qemu-img compare -q -f raw -F qcow2 "$tmpdir/restored.raw" "$img"
