# store: the SQLite store-and-forward queue and the group commit over it.
libngw_la_SOURCES += src/store.c src/store_out.c src/store_in.c src/store_reserve.c \
	src/store_state.c src/store_salvage.c src/store-private.h \
	src/batch.c src/batch.h

# Tests. vfs_shim is a test-only SQLite VFS (write counting, failure injection,
# power cuts); production code never sees it.
EXTRA_DIST += tools/powercut-long.sh
if HAVE_CMOCKA
STORE_TEST_SHIM = tests/unit/vfs_shim.c tests/unit/vfs_shim.h
STORE_TEST_CHECK = tests/unit/store_check.c tests/unit/store_check.h
check_PROGRAMS += tests/unit/test_store tests/unit/test_batch tests/unit/test_powercut
TESTS += tests/unit/test_store tests/unit/test_batch tests/unit/test_powercut
tests_unit_test_store_SOURCES = tests/unit/test_store.c $(STORE_TEST_SHIM) $(STORE_TEST_CHECK)
tests_unit_test_store_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_store_LDADD = $(UNIT_LIBS)
tests_unit_test_batch_SOURCES = tests/unit/test_batch.c $(STORE_TEST_SHIM)
tests_unit_test_batch_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_batch_LDADD = $(UNIT_LIBS)
tests_unit_test_powercut_SOURCES = tests/unit/test_powercut.c $(STORE_TEST_SHIM) \
	$(STORE_TEST_CHECK)
tests_unit_test_powercut_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_powercut_LDADD = $(UNIT_LIBS)
endif

TESTS += tests/integration/test_store_damage.py

# Bench: built with the rest (noinst), never run by make check:
#   bench/store_bench [-d DIR] [-n NOTES] [-b BATCH] [-B N_BIG] [-i IDLE_S]
noinst_PROGRAMS += bench/store_bench
bench_store_bench_SOURCES = bench/store_bench.c
bench_store_bench_CFLAGS = $(NGW_CFLAGS)
bench_store_bench_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)

# Queues N notes into a store from a process of its own (bench/soak.py, tests):
#   bench/store_fill STORE N [NOTEFILE]
noinst_PROGRAMS += bench/store_fill
bench_store_fill_SOURCES = bench/store_fill.c
bench_store_fill_CFLAGS = $(NGW_CFLAGS)
bench_store_fill_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
