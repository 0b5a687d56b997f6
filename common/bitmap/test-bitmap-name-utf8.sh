#!/bin/bash -
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

# A new bitmap's name must be UTF-8 (bitmap_new_name_error): NBD carries
# it in the metadata context name qemu:dirty-bitmap:NAME, and the NBD
# protocol requires UTF-8 strings.  The dirty filter's bitmap= and
# nbdcbt-img bitmap --add (qcow2 and raw) refuse any other name with a
# clear message, the name printed escaped, and change nothing.  A bitmap
# that another program (qemu-img, which allows it) already stored under
# such a name still opens, records and is kept.
source "$top_srcdir/tests/functions.sh"
requires qemu-img --version
requires qemu-io --version
requires nbdinfo --version
requires_built tools/img/nbdcbt-img server/nbdcbt \
  plugins/memory/.libs/nbdcbt-memory-plugin.so \
  plugins/qcow2/.libs/nbdcbt-qcow2-plugin.so

sock=$tmpdir/sock pid=$tmpdir/pid
uri="nbd+unix:///?socket=$sock"

# bad_param NAME ESCAPED: bitmap=NAME must stop the server with status 1
# before it listens, and print the name as ESCAPED.
bad_param ()
{
  local r=0
  timeout 30 "$NBDCBT" -f -U "$sock" --filter=dirty memory size=1M \
    "bitmap=$1" > "$tmpdir/out" 2>&1 || r=$?
  cat "$tmpdir/out"
  [ $r -eq 1 ] || { echo "$0: bitmap=$2 exited with $r, expected 1"; exit 1; }
  grep -qF "bitmap=$2: Bitmap name is not valid UTF-8" "$tmpdir/out" ||
    { echo "$0: bitmap=$2: wrong message"; exit 1; }
  [ ! -e "$sock" ] || { echo "$0: bitmap=$2: the server listened"; exit 1; }
}

bad_param $'a\xffb' 'a\xffb'
bad_param $'a\xffb:4k' 'a\xffb:4k'
bad_param $'\xc0\xaf' '\xc0\xaf'                   # overlong "/"
bad_param $'s\xed\xa0\x80' 's\xed\xa0\x80'         # a UTF-16 surrogate
bad_param $'\xf4\x90\x80\x80' '\xf4\x90\x80\x80'   # above U+10FFFF
bad_param $'cut\xe2\x82' 'cut\xe2\x82'             # a truncated sequence
bad_param $'caf\xe9\\' 'caf\xe9\\'                 # Latin-1, a backslash

# Good UTF-8 names, two to four bytes per character, start and are listed.
good1=$'h\xc3\xa9' good2=$'\xe6\x97\xa5\xe6\x9c\xac' good3=$'\xf0\x9f\x92\xbe'
start_server "$pid" "$sock" --filter=dirty memory size=1M \
  "bitmap=$good1" "bitmap=$good2:4k" "bitmap=$good3"
nbdinfo --list "$uri" > "$tmpdir/list"
for n in "$good1" "$good2" "$good3"; do
  grep -qF "qemu:dirty-bitmap:$n" "$tmpdir/list" ||
    { cat "$tmpdir/list"; echo "$0: $n not listed"; exit 1; }
done
stop_server "$pid"

# nbdcbt-img bitmap --add: refused on qcow2 and on raw, nothing written.
qemu-img create -q -f qcow2 "$tmpdir/a.qcow2" 1M
cp "$tmpdir/a.qcow2" "$tmpdir/a.orig"
truncate -s 1M "$tmpdir/b.raw"
for img in "$tmpdir/a.qcow2" "$tmpdir/b.raw"; do
  expect_error 'Operation add on bitmap n\xfe\x01 failed: Bitmap name is not valid UTF-8' \
    nbdcbt-img bitmap --add "$img" $'n\xfe\x01'
done
cmp "$tmpdir/a.qcow2" "$tmpdir/a.orig"
if ls "$tmpdir"/b.raw?* 2>/dev/null; then
  echo "$0: a sidecar was written for a refused name"; exit 1
fi
nbdcbt-img bitmap --add "$tmpdir/b.raw" "$good2"
nbdcbt-img info "$tmpdir/b.raw" | grep -qF "$good2"

# A name qemu-img stored already: the server opens the image, exports and
# records the bitmap, and keeps it, clean, at shutdown.
old=$'old\xff'
qemu-img bitmap --add "$tmpdir/a.qcow2" "$old"
start_server "$pid" "$sock" "$tmpdir/a.qcow2"
qemu-io -f raw "$uri" -c 'write -P 1 64k 64k' > /dev/null
nbdinfo --map="qemu:dirty-bitmap:$old" "$uri" > "$tmpdir/map"
cat "$tmpdir/map"
grep -qE '^ +65536 +65536 +1 +dirty' "$tmpdir/map" ||
  { echo "$0: the write was not recorded in the old bitmap"; exit 1; }
stop_server "$pid"
qemu-img check -q "$tmpdir/a.qcow2"
qemu-img info "$tmpdir/a.qcow2" > "$tmpdir/info"
grep -aqF "name: $old" "$tmpdir/info" ||
  { cat "$tmpdir/info"; echo "$0: the old bitmap is gone"; exit 1; }
if grep -aq 'in-use' "$tmpdir/info"; then
  echo "$0: the old bitmap was left in use"; exit 1
fi
# nbdcbt-img still manages it (only new names are checked).
nbdcbt-img bitmap --remove "$tmpdir/a.qcow2" "$old"
