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

# The nbd plugin's bad parameters and unreachable upstreams: a clear error
# and exit status 1 before the server listens; a client of a server whose
# upstream went away gets errors, not a hang or a crash.
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdkit --version
requires nbdsh --version

sock="$tmpdir/sock"

# bad PATTERN ARGS...: the server must exit 1, print PATTERN, never listen.
bad ()
{
  local pattern=$1 r=0; shift
  timeout 60 "$NBDCBT" -f -U "$sock" nbd "$@" > "$tmpdir/out" 2>&1 || r=$?
  if [ $r -ne 1 ]; then
    echo "$0: nbd $* exited with $r, expected 1" >&2; cat "$tmpdir/out"
    exit 1
  fi
  if ! grep -q -- "$pattern" "$tmpdir/out"; then
    echo "$0: nbd $*: no '$pattern' in:" >&2; cat "$tmpdir/out"; exit 1
  fi
  if [ -e "$sock" ]; then
    echo "$0: nbd $*: the server created its socket" >&2; exit 1
  fi
}

bad "say where the upstream server is"
bad "exclusive" socket=/x hostname=localhost
bad "port= needs hostname=" socket=/x port=10809
bad "export= cannot be combined" uri=nbd://localhost/a export=b
bad "tls=off contradicts" socket=/x tls=off tls-psk=/x
bad "expected off, on or require" socket=/x tls=maybe
bad "expected 1 to 64" socket=/x connections=0
bad "cannot be combined with connections" socket=/x shared=on connections=2
bad "unknown parameter 'sockett'" sockett=/x
bad "cannot connect to the upstream server (unix socket $tmpdir/none)" \
    "socket=$tmpdir/none"
bad "cannot connect to the upstream server (nbd://localhost:1/)" \
    "nbd://localhost:1/"

# An upstream that does not have the export.
nbdkit -U "$tmpdir/up.sock" -P "$tmpdir/up.pid" \
  --filter=exportname memory 1M exportname-strict=true exportname=disk
cleanup_fn 'kill $(cat "$tmpdir/up.pid")'
wait_for_file "$tmpdir/up.pid"
bad "cannot connect to the upstream server" \
    "socket=$tmpdir/up.sock" export=nosuch

# A pool over an upstream without multi-conn (nbdkit's multi-conn filter
# hides it) is refused at the first client, which is refused too.
nbdkit -U "$tmpdir/up3.sock" -P "$tmpdir/up3.pid" \
  --filter=multi-conn memory 1M multi-conn-mode=disable
cleanup_fn 'kill $(cat "$tmpdir/up3.pid")'
wait_for_file "$tmpdir/up3.pid"
start_server "$tmpdir/pid3" "$tmpdir/sock3" nbd "socket=$tmpdir/up3.sock" \
  connections=2 2> "$tmpdir/log3"
if timeout 60 nbdsh -u "nbd+unix:///?socket=$tmpdir/sock3" -c pass; then
  echo "$0: a pool over an upstream without multi-conn was accepted" >&2
  exit 1
fi
stop_server "$tmpdir/pid3"
grep -q "needs an upstream that advertises multi-conn" "$tmpdir/log3"

# The upstream goes away under a connected client: requests fail with an
# error, and the server stays up and stops cleanly.
nbdkit -U "$tmpdir/up2.sock" -P "$tmpdir/up2.pid" memory 1M
wait_for_file "$tmpdir/up2.pid"
start_server "$tmpdir/pid2" "$tmpdir/sock2" nbd "socket=$tmpdir/up2.sock"
cat > "$tmpdir/gone.py" <<PY
import nbd, os, signal, time
h = nbd.NBD()
h.connect_unix("$tmpdir/sock2")
h.pwrite(b"a" * 512, 0)
os.kill(int(open("$tmpdir/up2.pid").read()), signal.SIGKILL)
time.sleep(0.5)
for op in (lambda: h.pread(512, 0), lambda: h.pwrite(b"b" * 512, 0),
           lambda: h.flush()):
    try:
        op()
        raise SystemExit("a request to a dead upstream succeeded")
    except nbd.Error as e:
        print("expected:", e)
PY
timeout 60 "$PYTHON" "$tmpdir/gone.py"
# A new client is refused (the upstream is gone), the server lives on.
if timeout 60 nbdsh -u "nbd+unix:///?socket=$tmpdir/sock2" -c pass; then
  echo "$0: a client got in with the upstream gone" >&2; exit 1
fi
stop_server "$tmpdir/pid2"
