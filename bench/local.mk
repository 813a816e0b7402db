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
