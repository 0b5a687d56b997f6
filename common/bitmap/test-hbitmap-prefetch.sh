#!/bin/bash -
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

# The sparse-map walk (hbitmap_walk_dirty) must really prefetch: the
# compiler once dropped every prefetch without a word, because the helper
# that issued them had no other effect (GCC's pure-const pass marked it
# "const" and removed the calls), and a cold walk of a 1 TiB map cost a
# third more.  Disassemble the compiled function and look for them.

set -e
obj=.libs/libbitmap_la-hbitmap.o
[ -f "$obj" ] || obj=libbitmap_la-hbitmap.o
if ! command -v objdump >/dev/null; then
  echo "$0: objdump not found" >&2
  exit 77
fi
if [ ! -f "$obj" ]; then
  echo "$0: $obj not built" >&2
  exit 1
fi
n=$(objdump -d --disassemble=hbitmap_walk_dirty "$obj" |
      grep -cE '[[:space:]](prefetch[a-z0-9]*|prfm|dcbt|pld)[[:space:]]' || true)
echo "prefetch instructions in hbitmap_walk_dirty: $n"
if [ "$n" -lt 1 ]; then
  echo "$0: hbitmap_walk_dirty was compiled without its prefetches" >&2
  exit 1
fi
