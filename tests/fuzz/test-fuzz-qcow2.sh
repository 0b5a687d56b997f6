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

# Run the libFuzzer harness over the qcow2 parser for a bounded time
# (FUZZ_SECONDS, default 30) from a seed corpus of small qemu-img images
# (512-byte and 4 KiB clusters, with bitmaps, data and a backing file name).
source "$top_srcdir/tests/functions.sh" || exit 99

fuzzer="$top_builddir/tests/fuzz/fuzz-qcow2"
requires_fuzzer "$fuzzer"
requires qemu-img --version
requires qemu-io --version

seeds="$tmpdir/seeds"
corpus="$tmpdir/corpus"
mkdir -p "$seeds" "$corpus"

n=0
for cs in 512 4096; do
  for sz in 64k 1M; do
    n=$((n + 1))
    img="$seeds/seed$n.qcow2"
    qemu-img create -q -f qcow2 -o cluster_size=$cs "$img" $sz
    cp "$img" "$seeds/seed$n-empty.qcow2"
    qemu-img bitmap --add "$img" b0
    qemu-img bitmap --add -g 512 "$img" bitmap-with-a-longer-name
    qemu-io -f qcow2 -c "write -P 1 0 1k" -c "write -z 8k 4k" \
      -c "discard 16k 4k" "$img" >/dev/null
    cp "$img" "$seeds/seed$n-bitmaps.qcow2"
    qemu-img bitmap --disable "$img" b0
  done
done
qemu-img create -q -f qcow2 -o cluster_size=512 -b seed1.qcow2 -F qcow2 \
  "$seeds/overlay.qcow2"
qemu-img create -q -f qcow2 -o cluster_size=512,compat=0.10 \
  "$seeds/v2.qcow2" 64k
qemu-img create -q -f qcow2 \
  -o cluster_size=16384,extended_l2=on,compression_type=zstd,refcount_bits=1 \
  "$seeds/extl2.qcow2" 1M
qemu-io -f qcow2 -c "write -P 3 0 2k" "$seeds/extl2.qcow2" >/dev/null
# A dirty image (lazy refcounts, killed while writing): the writable
# open repairs it.  Unknown autoclear bits: the writable open clears them.
qemu-img create -q -f qcow2 -o cluster_size=512,lazy_refcounts=on \
  "$seeds/dirty.qcow2" 64k
qemu-img bitmap --add "$seeds/dirty.qcow2" b0
qemu-io -f qcow2 -c "write -P 4 0 4k" -c "sigraise 9" "$seeds/dirty.qcow2" \
  >/dev/null 2>&1 || :
cp "$seeds/seed1-bitmaps.qcow2" "$seeds/autoclear.qcow2"
printf '\x00\x00\x00\x00\x00\x00\x00\x83' |
  dd of="$seeds/autoclear.qcow2" bs=1 seek=88 conv=notrunc status=none

# qcow2-regress/: inputs the fuzzer once found a bug with, run first.
# -rss_limit_mb: the library may allocate up to its own limits (L1 32 MiB,
# refcount table 8 MiB, ...) but nothing like the input-driven gigabytes.
run_fuzzer "$fuzzer" 30 "$top_builddir/tests/fuzz/artifacts" \
  -rss_limit_mb=2048 -max_len=65536 -- "$corpus" "$seeds" \
  "$top_srcdir/tests/fuzz/qcow2-regress"
