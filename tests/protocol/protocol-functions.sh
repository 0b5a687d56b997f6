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

# Shell helpers for tests/protocol: start the server selected by
# SERVER=nbdcbt (default) | nbdkit | qemu-nbd on a Unix socket.
#   start_memory SIZE        a zeroed writable export of SIZE (e.g. 64M)
#   start_file FILE [NAME]   the raw FILE
# Both set $sock and $uri (NBD URI) and register the server's cleanup.
# Source after tests/functions.sh.

SERVER=${SERVER:-nbdcbt}
case "$SERVER" in
  nbdcbt|nbdkit|qemu-nbd) ;;
  *) echo "$0: SERVER must be nbdcbt, nbdkit or qemu-nbd" >&2; exit 1 ;;
esac
_nserv=0

# only SERVER...: skip unless the selected server is listed.
only ()
{
  local s
  for s; do [ "$SERVER" = "$s" ] && return 0; done
  echo "$0: skipped: for $* only (SERVER=$SERVER)"
  exit 77
}

_start_reference ()
{
  local pidfile=$1; shift
  "$@" &
  local bgpid=$!
  cleanup_fn "kill $bgpid 2>/dev/null; wait $bgpid 2>/dev/null"
  wait_for_file "$pidfile" 30
}

start_file ()
{
  local file=$1
  _nserv=$((_nserv + 1))
  sock=$tmpdir/sock$_nserv
  local pid=$tmpdir/pid$_nserv
  case "$SERVER" in
    nbdcbt) start_server "$pid" "$sock" file "$file" ;;
    nbdkit) _start_reference "$pid" nbdkit -f -U "$sock" -P "$pid" \
                file "$file" ;;
    qemu-nbd) _start_reference "$pid" qemu-nbd -f raw -t --shared=0 \
                  --discard=unmap -k "$sock" --pid-file "$pid" "$file" ;;
  esac
  uri="nbd+unix:///?socket=$sock"
}

start_memory ()
{
  local size=$1
  _nserv=$((_nserv + 1))
  sock=$tmpdir/sock$_nserv
  local pid=$tmpdir/pid$_nserv
  case "$SERVER" in
    nbdcbt) start_server "$pid" "$sock" memory "size=$size" ;;
    nbdkit) _start_reference "$pid" nbdkit -f -U "$sock" -P "$pid" \
                memory "$size" ;;
    qemu-nbd)
      truncate -s "$size" "$tmpdir/mem$_nserv.raw"
      _nserv=$((_nserv - 1))
      start_file "$tmpdir/mem$((_nserv + 1)).raw"
      return ;;
  esac
  uri="nbd+unix:///?socket=$sock"
}
