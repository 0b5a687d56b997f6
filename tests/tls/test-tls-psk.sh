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

# PSK TLS (psktool's key file): nbdinfo, nbdcopy, nbdsh with tls-psk-file=
# and tls-username=, qemu-img and qemu-io with tls-creds-psk; a wrong key
# and an unknown user are refused, and the server says why.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/tls-functions.sh"
requires nbdinfo --version
requires nbdcopy --version
requires nbdsh --version
requires qemu-img --version
requires qemu-io --version

k=$tmpdir/k
make_psk "$k"
log=$tmpdir/log
port=$(free_port)
dd if=/dev/urandom of="$tmpdir/data" bs=64k count=16 status=none

# No --tls: credentials mean TLS is required (as qemu-nbd --tls-creds).
start_tcp_server "$tmpdir/pid" "$port" -v --tls-psk="$k/keys.psk" \
                 memory size=1M 2>"$log"

# The username from the URI's authority (this libnbd has no tls-username=
# query parameter), or set_tls_username on a nbds+unix:// URI.
uri="nbds://alice@localhost:$port/?tls-psk-file=$k/keys.psk"
uri2=$uri
nbdinfo "$uri" | grep -q "with TLS"
grep -q "TLS session: TLS1.3, PSK user 'alice', key exchange ECDHE-PSK" "$log"
nbdcopy "$tmpdir/data" "$uri2"
nbdcopy "$uri" "$tmpdir/back"
cmp "$tmpdir/data" "$tmpdir/back"
nbdsh -c 'h.set_uri_allow_local_file(True)' -c "h.connect_uri('$uri2')" \
      -c 'assert h.get_tls_negotiated()' \
      -c 'assert h.pread(4096, 0) == open("'"$tmpdir/data"'", "rb").read(4096)'

# QEMU reads DIR/keys.psk.
mkdir "$tmpdir/q"
cp "$k/keys.psk" "$tmpdir/q/keys.psk"
qobj="tls-creds-psk,id=tls0,endpoint=client,dir=$tmpdir/q,username=alice"
qemu-img info --object "$qobj" \
         --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=tls0" | \
  grep -q "virtual size: 1 MiB"
qemu-io --object "$qobj" \
        --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=tls0" \
        -c 'write -P 0x33 960k 64k' -c 'read -P 0x33 960k 64k' | \
  grep -q "read 65536/65536"

# Refusals, each with the server's reason in its log.
expect_fail "does not match .*keys.psk" "$log" \
            nbdinfo "nbds://alice@localhost:$port/?tls-psk-file=$k/wrong.psk"
: > "$log"
expect_fail "does not match .*keys.psk" "$log" \
            nbdinfo "nbds://bob@localhost:$port/?tls-psk-file=$k/bob.psk"
cp "$k/wrong.psk" "$tmpdir/q/keys.psk"
expect_fail "does not match" "$log" \
            qemu-img info --object "$qobj" \
            --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=tls0"
# A plaintext client: refused, told that TLS is required.
expect_fail "TLS|not supported" - nbdinfo "nbd://localhost:$port/"
stop_server "$tmpdir/pid"

# A Unix socket; the username through nbdsh.
sock=$tmpdir/sock
start_server "$tmpdir/pid2" "$sock" --tls=require --tls-psk="$k/keys.psk" \
             memory size=1M 2>"$log"
nbdsh -c 'h.set_uri_allow_local_file(True)' -c 'h.set_tls_username("alice")' \
      -c "h.connect_uri('nbds+unix:///?socket=$sock&tls-psk-file=$k/keys.psk')" \
      -c 'assert h.get_tls_negotiated()' -c 'assert h.get_size() == 1048576'
qemu-img info --object "tls-creds-psk,id=tls1,endpoint=client,dir=$k,username=alice" \
         --image-opts "driver=nbd,path=$sock,tls-creds=tls1" 2>&1 | \
  grep -q "virtual size: 1 MiB"
stop_server "$tmpdir/pid2"

# -s: TLS over the stdin/stdout the client gives the server.
nbdsh -c 'h.set_tls(2)' -c "h.set_tls_psk_file('$k/keys.psk')" \
      -c 'h.set_tls_username("alice")' \
      -c "h.connect_command(['$NBDCBT', '-s', '--tls-psk=$k/keys.psk', 'memory', 'size=1M'])" \
      -c 'h.pwrite(b"a" * 100000, 0)' -c 'assert h.pread(100000, 0) == b"a" * 100000' \
      -c 'assert h.get_tls_negotiated()'

# The key file is read at every handshake: a key added while the server
# runs works at once (and the documentation says so).
cp "$k/keys.psk" "$tmpdir/live.psk"
start_server "$tmpdir/pid3" "$tmpdir/sock3" --tls-psk="$tmpdir/live.psk" \
             memory size=1M 2>"$log"
expect_fail "does not match" "$log" \
  nbdinfo --size "nbds+unix://bob@/?socket=$tmpdir/sock3&tls-psk-file=$k/bob.psk"
cat "$k/bob.psk" >> "$tmpdir/live.psk"
nbdinfo --size "nbds+unix://bob@/?socket=$tmpdir/sock3&tls-psk-file=$k/bob.psk" | \
  grep -qx 1048576
stop_server "$tmpdir/pid3"
