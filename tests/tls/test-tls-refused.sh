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

# X.509 refusals, each with a clear reason: a client that trusts another
# CA, an expired server certificate, and with --tls-verify-peer: no
# client certificate, one from another CA, an expired one, a revoked one
# (ca-crl.pem).  The good client still gets in.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/tls-functions.sh"
requires nbdinfo --version
requires qemu-img --version

c=$tmpdir/c
make_x509 "$c"
log=$tmpdir/log
port=$(free_port)
url="nbds://localhost:$port/?tls-certificates="

# The client checks the server (libnbd checks only over TCP, where it
# has a host name).
start_tcp_server "$tmpdir/pid" "$port" --tls=require \
                 --tls-certificates="$c/srv" memory size=1M 2>"$log"
nbdinfo --size "${url}$c/cli" | grep -qx 1048576
expect_fail "certificate verification|NOT trusted|not trusted" - \
            nbdinfo --size "${url}$c/cli-wrongca"
expect_fail "certificate|verif|trust" - \
            qemu-img info --object "tls-creds-x509,id=t,endpoint=client,dir=$c/cli-wrongca" \
            --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=t"
stop_server "$tmpdir/pid"

# An expired server certificate: the server says so at startup, and the
# client refuses it.
start_tcp_server "$tmpdir/pid2" "$port" --tls=require \
                 --tls-certificates="$c/srv-expired" memory size=1M 2>"$log"
grep -q "server-cert.pem expired on 2020-06-01" "$log"
expect_fail "certificate verification|expired" - \
            nbdinfo --size "${url}$c/cli"
stop_server "$tmpdir/pid2"

# --tls-verify-peer: client certificates checked against the CA and CRL.
start_tcp_server "$tmpdir/pid3" "$port" --tls=require --tls-verify-peer \
                 --tls-certificates="$c/srv" memory size=1M 2>"$log"
nbdinfo --size "${url}$c/cli" | grep -qx 1048576
# (the CA's directory alone: no client certificate)
expect_fail "sent no certificate" "$log" nbdinfo --size "${url}$c/ca"
: > "$log"
expect_fail "sent no certificate signed by the CA" "$log" \
            nbdinfo --size "${url}$c/cli-foreign"
: > "$log"
expect_fail "client certificate refused: .*expired" "$log" \
            nbdinfo --size "${url}$c/cli-expired"
: > "$log"
expect_fail "client certificate refused: .*revoked" "$log" \
            nbdinfo --size "${url}$c/cli-revoked"
: > "$log"
expect_fail "client certificate refused: .*revoked" "$log" \
            qemu-img info --object "tls-creds-x509,id=t,endpoint=client,dir=$c/cli-revoked" \
            --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=t"
qemu-img info --object "tls-creds-x509,id=t,endpoint=client,dir=$c/cli" \
         --image-opts "driver=nbd,host=localhost,port=$port,tls-creds=t" | \
  grep -q "virtual size: 1 MiB"
nbdinfo --size "${url}$c/cli" | grep -qx 1048576
stop_server "$tmpdir/pid3"
