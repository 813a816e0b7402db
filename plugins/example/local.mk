# plugins/example: a tiny plugin used by the tests, and a broken twin of it.
plugin_LTLIBRARIES += plugins/example/example.la
plugins_example_example_la_SOURCES = plugins/example/example.c
plugins_example_example_la_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS)
plugins_example_example_la_LDFLAGS = -module -avoid-version -shared $(AM_LDFLAGS)
