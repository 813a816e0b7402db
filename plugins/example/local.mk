# plugins/example: a tiny plugin used by the tests and a model for third parties
# (not installed: the daemon loads every *.so of its plugin directory), and a twin
# built for another ABI major, to test refusal.
check_LTLIBRARIES += plugins/example/example.la
plugins_example_example_la_SOURCES = plugins/example/example.c
plugins_example_example_la_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS)
plugins_example_example_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere $(AM_LDFLAGS)

check_LTLIBRARIES += plugins/example/badabi.la
plugins_example_badabi_la_SOURCES = plugins/example/example.c
plugins_example_badabi_la_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) -DEXAMPLE_ABI_MAJOR=99 -DEXAMPLE_ABI_MINOR=0 \
	-DEXAMPLE_NAME='"badabi"'
plugins_example_badabi_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere $(AM_LDFLAGS)
