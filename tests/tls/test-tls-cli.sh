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

# TLS options on the command line: every mistake is refused at startup
# with a message that names it, before anything listens.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/tls-functions.sh"

c=$tmpdir/c
make_x509 "$c"
make_psk "$tmpdir/k"
out=$tmpdir/out

# refused MESSAGE ARGS...: nbdcbt ARGS exits 1 saying MESSAGE.
refused ()
{
  local msg=$1 rc=0; shift
  "$NBDCBT" -f -U "$tmpdir/sock" "$@" memory size=1M > "$out" 2>&1 || rc=$?
  if [ $rc -ne 1 ] || ! grep -q -- "$msg" "$out"; then
    echo "$0: 'nbdcbt $*' exited $rc, expected 1 with '$msg':" >&2
    cat "$out" >&2
    exit 1
  fi
  if [ -e "$tmpdir/sock" ]; then
    echo "$0: 'nbdcbt $*' created its socket" >&2
    exit 1
  fi
}

refused "expected off, on or require" --tls=maybe
refused "needs --tls-certificates=DIR or --tls-psk=FILE" --tls=require
refused "needs --tls-certificates=DIR or --tls-psk=FILE" --tls=on
refused "cannot be used with" --tls=off --tls-certificates="$c/srv"
refused "cannot be used together" --tls-certificates="$c/srv" \
        --tls-psk="$tmpdir/k/keys.psk"
refused "needs --tls-certificates" --tls-psk="$tmpdir/k/keys.psk" \
        --tls-verify-peer
refused "$tmpdir/nowhere/server-cert.pem: No such file" \
        --tls-certificates="$tmpdir/nowhere"
mkdir "$tmpdir/nokey"
cp "$c/srv/server-cert.pem" "$tmpdir/nokey/"
refused "server-key.pem: No such file" --tls-certificates="$tmpdir/nokey"
mkdir "$tmpdir/noca"
cp "$c/srv/server-cert.pem" "$c/srv/server-key.pem" "$tmpdir/noca/"
refused "ca-cert.pem: No such file.*checked against this CA" \
        --tls-certificates="$tmpdir/noca" --tls-verify-peer
# A key that is not the certificate's.
cp "$c/cli/client-key.pem" "$tmpdir/nokey/server-key.pem"
refused "cannot load the server certificate and key" \
        --tls-certificates="$tmpdir/nokey"
# A CRL that is not one.
mkdir "$tmpdir/badcrl"
cp "$c/srv/"*.pem "$tmpdir/badcrl/"
echo garbage > "$tmpdir/badcrl/ca-crl.pem"
refused "ca-crl.pem: cannot load the certificate revocation list" \
        --tls-certificates="$tmpdir/badcrl"
refused "nowhere.psk: No such file" --tls-psk="$tmpdir/nowhere.psk"
printf 'alice\n' > "$tmpdir/bad.psk"
refused "bad.psk:1: expected USERNAME:HEXKEY" --tls-psk="$tmpdir/bad.psk"
printf 'alice:xyz\n' > "$tmpdir/bad.psk"
refused "bad.psk:1: the key is not hexadecimal" --tls-psk="$tmpdir/bad.psk"
: > "$tmpdir/empty.psk"
refused "no keys in the file" --tls-psk="$tmpdir/empty.psk"

"$NBDCBT" --help | grep -q -- "--tls=off|on|require"

# A relative --tls-psk still names the same file once the daemon has
# changed to / (gnutls reads it at every handshake).
port=$(free_port)
cd "$tmpdir/k"
"$NBDCBT" -P "$tmpdir/pid" -i 127.0.0.1 -p "$port" --tls-psk=keys.psk \
          memory size=1M
cleanup_fn 'kill $(cat "$tmpdir/pid")'
cd /
wait_for_file "$tmpdir/pid"
nbdinfo --size "nbds://alice@localhost:$port/?tls-psk-file=$tmpdir/k/keys.psk" | \
  grep -qx 1048576
