# src/notecard: the Notecard link (transports, request layer, ATTN) and the link thread.
libngw_la_SOURCES += src/notecard/timing.c src/notecard/timing.h src/notecard/transport.h \
	src/notecard/rxbuf.c src/notecard/rxbuf.h src/notecard/i2c.c src/notecard/i2c.h \
	src/notecard/serial.c src/notecard/card.c src/notecard/card.h \
	src/notecard/attn.c src/notecard/attn.h src/notecard/link_int.h src/notecard/link.c \
	src/notecard/link_card.c src/notecard/link_note.c
# note templates
libngw_la_SOURCES += src/notecard/template.c src/notecard/template.h src/notecard/link_tmpl.c

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_card tests/unit/test_i2c tests/unit/test_serial \
	tests/unit/test_link
tests_unit_test_card_SOURCES = tests/unit/test_card.c tests/unit/fakeclock.h
tests_unit_test_card_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_card_LDADD = $(UNIT_LIBS)
tests_unit_test_i2c_SOURCES = tests/unit/test_i2c.c tests/unit/fakeclock.h
tests_unit_test_i2c_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_i2c_LDADD = $(UNIT_LIBS)
tests_unit_test_serial_SOURCES = tests/unit/test_serial.c
tests_unit_test_serial_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_serial_LDADD = $(UNIT_LIBS) -lutil
tests_unit_test_link_SOURCES = tests/unit/test_link.c tests/unit/fakecard.h tests/unit/fakeclock.h
tests_unit_test_link_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_link_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_card tests/unit/test_i2c tests/unit/test_serial tests/unit/test_link
endif

# the request layer as a filter, for the simulator tests
check_PROGRAMS += tests/lib/cardreq
tests_lib_cardreq_SOURCES = tests/lib/cardreq.c
tests_lib_cardreq_CFLAGS = $(NGW_CFLAGS)
tests_lib_cardreq_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
TESTS += tests/integration/test_link_sim.py tests/integration/test_link_daemon.py \
	tests/integration/test_inbound_poison.py \
	tests/integration/test_link_replug.py
TESTS += tests/integration/test_card_hung.py
TESTS += tests/integration/test_idle.py

# bench (not part of make check): notegwd draining its store to notecard-sim in real time,
# against the limit note-c's pacing allows for the same bytes
EXTRA_DIST += bench/link_bench.py
# bench: wake-ups and memory of an idle daemon, with and without ATTN
EXTRA_DIST += bench/idle_bench.py

# note templates: unit and integration tests; bench (not run by make check):
# bytes on the air per note, JSON vs templated
noinst_PROGRAMS += bench/template_bench
bench_template_bench_SOURCES = bench/template_bench.c
bench_template_bench_CFLAGS = $(NGW_CFLAGS)
bench_template_bench_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_template
tests_unit_test_template_SOURCES = tests/unit/test_template.c
tests_unit_test_template_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_template_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_template
endif
TESTS += tests/integration/test_templates.py
