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

# -p: a progress bar on a terminal (a pty from script(1)), nothing on
# standard error otherwise.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"
requires script --version

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 0x55 0 8M' "$img" >/dev/null
serve_qemu "$img"

# Not a terminal: quiet.
$BACKUP full "$uri" -o "$tmpdir/a" -p -q 2> "$tmpdir/err"
test ! -s "$tmpdir/err"

# A terminal: the bar, redrawn in place, ending at 100%.
bin=$(command -v $BACKUP)
script -qec "'$bin' full '$uri' -o '$tmpdir/b' -p" /dev/null > "$tmpdir/tty"
tr '\r' '\n' < "$tmpdir/tty" > "$tmpdir/lines"
cat "$tmpdir/lines"
grep -aq '^copying \[#*-*\] *0\.0% 0 MiB' "$tmpdir/lines"
grep -aq '^copying \[#\{40\}\] 100\.0% 8 MiB' "$tmpdir/lines"
grep -aq '^full backup .*backup-0000.qcow2' "$tmpdir/lines"
stop_qemu
