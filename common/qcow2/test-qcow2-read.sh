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

# Images made by qemu-img/qemu-io in many layouts read through the library
# must equal qemu-img convert -O raw, and the library's map must agree
# with qemu-img map on what is data, zero and unallocated.
source "$top_srcdir/tests/functions.sh" || exit 99
set -e
requires qemu-img --version
requires qemu-io --version

tool="$top_builddir/common/qcow2/qcow2-test-tool"
d=$(mktemp -d /tmp/qcow2-read.XXXXXX)
cleanup_fn rm -rf "$d"
cd "$d"

# A mix of data, zeroes and holes.
fill ()
{
    qemu-io -f qcow2 "$@" \
        -c 'write -P 0x11 0 100k' \
        -c 'write -P 0x22 1M 64k' \
        -c 'write -P 0x33 3000k 7k' \
        -c 'write -z 1056k 128k' \
        -c 'write -P 0x44 5M 1M' \
        -c 'discard 5M 64k' \
        -c 'write -z -u 5248k 128k' \
        -c 'write -P 0x55 8388096 512' >/dev/null
}

same ()
{
    local img=$1
    qemu-img convert -O raw "$img" expected.raw
    "$tool" read "$img" actual.raw
    cmp expected.raw actual.raw || {
        echo "$0: data of $img differs from qemu-img's view"; exit 1; }
}

for opts in \
    cluster_size=512 \
    cluster_size=4k \
    cluster_size=64k \
    cluster_size=2M \
    refcount_bits=1 \
    refcount_bits=8 \
    refcount_bits=64,cluster_size=4k \
    compat=0.10 \
    compat=0.10,cluster_size=4k \
    extended_l2=on \
    extended_l2=on,cluster_size=16k \
    lazy_refcounts=on ; do
    qemu-img create -q -f qcow2 -o "$opts" img.qcow2 8M
    fill img.qcow2
    same img.qcow2
    # Compressed, both algorithms.
    qemu-img convert -c -O qcow2 -o "$opts" img.qcow2 comp.qcow2 2>/dev/null &&
        same comp.qcow2
done
qemu-img create -q -f qcow2 img.qcow2 8M
fill img.qcow2
qemu-img convert -c -O qcow2 -o compression_type=zstd img.qcow2 zstd.qcow2
"$tool" info zstd.qcow2 | grep -q compression_type=1
same zstd.qcow2
qemu-img convert -c -O qcow2 -o compression_type=zstd,cluster_size=2M \
    img.qcow2 zstd2.qcow2
same zstd2.qcow2

# Backing chain: raw base, qcow2 middle layers, relative names.
mkdir -p sub/deeper
head -c 8M /dev/urandom > sub/deeper/base.raw
qemu-img create -q -f qcow2 -b deeper/base.raw -F raw sub/mid.qcow2
qemu-io -f qcow2 -c 'write -P 0x66 192k 64k' -c 'write -z 1M 1M' \
    sub/mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b sub/mid.qcow2 -F qcow2 top.qcow2 12M
qemu-io -f qcow2 -c 'write -P 0x77 100k 4k' -c 'discard 2M 64k' \
    -c 'write -P 0x78 9M 4k' top.qcow2 >/dev/null
same top.qcow2
# Backing files without a format extension: the format is probed (qemu-img
# 7.2 cannot create such images any more, so the library does).  A qcow2
# backing file with extended L2 on top, and a raw one.
"$tool" create ext.qcow2 0 extended_l2=1 backing=sub/mid.qcow2
"$tool" create probed-raw.qcow2 0 backing=sub/deeper/base.raw
for img in ext.qcow2 probed-raw.qcow2; do
    if qemu-img info $img | grep -q 'backing file format'; then
        echo "$img: has a backing format extension"; exit 1
    fi
done
"$tool" info ext.qcow2 | grep -qx 'backing_format='
"$tool" info probed-raw.qcow2 | grep -qx 'backing_format='
qemu-io -f qcow2 -c 'write -P 0x79 4k 4k' -c 'write -z 200k 8k' ext.qcow2 \
    >/dev/null
qemu-io -f qcow2 -c 'write -P 0x7a 64k 4k' probed-raw.qcow2 >/dev/null
same ext.qcow2
same probed-raw.qcow2

# Allocation depth as qemu-img map reports it.
"$tool" map top.qcow2 > map.txt

# 100k..104k: data in the top layer (depth 1).
awk '$1 <= 102400 && 102400 < $1 + $2 { exit !($4 == 1 && $3 == 5) }' map.txt
# 192k: data from mid (depth 2).
awk '$1 <= 196608 && 196608 < $1 + $2 { exit !($4 == 2 && $3 == 1) }' map.txt
# 1M: zero in mid (depth 2).
awk '$1 <= 1048576 && 1048576 < $1 + $2 { exit !($4 == 2 && $3 == 2) }' map.txt
# 5M: from the raw base (depth 3).
awk '$1 <= 5242880 && 5242880 < $1 + $2 { exit !($4 == 3) }' map.txt
# Past the backing file's end: unallocated (depth 0), zero.
awk '$1 <= 10485760 && 10485760 < $1 + $2 { exit !($4 == 0 && $3 == 2) }' map.txt
# Block status agrees with qemu-img map (data, zero, depth) everywhere.
for img in top.qcow2 ext.qcow2 probed-raw.qcow2 zstd.qcow2 img.qcow2; do
    /usr/bin/python3 "$srcdir/compare-map.py" "$tool" $img
done
qemu-img create -q -f qcow2 -o extended_l2=on e2.qcow2 8M
qemu-io -f qcow2 -c 'write -P 1 0 100k' -c 'write -z 1M 64k' \
    -c 'write -z 2M 4k' -c 'write 3M 2k' e2.qcow2 >/dev/null
/usr/bin/python3 "$srcdir/compare-map.py" "$tool" e2.qcow2
echo OK
