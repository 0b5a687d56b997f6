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

# nbdcbt-img create / info / check against qemu-img 7.2: the same output
# (info human and JSON, but for the disk usage lines and nbdcbt-img's
# extra bitmap "count" and "sha256"), the same exit codes, and images each tool writes
# are clean for the other.
source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires qemu-io --version
cd "$tmpdir"

fail=0
filter () { grep -v -e '^disk size:' -e '"actual-size":' -e 'count' -e 'sha256' ; }
same_info ()
{
  local f=$1; shift
  qemu-img info "$@" "$f" | filter > q.out
  nbdcbt-img info "$@" "$f" | filter > n.out
  if ! diff -u q.out n.out; then
    echo "FAIL: info $* $f differs from qemu-img's"
    fail=1
  fi
}
expect_rc ()
{
  local want=$1; shift
  set +e; "$@" > out.txt 2>&1; local rc=$?; set -e
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: '$*' exited $rc, expected $want"; cat out.txt; fail=1
  fi
}

# Images made by qemu-img, read by nbdcbt-img.
qemu-img create -q -f qcow2 q1.qcow2 10M
qemu-img create -q -f qcow2 -o compat=0.10 q2.qcow2 1M
qemu-img create -q -f qcow2 \
  -o cluster_size=16384,lazy_refcounts=on,extended_l2=on,compression_type=zstd \
  q3.qcow2 3G
qemu-img create -q -f qcow2 q4.qcow2 100M
qemu-img bitmap --add q4.qcow2 b0
qemu-img bitmap --add -g 1M q4.qcow2 'b 1 "quoted"'
qemu-img bitmap --disable q4.qcow2 b0
qemu-io -f qcow2 -c 'write 0 1M' q4.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b q4.qcow2 -F qcow2 q5.qcow2
qemu-img create -q -f raw r1.img 5M
for f in q1.qcow2 q2.qcow2 q3.qcow2 q4.qcow2 q5.qcow2 r1.img \
         "$tmpdir/q5.qcow2"; do
  same_info "$f"
  same_info "$f" --output=json
done
# The extra count: 1 MiB written while b0 was disabled and 'b 1' recording.
nbdcbt-img info --output=json q4.qcow2 | grep -q '"count": 1048576' ||
  { echo "FAIL: dirty count missing"; fail=1; }

# Images made by nbdcbt-img, read by qemu-img.
nbdcbt-img create -q -f qcow2 n1.qcow2 10M
nbdcbt-img create -f qcow2 -o cluster_size=4096,lazy_refcounts=on n2.qcow2 1G \
  > create.out
grep -q "^Formatting 'n2.qcow2', fmt=qcow2 cluster_size=4096 " create.out
nbdcbt-img create -q -f qcow2 -o compat=0.10 n3.qcow2 1M
nbdcbt-img create -q -f qcow2 -b n1.qcow2 -F qcow2 n4.qcow2
nbdcbt-img create -q -f qcow2 -b r1.img -F raw n5.qcow2 7M
nbdcbt-img create -q -f raw n6.img 1G
for f in n1.qcow2 n2.qcow2 n3.qcow2 n4.qcow2 n5.qcow2 n6.img; do
  same_info "$f"
  same_info "$f" --output=json
  [ "$f" = n6.img ] || expect_rc 0 qemu-img check "$f"
  [ "$f" = n6.img ] || expect_rc 0 nbdcbt-img check "$f"
done
# Raw is sparse.
[ "$(stat -c %b n6.img)" -le 8 ] || { echo "FAIL: raw not sparse"; fail=1; }
expect_rc 63 nbdcbt-img check n6.img

# Create errors, as qemu-img.
expect_rc 1 nbdcbt-img create -f qcow2 e.qcow2
grep -q "Image creation needs a size parameter" out.txt || fail=1
expect_rc 1 nbdcbt-img create -f qcow2 -o cluster_size=1000 e.qcow2 1M
grep -q "Cluster size must be a power of two" out.txt || fail=1
expect_rc 1 nbdcbt-img create -f qcow2 -b n1.qcow2 e.qcow2
grep -q "Backing file specified without backing format" out.txt || fail=1
expect_rc 1 nbdcbt-img create -f qcow2 -b nonexistent -F qcow2 e.qcow2
expect_rc 1 nbdcbt-img create -f qcow2 -o bogus=1 e.qcow2 1M
grep -q "Invalid parameter 'bogus'" out.txt || fail=1
expect_rc 1 nbdcbt-img info nonexistent.qcow2

# Leaks: bitmaps a program without bitmap support invalidated (autoclear
# bit cleared) leave their clusters allocated: exit 3 from both tools,
# repaired by -r leaks, then clean for both.
cp q4.qcow2 leak.qcow2
printf '\0\0\0\0\0\0\0\0' | dd of=leak.qcow2 bs=1 seek=88 conv=notrunc status=none
expect_rc 3 qemu-img check leak.qcow2
expect_rc 3 nbdcbt-img check leak.qcow2
grep -q "leaked clusters were found on the image" out.txt || fail=1
cp leak.qcow2 leak2.qcow2
expect_rc 0 nbdcbt-img check -r leaks leak.qcow2
grep -q "The following inconsistencies were found and repaired" out.txt ||
  fail=1
expect_rc 0 qemu-img check leak.qcow2
# Without -r nothing changes.
before=$(sha256sum < leak2.qcow2)
expect_rc 3 nbdcbt-img check leak2.qcow2
[ "$before" = "$(sha256sum < leak2.qcow2)" ] ||
  { echo "FAIL: check without -r changed the image"; fail=1; }
expect_rc 3 nbdcbt-img check --output=json leak2.qcow2
grep -q '"leaks":' out.txt || fail=1

exit $fail
