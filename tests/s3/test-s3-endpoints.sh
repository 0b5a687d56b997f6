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

# How nbdcbt-backup reaches the S3 server, against Ceph's RADOS Gateway
# serving HTTP and HTTPS (its certificate from a CA made here with
# certtool):
#   - HTTPS with the CA given by AWS_CA_BUNDLE, --s3-ca-bundle or the
#     profile's ca_bundle: full and incremental backups, verify, restore;
#   - a certificate from an unknown CA (none given, or another CA's
#     bundle) is refused, clearly, and nothing is written; HTTPS is never
#     given up for HTTP: an https:// endpoint that speaks HTTP fails, an
#     endpoint without a scheme is refused;
#   - virtual-hosted addressing (BUCKET.localhost, libcurl resolves every
#     *.localhost to the loopback) over HTTP and HTTPS, proved by the
#     gateway's access log: no request path names the bucket.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
start_s3
echo "[$SECONDS s] server up"
port=${S3_ENDPOINT##*:}
tls_port=${S3_HTTPS_ENDPOINT##*:}
rgwlog=$s3dir/log/client.rgw.log
make_ca other-ca

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 7M' -c 'write -P 0x22 20M 3M' \
  "$img" >/dev/null
qemu-img bitmap --add "$img" b0
serve_qemu "$img" -B b0

# No objects and no upload under PREFIX (looked at over plain HTTP).
nothing_under ()
{
  [ -z "$(s3_keys "$1")" ] && [ -z "$(s3_uploads "$1")" ]
}

# --- HTTPS: an unknown CA is refused and nothing is written -------------

url=s3://$bucket/tls/disk0
H=(--s3-endpoint "$S3_HTTPS_ENDPOINT")
expect_error "the server's certificate is not trusted" \
  $BACKUP full "$uri" -o "$url" --bitmap b0 "${H[@]}"
grep -qF 'not signed by a CA the system trusts' "$tmpdir/out"
grep -qF 'AWS_CA_BUNDLE' "$tmpdir/out"
nothing_under tls/
expect_error "not signed by a CA in $tmpdir/other-ca.pem" \
  env AWS_CA_BUNDLE="$tmpdir/other-ca.pem" \
  $BACKUP full "$uri" -o "$url" --bitmap b0 "${H[@]}"
nothing_under tls/
expect_error "S3 CA bundle '$tmpdir/nosuch.pem'" \
  $BACKUP full "$uri" -o "$url" --bitmap b0 "${H[@]}" \
  --s3-ca-bundle "$tmpdir/nosuch.pem"
grep -qF 'No such file or directory' "$tmpdir/out"
nothing_under tls/
# HTTPS asked of the HTTP port: no TLS session, and no fallback.
expect_error 'is it an HTTPS server?' \
  $BACKUP full "$uri" -o "$url" --bitmap b0 --s3-retries 0 \
  --s3-endpoint "https://localhost:$port" --s3-ca-bundle "$tmpdir/ca.pem"
nothing_under tls/
# HTTP is never implied.
expect_error 'must start with https://' \
  $BACKUP full "$uri" -o "$url" --bitmap b0 --s3-endpoint "localhost:$port"
nothing_under tls/
echo "[$SECONDS s] refusals done"

# --- HTTPS with our CA: a chain written and read back -------------------

$BACKUP full "$uri" -o "$url" --bitmap b0 "${H[@]}" --s3-part-size 5M \
  --s3-ca-bundle "$tmpdir/ca.pem"
stop_qemu
qemu-img convert -U -O raw "$img" "$tmpdir/point0.raw"
random_writes "$img" 1
serve_qemu "$img" -B b0
AWS_CA_BUNDLE=$tmpdir/ca.pem $BACKUP inc "$uri" -o "$url" --bitmap b0 "${H[@]}"
stop_qemu
qemu-img convert -U -O raw "$img" "$tmpdir/point1.raw"
# The profile's ca_bundle, as aws-cli reads it.
printf '[default]\nca_bundle = %s\n' "$tmpdir/ca.pem" > "$tmpdir/aws-config"
AWS_CONFIG_FILE=$tmpdir/aws-config $BACKUP verify "$url" "${H[@]}"
export AWS_CA_BUNDLE=$tmpdir/ca.pem
$BACKUP list "$url" "${H[@]}" | tee "$tmpdir/list"
grep -q '^1 *incremental' "$tmpdir/list"
for n in 0 1; do
  rm -f "$tmpdir/r.raw"
  $BACKUP restore "$url" --until $n -o "$tmpdir/r.raw" "${H[@]}"
  cmp "$tmpdir/r.raw" "$tmpdir/point$n.raw"
done
# The same objects, seen over HTTP.
[ "$(s3_keys tls/disk0/ | grep -c '\.qcow2$')" -eq 2 ]
# The gateway's certificate is also for 127.0.0.1.
$BACKUP list "$url" --s3-endpoint "https://127.0.0.1:$tls_port" >/dev/null
unset AWS_CA_BUNDLE
# Reading it back without the CA: refused the same way, and not taken
# for a damaged chain; prune changes nothing.
for cmd in "verify $url" "restore $url -o $tmpdir/x.raw" "prune $url --keep 1"; do
  expect_error "the server's certificate is not trusted" $BACKUP $cmd "${H[@]}"
  ! grep -q 'damaged' "$tmpdir/out"
done
[ ! -e "$tmpdir/x.raw" ]
[ "$(s3_keys tls/disk0/ | grep -c '\.qcow2$')" -eq 2 ]
echo "[$SECONDS s] https done"

# --- Virtual-hosted addressing -------------------------------------------

# Requests go to BUCKET.localhost: the gateway (rgw_dns_name localhost)
# takes the bucket from the Host header; the path is the key alone.
url=s3://$bucket/vhost/disk0
V=(--s3-endpoint "http://localhost:$port" --s3-addressing-style virtual)
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$url" --bitmap b0 "${V[@]}" --s3-part-size 5M
stop_qemu
qemu-img convert -U -O raw "$img" "$tmpdir/point0.raw"
random_writes "$img" 2
serve_qemu "$img" -B b0
# addressing_style from the profile's s3 block, as aws-cli reads it.
printf '[default]\ns3 =\n  addressing_style = virtual\n' > "$tmpdir/aws-vhost"
AWS_CONFIG_FILE=$tmpdir/aws-vhost \
  $BACKUP inc "$uri" -o "$url" --bitmap b0 --s3-endpoint "http://localhost:$port"
stop_qemu
qemu-img convert -U -O raw "$img" "$tmpdir/point1.raw"
$BACKUP verify "$url" "${V[@]}"
for n in 0 1; do
  rm -f "$tmpdir/r.raw"
  $BACKUP restore "$url" --until $n -o "$tmpdir/r.raw" "${V[@]}"
  cmp "$tmpdir/r.raw" "$tmpdir/point$n.raw"
done
# Over HTTPS too (the certificate names $bucket.localhost).
$BACKUP verify "$url" --s3-endpoint "$S3_HTTPS_ENDPOINT" \
  --s3-addressing-style virtual --s3-ca-bundle "$tmpdir/ca.pem"
# The objects are in the bucket (listed path-style, over HTTP)...
s3_keys vhost/disk0/ | tee "$tmpdir/keys"
grep -qx vhost/disk0/manifest.json "$tmpdir/keys"
[ "$(grep -c '\.qcow2$' "$tmpdir/keys")" -eq 2 ]
# ... and every request for them named the key alone: the uploads, the
# manifest written and read, the ranged reads.
grep -E '"(PUT|POST|GET|HEAD) /vhost/disk0/' "$rgwlog" > "$tmpdir/vlog"
grep -q '"PUT /vhost/disk0/manifest.json ' "$tmpdir/vlog"
grep -q '"POST /vhost/disk0/backup-0000-[0-9a-f]*\.qcow2?uploads' "$tmpdir/vlog"
grep -q '"GET /vhost/disk0/manifest.json ' "$tmpdir/vlog"
! grep -q "/$bucket/vhost/" "$rgwlog"
# Virtual-hosted style cannot name an IP address.
expect_error 'virtual-hosted style needs a host name' \
  $BACKUP list "$url" --s3-endpoint "$S3_ENDPOINT" --s3-addressing-style virtual
echo "[$SECONDS s] virtual-hosted done"
