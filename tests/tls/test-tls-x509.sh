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

# X.509 TLS with the clients people use: nbdinfo, nbdcopy, nbdsh (nbds://
# and nbds+unix:// URIs), qemu-img and qemu-io (--object tls-creds-x509).
# --tls=require refuses plaintext; --tls=on serves both; TLS 1.3.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/tls-functions.sh"
requires nbdinfo --version
requires nbdcopy --version
requires nbdsh --version
requires qemu-img --version
requires qemu-io --version

c=$tmpdir/c
make_x509 "$c"
log=$tmpdir/log
sock=$tmpdir/sock
port=$(free_port)
dd if=/dev/urandom of="$tmpdir/data" bs=64k count=16 status=none

start_tcp_server "$tmpdir/pid" "$port" -v --tls=require \
                 --tls-certificates="$c/srv" memory size=1M 2>"$log"

tcp="nbds://localhost:$port/?tls-certificates=$c/cli"

# nbdinfo: TLS, and TLS 1.3 (both sides have it).
nbdinfo "$tcp" > "$tmpdir/info"
grep -q "with TLS" "$tmpdir/info"
grep -q "export-size: 1048576" "$tmpdir/info"
grep -q "TLS session: TLS1.3" "$log"

# nbdcopy both ways; what comes back is what went in.
nbdcopy "$tmpdir/data" "$tcp"
nbdcopy "$tcp" "$tmpdir/back"
cmp "$tmpdir/data" "$tmpdir/back"

# nbdsh.
# (nbdsh -u refuses tls-certificates= unless local files are allowed.)
nbdsh -c 'h.set_uri_allow_local_file(True)' -c "h.connect_uri('$tcp')" \
      -c 'assert h.get_size() == 1048576' \
      -c 'assert h.get_tls_negotiated()' \
      -c 'h.pwrite(b"x" * 512, 4096)' -c 'assert h.pread(512, 4096) == b"x" * 512'

# qemu-img and qemu-io through tls-creds-x509 (QEMU wants client-cert.pem
# and client-key.pem in the directory only with verify-peer on the server;
# qemu's client checks the server against ca-cert.pem).
qobj="tls-creds-x509,id=tls0,endpoint=client,dir=$c/cli"
qemu-img info --object "$qobj" \
         --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=tls0" \
         > "$tmpdir/qinfo"
grep -q "virtual size: 1 MiB" "$tmpdir/qinfo"
qemu-io --object "$qobj" \
        --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=tls0" \
        -c 'write -P 0x5a 0 64k' -c 'read -P 0x5a 0 64k' > "$tmpdir/qio"
grep -q "read 65536/65536" "$tmpdir/qio"
nbdcopy "$tcp" "$tmpdir/back2"
# qemu-io's write landed; the rest is nbdcopy's.
head -c 65536 /dev/zero | tr '\0' '\132' > "$tmpdir/pattern"
cmp -n 65536 "$tmpdir/back2" "$tmpdir/pattern"
cmp -i 65536 "$tmpdir/back2" "$tmpdir/data"

# A plaintext client gets nothing from --tls=require.
expect_fail "TLS is required|not supported|TLS_REQD|required" - \
            nbdinfo "nbd://localhost:$port/"
stop_server "$tmpdir/pid"

# --tls=on: both kinds of client, on a Unix socket this time.
start_server "$tmpdir/pid2" "$sock" -v --tls=on \
             --tls-certificates="$c/srv" memory size=1M 2>"$log"
nbdinfo "nbds+unix:///?socket=$sock&tls-certificates=$c/cli" | \
  grep -q "with TLS"
nbdinfo "nbd+unix:///?socket=$sock" | grep -q "without TLS"
nbdsh -c 'h.set_uri_allow_local_file(True)' \
      -c "h.connect_uri('nbds+unix:///?socket=$sock&tls-certificates=$c/cli')" \
      -c 'assert h.get_tls_negotiated()'
qemu-img info --object "$qobj" \
         --image-opts "driver=nbd,path=$sock,tls-creds=tls0,tls-hostname=localhost" | \
  grep -q "virtual size: 1 MiB"
qemu-img info "nbd+unix:///?socket=$sock" | grep -q "virtual size: 1 MiB"
stop_server "$tmpdir/pid2"
