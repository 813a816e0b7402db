# fuzz: libFuzzer harnesses, built and run by fuzz/run (clang), not by make.
EXTRA_DIST += fuzz

# Regression tests for what the fuzzers found (the crashing inputs themselves stay in
# fuzz/corpus/<harness>/regress-*, which fuzz/run replays on every run).
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_rxbuf
tests_unit_test_rxbuf_SOURCES = tests/unit/test_rxbuf.c
tests_unit_test_rxbuf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_rxbuf_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_rxbuf
endif
