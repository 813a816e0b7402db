# bench: rules of this module (see the top Makefile.am)
# bytes on the air per health note (docs/fleet.md)
noinst_PROGRAMS += bench/health_bench
bench_health_bench_SOURCES = bench/health_bench.c src/health_note.c src/health_note.h
bench_health_bench_CFLAGS = $(NGW_CFLAGS)
bench_health_bench_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
