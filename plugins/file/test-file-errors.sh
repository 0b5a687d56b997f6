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

# file plugin: clear errors and a non-zero exit for a missing file, a
# directory, an unreadable file and bad parameters.
source "$top_srcdir/tests/functions.sh" || exit 99

# expect_error WHAT PATTERN ARGS...: the server must exit non-zero before
# serving and say PATTERN.
expect_error ()
{
  local what=$1 pattern=$2; shift 2
  if timeout 30 "$@" >"$tmpdir/out" 2>&1 </dev/null; then
    echo "$0: $what: the server started" >&2
    exit 1
  fi
  if ! grep -q -- "$pattern" "$tmpdir/out"; then
    echo "$0: $what: expected '$pattern' in:" >&2
    cat "$tmpdir/out" >&2
    exit 1
  fi
  echo "$what: $(head -n1 "$tmpdir/out")"
}

sock=$tmpdir/sock
expect_error "missing file" "No such file or directory" \
  "$NBDCBT" -U "$sock" file "$tmpdir/nonexistent"
expect_error "directory" "is a directory" \
  "$NBDCBT" -U "$sock" file "$tmpdir"
expect_error "no file" "no file given" \
  "$NBDCBT" -U "$sock" file
truncate -s 1M "$tmpdir/disk.img"
expect_error "bad cache" "cache=sometimes" \
  "$NBDCBT" -U "$sock" file "$tmpdir/disk.img" cache=sometimes
expect_error "bad fadvise" "fadvise=fast" \
  "$NBDCBT" -U "$sock" file "$tmpdir/disk.img" fadvise=fast
expect_error "unknown parameter" "unknown parameter 'colour'" \
  "$NBDCBT" -U "$sock" file "$tmpdir/disk.img" colour=blue

# Permission denied: root ignores file modes unless it drops the
# capabilities that let it.
chmod 000 "$tmpdir/disk.img"
if [ "$(id -u)" -ne 0 ]; then
  expect_error "unreadable" "Permission denied" \
    "$NBDCBT" -U "$sock" file "$tmpdir/disk.img"
elif setpriv --bounding-set=-dac_override,-dac_read_search \
       --inh-caps=-dac_override,-dac_read_search true 2>/dev/null; then
  expect_error "unreadable" "Permission denied" \
    setpriv --bounding-set=-dac_override,-dac_read_search \
      --inh-caps=-dac_override,-dac_read_search \
      "$NBDCBT" -U "$sock" file "$tmpdir/disk.img"
else
  echo "cannot drop root's file access override: permission test skipped"
fi

# A file that can be read but not written is served read-only, not
# refused.
chmod 444 "$tmpdir/disk.img"
drop=()
if [ "$(id -u)" -eq 0 ]; then
  if ! setpriv --bounding-set=-dac_override,-dac_read_search \
         --inh-caps=-dac_override,-dac_read_search true 2>/dev/null; then
    echo "$0: skipped: cannot drop root's file access override"
    exit 77
  fi
  drop=(setpriv --bounding-set=-dac_override,-dac_read_search
        --inh-caps=-dac_override,-dac_read_search)
fi
requires nbdinfo --version
"${drop[@]}" "$NBDCBT" -f -U "$sock" -P "$tmpdir/pid" \
  file "$tmpdir/disk.img" &
srvpid=$!
cleanup_fn "kill $srvpid 2>/dev/null; wait $srvpid 2>/dev/null"
wait_for_file "$tmpdir/pid"
uri="nbd+unix:///?socket=$sock"
[ "$(nbdinfo --size "$uri")" -eq 1048576 ]
set +e
nbdinfo --can write "$uri"; r=$?
set -e
if [ $r -ne 2 ]; then
  echo "$0: read-only file: nbdinfo --can write exited $r, expected 2" >&2
  exit 1
fi
echo "read-only file: served read-only"
