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

# log filter: a line per request with the right command, offset, count,
# flags and result; Connect and Disconnect lines; the log is appended to.
source "$top_srcdir/tests/functions.sh" || exit 99
# nbdsh's "#!/usr/bin/env python3" may find a python without libnbd.
nbdsh () { "$PYTHON" -m nbd "$@"; }
requires nbdsh --version

log=$tmpdir/nbd.log
echo "previous contents" > "$log"
start_server "$tmpdir/pid" "$tmpdir/sock" --filter=log \
  memory size=1M logfile="$log"

nbdsh -u "nbd+unix:///?socket=$tmpdir/sock" -c '
h.pwrite(b"hello", 4096, nbd.CMD_FLAG_FUA)
assert h.pread(5, 4096) == b"hello"
h.flush()
h.trim(65536, 131072)
h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO)
h.set_strict_mode(0)
try:
    h.pread(512, 1048576)
except nbd.Error:
    pass
'
stop_server "$tmpdir/pid"
cat "$log"

# expect PATTERN: exactly one line matches the extended regexp.
expect ()
{
  local n
  n=$(grep -cE "$1" "$log" || :)
  if [ "$n" -ne 1 ]; then
    echo "$0: expected one line matching '$1', found $n" >&2
    exit 1
  fi
}
t='^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}\.[0-9]{6} connection=1 '
expect '^previous contents$'
expect "${t}Connect export='' readonly=0 size=0x100000 "
expect "${t}Write id=[0-9]+ offset=0x1000 count=0x5 fua=1 return=0$"
expect "${t}Read id=[0-9]+ offset=0x1000 count=0x5 return=0$"
# The client's flush, then the server's own at disconnect: the trim and
# zero came after the client's flush, so the server flushes them before it
# closes the chain.
n=$(grep -cE "${t}Flush id=[0-9]+ return=0$" "$log")
if [ "$n" -ne 2 ] || ! tail -n 2 "$log" | head -n 1 | grep -qE "${t}Flush id="; then
  echo "$0: expected the client's flush and one at disconnect before the Disconnect line:" >&2
  cat "$log" >&2
  exit 1
fi
expect "${t}Trim id=[0-9]+ offset=0x20000 count=0x10000 fua=0 return=0$"
expect "${t}Zero id=[0-9]+ offset=0x0 count=0x200 trim=[01] fua=0 fast=1 return=0$"
expect "${t}Disconnect transactions=[0-9]+$"
# The read past the end is refused by the server before it reaches any
# layer, or logged with its error: either way no successful read there.
if grep -q 'offset=0x100000 count=0x200 return=0' "$log"; then
  echo "$0: read past the end succeeded" >&2
  exit 1
fi

# A missing logfile= is an error at startup.
if "$NBDCBT" -U "$tmpdir/sock2" --filter=log memory 1M \
     >"$tmpdir/out" 2>&1 </dev/null; then
  echo "$0: the server started without logfile=" >&2
  exit 1
fi
grep -q 'logfile' "$tmpdir/out"
