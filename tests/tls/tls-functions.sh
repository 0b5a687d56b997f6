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

# Shared by the TLS tests: credentials made with certtool and psktool
# (gnutls-bin) in the test's scratch directory.  Source after
# tests/functions.sh.
#
#   make_x509 DIR   DIR/srv:        CA, server certificate (localhost,
#                                   127.0.0.1), CRL revoking DIR/revoked
#                   DIR/cli:        CA and a good client certificate
#                   DIR/cli-wrongca: another CA, a client cert from it
#                   DIR/cli-foreign: the CA, a client cert from another
#                   DIR/cli-expired, DIR/cli-revoked: client certificates
#                                   expired / revoked by the CA
#                   DIR/srv-expired: an expired server certificate
#   make_psk DIR    DIR/keys.psk (user alice), DIR/wrong.psk (alice with
#                   another key), DIR/bob.psk (an unknown user)

requires certtool --version
requires psktool --version

_certtool ()
{
  certtool "$@" >/dev/null 2>&1 || {
    echo "$0: certtool $* failed" >&2
    certtool "$@" >&2
    return 1
  }
}

_ca ()
{
  local d=$1 cn=$2
  cat > "$d/ca.info" <<EOT
cn = $cn
ca
cert_signing_key
crl_signing_key
expiration_days = 30
EOT
  _certtool --generate-privkey --key-type=ecdsa --outfile "$d/ca-key.pem"
  _certtool --generate-self-signed --load-privkey "$d/ca-key.pem" \
            --template "$d/ca.info" --outfile "$d/ca-cert.pem"
}

# _cert CADIR OUTDIR PREFIX TEMPLATE-LINES
_cert ()
{
  local ca=$1 out=$2 prefix=$3 lines=$4
  mkdir -p "$out"
  printf '%s\n' "$lines" > "$out/$prefix.info"
  _certtool --generate-privkey --key-type=ecdsa --outfile "$out/$prefix-key.pem"
  _certtool --generate-certificate --load-ca-certificate "$ca/ca-cert.pem" \
            --load-ca-privkey "$ca/ca-key.pem" \
            --load-privkey "$out/$prefix-key.pem" \
            --template "$out/$prefix.info" --outfile "$out/$prefix-cert.pem"
  cp "$ca/ca-cert.pem" "$out/"
}

make_x509 ()
{
  local d=$1
  local server="cn = localhost
dns_name = localhost
ip_address = 127.0.0.1
tls_www_server
signing_key
encryption_key"
  local past='activation_date = "2020-01-01 00:00:00 UTC"
expiration_date = "2020-06-01 00:00:00 UTC"'
  mkdir -p "$d/ca" "$d/ca2"
  _ca "$d/ca" "nbdcbt test CA"
  _ca "$d/ca2" "another CA"
  _cert "$d/ca" "$d/srv" server "$server
expiration_days = 30"
  _cert "$d/ca" "$d/srv-expired" server "$server
$past"
  _cert "$d/ca" "$d/cli" client "cn = good client
tls_www_client
signing_key
expiration_days = 30"
  _cert "$d/ca2" "$d/cli-wrongca" client "cn = client of another CA
tls_www_client
signing_key
expiration_days = 30"
  mkdir -p "$d/cli-foreign"
  cp "$d/cli-wrongca/client-cert.pem" "$d/cli-wrongca/client-key.pem" \
     "$d/ca/ca-cert.pem" "$d/cli-foreign/"
  _cert "$d/ca" "$d/cli-expired" client "cn = expired client
tls_www_client
signing_key
$past"
  _cert "$d/ca" "$d/cli-revoked" client "cn = revoked client
tls_www_client
signing_key
serial = 4242
expiration_days = 30"
  printf 'crl_next_update = 30\ncrl_number = 1\n' > "$d/crl.info"
  _certtool --generate-crl --load-ca-privkey "$d/ca/ca-key.pem" \
            --load-ca-certificate "$d/ca/ca-cert.pem" \
            --load-certificate "$d/cli-revoked/client-cert.pem" \
            --template "$d/crl.info" --outfile "$d/srv/ca-crl.pem"
}

make_psk ()
{
  local d=$1
  mkdir -p "$d"
  psktool -u alice -p "$d/keys.psk" >/dev/null
  psktool -u alice -p "$d/wrong.psk" >/dev/null
  psktool -u bob -p "$d/bob.psk" >/dev/null
}

# A free TCP port on 127.0.0.1 (there is a small race until the server
# binds it; the servers here fail loudly if it is taken).
free_port ()
{
  $PYTHON -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_tcp_server PIDFILE PORT ARGS...: nbdcbt on 127.0.0.1:PORT.
start_tcp_server ()
{
  local pidfile=$1 port=$2; shift 2
  "$NBDCBT" -f -P "$pidfile" -i 127.0.0.1 -p "$port" "$@" &
  local bgpid=$!
  cleanup_fn "kill $bgpid 2>/dev/null; wait $bgpid 2>/dev/null"
  wait_for_file "$pidfile" 30
}

# expect_fail MESSAGE-REGEX LOGFILE CMD...: CMD must fail, and LOGFILE
# (or CMD's own output when LOGFILE is -) must then match the regex.
expect_fail ()
{
  local re=$1 log=$2; shift 2
  local out=$tmpdir/expect_fail.out
  if "$@" > "$out" 2>&1; then
    echo "$0: expected to fail: $*" >&2
    cat "$out" >&2
    return 1
  fi
  [ "$log" = - ] && log=$out
  # The server logs asynchronously from the client's exit.
  local i
  for (( i = 0; i < 50; i++ )); do
    grep -Eq -- "$re" "$log" && return 0
    sleep 0.1
  done
  echo "$0: '$*' failed, but '$re' is not in $log:" >&2
  cat "$out" "$log" >&2
  return 1
}
