# plugins/modbus: rules of this module (see the top Makefile.am)
if ENABLE_MODBUS
# The plugin's pure parts and its I/O, as a convenience library so the unit tests,
# the test host and the bench link the very code the plugin runs.
noinst_LTLIBRARIES += plugins/modbus/libmbcore.la
plugins_modbus_libmbcore_la_SOURCES = \
	plugins/modbus/decode.c plugins/modbus/decode.h \
	plugins/modbus/plan.c plugins/modbus/plan.h \
	plugins/modbus/conf.c plugins/modbus/conf.h \
	plugins/modbus/values.c plugins/modbus/values.h \
	plugins/modbus/bus.c plugins/modbus/bus.h \
	plugins/modbus/server.c plugins/modbus/server.h
plugins_modbus_libmbcore_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(SYSTEMD_CFLAGS) \
	$(MODBUS_CFLAGS)
plugins_modbus_libmbcore_la_LIBADD = $(JANSSON_LIBS) $(SYSTEMD_LIBS) $(MODBUS_LIBS) -lpthread -lm

plugin_LTLIBRARIES += plugins/modbus/modbus.la
plugins_modbus_modbus_la_SOURCES = plugins/modbus/modbus.c
plugins_modbus_modbus_la_CFLAGS = $(plugins_modbus_libmbcore_la_CFLAGS)
plugins_modbus_modbus_la_LIBADD = plugins/modbus/libmbcore.la
plugins_modbus_modbus_la_LDFLAGS = -module -avoid-version -shared $(AM_LDFLAGS)

# mbhost runs the plugin under the fake plugin host (tests/fakehost, built by
# tests/local.mk) so it is tested end to end against real Modbus peers on its own.
check_PROGRAMS += tests/modbus/mbhost
tests_modbus_mbhost_SOURCES = tests/modbus/mbhost.c
tests_modbus_mbhost_CFLAGS = $(plugins_modbus_libmbcore_la_CFLAGS)
tests_modbus_mbhost_LDADD = tests/libfakehost.la $(JANSSON_LIBS) $(SYSTEMD_LIBS) -ldl

if HAVE_CMOCKA
MB_UNIT_CFLAGS = $(plugins_modbus_libmbcore_la_CFLAGS) $(CMOCKA_CFLAGS) \
	-I$(top_srcdir)/plugins/modbus
MB_UNIT_LIBS = plugins/modbus/libmbcore.la tests/libfakehost.la $(CMOCKA_LIBS)
check_PROGRAMS += tests/unit/test_modbus_decode tests/unit/test_modbus_plan \
	tests/unit/test_modbus_conf
tests_unit_test_modbus_decode_SOURCES = tests/unit/test_modbus_decode.c
tests_unit_test_modbus_decode_CFLAGS = $(MB_UNIT_CFLAGS)
tests_unit_test_modbus_decode_LDADD = $(MB_UNIT_LIBS)
tests_unit_test_modbus_plan_SOURCES = tests/unit/test_modbus_plan.c
tests_unit_test_modbus_plan_CFLAGS = $(MB_UNIT_CFLAGS)
tests_unit_test_modbus_plan_LDADD = $(MB_UNIT_LIBS)
tests_unit_test_modbus_conf_SOURCES = tests/unit/test_modbus_conf.c
tests_unit_test_modbus_conf_CFLAGS = $(MB_UNIT_CFLAGS)
tests_unit_test_modbus_conf_LDADD = $(MB_UNIT_LIBS)
TESTS += tests/unit/test_modbus_decode tests/unit/test_modbus_plan tests/unit/test_modbus_conf
endif

TESTS += tests/integration/modbus_tcp.py tests/integration/modbus_rtu.py \
	tests/integration/modbus_server.py tests/integration/modbus_daemon.py

noinst_PROGRAMS += bench/modbus_bench
bench_modbus_bench_SOURCES = bench/modbus_bench.c bench/benchlib.c bench/benchlib.h
bench_modbus_bench_CFLAGS = $(plugins_modbus_libmbcore_la_CFLAGS) -I$(top_srcdir)/plugins/modbus
bench_modbus_bench_LDADD = plugins/modbus/libmbcore.la
endif
