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

# NBD_FLAG_CAN_MULTI_CONN is the whole chain's answer: a filter without a
# can_multi_conn callback passes on the layer below's, so the dirty filter
# (bitmaps shared by every connection) over the memory or file plugin
# still advertises it.
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdinfo --version

can_mc ()
{
  if ! nbdinfo --can multi-conn -- [ "$NBDCBT" "$@" ]; then
    echo "nbdcbt $*: multi-conn not advertised"; exit 1
  fi
}
can_mc memory size=1M
lib=$top_builddir/filters/dirty/.libs/nbdcbt-dirty-filter.so
[ -e "$lib" ] && can_mc --filter=dirty memory size=1M bitmap=b0
if [ -e "$top_builddir/plugins/file/.libs/nbdcbt-file-plugin.so" ]; then
  truncate -s 1M "$tmpdir/disk.raw"
  can_mc file "$tmpdir/disk.raw"
  can_mc -r "$tmpdir/disk.raw"
  [ -e "$lib" ] && can_mc --filter=dirty file "$tmpdir/disk.raw" bitmap=b0
fi
exit 0
