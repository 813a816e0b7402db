# plugins/mqtt: the MQTT client plugin (mqtt.so, loaded by notegwd) and the
# mosquitto broker plugin (notegw_broker.so, loaded by mosquitto), sharing the
# topic/payload rules in validate.c.
if ENABLE_MQTT
plugin_LTLIBRARIES += plugins/mqtt/mqtt.la
plugins_mqtt_mqtt_la_SOURCES = plugins/mqtt/mqtt.c plugins/mqtt/session.c \
	plugins/mqtt/ingest.c plugins/mqtt/share.c plugins/mqtt/mqtt-private.h \
	plugins/mqtt/validate.c \
	plugins/mqtt/validate.h
plugins_mqtt_mqtt_la_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) $(JANSSON_CFLAGS) $(MOSQUITTO_CFLAGS)
plugins_mqtt_mqtt_la_LIBADD = $(JANSSON_LIBS) $(MOSQUITTO_LIBS) $(SYSTEMD_LIBS)
plugins_mqtt_mqtt_la_LDFLAGS = -module -avoid-version -shared $(AM_LDFLAGS) \
	-export-symbols-regex '^notegw_plugin_describe$$'

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_mqtt_validate
tests_unit_test_mqtt_validate_SOURCES = tests/unit/test_mqtt_validate.c \
	plugins/mqtt/validate.c plugins/mqtt/validate.h
tests_unit_test_mqtt_validate_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/mqtt
tests_unit_test_mqtt_validate_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) $(JANSSON_CFLAGS) \
	$(CMOCKA_CFLAGS)
tests_unit_test_mqtt_validate_LDADD = $(JANSSON_LIBS) $(CMOCKA_LIBS)
TESTS += tests/unit/test_mqtt_validate
endif

# The plugin's stand-in host for tests/integration/test_mqtt_*.py, on the shared
# fake plugin host (tests/fakehost).
check_PROGRAMS += tests/unit/mqtt_fakehost
tests_unit_mqtt_fakehost_SOURCES = tests/unit/mqtt_fakehost.c
tests_unit_mqtt_fakehost_CFLAGS = $(NGW_CFLAGS)
tests_unit_mqtt_fakehost_LDADD = tests/libfakehost.la $(NGW_LIBS) $(libngw_la_LIBADD)
# A host name resolving to several addresses in a chosen order, for test_mqtt_addrs.py.
check_LTLIBRARIES += tests/lib/libresolvshim.la
tests_lib_libresolvshim_la_SOURCES = tests/lib/resolv_shim.c
tests_lib_libresolvshim_la_CFLAGS = $(WARN_CFLAGS)
tests_lib_libresolvshim_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
tests_lib_libresolvshim_la_LIBADD = -ldl
TESTS += tests/integration/test_mqtt_client.py tests/integration/test_mqtt_loss.py \
	tests/integration/test_mqtt_addrs.py \
	tests/integration/test_mqtt_tls.py tests/integration/test_mqtt_broker.py \
	tests/integration/test_mqtt_daemon.py tests/integration/test_disk_full.py \
	tests/integration/test_mqtt_redeliver.py tests/integration/test_mqtt_share.py \
	tests/integration/test_mqtt_share_gone.py tests/integration/test_mqtt_share_topics.py \
	tests/integration/test_mqtt_drain.py

# The broker plugin runs inside mosquitto, not notegwd: it cannot use the daemon's
# host API, so it carries its own copy of the store code, of the intake every note
# passes (with the config module and the template sizing it reads [notefile.*]
# and the satellite limit through) and of the small helpers these need, and
# exports nothing but mosquitto's plugin entry points.
if ENABLE_MQTT_BROKER
mosquittoplugindir = $(libdir)/notegw/mosquitto
mosquittoplugin_LTLIBRARIES = plugins/mqtt/notegw_broker.la
plugins_mqtt_notegw_broker_la_SOURCES = plugins/mqtt/broker.c plugins/mqtt/validate.c \
	plugins/mqtt/validate.h src/store.c src/store_out.c src/store_in.c src/store_reserve.c \
	src/store_state.c src/store_salvage.c \
	src/store-private.h src/store.h src/util.c src/util.h src/log.c src/log.h \
	src/intake.c src/intake.h src/cfg.h src/cfg-private.h src/cfg_doc.c src/cfg_bind.c \
	src/cfg_core.c src/notecard/template.c \
	src/notecard/template.h
plugins_mqtt_notegw_broker_la_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) $(JANSSON_CFLAGS) \
	$(SQLITE_CFLAGS) $(OPENSSL_CFLAGS) $(MOSQUITTO_CFLAGS)
plugins_mqtt_notegw_broker_la_LIBADD = $(JANSSON_LIBS) $(SQLITE_LIBS) $(OPENSSL_LIBS) \
	$(SYSTEMD_LIBS) -lm
plugins_mqtt_notegw_broker_la_LDFLAGS = -module -avoid-version -shared $(AM_LDFLAGS) \
	-export-symbols-regex '^mosquitto_plugin_(version|init|cleanup)$$'
endif
endif

# bench/mqtt_bench: MQTT -> store rates next to a bare subscriber (not run by make check).
if ENABLE_MQTT
noinst_PROGRAMS += bench/mqtt_bench
bench_mqtt_bench_SOURCES = bench/mqtt_bench.c bench/benchlib.c bench/benchlib.h
bench_mqtt_bench_CFLAGS = $(AM_CFLAGS) $(MOSQUITTO_CFLAGS) $(SQLITE_CFLAGS)
bench_mqtt_bench_LDADD = $(MOSQUITTO_LIBS) $(SQLITE_LIBS) -lpthread
endif

# bench/broker_bench: the broker plugin's ingest ceiling next to the bare fdatasync
# and SQLite commit rates of the same disk (not run by make check).
if ENABLE_MQTT_BROKER
noinst_PROGRAMS += bench/broker_bench
bench_broker_bench_SOURCES = bench/broker_bench.c bench/benchlib.c bench/benchlib.h
bench_broker_bench_CFLAGS = $(AM_CFLAGS) $(MOSQUITTO_CFLAGS) $(SQLITE_CFLAGS)
bench_broker_bench_LDADD = $(MOSQUITTO_LIBS) $(SQLITE_LIBS)
endif
