# bench: rules of this module (see the top Makefile.am)
# `make bench`: the benches that drive the daemon against notecard-sim from this build tree
# (minutes each; never part of make check), with LINK_BENCH_ARGS and WEAR_BENCH_ARGS.
EXTRA_DIST += bench/wear_bench.py
.PHONY: bench
bench: all $(check_LTLIBRARIES)
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	    /usr/bin/python3 $(abs_top_srcdir)/bench/link_bench.py $(LINK_BENCH_ARGS)
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	    /usr/bin/python3 $(abs_top_srcdir)/bench/wear_bench.py $(WEAR_BENCH_ARGS)
# bytes on the air per health note (docs/fleet.md)
noinst_PROGRAMS += bench/health_bench
bench_health_bench_SOURCES = bench/health_bench.c src/health_note.c src/health_note.h
bench_health_bench_CFLAGS = $(NGW_CFLAGS)
bench_health_bench_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
