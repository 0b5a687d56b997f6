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
