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

# Helpers for the S3 tests (sourced after tests/functions.sh and
# tests/backup/backup-functions.sh): a real S3 server (Ceph's RADOS
# Gateway, scripts/s3-server) for the test, and a few raw S3 requests
# through curl's own SigV4 to look at the bucket independently of
# nbdcbt-backup's client.

requires curl --version

# make_ca NAME: a CA of our own, $tmpdir/NAME.pem (key NAME.key).
make_ca ()
{
  certtool --generate-privkey --key-type=ecdsa --outfile "$tmpdir/$1.key" \
    2>/dev/null
  printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$1" \
    > "$tmpdir/$1.info"
  certtool --generate-self-signed --load-privkey "$tmpdir/$1.key" \
    --template "$tmpdir/$1.info" --outfile "$tmpdir/$1.pem" 2>/dev/null
}

# start_s3: start the server (skip if Ceph is not installed), export the
# credentials, S3_ENDPOINT (http://127.0.0.1:PORT) and S3_HTTPS_ENDPOINT
# (https://localhost:PORT, its certificate for localhost, $bucket.localhost
# and 127.0.0.1, signed by the CA $tmpdir/ca.pem), and create bucket
# $bucket.
start_s3 ()
{
  local rc=0 env
  bucket=nbdcbt-test
  requires certtool --version
  make_ca ca
  certtool --generate-privkey --key-type=ecdsa \
    --outfile "$tmpdir/server.key" 2>/dev/null
  printf '%s\n' 'cn = localhost' 'dns_name = localhost' \
    "dns_name = $bucket.localhost" 'ip_address = 127.0.0.1' tls_www_server \
    signing_key 'expiration_days = 2' > "$tmpdir/server.info"
  certtool --generate-certificate --load-privkey "$tmpdir/server.key" \
    --load-ca-certificate "$tmpdir/ca.pem" --load-ca-privkey "$tmpdir/ca.key" \
    --template "$tmpdir/server.info" --outfile "$tmpdir/server.pem" 2>/dev/null
  # Socket paths must stay short: a directory of its own under /tmp.
  s3dir=$(mktemp -d /tmp/nbdcbt-s3.XXXXXX)
  cleanup_fn "$top_srcdir/scripts/s3-server stop $s3dir"
  env=$(S3_SERVER_TLS_CERT=$tmpdir/server.pem \
        S3_SERVER_TLS_KEY=$tmpdir/server.key \
        "$top_srcdir/scripts/s3-server" start "$s3dir") || rc=$?
  if [ $rc -eq 77 ]; then
    echo "$0: skipped: Ceph (radosgw, ceph-mon, ceph-osd) is not installed"
    exit 77
  fi
  [ $rc -eq 0 ] || { echo "$0: the S3 server did not start" >&2; exit 1; }
  eval "$env"
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION S3_ENDPOINT \
    S3_HTTPS_ENDPOINT
  unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 \
    AWS_CA_BUNDLE
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  s3curl -X PUT "/$bucket" >/dev/null
  S3=(--s3-endpoint "$S3_ENDPOINT")
}

# s3curl [CURL ARGS] PATH: a signed request to the server; prints the
# body, fails on an HTTP error.
s3curl ()
{
  local path=${!#}
  curl -sS --fail-with-body --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    "${@:1:$#-1}" "$S3_ENDPOINT$path"
}

# s3_keys PREFIX: the keys under PREFIX, one a line.  (curl signs the
# query string as given: it must be canonical already, sorted and
# encoded.)
s3_keys ()
{
  s3curl "/$bucket?list-type=2&prefix=${1//\//%2F}" |
    grep -o '<Key>[^<]*</Key>' | sed 's/<Key>\(.*\)<\/Key>/\1/' || :
}

# s3_uploads PREFIX: the unfinished multipart uploads under PREFIX.
s3_uploads ()
{
  s3curl "/$bucket?prefix=${1//\//%2F}&uploads=" |
    grep -o '<Key>[^<]*</Key>' | sed 's/<Key>\(.*\)<\/Key>/\1/' || :
}

# s3_get KEY FILE
s3_get ()
{
  s3curl -o "$2" "/$bucket/$1"
}
