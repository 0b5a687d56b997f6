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

# nbdkit modules in nbdcbt: how they are named and refused, nbdcbt's own
# filters between them, debug flags, and the filter context API (the
# retry filter reopening the chain below it).
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdkit --version
requires nbdsh --version
requires nbdinfo --version

plugindir=$(pkg-config --variable=plugindir nbdkit)
sock="$tmpdir/sock"

# bad PATTERN ARGS...: exit status 1, PATTERN in the message, no socket.
bad ()
{
  local pattern=$1 r=0; shift
  timeout 60 "$NBDCBT" -f -U "$sock" "$@" > "$tmpdir/out" 2>&1 || r=$?
  if [ $r -ne 1 ]; then
    echo "$0: $* exited with $r, expected 1" >&2; cat "$tmpdir/out"; exit 1
  fi
  if ! grep -q -- "$pattern" "$tmpdir/out"; then
    echo "$0: $*: no '$pattern' in:" >&2; cat "$tmpdir/out"; exit 1
  fi
  if [ -e "$sock" ]; then
    echo "$0: $*: the server created its socket" >&2; exit 1
  fi
}

truncate -s 8M "$tmpdir/disk.raw"
bad "cannot find nbdkit plugin 'nosuch'" nbdkit:nosuch
bad "cannot find nbdkit filter 'nosuch'" --filter=nbdkit:nosuch nbdkit:null
bad "not a valid nbdkit plugin name" nbdkit:../x
bad "is already used (in this chain or by another export)" --filter=nbdkit:cow --filter=dirty \
    --filter=nbdkit:cow nbdkit:file "$tmpdir/disk.raw"
bad "nbdkit filter nbdkit:ext2 cannot be used in nbdcbt: it opens" \
    --filter=nbdkit:ext2 nbdkit:file "$tmpdir/disk.raw"
bad "NBD_OPT_LIST" --filter=nbdkit:exportname nbdkit:null
# nbdkit's own messages and parsing rules.
bad "could not parse size string (12Q)" nbdkit:memory size=12Q
bad "could not decipher boolean (perhaps)" --filter=nbdkit:readahead \
    --filter=nbdkit:cow nbdkit:memory 1M cow-on-cache=perhaps
bad "no such debug flag (no symbol file_debug_nosuch)" \
    --nbdkit-debug=file.nosuch=1 nbdkit:file "$tmpdir/disk.raw"
bad "no nbdkit module cow is loaded" --nbdkit-debug=cow.x=1 nbdkit:null
bad "expected MODULE.FLAG=N" --nbdkit-debug=file nbdkit:null
# An nbdcbt module named as an nbdkit one.
cp "$top_builddir/plugins/memory/.libs/nbdcbt-memory-plugin.so" \
   "$tmpdir/nbdkit-fake-plugin.so"
bad "is not an nbdkit plugin: no plugin_init" "$tmpdir/nbdkit-fake-plugin.so"

# A module by path; --help and --dump-plugin show the nbdkit plugin.
"$NBDCBT" "$plugindir/nbdkit-memory-plugin.so" --help | grep -q "size="
"$NBDCBT" --dump-plugin nbdkit:memory | grep -q "^name=memory$"

# nbdcbt's own filters between nbdkit filters: the dirty filter below the
# offset filter sees the shifted offsets.
start_server "$tmpdir/pid1" "$tmpdir/s1" --filter=nbdkit:offset \
  --filter=dirty --filter=nbdkit:cow nbdkit:file "$tmpdir/disk.raw" \
  offset=1M bitmap=b0
nbdsh -u "nbd+unix:///?socket=$tmpdir/s1" \
  -c 'h.pwrite(b"x" * 65536, 0); h.flush()'
# The map is the dirty filter's own view: asked through the offset filter
# (which knows nothing of bitmaps) it comes back unshifted.
nbdinfo --map=qemu:dirty-bitmap:b0 "nbd+unix:///?socket=$tmpdir/s1" \
  > "$tmpdir/map1"
cat "$tmpdir/map1"
grep -Eq '^ *1048576 +65536 +1 +dirty' "$tmpdir/map1"
stop_server "$tmpdir/pid1"
# The cow filter kept the file untouched.
cmp "$tmpdir/disk.raw" <(head -c 8M /dev/zero)

# Debug flags reach the module.
start_server "$tmpdir/pid2" "$tmpdir/s2" -v --nbdkit-debug=file.zero=1 \
  nbdkit:file "$tmpdir/disk.raw" 2> "$tmpdir/log2"
nbdsh -u "nbd+unix:///?socket=$tmpdir/s2" -c 'h.zero(65536, 0)'
stop_server "$tmpdir/pid2"
grep -q "zero succeeded using" "$tmpdir/log2"

# The retry filter reopens the chain below it (nbdkit_next_context_open)
# after a failure: the error filter fails writes while its trigger file
# exists; the retry filter waits, reopens, and the write goes through once
# the trigger is gone.
start_server "$tmpdir/pid3" "$tmpdir/s3" --filter=dirty \
  --filter=nbdkit:retry --filter=nbdkit:error nbdkit:memory 8M \
  retries=10 retry-delay=1 retry-exponential=no \
  error=EIO error-pwrite-rate=100% "error-file=$tmpdir/trigger" bitmap=b0 \
  -v 2> "$tmpdir/log3"
touch "$tmpdir/trigger"
( sleep 2; rm -f "$tmpdir/trigger" ) &
remover=$!
nbdsh -u "nbd+unix:///?socket=$tmpdir/s3" \
  -c 'h.pwrite(b"r" * 4096, 4096); assert h.pread(4096, 4096) == b"r" * 4096'
wait $remover
stop_server "$tmpdir/pid3"
grep -q "retry 1: waiting" "$tmpdir/log3"
grep -Eq "reopens needed: [1-9]" "$tmpdir/log3"
grep -q "injecting EIO error into pwrite" "$tmpdir/log3"
