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

# Shared helpers for shell tests (source it: . "$top_srcdir/tests/functions.sh").
# Modelled on nbdkit's tests/functions.sh.  Exit 77 = skip.

set -e
set -u

: "${top_builddir:?run tests through make check}"
: "${NBDCBT:=$top_builddir/nbdcbt}"

# Each test gets its own scratch directory, removed on exit.
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/nbdcbt-test.XXXXXX")
_cleanup_fns=()
cleanup_fn () { _cleanup_fns+=("$*"); }
_run_cleanup ()
{
  local status=$? i
  for (( i = ${#_cleanup_fns[@]} - 1; i >= 0; i-- )); do
    eval "${_cleanup_fns[$i]}" || :
  done
  rm -rf "$tmpdir"
  exit $status
}
trap _run_cleanup EXIT INT TERM

# requires CMD [ARGS]: skip the test unless CMD ARGS succeeds.
requires ()
{
  if ! "$@" >/dev/null 2>&1; then
    echo "$0: skipped: '$*' failed"
    exit 77
  fi
}

# requires_built FILE...: skip the test unless these parts of the tree
# (paths under $top_builddir) are built.
requires_built ()
{
  local f
  for f; do
    if [ ! -e "$top_builddir/$f" ]; then
      echo "$0: skipped: $f is not built"
      exit 77
    fi
  done
}

# expect_error MESSAGE CMD...: CMD exits with status 1 and its output
# (kept in $tmpdir/out, and printed) contains the fixed string MESSAGE.
expect_error ()
{
  local msg=$1 rc=0; shift
  "$@" >"$tmpdir/out" 2>&1 || rc=$?
  if [ $rc -ne 1 ] || ! grep -qF -- "$msg" "$tmpdir/out"; then
    echo "$0: '$*' exited $rc, expected 1 with '$msg'; output:" >&2
    cat "$tmpdir/out" >&2
    exit 1
  fi
  cat "$tmpdir/out"
}

# The libnbd Python module belongs to Debian's python3.
PYTHON=/usr/bin/python3

# wait_for_file FILE [SECONDS]
wait_for_file ()
{
  local i n=$(( ${2:-30} * 10 ))
  for (( i = 0; i < n; i++ )); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  echo "$0: timed out waiting for $1" >&2
  return 1
}

# start_server PIDFILE SOCKET ARGS...: start nbdcbt on a Unix socket in the
# background and wait until it serves (the pid file appears only once the
# socket accepts).  Killed at exit.
start_server ()
{
  local pidfile=$1 sock=$2; shift 2
  "$NBDCBT" -f -P "$pidfile" -U "$sock" "$@" &
  local bgpid=$!
  cleanup_fn "kill $bgpid 2>/dev/null; wait $bgpid 2>/dev/null"
  wait_for_file "$pidfile" 30
}

# stop_server PIDFILE: SIGTERM and wait for the process to go away.
stop_server ()
{
  local pid i
  pid=$(cat "$1")
  kill "$pid"
  for (( i = 0; i < 300; i++ )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      # Our own child (start_server): it must have exited 0 on SIGTERM.
      local rc=0
      wait "$pid" 2>/dev/null || rc=$?
      if [ $rc -ne 0 ] && [ $rc -ne 127 ]; then
        echo "$0: server $pid exited with status $rc on SIGTERM" >&2
        return 1
      fi
      return 0
    fi
    sleep 0.1
  done
  echo "$0: server $pid did not stop" >&2
  return 1
}

# requires_fuzzer FUZZER: skip (77) unless the libFuzzer harness FUZZER
# was built (it needs clang with libFuzzer).
requires_fuzzer ()
{
  if [ ! -x "$1" ]; then
    echo "$0: skipped: libFuzzer harness not built (needs clang with libFuzzer)"
    exit 77
  fi
}

# run_fuzzer FUZZER SECONDS ARTIFACT_DIR [LIBFUZZER-OPTION...] -- CORPUS...
# Run a libFuzzer harness for SECONDS (FUZZ_SECONDS overrides) over the
# corpus directories, print the end of its log, and on a finding keep the
# inputs that crashed, leaked or timed out in ARTIFACT_DIR and fail.
run_fuzzer ()
{
  local fuzzer=$1 seconds=${FUZZ_SECONDS:-$2} artifacts=$3 status
  local -a opts=()
  shift 3
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  requires_fuzzer "$fuzzer"
  set +e
  "$fuzzer" -max_total_time="$seconds" -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$tmpdir/" "${opts[@]}" "$@" > "$tmpdir/fuzz.log" 2>&1
  status=$?
  set -e
  grep -v -e "# Uses:" -e "recommended dictionary" "$tmpdir/fuzz.log" | tail -30
  if [ $status -ne 0 ]; then
    mkdir -p "$artifacts"
    cp "$tmpdir"/crash-* "$tmpdir"/leak-* "$tmpdir"/timeout-* \
       "$tmpdir"/oom-* "$artifacts/" 2>/dev/null || :
    echo "$0: the fuzzer found a problem (exit $status); inputs saved in $artifacts"
    exit 1
  fi
}
