# etc: the example configuration, installed as $(sysconfdir)/notegw/notegw.conf.
# conf.d/ beside it is optional (a missing directory is not an error).
notegwconfdir = $(sysconfdir)/notegw
dist_notegwconf_DATA = etc/notegw.conf
# the health note's template (docs/fleet.md), for [notefile.health.qo] template
notegwdatadir = $(datadir)/notegw
dist_notegwdata_DATA = etc/health-template.json
