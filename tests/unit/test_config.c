/* Unit tests of the config module (cfg_doc.c, cfg_bind.c, cfg_core.c): syntax, conf.d
 * merging, value parsers, the core's tables and binding a plugin's own section through
 * a custom key table. */
/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"

/* ---- helpers -------------------------------------------------------------------- */

static char tmpdir[64];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ngwcfg.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	char d[128];
	snprintf(d, sizeof(d), "%s/conf.d", tmpdir);
	return mkdir(d, 0755);
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write tmpdir/rel; returns the path (static buffer per slot). */
static const char *put(const char *rel, const char *text)
{
	static char paths[8][256];
	static int slot;
	char *p = paths[slot++ % 8];
	snprintf(p, 256, "%s/%s", tmpdir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static bool diag_has(const struct cfg_diag *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->msgs[i], needle))
			return true;
	return false;
}

static void diag_dump(const struct cfg_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		print_message("  diag: %s\n", d->msgs[i]);
}

/* Parse text as the core config; expects failure with a message containing needle. */
static void expect_error(const char *text, const char *needle)
{
	struct cfg_diag d = {0};
	const char *f = put("bad.conf", text);
	struct cfg_doc *doc = cfg_doc_load(f, "/nonexistent", &d);
	assert_non_null(doc);
	struct cfg *cfg = cfg_from_doc(doc, f, &d);
	if (cfg || !diag_has(&d, needle)) {
		print_message("expected '%s' for:\n%s\n", needle, text);
		diag_dump(&d);
	}
	assert_null(cfg);
	assert_true(diag_has(&d, needle));
	cfg_doc_free(doc);
	cfg_diag_clear(&d);
}

static struct cfg *load_ok(const char *text, struct cfg_diag *d)
{
	const char *f = put("notegw.conf", text);
	struct cfg *cfg = cfg_load(f, d);
	if (!cfg)
		diag_dump(d);
	assert_non_null(cfg);
	return cfg;
}

/* ---- tests ---------------------------------------------------------------------- */

static void t_defaults(void **s)
{
	struct cfg_diag d = {0};
	struct cfg *cfg = load_ok("# nothing but a comment\n", &d);
	assert_int_equal(d.n, 0);
	assert_int_equal(cfg->notecard.transport, CFG_TRANSPORT_I2C);
	assert_string_equal(cfg->notecard.device, "/dev/i2c-1");
	assert_int_equal(cfg->notecard.address, 0x17);
	assert_int_equal(cfg->notecard.baud, 9600);
	assert_null(cfg->notecard.attn);
	assert_int_equal(cfg->notecard.poll_ms, 5000);
	assert_int_equal(cfg->notecard.timing_scale_pct, 100);
	assert_null(cfg->hub.product);
	assert_int_equal(cfg->hub.mode, -1);
	assert_int_equal(cfg->hub.outbound, -1);
	assert_int_equal(cfg->hub.inbound, -1);
	assert_string_equal(cfg->store.path, LOCALSTATEDIR "/lib/notegw/store.db");
	assert_int_equal(cfg->store.max_size, 256ull << 20);
	assert_int_equal(cfg->store.when_full, CFG_DROP_OLDEST);
	assert_int_equal(cfg->store.commit_delay_ms, 5);
	assert_int_equal(cfg->store.card_max_pending, 0);
	assert_string_equal(cfg->control.socket, "/run/notegw/control.sock");
	assert_string_equal(cfg->control.group, "notegw");
	assert_string_equal(cfg->control.admin_group, "notegw-admin");
	assert_int_equal(cfg->crypto.uplink, CFG_UPLINK_OFF);
	assert_string_equal(cfg->daemon.plugin_dir, PLUGINDIR);
	assert_string_equal(cfg->daemon.state_dir, LOCALSTATEDIR "/lib/notegw");
	assert_string_equal(cfg->daemon.log_level, "info");
	assert_int_equal(cfg->daemon.watchdog_ms, 0);
	assert_int_equal(cfg->n_notefiles, 0);
	cfg_free(cfg);
}

static void t_valid_file(void **s)
{
	struct cfg_diag d = {0};
	struct cfg *cfg = load_ok("; a full file\n"
	                          "[notecard]\n"
	                          "transport = serial   # a USB card\n"
	                          "device = /dev/ttyACM0\n"
	                          "address = 0x20\n"
	                          "baud = 115200\n"
	                          "attn = gpiochip0:17\n"
	                          "poll_interval = 250ms\n"
	                          "timing_scale = 10\n"
	                          "\n"
	                          "  [hub]  \n"
	                          "product = com.example.user:gateway\n"
	                          "mode = continuous\n"
	                          "outbound = 60\n"
	                          "inbound = 0\n"
	                          "sn = \"gw #1; east\"\n"
	                          "[store]\r\n"
	                          "path = /tmp/x/store.db\r\n"
	                          "max_size = 2G\n"
	                          "when_full = refuse-new\n"
	                          "commit_delay = 0\n"
	                          "[control]\n"
	                          "socket = /tmp/x/c.sock\n"
	                          "group = staff\n"
	                          "[crypto]\n"
	                          "uplink = host\n"
	                          "public_key = /etc/notegw/keys/uplink.pub.pem\n"
	                          "[daemon]\n"
	                          "log_level = debug\n"
	                          "watchdog = 2m\n"
	                          "[mqtt]\n"
	                          "enabled = true\n",
	                          &d);
	assert_int_equal(cfg->notecard.transport, CFG_TRANSPORT_SERIAL);
	assert_string_equal(cfg->notecard.device, "/dev/ttyACM0");
	assert_int_equal(cfg->notecard.address, 0x20);
	assert_int_equal(cfg->notecard.baud, 115200);
	assert_string_equal(cfg->notecard.attn, "gpiochip0:17");
	assert_int_equal(cfg->notecard.poll_ms, 250);
	assert_int_equal(cfg->notecard.timing_scale_pct, 10);
	assert_string_equal(cfg->hub.product, "com.example.user:gateway");
	assert_string_equal(cfg_hub_modes[cfg->hub.mode], "continuous");
	assert_int_equal(cfg->hub.outbound, 60);
	assert_int_equal(cfg->hub.inbound, 0);
	assert_string_equal(cfg->hub.sn, "gw #1; east");
	assert_string_equal(cfg->store.path, "/tmp/x/store.db");
	assert_int_equal(cfg->store.max_size, 2ull << 30);
	assert_int_equal(cfg->store.when_full, CFG_REFUSE_NEW);
	assert_int_equal(cfg->store.commit_delay_ms, 0);
	assert_string_equal(cfg->control.socket, "/tmp/x/c.sock");
	assert_string_equal(cfg->control.group, "staff");
	assert_string_equal(cfg->control.admin_group, "notegw-admin");
	assert_int_equal(cfg->crypto.uplink, CFG_UPLINK_HOST);
	assert_string_equal(cfg->daemon.log_level, "debug");
	assert_int_equal(cfg->daemon.watchdog_ms, 120000);

	/* [mqtt] is a plugin's: the core leaves it to the daemon's unclaimed check */
	struct cfg_diag u = {0};
	cfg_doc_report_unclaimed(cfg->doc, &u);
	assert_int_equal(u.n, 1);
	assert_true(diag_has(&u, "notegw.conf:31: unknown section [mqtt]"));
	cfg_diag_clear(&u);
	cfg_doc_claim(cfg->doc, "mqtt");
	cfg_doc_report_unclaimed(cfg->doc, &u);
	assert_int_equal(u.n, 0);

	unsigned line = 0;
	const char *where = cfg_where(cfg->doc, "store", "max_size", &line);
	assert_non_null(where);
	assert_non_null(strstr(where, "notegw.conf"));
	assert_int_equal(line, 19);
	where = cfg_where(cfg->doc, "hub", NULL, &line);
	assert_non_null(where);
	assert_int_equal(line, 11);
	assert_null(cfg_where(cfg->doc, "store", "nope", &line));
	assert_null(cfg_where(cfg->doc, "nope", NULL, &line));
	/* a problem about an unset key points at its section's header */
	line = 0;
	assert_non_null(cfg_blame(cfg->doc, "hub", "nope", &line));
	assert_int_equal(line, 11);
	assert_null(cfg_blame(cfg->doc, "nope", "x", &line));
	cfg_free(cfg);
}

static void t_unknown_key(void **s)
{
	struct cfg_diag d = {0};
	char want[300];
	const char *f = put("notegw.conf", "[store]\n"
	                                   "path = /tmp/s.db\n"
	                                   "\n"
	                                   "foo = 1\n");
	assert_null(cfg_load(f, &d));
	snprintf(want, sizeof(want), "%s:4: unknown key 'foo' in [store]", f);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.msgs[0], want);
	cfg_diag_clear(&d);
}

static void t_unknown_section(void **s)
{
	struct cfg_diag d = {0};
	const char *f = put("notegw.conf", "[store]\n[stroe]\nmax_size = 1M\n");
	struct cfg *cfg = cfg_load(f, &d);
	assert_non_null(cfg); /* the core leaves unknown sections to the daemon */
	cfg_doc_report_unclaimed(cfg->doc, &d);
	char want[300];
	snprintf(want, sizeof(want), "%s:2: unknown section [stroe]", f);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.msgs[0], want);
	cfg_diag_clear(&d);
	cfg_free(cfg);
}

static void t_bad_values(void **s)
{
	expect_error("[store]\nmax_size = 12X\n",
	             "bad.conf:2: [store] max_size: '12X' is not a size");
	expect_error("[store]\nmax_size = 1K\n", "max_size: 1K out of range");
	expect_error("[store]\nmax_size = -5M\n", "is not a size");
	expect_error("[store]\nmax_size = 99999999999999999999G\n", "is not a size");
	expect_error("[store]\ncommit_delay = 5 ms\n", "is not a duration");
	expect_error("[store]\ncommit_delay = 5d\n", "is not a duration");
	expect_error("[store]\ncommit_delay = 2s\n", "commit_delay: 2s out of range 0ms..1000ms");
	expect_error("[store]\nwhen_full = drop-newest\n",
	             "[store] when_full: 'drop-newest' is not one of: drop-oldest, refuse-new");
	expect_error("[store]\nwhen_full =\n", "when_full: empty value");
	expect_error("[notecard]\ntransport = spi\n", "is not one of: i2c, serial");
	expect_error("[notecard]\naddress = 0x78\n", "address: 0x78 out of range 8..119");
	expect_error("[notecard]\naddress = 7\n", "out of range");
	expect_error("[notecard]\naddress = 0x\n", "'0x' is not an integer");
	expect_error("[notecard]\naddress = 23abc\n", "is not an integer");
	expect_error("[notecard]\nbaud = 9601\n", "is not a standard baud rate");
	expect_error("[notecard]\nattn = gpiochip0\n", "is not CHIP:LINE");
	expect_error("[notecard]\nattn = gpiochip0:x7\n", "is not CHIP:LINE");
	expect_error("[notecard]\nattn = :17\n", "is not CHIP:LINE");
	expect_error("[notecard]\ndevice = dev/i2c-1\n", "is not an absolute path");
	expect_error("[notecard]\ntiming_scale = 0\n", "out of range 1..1000");
	expect_error("[notecard]\ntiming_scale = 1001\n", "out of range 1..1000");
	expect_error("[hub]\nmode = dfu\n", "not one of: periodic, continuous, minimum, off");
	expect_error("[hub]\noutbound = -1\n", "out of range");
	expect_error("[daemon]\nlog_level = loud\n", "[daemon] log_level: 'loud' is not one of");
	expect_error("[notefile.data.qo]\nurgent = maybe\n", "'maybe' is not a boolean");
	expect_error(
	    "[control]\nsocket = /tmp/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
	    "path too long for a Unix socket");
	/* cross-key checks name the key's line */
	expect_error("[crypto]\n\nuplink = host\n",
	             "bad.conf:3: [crypto] uplink = host needs public_key");
	expect_error("[crypto]\nuplink = notecard\n", "uplink = notecard needs key_name");
	expect_error("[notefile.data.qo]\nencrypt = on\n",
	             "bad.conf:2: [notefile.data.qo] encrypt = on needs [crypto] uplink");
	expect_error("[notefile.sat.qo]\nntn = true\n", "ntn needs a template");
	expect_error("[notefile.data.qi]\n", "bad.conf:1: [notefile.data.qi] 'data.qi' is not an "
	                                     "outbound notefile");
	expect_error("[notefile.data.qo]\ntemplate = relative.json\n",
	             "is not off, auto or an absolute path");
}

static void t_syntax(void **s)
{
	expect_error("key = 1\n", "bad.conf:1: key 'key' outside of any section");
	expect_error("[store\n", "bad.conf:1: missing ']'");
	expect_error("[store] junk\n", "unexpected text after section header");
	expect_error("[a..b]\n", "bad section name [a..b]");
	expect_error("[.a]\n", "bad section name");
	expect_error("[]\n", "bad section name");
	expect_error("[store]\njust words\n", "bad.conf:2: expected 'key = value'");
	expect_error("[store]\nmax size = 1M\n", "bad key name 'max size'");
	expect_error("[store]\npath = \"/tmp/a\n", "unterminated quoted value");
	expect_error("[store]\nmax_size = 1M\n\nmax_size = 2M\n",
	             "bad.conf:4: duplicate key 'max_size' in [store] (first set at line 2)");
	/* keys under a rejected header are not reported again */
	struct cfg_diag d = {0};
	struct cfg_doc *doc = cfg_doc_parse_string("[bad name]\nx = 1\ny = 2\n", "s.conf", &d);
	assert_non_null(doc);
	assert_int_equal(d.n, 1);
	assert_int_equal(cfg_doc_errors(doc), 1);
	cfg_doc_free(doc);
	cfg_diag_clear(&d);
}

static void t_comments_and_quotes(void **s)
{
	struct cfg_diag d = {0};
	struct cfg_doc *doc = cfg_doc_parse_string("\xef\xbb\xbf# bom and comment\n"
	                                           "   ; indented comment\n"
	                                           "[mqtt] # trailing comment\n"
	                                           "host = localhost ; comment\n"
	                                           "url = rtu:/dev/ttyUSB0?baud=9600#frag\n"
	                                           "quoted = \"  a # b ; c  \"\n"
	                                           "empty =\n",
	                                           "c.conf", &d);
	assert_non_null(doc);
	assert_int_equal(d.n, 0);
	struct plug {
		char *host, *url, *quoted, *empty;
	} p = {0};
	const struct ngw_cfg_key keys[] = {
	    NGW_CFG_KEY(struct plug, "host", NGW_CFG_STR, NULL, host),
	    NGW_CFG_KEY(struct plug, "url", NGW_CFG_STR, NULL, url),
	    NGW_CFG_KEY(struct plug, "quoted", NGW_CFG_STR, NULL, quoted),
	    NGW_CFG_KEY(struct plug, "empty", NGW_CFG_STR, "x", empty),
	};
	assert_int_equal(cfg_bind(doc, "mqtt", keys, 4, &p, &d), 0);
	assert_string_equal(p.host, "localhost");
	/* '#' not after a blank is part of the value */
	assert_string_equal(p.url, "rtu:/dev/ttyUSB0?baud=9600#frag");
	assert_string_equal(p.quoted, "  a # b ; c  ");
	assert_null(p.empty); /* an empty value unsets a string, default included */
	cfg_free_bound(keys, 4, &p);
	assert_null(p.host);
	cfg_doc_free(doc);
}

static void t_line_too_long(void **s)
{
	size_t n = 5000;
	char *text = malloc(n + 64);
	assert_non_null(text);
	strcpy(text, "[store]\npath = /");
	size_t off = strlen(text);
	memset(text + off, 'a', n);
	strcpy(text + off + n, "\nmax_size = 1M\n");
	expect_error(text, "bad.conf:2: line too long (max 4096 bytes)");
	/* the next line is still read: one error only */
	struct cfg_diag d = {0};
	struct cfg_doc *doc = cfg_doc_parse_string(text, "l.conf", &d);
	assert_int_equal(d.n, 1);
	const struct cfg_section *sec = cfg_doc_section(doc, "store");
	assert_non_null(sec);
	unsigned line = 0;
	assert_non_null(cfg_where(doc, "store", "max_size", &line));
	assert_int_equal(line, 3);
	cfg_doc_free(doc);
	cfg_diag_clear(&d);
	free(text);
}

static void t_file_too_large(void **s)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 70000; i++)
		fputs("# padding padding\n", f);
	fclose(f);
	struct cfg_diag d = {0};
	assert_null(cfg_load(path, &d));
	assert_true(diag_has(&d, "big.conf: file too large"));
	cfg_diag_clear(&d);
}

static void t_missing_main(void **s)
{
	struct cfg_diag d = {0};
	char path[256];
	snprintf(path, sizeof(path), "%s/none.conf", tmpdir);
	assert_null(cfg_doc_load(path, NULL, &d));
	assert_int_equal(d.n, 1);
	char want[300];
	snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
	assert_string_equal(d.msgs[0], want);
	cfg_diag_clear(&d);
	assert_null(cfg_load(path, &d));
	assert_int_equal(d.n, 1);
	cfg_diag_clear(&d);
}

static void t_confd_order(void **s)
{
	put("conf.d/20-late.conf", "[store]\nmax_size = 3M\n[hub]\nmode = minimum\n");
	put("conf.d/10-early.conf", "[store]\nmax_size = 2M\nwhen_full = refuse-new\n"
	                            "[notefile.data.qo]\nurgent = yes\n");
	put("conf.d/30-ignored.txt", "this is not read\n");
	put("conf.d/.40-hidden.conf", "not read either\n");
	struct cfg_diag d = {0};
	struct cfg *cfg = load_ok("[store]\nmax_size = 1M\npath = /tmp/a.db\n"
	                          "[hub]\nmode = off\n",
	                          &d);
	/* later files override earlier ones; untouched keys keep their value */
	assert_int_equal(cfg->store.max_size, 3u << 20);
	assert_int_equal(cfg->store.when_full, CFG_REFUSE_NEW);
	assert_string_equal(cfg->store.path, "/tmp/a.db");
	assert_string_equal(cfg_hub_modes[cfg->hub.mode], "minimum");
	unsigned line = 0;
	const char *where = cfg_where(cfg->doc, "store", "max_size", &line);
	assert_non_null(strstr(where, "conf.d/20-late.conf"));
	assert_int_equal(line, 2);
	/* a section keeps the place it was first opened */
	where = cfg_where(cfg->doc, "store", NULL, &line);
	assert_non_null(strstr(where, "notegw.conf"));
	const struct cfg_notefile *nf = cfg_notefile(cfg, "data.qo");
	assert_non_null(nf);
	assert_true(nf->urgent);
	cfg_free(cfg);

	/* errors in a conf.d file name that file */
	put("conf.d/50-bad.conf", "[store]\nbogus = 1\n");
	char main[256];
	snprintf(main, sizeof(main), "%s/notegw.conf", tmpdir);
	assert_null(cfg_load(main, &d));
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.msgs[0], "conf.d/50-bad.conf:2: unknown key 'bogus' in [store]"));
	cfg_diag_clear(&d);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -f %s/conf.d/*", tmpdir);
	assert_int_equal(system(cmd), 0);
}

static void t_notefiles(void **s)
{
	struct cfg_diag d = {0};
	struct cfg *cfg = load_ok("[crypto]\nuplink = notecard\nkey_name = uplink_key\n"
	                          "[notefile.data.qo]\ntemplate = auto\nencrypt = off\n"
	                          "learn = 5\n"
	                          "[notefile.sensors.v2.qos]\nurgent = true\nntn = on\n"
	                          "template = /etc/notegw/t.json\nencrypt = on\n"
	                          "[notefile.plain.db]\n",
	                          &d);
	assert_int_equal(cfg->n_notefiles, 3);
	const struct cfg_notefile *a = cfg_notefile(cfg, "data.qo");
	const struct cfg_notefile *b = cfg_notefile(cfg, "sensors.v2.qos");
	const struct cfg_notefile *c = cfg_notefile(cfg, "plain.db");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_null(cfg_notefile(cfg, "other.qo"));
	assert_string_equal(a->template_, "auto");
	assert_int_equal(a->encrypt, CFG_OFF);
	assert_int_equal(a->learn, 5);
	assert_false(a->urgent);
	assert_string_equal(b->template_, "/etc/notegw/t.json");
	assert_int_equal(b->encrypt, CFG_ON);
	assert_true(b->urgent);
	assert_true(b->ntn);
	assert_string_equal(c->template_, "off");
	assert_int_equal(c->encrypt, CFG_INHERIT);
	assert_int_equal(c->learn, 10);
	cfg_free(cfg);
}

/* cfg_doc_write: the sections asked for, and only they, as text the loader reads back
 * to the same values, a value's '#', ';' and edge spaces included. */
static void t_write_sections(void **s)
{
	struct cfg_diag d = {0};
	struct cfg_doc *doc = cfg_doc_parse_string("[mqtt]\npassword_file = /etc/x\n"
	                                           "[notefile.a.qo]\nurgent = true\n"
	                                           "note = \"  x # y ; z  \"\n"
	                                           "[notefile.b.qo]\nntn = on\n",
	                                           "w.conf", &d);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(doc);
	assert_non_null(f);
	assert_int_equal(cfg_doc_write(doc, "notefile.**", f), 0);
	fclose(f);
	assert_null(strstr(text, "mqtt"));
	assert_null(strstr(text, "password_file"));
	struct cfg_doc *back = cfg_doc_parse_string(text, "back.conf", &d);
	assert_non_null(back);
	assert_int_equal(d.n, 0);
	const char **names = NULL;
	assert_int_equal(cfg_doc_match(back, "**", &names), 2);
	assert_string_equal(names[0], "notefile.a.qo");
	assert_string_equal(names[1], "notefile.b.qo");
	free(names);
	struct nf {
		char *urgent, *note;
	} a = {0};
	const struct ngw_cfg_key keys[] = {
	    NGW_CFG_KEY(struct nf, "urgent", NGW_CFG_STR, NULL, urgent),
	    NGW_CFG_KEY(struct nf, "note", NGW_CFG_STR, NULL, note),
	};
	assert_int_equal(cfg_bind(back, "notefile.a.qo", keys, 2, &a, &d), 0);
	assert_string_equal(a.urgent, "true");
	assert_string_equal(a.note, "  x # y ; z  ");
	cfg_free_bound(keys, 2, &a);
	cfg_doc_free(back);
	cfg_doc_free(doc);
	free(text);
}

static void t_patterns(void **s)
{
	assert_true(cfg_pattern_match("modbus", "modbus"));
	assert_false(cfg_pattern_match("modbus", "modbus.x"));
	assert_true(cfg_pattern_match("modbus.*", "modbus.meter1"));
	assert_false(cfg_pattern_match("modbus.*", "modbus.meter1.voltage"));
	assert_false(cfg_pattern_match("modbus.*", "modbus."));
	assert_true(cfg_pattern_match("modbus.*.*", "modbus.meter1.voltage"));
	assert_false(cfg_pattern_match("modbus.*.*", "modbus.meter1"));
	assert_true(cfg_pattern_match("notefile.**", "notefile.data.qo"));
	assert_true(cfg_pattern_match("notefile.**", "notefile.x"));
	assert_false(cfg_pattern_match("notefile.**", "notefile"));
	assert_false(cfg_pattern_match("notefile.**", "notefiles.x"));

	struct cfg_diag d = {0};
	struct cfg_doc *doc = cfg_doc_parse_string("[modbus]\n[modbus.m1]\n[modbus.m1.v]\n"
	                                           "[modbus.m2]\n[modbus.m2.a]\n[modbus.m2.b]\n",
	                                           "p.conf", &d);
	const char **names = NULL;
	assert_int_equal(cfg_doc_match(doc, "modbus.*", &names), 2);
	assert_string_equal(names[0], "modbus.m1");
	assert_string_equal(names[1], "modbus.m2");
	free(names);
	assert_int_equal(cfg_doc_match(doc, "modbus.m2.*", &names), 2);
	free(names);
	assert_int_equal(cfg_doc_match(doc, "mqtt", &names), 0);
	assert_null(names);
	cfg_doc_claim(doc, "modbus");
	cfg_doc_claim(doc, "modbus.*");
	cfg_doc_report_unclaimed(doc, &d);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.msgs[0], "p.conf:3: unknown section [modbus.m1.v]");
	cfg_diag_clear(&d);
	cfg_doc_claim(doc, "modbus.*.*");
	cfg_doc_report_unclaimed(doc, &d);
	assert_int_equal(d.n, 0);
	cfg_doc_free(doc);
}

static void t_parsers(void **s)
{
	uint64_t u;
	bool b;
	assert_int_equal(cfg_parse_size("0", &u), 0);
	assert_int_equal(u, 0);
	assert_int_equal(cfg_parse_size("512", &u), 0);
	assert_int_equal(u, 512);
	assert_int_equal(cfg_parse_size("64K", &u), 0);
	assert_int_equal(u, 65536);
	assert_int_equal(cfg_parse_size("256M", &u), 0);
	assert_int_equal(u, 256u << 20);
	assert_int_equal(cfg_parse_size("3g", &u), 0);
	assert_int_equal(u, 3ull << 30);
	assert_int_equal(cfg_parse_size("1MB", &u), 0);
	assert_int_equal(u, 1u << 20);
	assert_int_equal(cfg_parse_size("", &u), -EINVAL);
	assert_int_equal(cfg_parse_size("M", &u), -EINVAL);
	assert_int_equal(cfg_parse_size("1.5M", &u), -EINVAL);
	assert_int_equal(cfg_parse_size("1T", &u), -EINVAL);
	assert_int_equal(cfg_parse_size("17179869184G", &u), -EINVAL); /* overflows */

	assert_int_equal(cfg_parse_duration_ms("5", &u), 0);
	assert_int_equal(u, 5000); /* bare number = seconds */
	assert_int_equal(cfg_parse_duration_ms("5ms", &u), 0);
	assert_int_equal(u, 5);
	assert_int_equal(cfg_parse_duration_ms("10s", &u), 0);
	assert_int_equal(u, 10000);
	assert_int_equal(cfg_parse_duration_ms("2m", &u), 0);
	assert_int_equal(u, 120000);
	assert_int_equal(cfg_parse_duration_ms("1h", &u), 0);
	assert_int_equal(u, 3600000);
	assert_int_equal(cfg_parse_duration_ms("-1s", &u), -EINVAL);
	assert_int_equal(cfg_parse_duration_ms("1x", &u), -EINVAL);
	assert_int_equal(cfg_parse_duration_ms("s", &u), -EINVAL);

	const char *yes[] = {"true", "YES", "on", "1"}, *no[] = {"false", "No", "OFF", "0"};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(cfg_parse_bool(yes[i], &b), 0);
		assert_true(b);
		assert_int_equal(cfg_parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	assert_int_equal(cfg_parse_bool("2", &b), -EINVAL);
	assert_int_equal(cfg_parse_bool("", &b), -EINVAL);
}

/* A plugin's section through its own table, as the host API's cfg_bind does it. */
struct plugcfg {
	bool enabled;
	char *url;
	long long unit;
	uint64_t interval_ms;
	uint64_t buf;
	int parity;
	double scale;
	char *notefile;
};
static const char *const parities[] = {"N", "E", "O", NULL};
static int check_url(const char *v, char *err, size_t errlen)
{
	if (strncmp(v, "tcp://", 6) == 0 || strncmp(v, "rtu:", 4) == 0)
		return 0;
	snprintf(err, errlen, "'%s' is neither tcp:// nor rtu:", v);
	return -1;
}
static const struct ngw_cfg_key plug_keys[] = {
    NGW_CFG_KEY(struct plugcfg, "enabled", NGW_CFG_BOOL, "false", enabled),
    NGW_CFG_KEY(struct plugcfg, "url", NGW_CFG_STR, NULL, url, .check = check_url, .required = 1),
    NGW_CFG_KEY(struct plugcfg, "unit", NGW_CFG_INT, "1", unit, .min = 1, .max = 247),
    NGW_CFG_KEY(struct plugcfg, "interval", NGW_CFG_DURATION, "10s", interval_ms, .min = 100,
                .max = 86400000),
    NGW_CFG_KEY(struct plugcfg, "buffer", NGW_CFG_SIZE, "4K", buf),
    NGW_CFG_KEY(struct plugcfg, "parity", NGW_CFG_ENUM, "N", parity, .choices = parities),
    NGW_CFG_KEY(struct plugcfg, "scale", NGW_CFG_DOUBLE, "1.0", scale, .min = -1000, .max = 1000),
    NGW_CFG_KEY(struct plugcfg, "notefile", NGW_CFG_STR, "meter.qo", notefile),
};

static void t_plugin_bind(void **s)
{
	struct cfg_diag d = {0};
	struct cfg_doc *doc = cfg_doc_parse_string("[modbus.meter1]\n"
	                                           "enabled = yes\n"
	                                           "url = tcp://127.0.0.1:502\n"
	                                           "unit = 7\n"
	                                           "interval = 500ms\n"
	                                           "parity = e\n"
	                                           "scale = -0.25\n"
	                                           "[modbus.meter2]\n"
	                                           "url = serial\n"
	                                           "unit = 300\n"
	                                           "scale = 1e9\n"
	                                           "stop = 2\n"
	                                           "[modbus.meter3]\n"
	                                           "unit = 3\n",
	                                           "/etc/notegw/notegw.conf", &d);
	assert_non_null(doc);
	struct plugcfg p = {0};
	assert_int_equal(cfg_bind(doc, "modbus.meter1", plug_keys, 8, &p, &d), 0);
	assert_int_equal(d.n, 0);
	assert_true(p.enabled);
	assert_string_equal(p.url, "tcp://127.0.0.1:502");
	assert_int_equal(p.unit, 7);
	assert_int_equal(p.interval_ms, 500);
	assert_int_equal(p.buf, 4096);
	assert_int_equal(p.parity, 1);
	assert_true(p.scale == -0.25);
	assert_string_equal(p.notefile, "meter.qo");
	cfg_free_bound(plug_keys, 8, &p);

	assert_int_equal(cfg_bind(doc, "modbus.meter2", plug_keys, 8, &p, &d), -EINVAL);
	assert_true(diag_has(&d, "/etc/notegw/notegw.conf:9: [modbus.meter2] url: 'serial' is "
	                         "neither tcp:// nor rtu:"));
	assert_true(diag_has(&d, "notegw.conf:10: [modbus.meter2] unit: 300 out of range 1..247"));
	assert_true(diag_has(&d, "notegw.conf:11: [modbus.meter2] scale: 1e9 out of range"));
	assert_true(diag_has(&d, "notegw.conf:12: unknown key 'stop' in [modbus.meter2]"));
	assert_int_equal(d.n, 4);
	cfg_free_bound(plug_keys, 8, &p);
	cfg_diag_clear(&d);

	/* a required key missing names the section's line */
	assert_int_equal(cfg_bind(doc, "modbus.meter3", plug_keys, 8, &p, &d), -EINVAL);
	assert_true(diag_has(&d, "notegw.conf:13: missing required key 'url' in [modbus.meter3]"));
	cfg_free_bound(plug_keys, 8, &p);
	cfg_diag_clear(&d);

	/* a missing section gives the defaults (here: fails only for the required key) */
	const struct ngw_cfg_key *opt = plug_keys;
	struct plugcfg q = {0};
	assert_int_equal(cfg_bind(doc, "modbus.absent", opt + 2, 6, &q, &d), 0);
	assert_int_equal(q.unit, 1);
	assert_int_equal(q.interval_ms, 10000);
	assert_string_equal(q.notefile, "meter.qo");
	cfg_free_bound(opt + 2, 6, &q);
	assert_int_equal(cfg_bind(doc, "modbus.absent", plug_keys, 8, &q, &d), -EINVAL);
	assert_true(diag_has(&d, "missing section [modbus.absent] (needs key 'url')"));
	cfg_free_bound(plug_keys, 8, &q);
	cfg_diag_clear(&d);
	cfg_doc_free(doc);
}

static void t_diag_format(void **s)
{
	struct cfg_diag d = {0};
	cfg_diag_add(&d, "/a.conf", 12, "x %d", 1);
	cfg_diag_add(&d, "/a.conf", 0, "whole file");
	cfg_diag_add(&d, NULL, 0, "no file");
	assert_string_equal(d.msgs[0], "/a.conf:12: x 1");
	assert_string_equal(d.msgs[1], "/a.conf: whole file");
	assert_string_equal(d.msgs[2], "no file");
	cfg_diag_clear(&d);
	assert_int_equal(d.n, 0);
	/* bounded: a flood of errors stops with one final note */
	for (int i = 0; i < 2000; i++)
		cfg_diag_add(&d, "f", 1, "e");
	assert_true(d.n < 1000);
	assert_true(diag_has(&d, "too many errors"));
	cfg_diag_clear(&d);
}

/* The shipped example must load: only the plugins' sections are left unclaimed. */
/* [fleet] and [health]: their keys with FILE:LINE, the allow patterns, what is never
 * allowed, and the overlay read last with each key it sets checked. */
static void t_fleet(void **s)
{
	expect_error("[fleet]\nallow = hub.*, control.socket\n", "bad.conf:2: [fleet] allow");
	expect_error("[fleet]\nallow = crypto.*\n", "can never be allowed");
	expect_error("[fleet]\nallow = hub/outbound\n", "is not a pattern");
	expect_error("[fleet]\nenv_prefix = no spaces\n", "bad.conf:2: [fleet] env_prefix");
	expect_error("[fleet]\nnotefile = x.qi\n", "is not an outbound notefile");
	expect_error("[health]\ninterval = 500ms\n", "bad.conf:2: [health] interval is 0");
	expect_error("[health]\nnotefile = h.txt\n", "bad.conf:2: [health] notefile");

	assert_true(cfg_fleet_allowed("hub.outbound, modbus.*", "modbus.meter1.interval"));
	assert_true(cfg_fleet_allowed("hub.outbound, modbus.*", "hub.outbound"));
	assert_false(cfg_fleet_allowed("hub.outbound, modbus.*", "hub.inbound"));
	assert_false(cfg_fleet_allowed("modbus.*", "modbusx.a"));
	assert_true(cfg_fleet_allowed("modbus.*.interval", "modbus.m1.interval"));
	assert_false(cfg_fleet_allowed("modbus.*.interval", "modbus.m1.v.interval"));
	assert_false(cfg_fleet_allowed(NULL, "hub.outbound"));
	assert_non_null(cfg_fleet_forbidden("control.socket", "x"));
	assert_non_null(cfg_fleet_forbidden("fleet.allow", "*"));
	assert_non_null(cfg_fleet_forbidden("mqtt.host", "example.com"));
	assert_non_null(cfg_fleet_forbidden("mqtt.password_file", "x"));
	assert_non_null(cfg_fleet_forbidden("notefile.a.qo.template", "/etc/passwd"));
	assert_non_null(cfg_fleet_forbidden("modbus.m1.interval", "tcp://10.0.0.1"));
	assert_null(cfg_fleet_forbidden("modbus.m1.interval", "30s"));
	assert_null(cfg_fleet_forbidden("notefile.a.qo.template", "auto"));

	/* the overlay: read after conf.d, overriding; a key it may not set is FILE:LINE */
	char text[512];
	snprintf(text, sizeof(text),
	         "[daemon]\nstate_dir = %s\n[hub]\noutbound = 60\n[fleet]\nallow = hub.outbound\n",
	         tmpdir);
	put("fleet.conf", "# revision 4\n[hub]\noutbound = 30\n");
	struct cfg_diag d = {0};
	const char *f = put("notegw.conf", text);
	struct cfg_doc *doc = cfg_doc_load(f, NULL, &d);
	assert_non_null(doc);
	assert_int_equal(cfg_fleet_read_overlay(doc, NULL, &d), 0);
	struct cfg *cfg = cfg_from_doc(doc, f, &d);
	assert_non_null(cfg);
	assert_int_equal(cfg->hub.outbound, 30);
	cfg_free(cfg);
	const char *bad = put("fleet.conf", "[hub]\noutbound = 30\ninbound = 5\n");
	doc = cfg_doc_load(f, NULL, &d);
	assert_int_equal(cfg_fleet_read_overlay(doc, NULL, &d), 0);
	char want[300];
	snprintf(want, sizeof(want), "%s:3: hub.inbound: not in [fleet] allow", bad);
	assert_true(diag_has(&d, want));
	assert_null(cfg_from_doc(doc, f, &d));
	cfg_doc_free(doc);
	cfg_diag_clear(&d);
	unlink(bad);
}

static void t_example_file(void **s)
{
	const char *top = getenv("top_srcdir");
	char path[512];
	snprintf(path, sizeof(path), "%s/etc/notegw.conf", top ? top : "..");
	struct cfg_diag d = {0};
	struct cfg *cfg = cfg_load(path, &d);
	if (!cfg)
		diag_dump(&d);
	assert_non_null(cfg);
	assert_int_equal(cfg->crypto.uplink, CFG_UPLINK_OFF);
	assert_string_equal(cfg->control.socket, "/run/notegw/control.sock");
	cfg_doc_report_unclaimed(cfg->doc, &d);
	assert_int_equal(d.n, 2);
	assert_true(diag_has(&d, "unknown section [mqtt]"));
	assert_true(diag_has(&d, "unknown section [modbus]"));
	cfg_diag_clear(&d);
	cfg_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(t_defaults),
	    cmocka_unit_test(t_valid_file),
	    cmocka_unit_test(t_unknown_key),
	    cmocka_unit_test(t_unknown_section),
	    cmocka_unit_test(t_bad_values),
	    cmocka_unit_test(t_syntax),
	    cmocka_unit_test(t_comments_and_quotes),
	    cmocka_unit_test(t_line_too_long),
	    cmocka_unit_test(t_file_too_large),
	    cmocka_unit_test(t_missing_main),
	    cmocka_unit_test(t_confd_order),
	    cmocka_unit_test(t_notefiles),
	    cmocka_unit_test(t_patterns),
	    cmocka_unit_test(t_write_sections),
	    cmocka_unit_test(t_parsers),
	    cmocka_unit_test(t_plugin_bind),
	    cmocka_unit_test(t_diag_format),
	    cmocka_unit_test(t_fleet),
	    cmocka_unit_test(t_example_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
