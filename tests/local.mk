# tests: cmocka units (tests/unit) and integration tests (tests/integration).
# Module helpers put their own tests in their local.mk; this file holds the core's.
EXTRA_DIST += tests/lib tests/integration tests/transcripts
UNIT_CFLAGS = $(NGW_CFLAGS) $(CMOCKA_CFLAGS)
UNIT_LIBS = $(NGW_LIBS) $(libngw_la_LIBADD) $(CMOCKA_LIBS)
# The fake plugin host the plugins' tests share: the daemon's config reader and binder
# (libngw), fakes for what lies below a plugin.
check_LTLIBRARIES += tests/libfakehost.la
tests_libfakehost_la_SOURCES = tests/fakehost/fakehost.c tests/fakehost/fakehost.h
tests_libfakehost_la_CFLAGS = $(NGW_CFLAGS)
tests_libfakehost_la_LIBADD = $(NGW_LIBS) $(libngw_la_LIBADD)
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_config
check_PROGRAMS += tests/unit/test_notefile
tests_unit_test_notefile_SOURCES = tests/unit/test_notefile.c
tests_unit_test_notefile_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_notefile_LDADD = $(CMOCKA_LIBS)
TESTS += tests/unit/test_notefile
check_PROGRAMS += tests/unit/test_intake
tests_unit_test_intake_SOURCES = tests/unit/test_intake.c
tests_unit_test_intake_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_intake_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_intake
# delivery and the plugin host with link-time stubs of what lies below them
check_PROGRAMS += tests/unit/test_delivery tests/unit/test_plugin_host
tests_unit_test_delivery_SOURCES = tests/unit/test_delivery.c
tests_unit_test_delivery_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_delivery_LDADD = $(UNIT_LIBS)
tests_unit_test_plugin_host_SOURCES = tests/unit/test_plugin_host.c
tests_unit_test_plugin_host_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_plugin_host_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_delivery tests/unit/test_plugin_host
check_PROGRAMS += tests/unit/test_health_note
tests_unit_test_health_note_SOURCES = tests/unit/test_health_note.c src/health_note.c
tests_unit_test_health_note_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_health_note_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_health_note
endif

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_plugin_abi
tests_unit_test_plugin_abi_SOURCES = tests/unit/test_plugin_abi.c
tests_unit_test_plugin_abi_CFLAGS = $(UNIT_CFLAGS) \
	-DTEST_PLUGIN_DIR='"$(abs_top_builddir)/tests/plugins/.libs"'
tests_unit_test_plugin_abi_LDADD = $(UNIT_LIBS) -ldl
# Real plugins built for plugin ABI minor 0, for test_plugin_abi: one as minor 0 is
# today, one whose descriptor ends before on_emit (a newer host's older minor).
check_LTLIBRARIES += tests/plugins/oldminor.la tests/plugins/oldminor_short.la
tests_plugins_oldminor_la_SOURCES = tests/plugins/oldminor.c
tests_plugins_oldminor_la_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS)
tests_plugins_oldminor_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere $(AM_LDFLAGS)
tests_plugins_oldminor_short_la_SOURCES = tests/plugins/oldminor.c
tests_plugins_oldminor_short_la_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) \
	-DDESC_END='offsetof(struct ngw_plugin_desc, on_emit)'
tests_plugins_oldminor_short_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere \
	$(AM_LDFLAGS)
TESTS += tests/unit/test_plugin_abi
endif

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_chrony
tests_unit_test_chrony_SOURCES = tests/unit/test_chrony.c
tests_unit_test_chrony_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_chrony_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_chrony
endif

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_metrics
tests_unit_test_metrics_SOURCES = tests/unit/test_metrics.c src/metrics.c src/metrics.h
tests_unit_test_metrics_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_metrics_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_metrics
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
TESTS += tests/integration/test_card_full.py
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
TESTS += tests/integration/test_reload.py
TESTS += tests/integration/test_stop.py
TESTS += tests/integration/test_watchdog.py
# every docs/ page cited in the tree exists
TESTS += tests/integration/test_docs_paths.sh tests/integration/test_include_cycles.py
if ENABLE_MQTT
# configuration from Notehub and health notes (the MQTT error channel among them)
TESTS += tests/integration/test_fleet.py
endif
