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

# Safe probing: nbdcbt FILE refuses a *.qcow2 file without a qcow2 header
# (and leaves it alone); a raw image the shorthand probed refuses writes
# that would make its first sector another format's header, whole or
# partial, through qemu-io and libnbd; other writes, and the same writes
# with the plugin named, go through.
source "$top_srcdir/tests/functions.sh" || exit 99
requires qemu-img --version
requires qemu-io --version
requires nbdsh --version

# A damaged qcow2 (its header overwritten) must not be served as raw.
qemu-img create -q -f qcow2 "$tmpdir/vm.qcow2" 1M
dd if=/dev/zero of="$tmpdir/vm.qcow2" bs=512 count=1 conv=notrunc status=none
cp "$tmpdir/vm.qcow2" "$tmpdir/before"
rc=0
"$NBDCBT" -f -U "$tmpdir/s0" "$tmpdir/vm.qcow2" 2> "$tmpdir/err" || rc=$?
[ $rc -eq 1 ]
grep -q "named like a qcow2 image but has no qcow2 header" "$tmpdir/err"
[ ! -e "$tmpdir/s0" ]
cmp "$tmpdir/vm.qcow2" "$tmpdir/before"
# ... unless asked for by name.
start_server "$tmpdir/pid0" "$tmpdir/s0" file file="$tmpdir/vm.qcow2"
stop_server "$tmpdir/pid0"

# A probed raw image.
truncate -s 4M "$tmpdir/disk.img"
printf 'hello' | dd of="$tmpdir/disk.img" conv=notrunc status=none
start_server "$tmpdir/pid" "$tmpdir/sock" -v "$tmpdir/disk.img" 2> "$tmpdir/log"
uri="nbd+unix:///?socket=$tmpdir/sock"

# qemu-io writing a qcow2 header at 0: refused, nothing changes.
cp "$tmpdir/disk.img" "$tmpdir/disk.before"
qemu-img create -q -f qcow2 "$tmpdir/hdr.qcow2" 1M
if qemu-io -f raw -c "write -s $tmpdir/hdr.qcow2 0 512" "$uri" \
     > "$tmpdir/qio" 2>&1; then
  grep -q "Operation not permitted" "$tmpdir/qio"
fi
grep -q "refusing a write to the first sector .* look like qcow2" "$tmpdir/log"
cmp "$tmpdir/disk.img" "$tmpdir/disk.before"

# libnbd: each format's magic, whole sector and partial writes that only
# complete a header together with what is already there.
nbdsh -u "$uri" -c '
import errno
def refused(buf, off):
    try:
        h.pwrite(buf, off)
    except nbd.Error as e:
        assert e.errnum == errno.EPERM, e
        return True
    return False
for magic, off in [(b"QFI\xfb", 0), (b"QED\0", 0), (b"KDMV", 0),
                   (b"vhdxfile", 0), (b"conectix", 0), (b"LUKS\xba\xbe", 0),
                   (b"\x7f\x10\xda\xbe", 64),
                   (b"# Disk DescriptorFile", 0)]:
    sector = bytearray(512)
    sector[off:off + len(magic)] = magic
    assert refused(bytes(sector), 0), magic
    assert refused(bytes(sector) + b"x" * 4096, 0), magic    # longer write
    assert refused(magic, off), magic                         # partial write
# Two partial writes that build "QFI\xfb" together: the second is refused.
assert not refused(b"QF", 0)
assert refused(b"I\xfb", 2)
assert h.pread(4, 0) == b"QFll"
# Ordinary writes, to the first sector too, and elsewhere anything.
assert not refused(b"\0" * 512, 0)
assert not refused(b"MBR boot code" + b"\0" * 499, 0)
assert not refused(b"QFI\xfb" + b"\0" * 508, 512)
h.zero(512, 0)
assert h.pread(512, 0) == b"\0" * 512
'
stop_server "$tmpdir/pid"
qemu-img info "$tmpdir/disk.img" | grep -q "file format: raw"

# With the plugin named, nothing is guessed and such a write is allowed.
start_server "$tmpdir/pid2" "$tmpdir/sock2" file file="$tmpdir/disk.img"
nbdsh -u "nbd+unix:///?socket=$tmpdir/sock2" -c 'h.pwrite(b"QFI\xfb", 0)'
stop_server "$tmpdir/pid2"
