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

# Included by every Makefile.am: the flags all of the tree shares.
AM_CPPFLAGS = \
	-I$(top_srcdir)/include \
	-I$(top_srcdir)/common/utils \
	-I$(top_srcdir)/common/protocol \
	-I$(top_srcdir)/common/bitmap \
	-I$(top_srcdir)/common/qcow2 \
	-I$(top_srcdir)/common/qbm \
	-I$(top_builddir)
AM_CFLAGS = $(WARN_CFLAGS) $(PTHREAD_LIBS)

# Plugins and filters are dlopen'd modules that call back into the server.
MODULE_LINK_FLAGS = -module -avoid-version -shared -export-symbols-regex '^nbdcbt_register_(plugin|filter)$$'

# One man page per program, plugin and filter, written in POD beside it.
if HAVE_POD2MAN
%.1: %.pod
	$(AM_V_GEN)$(POD2MAN) --section=1 --center=nbdcbt \
	  --release="nbdcbt $(VERSION)" --name=`basename $@ .1` $< > $@.t && \
	  mv $@.t $@
endif

# Tests: shell tests and Python tests (Debian's /usr/bin/python3 owns the
# libnbd module; a pyenv python3 earlier on PATH does not have it, so
# /usr/bin goes first: nbdsh runs "python3" from PATH).
TEST_EXTENSIONS = .sh .py
SH_LOG_COMPILER = $(BASH)
PY_LOG_COMPILER = /usr/bin/python3
AM_TESTS_ENVIRONMENT = \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	srcdir='$(abs_srcdir)'; export srcdir; \
	NBDCBT='$(abs_top_builddir)/nbdcbt'; export NBDCBT; \
	PATH='$(abs_top_builddir)/tools/img:$(abs_top_builddir)/tools/backup:$(abs_top_builddir)/tools/ctl':/usr/bin:"$$PATH"; export PATH; \
	PYTHONPATH='$(abs_top_srcdir)/tests':"$${PYTHONPATH:-}"; export PYTHONPATH; \
	ASAN_OPTIONS='detect_leaks=1:abort_on_error=1'; export ASAN_OPTIONS; \
	UBSAN_OPTIONS='print_stacktrace=1:halt_on_error=1'; export UBSAN_OPTIONS; \
	LC_ALL=C; export LC_ALL;
