# systemd: the daemon's unit, with the paths configure chose, and the gate on
# its sandboxing (tools/check-unit-security.sh, run by CI and by a test).
systemdsystemunit_DATA = systemd/notegwd.service
CLEANFILES += systemd/notegwd.service
EXTRA_DIST += systemd/notegwd.service.in tools/check-unit-security.sh tools/ci-pkg.sh \
	debian LICENSE

systemd/notegwd.service: $(srcdir)/systemd/notegwd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@bindir[@]|$(bindir)|g' \
	    -e 's|@libexecdir[@]|$(libexecdir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    $(srcdir)/systemd/notegwd.service.in >$@.tmp && mv $@.tmp $@

TESTS += tests/integration/test_pkg_unit.sh tests/integration/test_pkg_docs.sh \
	tests/integration/test_pkg_maintscripts.sh
