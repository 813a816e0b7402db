# src: the daemon core and the CLI.
libngw_la_SOURCES += src/log.c src/log.h src/config.c src/config.h src/gw.h \
	src/control.c src/control.h src/plugins.c src/plugins.h src/link.h src/store.h \
	src/crypto.h src/util.c src/util.h src/update.c src/update.h \
	src/chrony.c src/chrony.h

sbin_PROGRAMS += notegwd
notegwd_SOURCES = src/main.c src/gw.c src/commands.c src/commands.h src/ota.c src/ota.h \
	src/metrics.c src/metrics.h
notegwd_CFLAGS = $(NGW_CFLAGS)
notegwd_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
notegwd_LDFLAGS = $(AM_LDFLAGS) -export-dynamic

bin_PROGRAMS += notegw
notegw_SOURCES = src/cli/main.c src/cli/cli.h src/cli/core.c src/cli/crypto.c src/cli/update.c
notegw_CFLAGS = $(NGW_CFLAGS)
notegw_LDADD = $(NGW_LIBS) $(libngw_la_LIBADD)
