# systemd: the daemon's unit, with the paths configure chose, and the gate on
# its sandboxing (tools/check-unit-security.sh, run by CI and by a test).
# Also the privileged host-update installer and the two units that run it.
NGW_UNITS = systemd/notegwd.service systemd/notegw-update.service systemd/notegw-update.path
systemdsystemunit_DATA = $(NGW_UNITS)
CLEANFILES += $(NGW_UNITS)
EXTRA_DIST += $(NGW_UNITS:=.in) tools/check-unit-security.sh tools/ci-pkg.sh \
	tools/completion/notegw debian LICENSE

notegwlibexecdir = $(libexecdir)/notegw
dist_notegwlibexec_SCRIPTS = tools/notegw-update-install

$(NGW_UNITS): Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@bindir[@]|$(bindir)|g' \
	    -e 's|@libexecdir[@]|$(libexecdir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	    -e 's|@localstatedir[@]|$(localstatedir)|g' \
	    $(srcdir)/$@.in >$@.tmp && mv $@.tmp $@
systemd/notegwd.service: $(srcdir)/systemd/notegwd.service.in
systemd/notegw-update.service: $(srcdir)/systemd/notegw-update.service.in
systemd/notegw-update.path: $(srcdir)/systemd/notegw-update.path.in

TESTS += tests/integration/test_pkg_unit.sh tests/integration/test_pkg_docs.sh \
	tests/integration/test_pkg_maintscripts.sh
