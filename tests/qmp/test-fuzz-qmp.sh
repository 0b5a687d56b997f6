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

# Run the libFuzzer harness over the control socket's parser and
# dispatcher for a bounded time (FUZZ_SECONDS, default 20), from seeds
# that cover every command, transactions, merges and malformed input.
source "$top_srcdir/tests/functions.sh" || exit 99

fuzzer="$top_builddir/tests/qmp/fuzz-qmp"
requires_fuzzer "$fuzzer"

seeds=$tmpdir/seeds
corpus=$tmpdir/corpus
mkdir -p "$seeds" "$corpus"
cap='{"execute":"qmp_capabilities"}'
n=0
seed () { n=$((n + 1)); printf '%s\n' "$cap" "$@" > "$seeds/seed$n"; }
seed '{"execute":"query-version","id":1}' '{"execute":"query-commands"}'
seed '{"execute":"block-dirty-bitmap-add","arguments":{"node":"disk0","name":"b0","granularity":512}}' \
     '{"execute":"block-dirty-bitmap-add","arguments":{"node":"disk0","name":"b1","disabled":true}}' \
     '{"execute":"block-dirty-bitmap-merge","arguments":{"node":"disk0","target":"b1","bitmaps":["b0",{"node":"disk0","name":"b0"}]}}' \
     '{"execute":"x-debug-block-dirty-bitmap-sha256","arguments":{"node":"disk0","name":"b1"}}' \
     '{"execute":"query-named-block-nodes"}' '{"execute":"query-block"}'
seed '{"execute":"block-dirty-bitmap-add","arguments":{"node":"disk0","name":"b0"}}' \
     '{"execute":"transaction","arguments":{"actions":[{"type":"block-dirty-bitmap-clear","data":{"node":"disk0","name":"b0"}},{"type":"block-dirty-bitmap-remove","data":{"node":"disk0","name":"b0"}},{"type":"block-dirty-bitmap-add","data":{"node":"disk0","name":"t"}},{"type":"abort","data":{}}]}}' \
     '{"execute":"block-dirty-bitmap-disable","arguments":{"node":"disk0","name":"b0"}}' \
     '{"execute":"block-dirty-bitmap-enable","arguments":{"node":"disk0","name":"b0"}}' \
     '{"execute":"block-dirty-bitmap-remove","arguments":{"node":"disk0","name":"b0"}}'
seed "{'execute':'block-dirty-bitmap-add','arguments':{'node':'disk0','name':'a\\'b\\\\'}}" \
     '{"execute":"query-version","id":"\'"'"'\"\\"}'
seed '[1,{"a":[null,true,1.5e3,"\u00e9"]}]' '{"execute":"transaction","arguments":{"actions":[]},"id":[1]}' 'garbage' '{"execute"'
seed '{"execute":"block-dirty-bitmap-add","arguments":{"node":"disk0","name":"b","granularity":-1,"zz":1}}' \
     '{"execute":"transaction","arguments":{"actions":[{"type":"block-dirty-bitmap-add","data":{"node":"disk0","name":"x"}},{"type":"block-dirty-bitmap-add","data":{"node":"disk0","name":"x"}}],"properties":{"completion-mode":"grouped"}}}'

run_fuzzer "$fuzzer" 20 "$top_builddir/tests/qmp/artifacts" \
  -rss_limit_mb=2048 -max_len=8192 -- "$corpus" "$seeds"
