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

# Two servers, or a server and QEMU or nbdcbt-img, never write one image
# or one sidecar at once: nbdcbt takes QEMU's image locks (OFD locks on
# bytes 100+/200+ of the image, as QEMU's file-posix driver) on raw images
# and qcow2 images, and an OFD lock on the sidecar (D.lock).  A second
# server, qemu-nbd, qemu-io and qemu-img see the image in use while nbdcbt
# serves it read-write; nbdcbt refuses an image qemu-nbd writes; and
# nbdcbt-img refuses the sidecar of a running server (-U reads it).

source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires qemu-io --version
requires qemu-nbd --version
requires nbdinfo --version
cd "$tmpdir"
PATH=$top_builddir/tools/img:$PATH

fail=0
# expect RC PATTERN CMD...: CMD exits RC and (if PATTERN) prints PATTERN.
expect ()
{
  local want=$1 pat=$2 rc=0; shift 2
  "$@" > out.txt 2>&1 || rc=$?
  if [ "$rc" -ne "$want" ] || { [ -n "$pat" ] && ! grep -qF -- "$pat" out.txt; }; then
    echo "FAIL: '$*' exited $rc, expected $want with '$pat':"; cat out.txt
    fail=1
  fi
}

truncate -s 64M d.raw
nbdcbt-img bitmap --add d.raw b0
test -e d.raw.qbm.lock

# nbdcbt serves d.raw read-write (the dirty filter, b0 in the sidecar).
start_server pid sock d.raw
nbdinfo --map=qemu:dirty-bitmap:b0 "nbd+unix:///?socket=$tmpdir/sock" >/dev/null

expect 1 'Failed to get "write" lock' "$NBDCBT" -f -U sock2 d.raw
expect 1 'Failed to get shared "write" lock' "$NBDCBT" -f -r -U sock2 d.raw
expect 1 'Failed to get "write" lock' \
  "$NBDCBT" -f -U sock2 --filter=dirty file d.raw qbm=d.raw.qbm
expect 1 'Failed to get "write" lock' qemu-io -f raw -c 'write 0 4k' d.raw
expect 1 'Is another process using the image' \
  qemu-nbd -f raw -k "$tmpdir/qsock" d.raw
expect 0 '' qemu-img info -U -f raw d.raw

# The sidecar: nbdcbt-img neither writes nor reads it (without -U).
expect 1 'Failed to get the write lock on the sidecar' \
  nbdcbt-img bitmap --add d.raw b1
expect 1 'Failed to get a shared lock on the sidecar' nbdcbt-img info d.raw
expect 0 '' nbdcbt-img info -U d.raw
grep -q 'name: b0' out.txt || { echo "FAIL: info -U: no b0"; fail=1; }
grep -q 'name: b1' out.txt && { echo "FAIL: b1 was added"; fail=1; }

stop_server pid

# Free again.
expect 0 '' nbdcbt-img bitmap --add d.raw b1
expect 0 '' qemu-io -f raw -c 'write 0 4k' d.raw

# The other way round: qemu-nbd writes d.raw, nbdcbt refuses it.
qemu-nbd -f raw -k "$tmpdir/qsock" -t d.raw &
qpid=$!
cleanup_fn "kill $qpid 2>/dev/null; wait $qpid 2>/dev/null"
wait_for_file "$tmpdir/qsock" 30
# (qemu-nbd shares "write" on a raw image but not "resize".)
expect 1 'lock: is another process' "$NBDCBT" -f -U sock2 d.raw
kill $qpid; wait $qpid 2>/dev/null || :

# qcow2: the same with QEMU's own messages.
qemu-img create -q -f qcow2 q.qcow2 64M
qemu-img bitmap --add q.qcow2 b0
rm -f pid
start_server pid sock q.qcow2
expect 1 'Failed to get "write" lock' "$NBDCBT" -f -U sock2 q.qcow2
expect 1 'Failed to get shared "write" lock' qemu-img info q.qcow2
expect 0 '' qemu-img info -U q.qcow2
stop_server pid
expect 0 '' qemu-img info q.qcow2

exit $fail
