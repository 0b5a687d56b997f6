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

# memory plugin: size parsing.  Good sizes serve the right size; bad ones
# make the server exit with an error before it serves.
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdinfo --version

check_size ()
{
  local arg=$1 want=$2 got
  start_server "$tmpdir/pid.$want" "$tmpdir/sock.$want" memory "$arg"
  got=$(nbdinfo --size "nbd+unix:///?socket=$tmpdir/sock.$want")
  if [ "$got" != "$want" ]; then
    echo "$0: memory $arg: size $got, expected $want" >&2
    exit 1
  fi
  stop_server "$tmpdir/pid.$want"
}

check_size size=1G 1073741824
check_size size=512k 524288
check_size 4096 4096
check_size size=0 0

for bad in size=-1 size=1Q size=abc size= 1G1 size=99999999E; do
  if "$NBDCBT" -U "$tmpdir/bad.sock" memory $bad \
       >"$tmpdir/out" 2>&1 </dev/null; then
    echo "$0: memory $bad: the server accepted a bad size" >&2
    exit 1
  fi
  if ! grep -qi 'size' "$tmpdir/out"; then
    echo "$0: memory $bad: error does not mention the size:" >&2
    cat "$tmpdir/out" >&2
    exit 1
  fi
done

# No size at all.
if "$NBDCBT" -U "$tmpdir/bad.sock" memory >"$tmpdir/out" 2>&1 </dev/null; then
  echo "$0: memory without size was accepted" >&2
  exit 1
fi
grep -q 'size' "$tmpdir/out"
