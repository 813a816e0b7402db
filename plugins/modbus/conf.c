/* Modbus configuration: bind the three section levels through the host's key
 * tables, then the checks no single key can make (address ranges, type against
 * table, overlaps, serial lines shared by devices). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "notegw/notefile.h"

#define ERR(...) (snprintf(err, errlen, __VA_ARGS__), -EINVAL)

static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (len == 0 || len > 10)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int copy_part(char *dst, size_t cap, const char *s, size_t len)
{
	if (len >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

/* host[:port] or [v6][:port] */
static int parse_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
                          const char *defport, char *err, size_t errlen)
{
	const char *h = s, *colon;
	size_t hl;
	unsigned long p;

	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close)
			return ERR("unclosed '[' in address");
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] && !colon)
			return ERR("junk after ']' in address");
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			return ERR("IPv6 addresses need brackets: [addr]:port");
		hl = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (hl == 0)
		return ERR("missing host");
	if (copy_part(host, hostlen, h, hl) < 0)
		return ERR("host name too long");
	if (!colon) {
		snprintf(port, portlen, "%s", defport);
		return 0;
	}
	if (parse_uint(colon + 1, strlen(colon + 1), 65535, &p) < 0 || p == 0)
		return ERR("bad port '%s' (1-65535)", colon + 1);
	snprintf(port, portlen, "%lu", p);
	return 0;
}

static const int bauds[] = {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400};

int mb_url_parse(const char *s, struct mb_url *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	if (strncmp(s, "tcp://", 6) == 0) {
		u->scheme = MB_URL_TCP;
		if (strpbrk(s + 6, "/?"))
			return ERR("tcp url takes no path or options: tcp://HOST[:PORT]");
		return parse_hostport(s + 6, u->host, sizeof(u->host), u->port, sizeof(u->port),
		                      "502", err, errlen);
	}
	if (strncmp(s, "rtu:", 4) != 0)
		return ERR("url must start with tcp:// or rtu: (e.g. rtu:/dev/ttyUSB0?baud=9600)");
	u->scheme = MB_URL_RTU;
	u->baud = 9600;
	u->parity = 'N';
	u->data = 8;
	u->stop = 1;
	s += 4;
	if (strncmp(s, "//", 2) == 0)
		s += 2;
	const char *q = strchr(s, '?');
	size_t pl = q ? (size_t)(q - s) : strlen(s);
	if (pl == 0 || s[0] != '/')
		return ERR("rtu url needs an absolute device path, e.g. rtu:/dev/ttyUSB0");
	if (copy_part(u->path, sizeof(u->path), s, pl) < 0)
		return ERR("device path too long");
	while (q && *q) {
		const char *opt = q + 1, *amp = strchr(opt, '&'), *eq;
		size_t ol = amp ? (size_t)(amp - opt) : strlen(opt);
		unsigned long v;
		q = amp;
		eq = memchr(opt, '=', ol);
		if (!eq)
			return ERR("rtu option '%.*s' needs a value", (int)ol, opt);
		size_t kl = (size_t)(eq - opt), vl = ol - kl - 1;
		const char *val = eq + 1;
#define KEY(k) (kl == strlen(k) && memcmp(opt, k, kl) == 0)
		if (KEY("baud")) {
			bool ok = false;
			if (parse_uint(val, vl, 1000000, &v) == 0)
				for (size_t i = 0; i < sizeof(bauds) / sizeof(bauds[0]); i++)
					ok |= bauds[i] == (int)v;
			if (!ok)
				return ERR(
				    "unsupported baud rate '%.*s' (1200-230400, standard rates)",
				    (int)vl, val);
			u->baud = (int)v;
		} else if (KEY("parity")) {
			if (vl != 1 || !strchr("NEOneo", val[0]))
				return ERR("parity must be N, E or O");
			u->parity = (char)(val[0] & ~0x20);
		} else if (KEY("data")) {
			if (parse_uint(val, vl, 8, &v) < 0 || v < 5)
				return ERR("data bits must be 5-8");
			u->data = (int)v;
		} else if (KEY("stop")) {
			if (parse_uint(val, vl, 2, &v) < 0 || v < 1)
				return ERR("stop bits must be 1 or 2");
			u->stop = (int)v;
		} else if (KEY("rs485")) {
			if (parse_uint(val, vl, 1, &v) < 0)
				return ERR("rs485 must be 0 or 1");
			u->rs485 = v == 1;
		} else {
			return ERR("unknown rtu option '%.*s' (baud, parity, data, stop, rs485)",
			           (int)kl, opt);
		}
#undef KEY
	}
	return 0;
}

int mb_register_parse(const char *s, enum mb_kind *kind, uint16_t *addr, char *err, size_t errlen)
{
	const char *colon = strchr(s, ':');
	unsigned long a;
	int k;

	if (!colon)
		return ERR("register must be TABLE:ADDRESS (holding, input, coil, discrete)");
	k = mb_kind_parse(s, (size_t)(colon - s));
	if (k < 0)
		return ERR("unknown register table '%.*s' (holding, input, coil, discrete)",
		           (int)(colon - s), s);
	if (parse_uint(colon + 1, strlen(colon + 1), 65535, &a) < 0)
		return ERR(
		    "register address must be 0-65535 (the protocol address, not 40001-style)");
	*kind = (enum mb_kind)k;
	*addr = (uint16_t)a;
	return 0;
}

int mb_server_parse(const char *s, bool *on, char *host, size_t hostlen, char *port, size_t portlen,
                    char *err, size_t errlen)
{
	unsigned long p;

	*on = true;
	if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0 || strcmp(s, "no") == 0) {
		*on = false;
		return 0;
	}
	if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0)
		s = "502";
	if (parse_uint(s, strlen(s), 65535, &p) == 0) {
		if (p == 0)
			return ERR("bad port 0");
		snprintf(host, hostlen, "127.0.0.1");
		snprintf(port, portlen, "%lu", p);
		return 0;
	}
	return parse_hostport(s, host, hostlen, port, portlen, "502", err, errlen);
}

/* ---- key tables ------------------------------------------------------------------ */
static int check_url(const char *v, char *err, size_t errlen)
{
	struct mb_url u;
	return mb_url_parse(v, &u, err, errlen);
}

static int check_register(const char *v, char *err, size_t errlen)
{
	enum mb_kind k;
	uint16_t a;
	return mb_register_parse(v, &k, &a, err, errlen);
}

static int check_type(const char *v, char *err, size_t errlen)
{
	enum mb_type t;
	enum mb_order o;
	if (mb_type_parse(v, &t, &o) < 0)
		return ERR("unknown type '%s' (u16 i16 u32 i32 f32, _be/_le word order on the "
		           "32-bit ones, bool)",
		           v);
	return 0;
}

static int check_server(const char *v, char *err, size_t errlen)
{
	bool on;
	char h[256], p[8];
	return mb_server_parse(v, &on, h, sizeof(h), p, sizeof(p), err, errlen);
}

static int check_outbound(const char *v, char *err, size_t errlen)
{
	if (!*v || strchr(v, '/') ||
	    !ngw_notefile_suffix_out(v))
		return ERR("notefile '%s' must end in .qo, .qos, .db or .dbs", v);
	return 0;
}

static int check_inbound(const char *v, char *err, size_t errlen)
{
	if (!*v || strchr(v, '/') ||
	    !ngw_notefile_suffix_in(v))
		return ERR("notefile '%s' must end in .qi, .qis, .db or .dbs", v);
	return 0;
}

static int check_number(const char *v, char *err, size_t errlen)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v || *end || !isfinite(d))
		return ERR("'%s' is not a number", v);
	return 0;
}

struct raw_main {
	bool enabled;
	char *write_notefile, *result_notefile, *server;
	long long server_unit;
};

static const struct ngw_cfg_key main_keys[] = {
    NGW_CFG_KEY(struct raw_main, "enabled", NGW_CFG_BOOL, "false", enabled),
    NGW_CFG_KEY(struct raw_main, "write_notefile", NGW_CFG_STR, "modbus.qi", write_notefile,
                .check = check_inbound),
    NGW_CFG_KEY(struct raw_main, "result_notefile", NGW_CFG_STR, "modbus.qo", result_notefile,
                .check = check_outbound),
    NGW_CFG_KEY(struct raw_main, "server", NGW_CFG_STR, "off", server, .check = check_server),
    NGW_CFG_KEY(struct raw_main, "server_unit", NGW_CFG_INT, "1", server_unit, .max = 255),
};

static const char *const report_choices[] = {"always", "change", NULL};

struct raw_dev {
	char *url, *notefile;
	long long unit, gap, down_after;
	uint64_t interval, timeout, backoff, backoff_max;
	int report;
};

static const struct ngw_cfg_key dev_keys[] = {
    NGW_CFG_KEY(struct raw_dev, "url", NGW_CFG_STR, NULL, url, .check = check_url, .required = 1),
    NGW_CFG_KEY(struct raw_dev, "unit", NGW_CFG_INT, "1", unit, .max = 255),
    NGW_CFG_KEY(struct raw_dev, "interval", NGW_CFG_DURATION, "10s", interval, .min = 100,
                .max = 86400000LL),
    NGW_CFG_KEY(struct raw_dev, "timeout", NGW_CFG_DURATION, "1s", timeout, .min = 10,
                .max = 60000),
    NGW_CFG_KEY(struct raw_dev, "backoff", NGW_CFG_DURATION, "1s", backoff, .min = 100,
                .max = 3600000LL),
    NGW_CFG_KEY(struct raw_dev, "backoff_max", NGW_CFG_DURATION, "60s", backoff_max, .min = 100,
                .max = 86400000LL),
    NGW_CFG_KEY(struct raw_dev, "down_after", NGW_CFG_INT, "3", down_after, .min = 1, .max = 1000),
    NGW_CFG_KEY(struct raw_dev, "gap", NGW_CFG_INT, "0", gap, .max = 124),
    NGW_CFG_KEY(struct raw_dev, "notefile", NGW_CFG_STR, "modbus.qo", notefile,
                .check = check_outbound),
    NGW_CFG_KEY(struct raw_dev, "report", NGW_CFG_ENUM, "always", report,
                .choices = report_choices),
};

struct raw_pt {
	char *reg, *type, *min, *max;
	double scale, offset, deadband;
	bool writable;
};

static const struct ngw_cfg_key pt_keys[] = {
    NGW_CFG_KEY(struct raw_pt, "register", NGW_CFG_STR, NULL, reg, .check = check_register,
                .required = 1),
    NGW_CFG_KEY(struct raw_pt, "type", NGW_CFG_STR, NULL, type, .check = check_type),
    NGW_CFG_KEY(struct raw_pt, "scale", NGW_CFG_DOUBLE, "1", scale),
    NGW_CFG_KEY(struct raw_pt, "offset", NGW_CFG_DOUBLE, "0", offset),
    NGW_CFG_KEY(struct raw_pt, "deadband", NGW_CFG_DOUBLE, "0", deadband),
    NGW_CFG_KEY(struct raw_pt, "writable", NGW_CFG_BOOL, "false", writable),
    NGW_CFG_KEY(struct raw_pt, "min", NGW_CFG_STR, NULL, min, .check = check_number),
    NGW_CFG_KEY(struct raw_pt, "max", NGW_CFG_STR, NULL, max, .check = check_number),
};

#define N(t) (sizeof(t) / sizeof((t)[0]))

/* ---- loading --------------------------------------------------------------------- */
void mb_conf_free(struct mb_conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->devices && i < c->n_devices; i++) {
		struct mb_device *d = &c->devices[i];
		for (size_t j = 0; j < d->n_points; j++) {
			free(d->points[j].name);
			free(d->points[j].section);
		}
		free(d->points);
		free(d->blocks);
		free(d->name);
		free(d->section);
		free(d->url_text);
		free(d->notefile);
	}
	free(c->devices);
	free(c->write_notefile);
	free(c->result_notefile);
	free(c);
}

struct mb_device *mb_conf_device(const struct mb_conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_devices; i++)
		if (strcmp(c->devices[i].name, name) == 0)
			return &c->devices[i];
	return NULL;
}

struct mb_point *mb_device_point(const struct mb_device *d, const char *name)
{
	for (size_t i = 0; i < d->n_points; i++)
		if (strcmp(d->points[i].name, name) == 0)
			return &d->points[i];
	return NULL;
}

static int load_point(struct ngw_plugin *self, const char *sec, struct mb_point *p)
{
	const struct ngw_host_api *h = self->host;
	struct raw_pt r;
	char err[160];
	int rc, bad = 0;

	memset(&r, 0, sizeof(r));
	rc = h->cfg_bind(self, sec, pt_keys, N(pt_keys), &r);
	if (rc < 0)
		goto out;
	p->section = strdup(sec);
	p->name = strdup(strrchr(sec, '.') + 1);
	if (!p->section || !p->name) {
		rc = -ENOMEM;
		goto out;
	}
	mb_register_parse(r.reg, &p->kind, &p->addr, err, sizeof(err)); /* checked in bind */
	if (r.type) {
		mb_type_parse(r.type, &p->type, &p->order);
	} else {
		p->type = mb_kind_is_bits(p->kind) ? MB_BOOL : MB_U16;
		p->order = MB_ORDER_BE;
	}
	if (mb_kind_is_bits(p->kind) && p->type != MB_BOOL) {
		h->cfg_error(self, sec, "type", "a %s point is a single bit: type must be bool",
		             mb_kind_name(p->kind));
		bad = 1;
	}
	if ((unsigned)p->addr + mb_type_width(p->type) > 65536u) {
		h->cfg_error(self, sec, "register", "%s at %u needs %u registers: past 65535",
		             mb_type_name(p->type), p->addr, mb_type_width(p->type));
		bad = 1;
	}
	p->scale = r.scale;
	p->offset = r.offset;
	p->deadband = r.deadband;
	p->writable = r.writable;
	if (!isfinite(r.scale) || r.scale == 0) {
		h->cfg_error(self, sec, "scale", "scale must be a nonzero number");
		bad = 1;
	}
	if (!(r.deadband >= 0)) {
		h->cfg_error(self, sec, "deadband", "deadband must be 0 or more");
		bad = 1;
	}
	if (p->writable && (p->kind == MB_INPUT || p->kind == MB_DISCRETE)) {
		h->cfg_error(self, sec, "writable", "%s registers are read-only in Modbus",
		             mb_kind_name(p->kind));
		bad = 1;
	}
	if (p->type == MB_BOOL && (r.scale != 1 || r.offset != 0)) {
		h->cfg_error(self, sec, "scale", "bool points take no scale or offset");
		bad = 1;
	}
	if (r.min) {
		p->has_min = true;
		p->min = strtod(r.min, NULL);
	}
	if (r.max) {
		p->has_max = true;
		p->max = strtod(r.max, NULL);
	}
	if (p->has_min && p->has_max && p->min > p->max) {
		h->cfg_error(self, sec, "min", "min %g is above max %g", p->min, p->max);
		bad = 1;
	}
	rc = bad ? -EINVAL : 0;
out:
	h->cfg_free(pt_keys, N(pt_keys), &r);
	return rc;
}

static bool same_line(const struct mb_url *a, const struct mb_url *b)
{
	return a->baud == b->baud && a->parity == b->parity && a->data == b->data &&
	       a->stop == b->stop && a->rs485 == b->rs485;
}

/* Overlapping points, then the read plan. */
static int plan_device(struct ngw_plugin *self, struct mb_device *d)
{
	const struct ngw_host_api *h = self->host;
	struct mb_span *spans = NULL;
	struct mb_where *where = NULL;
	int rc, bad = 0;

	for (size_t i = 0; i < d->n_points; i++)
		for (size_t j = 0; j < i; j++) {
			struct mb_point *a = &d->points[j], *b = &d->points[i];
			unsigned ae = a->addr + mb_type_width(a->type);
			unsigned be = b->addr + mb_type_width(b->type);
			if (a->kind == b->kind && a->addr < be && b->addr < ae) {
				h->cfg_error(self, b->section, "register",
				             "overlaps point '%s' (%s:%u)", a->name,
				             mb_kind_name(a->kind), a->addr);
				bad = 1;
			}
		}
	if (bad)
		return -EINVAL;
	spans = calloc(d->n_points, sizeof(*spans));
	where = calloc(d->n_points, sizeof(*where));
	d->blocks = calloc(d->n_points, sizeof(*d->blocks));
	if (!spans || !where || !d->blocks) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < d->n_points; i++) {
		spans[i].kind = d->points[i].kind;
		spans[i].addr = d->points[i].addr;
		spans[i].width = (uint16_t)mb_type_width(d->points[i].type);
	}
	rc = mb_plan(spans, d->n_points, d->gap, d->blocks, d->n_points, where);
	if (rc < 0)
		goto out;
	d->n_blocks = (size_t)rc;
	for (size_t i = 0; i < d->n_points; i++)
		d->points[i].where = where[i];
	rc = 0;
out:
	free(spans);
	free(where);
	return rc;
}

static int load_device(struct ngw_plugin *self, const char *sec, struct mb_device *d)
{
	const struct ngw_host_api *h = self->host;
	struct raw_dev r;
	char err[160];
	int rc;

	memset(&r, 0, sizeof(r));
	/* named first so its points find it even when its own keys are wrong */
	d->section = strdup(sec);
	d->name = strdup(sec + strlen("modbus."));
	if (!d->section || !d->name)
		return -ENOMEM;
	rc = h->cfg_bind(self, sec, dev_keys, N(dev_keys), &r);
	if (rc < 0)
		goto out;
	d->url_text = strdup(r.url);
	d->notefile = strdup(r.notefile);
	if (!d->url_text || !d->notefile) {
		rc = -ENOMEM;
		goto out;
	}
	mb_url_parse(r.url, &d->url, err, sizeof(err)); /* checked in bind */
	d->unit = (int)r.unit;
	d->interval_ms = r.interval;
	d->timeout_ms = r.timeout;
	d->backoff_ms = r.backoff;
	d->backoff_max_ms = r.backoff_max;
	d->down_after = (unsigned)r.down_after;
	d->gap = (unsigned)r.gap;
	d->report = r.report == 1 ? MB_REPORT_CHANGE : MB_REPORT_ALWAYS;
	if (d->url.scheme == MB_URL_RTU && (d->unit < 1 || d->unit > 247)) {
		/* 0 is broadcast (no reply ever comes), 248-255 are reserved on serial lines */
		h->cfg_error(self, sec, "unit", "an RTU unit must be 1-247");
		rc = -EINVAL;
	} else if (d->unit > 247 && d->unit != 255) {
		/* libmodbus refuses these for TCP too; 255 is the "any/direct" unit */
		h->cfg_error(self, sec, "unit", "a TCP unit must be 0-247 or 255");
		rc = -EINVAL;
	}
out:
	h->cfg_free(dev_keys, N(dev_keys), &r);
	return rc;
}

/* A step's result: out of memory stops loading; any other error was reported and
 * loading goes on to report more (*bad set). Returns 0 or -ENOMEM. */
static int go_on(int rc, int *bad)
{
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		*bad = 1;
	return 0;
}

/* [modbus] into c; m keeps the bound strings (the caller frees them). */
static int load_main(struct ngw_plugin *self, struct mb_conf *c, struct raw_main *m)
{
	char err[160];

	if (self->host->cfg_bind(self, "modbus", main_keys, N(main_keys), m) < 0)
		return -EINVAL;
	c->enabled = m->enabled;
	c->write_notefile = strdup(m->write_notefile);
	c->result_notefile = strdup(m->result_notefile);
	c->server_unit = (int)m->server_unit;
	if (!c->write_notefile || !c->result_notefile)
		return -ENOMEM;
	/* check_server already vetted the text: this cannot fail here */
	mb_server_parse(m->server, &c->server_on, c->server_host, sizeof(c->server_host),
	                c->server_port, sizeof(c->server_port), err, sizeof(err));
	return 0;
}

/* One device per [modbus.NAME], each with room for every point there is. */
static int load_devices(struct ngw_plugin *self, struct mb_conf *c, const char **devs, int nd,
                        int np)
{
	int bad = 0, rc;

	c->devices = calloc((size_t)nd + 1, sizeof(*c->devices));
	if (!c->devices)
		return -ENOMEM;
	for (int i = 0; i < nd; i++) {
		struct mb_device *d = &c->devices[c->n_devices++];
		d->index = (unsigned)i;
		if ((rc = go_on(load_device(self, devs[i], d), &bad)) < 0)
			return rc;
		d->points = calloc((size_t)np + 1, sizeof(*d->points));
		if (!d->points)
			return -ENOMEM;
	}
	return bad ? -EINVAL : 0;
}

/* The device a [modbus.DEV.POINT] section belongs to, or NULL. */
static struct mb_device *point_device(struct mb_conf *c, const char *section)
{
	const char *dev = section + strlen("modbus.");
	size_t len = (size_t)(strchr(dev, '.') - dev);

	for (size_t j = 0; j < c->n_devices; j++)
		if (c->devices[j].name && strlen(c->devices[j].name) == len &&
		    memcmp(c->devices[j].name, dev, len) == 0)
			return &c->devices[j];
	return NULL;
}

/* Each [modbus.DEV.POINT] into its device. */
static int load_points(struct ngw_plugin *self, struct mb_conf *c, const char **pts, int np)
{
	int bad = 0, rc;

	for (int i = 0; i < np; i++) {
		struct mb_device *d = point_device(c, pts[i]);
		if (!d) {
			const char *dev = pts[i] + strlen("modbus.");
			int len = (int)(strchr(dev, '.') - dev);
			self->host->cfg_error(self, pts[i], NULL,
			                      "point of unknown device '%.*s' (add [modbus.%.*s])",
			                      len, dev, len, dev);
			bad = 1;
			continue;
		}
		struct mb_point *p = &d->points[d->n_points++];
		p->index = (unsigned)c->n_points++;
		if ((rc = go_on(load_point(self, pts[i], p), &bad)) < 0)
			return rc;
	}
	return bad ? -EINVAL : 0;
}

/* Devices on one serial line share it: they must agree on its settings and each
 * needs a unit of its own. Checks c->devices[i] against those before it. */
static int check_shared_line(struct ngw_plugin *self, struct mb_conf *c, size_t i)
{
	struct mb_device *d = &c->devices[i];
	int bad = 0;

	for (size_t j = 0; j < i && d->url.scheme == MB_URL_RTU; j++) {
		struct mb_device *e = &c->devices[j];
		if (e->url.scheme != MB_URL_RTU || strcmp(e->url.path, d->url.path) != 0)
			continue;
		if (!same_line(&e->url, &d->url)) {
			self->host->cfg_error(self, d->section, "url",
			                      "%s is also used by '%s' with other line settings",
			                      d->url.path, e->name);
			bad = 1;
		} else if (e->unit == d->unit) {
			self->host->cfg_error(self, d->section, "unit",
			                      "unit %d on %s is also device '%s'", d->unit,
			                      d->url.path, e->name);
			bad = 1;
		}
	}
	return bad ? -EINVAL : 0;
}

/* Cross-checks once every section is bound: points per device, the read plan, shared
 * serial lines. Stops at the first device in error. */
static int check_devices(struct ngw_plugin *self, struct mb_conf *c)
{
	int bad = 0, rc;

	for (size_t i = 0; i < c->n_devices && !bad; i++) {
		struct mb_device *d = &c->devices[i];
		if (d->n_points == 0) {
			self->host->cfg_error(self, d->section, NULL,
			                      "device has no points (add [%s.NAME] sections)",
			                      d->section);
			bad = 1;
			continue;
		}
		if ((rc = go_on(plan_device(self, d), &bad)) < 0)
			return rc;
		go_on(check_shared_line(self, c, i), &bad);
	}
	return bad ? -EINVAL : 0;
}

int mb_conf_load(struct ngw_plugin *self, struct mb_conf **out)
{
	const struct ngw_host_api *h = self->host;
	struct mb_conf *c = calloc(1, sizeof(*c));
	struct raw_main m;
	const char **devs = NULL, **pts = NULL;
	int nd, np, rc, bad = 0;

	if (!c)
		return -ENOMEM;
	memset(&m, 0, sizeof(m));
	if ((rc = go_on(load_main(self, c, &m), &bad)) < 0)
		goto out;
	nd = h->cfg_sections(self, "modbus.*", &devs);
	np = nd < 0 ? 0 : h->cfg_sections(self, "modbus.*.*", &pts);
	if (nd < 0 || np < 0) {
		rc = nd < 0 ? nd : np;
		goto out;
	}
	if ((rc = go_on(load_devices(self, c, devs, nd, np), &bad)) < 0 ||
	    (rc = go_on(load_points(self, c, pts, np), &bad)) < 0)
		goto out;
	if (!bad && (rc = go_on(check_devices(self, c), &bad)) < 0)
		goto out;
	rc = bad ? -EINVAL : 0;
out:
	h->cfg_free(main_keys, N(main_keys), &m);
	free(devs);
	free(pts);
	if (rc < 0) {
		mb_conf_free(c);
		return rc;
	}
	*out = c;
	return 0;
}
