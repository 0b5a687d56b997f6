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

# SIGKILL in the middle of a random workload: qemu-img check may find
# leaked clusters but never corruption, and the library's leak repair
# leaves an image qemu-img check finds clean.
source "$top_srcdir/tests/functions.sh" || exit 99
set -e
requires qemu-img --version

tool="$top_builddir/common/qcow2/qcow2-test-tool"
d=$(mktemp -d /tmp/qcow2-crash.XXXXXX)
cleanup_fn rm -rf "$d"
cd "$d"

round=0
for opts in "" "cluster_size=4096 refcount_bits=1" "cluster_size=512" \
            "extended_l2=on" "cluster_size=4096" ; do
    for delay in 0.3 0.7; do
        round=$((round + 1))
        rm -f img.qcow2 model.raw
        "$tool" create img.qcow2 $((48<<20)) $opts
        truncate -s 48M model.raw
        # Fill first so that the killed run also overwrites and frees.
        "$tool" random img.qcow2 model.raw $round 60
        "$tool" random img.qcow2 model.raw $((round + 100)) 100000 &
        pid=$!
        sleep $delay
        kill -9 $pid
        wait $pid 2>/dev/null || :
        set +e
        qemu-img check img.qcow2 > check.out 2>&1
        status=$?
        set -e
        if [ $status -ne 0 ] && [ $status -ne 3 ]; then
            echo "$0: corruption after SIGKILL ($opts, $delay s):"
            cat check.out
            exit 1
        fi
        # Our own check agrees and repairs the leaks.
        set +e
        "$tool" check img.qcow2 repair > ours.out
        status=$?
        set -e
        if [ $status -ne 0 ]; then
            echo "$0: our check after SIGKILL ($opts):"; cat ours.out; exit 1
        fi
        qemu-img check -q img.qcow2
        # Still readable and writable.
        "$tool" read img.qcow2 out.raw
        cp out.raw model.raw
        "$tool" random img.qcow2 model.raw $round 20
        qemu-img check -q img.qcow2
        qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw
    done
done
# A crash of QEMU with lazy refcounts leaves the dirty bit and refcounts
# that are too low: a read-only open reads it, a writable open rebuilds
# the refcounts and clears the bit.
if qemu-io --help | grep -q sigraise || qemu-io -c 'help sigraise' -f raw \
       /dev/null >/dev/null 2>&1; then
    rm -f lazy.qcow2
    qemu-img create -q -f qcow2 -o lazy_refcounts=on lazy.qcow2 10M
    qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' -c 'write -P 0x5b 3M 64k' \
        -c 'sigraise 9' lazy.qcow2 >/dev/null 2>&1 || :
    "$tool" info lazy.qcow2 | grep -qx dirty=1
    "$tool" read lazy.qcow2 lazy.raw
    ! qemu-img check -q lazy.qcow2 >/dev/null 2>&1
    "$tool" random lazy.qcow2 lazy.raw 9 40
    "$tool" info lazy.qcow2 | grep -qx dirty=0
    qemu-img check -q lazy.qcow2
    qemu-img compare -q -f qcow2 -F raw lazy.qcow2 lazy.raw
fi
echo OK
