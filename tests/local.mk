# tests: cmocka units (tests/unit) and integration tests (tests/integration).
# Module helpers put their own tests in their local.mk; this file holds the core's.
EXTRA_DIST += tests/lib tests/integration tests/transcripts
UNIT_CFLAGS = $(NGW_CFLAGS) $(CMOCKA_CFLAGS)
UNIT_LIBS = $(NGW_LIBS) $(libngw_la_LIBADD) $(CMOCKA_LIBS)
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_config
endif

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_chrony
tests_unit_test_chrony_SOURCES = tests/unit/test_chrony.c
tests_unit_test_chrony_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_chrony_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_chrony
endif

TESTS += tests/integration/test_daemon.py
TESTS += tests/integration/test_store_layout.py

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_update
tests_unit_test_update_SOURCES = tests/unit/test_update.c
tests_unit_test_update_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_update_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_update
endif
TESTS += tests/integration/test_crash.py
TESTS += tests/integration/test_update.py
EXTRA_DIST += tools

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_control
tests_unit_test_control_SOURCES = tests/unit/test_control.c
tests_unit_test_control_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_control_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_control
endif
TESTS += tests/integration/cli.py
TESTS += tests/integration/test_faults.py
TESTS += tests/integration/test_ops.py
TESTS += tests/integration/test_stop.py
