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

# nbdcbt-backup over TLS: a full and an incremental backup from nbdcbt's
# dirty filter with X.509 (URI parameters, and --tls-* options with a
# client certificate the server checks), with PSK (tls-psk-file= and
# tls-username= in the URI, and --tls-psk/--tls-username), a restore to a
# TLS target; refusals with clear messages (wrong CA, wrong key, a
# plaintext server when TLS is required).
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/tls-functions.sh"
requires nbdcbt-backup --version
requires qemu-img --version
requires nbdcopy --version

c=$tmpdir/c
make_x509 "$c"
make_psk "$tmpdir/k"
k=$tmpdir/k
port=$(free_port)
log=$tmpdir/log

# write SEED: some writes over TLS, so that the bitmap has something.
write ()
{
  nbdsh -c 'h.set_uri_allow_local_file(True)' -c "h.connect_uri('$1')" \
        -c "import random; r = random.Random($2)" \
        -c 'for i in range(8): h.pwrite(bytes([r.randrange(1, 256)]) * 65536, r.randrange(0, 255) * 65536)' \
        -c 'h.flush()'
}

# X.509, the client's certificate checked by the server.
start_tcp_server "$tmpdir/pid" "$port" --tls-certificates="$c/srv" \
                 --tls-verify-peer --filter=dirty memory size=16M \
                 bitmap=b0 2>"$log"
uri="nbds://localhost:$port/?tls-certificates=$c/cli"
write "$uri" 1
nbdcbt-backup full "$uri" -o "$tmpdir/b1" --bitmap b0 -q
nbdcopy "$uri" "$tmpdir/p0.raw"
write "$uri" 2
# The same with options instead of URI parameters.
nbdcbt-backup inc "nbd://localhost:$port/" --tls-certificates="$c/cli" \
              -o "$tmpdir/b1" --bitmap b0 -q -C 2
nbdcopy "$uri" "$tmpdir/p1.raw"
nbdcbt-backup verify "$tmpdir/b1" -q
qemu-img compare -q -f qcow2 -F raw "$tmpdir/b1/backup-0000.qcow2" "$tmpdir/p0.raw"
qemu-img compare -q -f qcow2 -F raw "$tmpdir/b1/backup-0001.qcow2" "$tmpdir/p1.raw"

# Refused: a client trusting another CA (its certificate is another's
# too), and a plaintext connection.
expect_fail "nbdcbt-backup: nbds://.*(certificate|verification)" - \
  nbdcbt-backup inc "nbds://localhost:$port/?tls-certificates=$c/cli-wrongca" \
                -o "$tmpdir/b1" --bitmap b0
expect_fail "nbdcbt-backup: nbd://.*(TLS|not supported)" - \
  nbdcbt-backup inc "nbd://localhost:$port/" -o "$tmpdir/b1" --bitmap b0
expect_fail "nbdcbt-backup: nbd://.*(certificate|verification)" - \
  nbdcbt-backup inc "nbd://localhost:$port/" --tls-certificates="$c/cli-wrongca" \
                -o "$tmpdir/b1" --bitmap b0
nbdcbt-backup list "$tmpdir/b1" | grep -c "^ *[0-9]" > /dev/null
stop_server "$tmpdir/pid"

# PSK, on a Unix socket; restore to a TLS target.
sock=$tmpdir/sock
start_server "$tmpdir/pid2" "$sock" --tls-psk="$k/keys.psk" \
             --filter=dirty memory size=16M bitmap=b0 2>"$log"
puri="nbds+unix:///?socket=$sock&tls-psk-file=$k/keys.psk&tls-username=alice"
# (this libnbd has no tls-username= parameter: nbdcbt-backup handles it)
nbdsh -c 'h.set_uri_allow_local_file(True)' -c 'h.set_tls_username("alice")' \
      -c "h.connect_uri('nbds+unix:///?socket=$sock&tls-psk-file=$k/keys.psk')" \
      -c 'h.pwrite(b"\x42" * 65536, 0)' -c 'h.flush()'
nbdcbt-backup full "$puri" -o "$tmpdir/b2" --bitmap b0 -q
nbdcbt-backup inc "nbd+unix:///?socket=$sock" --tls-psk="$k/keys.psk" \
              --tls-username=alice -o "$tmpdir/b2" --bitmap b0 -q
nbdcbt-backup verify "$tmpdir/b2" -q
expect_fail "needs a username" - \
  nbdcbt-backup inc "nbds+unix:///?socket=$sock&tls-psk-file=$k/keys.psk" \
                -o "$tmpdir/b2" --bitmap b0
: > "$log"
expect_fail "does not match" "$log" \
  nbdcbt-backup inc "nbd+unix:///?socket=$sock" --tls-psk="$k/wrong.psk" \
                --tls-username=alice -o "$tmpdir/b2" --bitmap b0
stop_server "$tmpdir/pid2"

# Restore over TLS into an empty export.
start_server "$tmpdir/pid3" "$sock" --tls-psk="$k/keys.psk" memory size=16M
nbdcbt-backup restore "$tmpdir/b1" -o "$puri" -q
nbdcopy "nbds+unix://alice@/?socket=$sock&tls-psk-file=$k/keys.psk" "$tmpdir/r.raw"
cmp "$tmpdir/r.raw" "$tmpdir/p1.raw"
stop_server "$tmpdir/pid3"

# Option mistakes.
expect_fail "expected off, on or require" - nbdcbt-backup --tls=maybe list "$tmpdir/b1"
expect_fail "cannot be used together" - \
  nbdcbt-backup --tls-certificates="$c/cli" --tls-psk="$k/keys.psk" list "$tmpdir/b1"
