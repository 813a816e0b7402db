# sim: notecard-sim (the Notecard simulator, Python), the I2C LD_PRELOAD shim and their tests.
# The simulator is a launcher (installed to bindir) plus the notecard_sim package, installed
# under $(datadir)/notegw/sim; the launcher finds the package beside itself in the source tree.
notecard_simdir = $(datadir)/notegw/sim/notecard_sim
dist_notecard_sim_DATA = \
	sim/notecard_sim/__init__.py \
	sim/notecard_sim/api.json \
	sim/notecard_sim/api_hub.py \
	sim/notecard_sim/api_notes.py \
	sim/notecard_sim/apicheck.py \
	sim/notecard_sim/card.py \
	sim/notecard_sim/control.py \
	sim/notecard_sim/device.py \
	sim/notecard_sim/faults.py \
	sim/notecard_sim/hub.py \
	sim/notecard_sim/i2c.py \
	sim/notecard_sim/main.py \
	sim/notecard_sim/serialport.py \
	sim/notecard_sim/template.py \
	sim/notecard_sim/transcript.py \
	sim/notecard_sim/util.py \
	sim/notecard_sim/wire.py
bin_SCRIPTS = notecard-sim
EXTRA_DIST += sim/notecard-sim
CLEANFILES += notecard-sim
notecard-sim: $(srcdir)/sim/notecard-sim Makefile
	$(AM_V_GEN)sed -e 's|@simdir@|$(datadir)/notegw/sim|' $(srcdir)/sim/notecard-sim > $@.tmp && \
		chmod 755 $@.tmp && mv $@.tmp $@

# The shim is preloaded into programs built with or without sanitizers, so it is built
# without them (a sanitized program gets libasan first in LD_PRELOAD; see tests/lib/sim.py).
check_LTLIBRARIES += tests/lib/libi2cshim.la
tests_lib_libi2cshim_la_SOURCES = tests/lib/i2c_shim.c
tests_lib_libi2cshim_la_CFLAGS = $(WARN_CFLAGS)
tests_lib_libi2cshim_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
tests_lib_libi2cshim_la_LIBADD = -ldl

# A fake GPIO chip for the ATTN path over libgpiod v1 (the pin is the simulator's --attn-file).
if GPIOD_V1
check_LTLIBRARIES += tests/lib/libgpioshim.la
tests_lib_libgpioshim_la_SOURCES = tests/lib/gpio_shim.c
tests_lib_libgpioshim_la_CFLAGS = $(WARN_CFLAGS)
tests_lib_libgpioshim_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
endif

check_PROGRAMS += tests/lib/i2c_probe
tests_lib_i2c_probe_SOURCES = tests/lib/i2c_probe.c

TESTS += \
	tests/integration/test_sim_serial.py \
	tests/integration/test_sim_faults.py \
	tests/integration/test_sim_i2c.py \
	tests/integration/test_sim_schema.py \
	tests/integration/test_notecard_api.py \
	tests/integration/test_notecard_api_blues.py \
	tests/integration/test_sim_transcripts.py \
	tests/integration/test_sim_install.sh \
	tests/integration/test_sim_daemon.py \
	tests/integration/test_blues_python.py \
	tests/integration/test_blues_notec.py
