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

# Random writes, zeroes and discards through the library in many layouts
# (including growth of the refcount table with small clusters and wide
# refcounts, and images on top of a backing file): qemu-img check must be
# clean and qemu-img compare equal to a raw model of the same workload.
source "$top_srcdir/tests/functions.sh" || exit 99
set -e
requires qemu-img --version

tool="$top_builddir/common/qcow2/qcow2-test-tool"
d=$(mktemp -d /tmp/qcow2-write.XXXXXX)
cleanup_fn rm -rf "$d"
cd "$d"

run ()
{
    local size=$1 nops=$2; shift 2
    rm -f img.qcow2 model.raw
    "$tool" create img.qcow2 $size "$@"
    qemu-img check -q img.qcow2
    if [ -f base.raw ] && [[ "$*" == *backing=* ]]; then
        cp base.raw model.raw; truncate -s $size model.raw
    else
        truncate -s $size model.raw
    fi
    "$tool" random img.qcow2 model.raw $RANDOM $nops
    qemu-img check -q img.qcow2 || { echo "$0: check failed: $*"; exit 1; }
    qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw ||
        { echo "$0: data differs: $*"; exit 1; }
    # Once more on the written image (existing allocations, reuse).
    "$tool" random img.qcow2 model.raw $RANDOM $nops
    qemu-img check -q img.qcow2 || { echo "$0: check failed (2): $*"; exit 1; }
    qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw ||
        { echo "$0: data differs (2): $*"; exit 1; }
}

run $((64<<20)) 200
run $((32<<20)) 100 cluster_size=512
run $((32<<20)) 100 cluster_size=512 refcount_bits=64
run $((32<<20)) 100 cluster_size=4096 refcount_bits=1
run $((32<<20)) 100 cluster_size=4096 refcount_bits=8
run $((64<<20)) 100 cluster_size=2097152
run $((32<<20)) 100 version=2
run $((32<<20)) 100 extended_l2=on cluster_size=32768
run $((32<<20)) 100 lazy=on refcount_bits=32

# On a backing file (v3: discard reads as zero there too).
head -c $((16<<20)) /dev/urandom > base.raw
run $((24<<20)) 150 backing=base.raw backing_fmt=raw
run $((24<<20)) 100 backing=base.raw backing_fmt=raw extended_l2=on
qemu-img create -q -f qcow2 -F raw -b base.raw mid.qcow2
qemu-io -f qcow2 -c 'write -P 0x42 1M 3M' mid.qcow2 >/dev/null
qemu-img convert -O raw mid.qcow2 base2.raw
mv base2.raw base.raw.tmp
rm -f img.qcow2 model.raw
"$tool" create img.qcow2 0 backing=mid.qcow2 backing_fmt=qcow2
test "$(qemu-img info --output=json img.qcow2 | grep -c '"virtual-size": 16777216')" -ge 1
cp base.raw.tmp model.raw
"$tool" random img.qcow2 model.raw 7 150
qemu-img check -q img.qcow2
qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw

# A v2 image on a backing file, without discards (v2 cannot express
# zero clusters: discarding shows the backing file, as in QEMU).
rm -f img.qcow2
"$tool" create img.qcow2 0 version=2 backing=mid.qcow2 backing_fmt=qcow2
cp base.raw.tmp model.raw
"$tool" random img.qcow2 model.raw 8 150 nodiscard
qemu-img check -q img.qcow2
qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw

# Overwriting compressed clusters (qemu-img convert -c, zstd), and an
# image with an internal snapshot (shared clusters are copied, the
# snapshot stays intact).
head -c $((16<<20)) /dev/urandom > src.raw
rm -f img.qcow2
qemu-img convert -c -O qcow2 -o compression_type=zstd src.raw img.qcow2
cp src.raw model.raw
"$tool" random img.qcow2 model.raw 3 100
qemu-img check -q img.qcow2
qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw
rm -f img.qcow2
qemu-img convert -O qcow2 src.raw img.qcow2
qemu-img snapshot -c snap1 img.qcow2
cp src.raw model.raw
"$tool" random img.qcow2 model.raw 4 100
qemu-img check -q img.qcow2
qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw
qemu-img snapshot -a snap1 img.qcow2
qemu-img compare -q -f qcow2 -F raw img.qcow2 src.raw
qemu-img check -q img.qcow2

# Many threads at once (regions sharing clusters at their edges).
for opts in "" "cluster_size=4096 refcount_bits=8" "extended_l2=on"; do
    rm -f img.qcow2 model.raw
    "$tool" create img.qcow2 $((40<<20)) $opts
    truncate -s 40M model.raw
    "$tool" threads img.qcow2 model.raw 8 60
    qemu-img check -q img.qcow2
    qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw
done

# Resize: grow (new L1 with 512-byte clusters), write, shrink refused
# over data, shrink allowed over nothing.
rm -f img.qcow2 model.raw
"$tool" create img.qcow2 $((1<<20)) cluster_size=512
truncate -s 1M model.raw
"$tool" random img.qcow2 model.raw 5 30
"$tool" resize img.qcow2 $((40<<20))
truncate -s 40M model.raw
"$tool" random img.qcow2 model.raw 6 50
qemu-img check -q img.qcow2
qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw
! "$tool" resize img.qcow2 $((1<<20)) 2>/dev/null
! "$tool" resize img.qcow2 1000 2>/dev/null
qemu-img create -q -f qcow2 small.qcow2 10M
qemu-io -f qcow2 -c 'write 0 1M' small.qcow2 >/dev/null
"$tool" resize small.qcow2 $((2<<20))
qemu-img check -q small.qcow2
test "$(qemu-img info --output=json small.qcow2 | grep -c '"virtual-size": 2097152')" -ge 1
echo OK
