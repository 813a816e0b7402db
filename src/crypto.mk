# crypto: end-to-end envelopes (src/crypto.c), their tests, interop and bench.
libngw_la_SOURCES += src/crypto.c src/crypto_internal.h

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_crypto
tests_unit_test_crypto_SOURCES = tests/unit/test_crypto.c
tests_unit_test_crypto_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_crypto_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_crypto
endif

# A small sealer/driver for the interop test: seals with the project's own code,
# and runs the CLI's crypto command table when notegw does not dispatch it yet.
check_PROGRAMS += tests/lib/seal
tests_lib_seal_SOURCES = tests/lib/seal.c src/cli/crypto.c
tests_lib_seal_CFLAGS = $(NGW_CFLAGS)
tests_lib_seal_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
TESTS += tests/integration/test_crypto_interop.py
# needs the daemon, the link, the simulator, the mqtt plugin and mosquitto
TESTS += tests/integration/test_crypto_e2e.py

noinst_PROGRAMS += bench/crypto_bench
bench_crypto_bench_SOURCES = bench/crypto_bench.c bench/vcard.c bench/vcard.h bench/benchlib.c \
	bench/benchlib.h
bench_crypto_bench_CFLAGS = $(NGW_CFLAGS)
bench_crypto_bench_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
