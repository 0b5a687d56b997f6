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

# Run the libFuzzer harness over the NBD protocol (handshake and
# transmission, memory plugin under the dirty filter) for a bounded time
# (FUZZ_SECONDS, default 30) from the seed corpus in nbd-corpus/.
source "$top_srcdir/tests/functions.sh" || exit 99

fuzzer="$top_builddir/tests/fuzz/fuzz-nbd"
modules="$top_builddir/tests/fuzz/fuzz-nbd-modules"
requires_fuzzer "$fuzzer"
requires_built tests/fuzz/fuzz-nbd-modules

corpus="$tmpdir/corpus"
mkdir -p "$corpus"
export NBDCBT_PLUGIN_PATH="$modules" NBDCBT_FILTER_PATH="$modules"
# The server's own error messages for bad input are expected: quiet.
run_fuzzer "$fuzzer" 30 "$top_builddir/tests/fuzz/artifacts" \
  -rss_limit_mb=4096 -max_len=65536 -close_fd_mask=2 -- \
  "$corpus" "$top_srcdir/tests/fuzz/nbd-corpus"
