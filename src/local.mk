# src: the daemon core and the CLI.
libngw_la_SOURCES += src/log.c src/log.h src/cfg.h src/cfg-private.h src/cfg_doc.c \
	src/cfg_bind.c src/cfg_core.c src/gw.h \
	src/control.c src/control.h src/plugins.c src/plugins.h src/plugin_abi.c \
	src/plugin_abi.h src/link.h src/store.h \
	src/crypto.h src/util.c src/util.h src/update.c src/update.h \
	src/chrony.c src/chrony.h
# the hand-offs: intake and the producers' door, inbound delivery, the plugin host API
libngw_la_SOURCES += src/intake.c src/intake.h src/submit.c src/submit.h \
	src/delivery.c src/delivery.h src/plugin_host.c src/plugins-private.h

sbin_PROGRAMS += notegwd
notegwd_SOURCES = src/main.c src/lifecycle.c src/lifecycle.h src/status.c src/status.h \
	src/commands.c src/commands.h src/ota.c src/ota.h src/metrics.c src/metrics.h \
	src/watchdog.c src/watchdog.h src/fleet.c src/fleet.h src/health.c src/health.h \
	src/health_note.c src/health_note.h
notegwd_CFLAGS = $(NGW_CFLAGS)
notegwd_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
notegwd_LDFLAGS = $(AM_LDFLAGS) -export-dynamic

bin_PROGRAMS += notegw
notegw_SOURCES = src/cli/main.c src/cli/cli.h src/cli/core.c src/cli/crypto.c src/cli/update.c
notegw_CFLAGS = $(NGW_CFLAGS)
notegw_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
