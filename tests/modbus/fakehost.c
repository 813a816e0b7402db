/* Fake plugin host for the Modbus tests. The parsing follows the rules of
 * include/notegw/plugin.h (defaults, ranges, required keys, unknown keys refused)
 * closely enough that a config accepted here is one the daemon accepts. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fakehost.h"

/* Walk the text; call fn for each key line (section lines set sec). */
typedef int (*line_fn)(void *ud, int no, const char *sec, const char *key, const char *val);

static char *trim(char *s)
{
	char *e;
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int walk(struct fakehost *h, line_fn fn, void *ud)
{
	char *copy = strdup(h->text), *ln;
	char sec[256] = "";
	int no = 0, rc = 0;
	char *p = copy;

	if (!copy)
		return -ENOMEM;
	while ((ln = strsep(&p, "\n")) != NULL && rc == 0) {
		char *hash, *eq, *s;
		no++;
		hash = strchr(ln, '#');
		if (hash)
			*hash = '\0';
		s = trim(ln);
		if (!*s)
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			if (close)
				*close = '\0';
			snprintf(sec, sizeof(sec), "%s", trim(s + 1));
			rc = fn(ud, no, sec, NULL, NULL);
			continue;
		}
		eq = strchr(s, '=');
		if (!eq)
			continue;
		*eq = '\0';
		rc = fn(ud, no, sec, trim(s), trim(eq + 1));
	}
	free(copy);
	return rc < 0 ? rc : 0;
}

static void report(struct fakehost *h, int line, const char *section, const char *key,
                   const char *fmt, va_list ap)
{
	char msg[400];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(h->last_error, sizeof(h->last_error), "%s:%d: [%s]%s%s: %s", h->file, line,
	         section, key ? " " : "", key ? key : "", msg);
	fprintf(stderr, "%s\n", h->last_error);
	h->errors++;
}

static void reportf(struct fakehost *h, int line, const char *section, const char *key,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reportf(struct fakehost *h, int line, const char *section, const char *key,
                    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(h, line, section, key, fmt, ap);
	va_end(ap);
}

/* ---- cfg_sections ---------------------------------------------------------------- */
struct sec_ud {
	const char *pattern;
	const char **names;
	int n, cap;
	char **store; /* strings kept for the host's life: leaked on purpose into h */
};

static bool match(const char *pattern, const char *name)
{
	/* "a.*" = a.X with X dot-free; "a.*.*" = a.X.Y */
	const char *star = strchr(pattern, '*');
	size_t pl = star ? (size_t)(star - pattern) : strlen(pattern);
	int levels = 0;
	if (!star)
		return strcmp(pattern, name) == 0;
	for (const char *s = star; *s; s++)
		levels += *s == '*';
	if (strncmp(pattern, name, pl) != 0)
		return false;
	name += pl;
	for (int i = 0; i < levels; i++) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		if (l == 0)
			return false;
		name += l;
		if (i < levels - 1) {
			if (*name != '.')
				return false;
			name++;
		}
	}
	return *name == '\0';
}

static char *sec_pool[4096];
static int sec_pool_n;

static int sections_cb(void *ud, int no, const char *sec, const char *key, const char *val)
{
	struct sec_ud *s = ud;
	if (key || !match(s->pattern, sec))
		return 0;
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->names[i], sec) == 0)
			return 0;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		const char **nn = realloc(s->names, (size_t)s->cap * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		s->names = nn;
	}
	char *copy = NULL;
	for (int i = 0; i < sec_pool_n; i++)
		if (strcmp(sec_pool[i], sec) == 0)
			copy = sec_pool[i];
	if (!copy && sec_pool_n < 4096) {
		copy = strdup(sec);
		sec_pool[sec_pool_n++] = copy;
	}
	if (!copy)
		return -ENOMEM;
	s->names[s->n++] = copy;
	return 0;
}

static int h_cfg_sections(struct ngw_plugin *self, const char *pattern, const char ***names)
{
	struct fakehost *h = (struct fakehost *)self;
	struct sec_ud s = {.pattern = pattern};
	int rc = walk(h, sections_cb, &s);
	if (rc < 0) {
		free(s.names);
		return rc;
	}
	if (!s.names)
		s.names = calloc(1, sizeof(*s.names));
	*names = s.names;
	return s.n;
}

/* ---- cfg_bind -------------------------------------------------------------------- */
struct bind_ud {
	struct fakehost *h;
	const char *section;
	const struct ngw_cfg_key *keys;
	size_t n;
	void *out;
	bool *seen;
	int sec_line;
	int bad;
};

static int parse_duration(const char *v, uint64_t *ms)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v || d < 0)
		return -EINVAL;
	if (!*end || strcmp(end, "s") == 0)
		d *= 1000;
	else if (strcmp(end, "ms") == 0)
		;
	else if (strcmp(end, "m") == 0)
		d *= 60000;
	else if (strcmp(end, "h") == 0)
		d *= 3600000;
	else
		return -EINVAL;
	*ms = (uint64_t)d;
	return 0;
}

static int set_value(struct bind_ud *b, const struct ngw_cfg_key *k, const char *v, int line)
{
	char *base = (char *)b->out + k->offset, *end;
	char err[256] = "";

	if (k->check && k->check(v, err, sizeof(err)) != 0) {
		reportf(b->h, line, b->section, k->name, "%s", err);
		return -EINVAL;
	}
	switch (k->type) {
	case NGW_CFG_STR: {
		char **p = (char **)(void *)base;
		free(*p);
		*p = strdup(v);
		return *p ? 0 : -ENOMEM;
	}
	case NGW_CFG_BOOL: {
		bool *p = (bool *)(void *)base;
		if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
			*p = true;
		else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") ||
		         !strcmp(v, "0"))
			*p = false;
		else
			goto bad;
		return 0;
	}
	case NGW_CFG_INT: {
		long long x = strtoll(v, &end, 0);
		if (end == v || *end)
			goto bad;
		if ((k->min || k->max) && (x < k->min || x > k->max)) {
			reportf(b->h, line, b->section, k->name, "%lld outside %lld..%lld", x,
			        k->min, k->max);
			return -EINVAL;
		}
		*(long long *)(void *)base = x;
		return 0;
	}
	case NGW_CFG_DURATION: {
		uint64_t ms;
		if (parse_duration(v, &ms) < 0)
			goto bad;
		if ((k->min || k->max) && ((long long)ms < k->min || (long long)ms > k->max)) {
			reportf(b->h, line, b->section, k->name, "%s outside %lldms..%lldms", v,
			        k->min, k->max);
			return -EINVAL;
		}
		*(uint64_t *)(void *)base = ms;
		return 0;
	}
	case NGW_CFG_SIZE: {
		unsigned long long x = strtoull(v, &end, 0);
		if (end == v)
			goto bad;
		*(uint64_t *)(void *)base = x;
		return 0;
	}
	case NGW_CFG_ENUM:
		for (int i = 0; k->choices[i]; i++)
			if (strcmp(k->choices[i], v) == 0) {
				*(int *)(void *)base = i;
				return 0;
			}
		goto bad;
	case NGW_CFG_DOUBLE: {
		double d = strtod(v, &end);
		if (end == v || *end || !isfinite(d))
			goto bad;
		if ((k->min || k->max) && (d < (double)k->min || d > (double)k->max))
			goto bad;
		*(double *)(void *)base = d;
		return 0;
	}
	}
bad:
	reportf(b->h, line, b->section, k->name, "bad value '%s'", v);
	return -EINVAL;
}

static int bind_cb(void *ud, int no, const char *sec, const char *key, const char *val)
{
	struct bind_ud *b = ud;
	if (strcmp(sec, b->section) != 0)
		return 0;
	if (!key) {
		if (!b->sec_line)
			b->sec_line = no;
		return 0;
	}
	for (size_t i = 0; i < b->n; i++) {
		if (strcmp(b->keys[i].name, key) != 0)
			continue;
		b->seen[i] = true;
		int rc = set_value(b, &b->keys[i], val, no);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0)
			b->bad = 1;
		return 0;
	}
	reportf(b->h, no, sec, key, "unknown key");
	b->bad = 1;
	return 0;
}

static int h_cfg_bind(struct ngw_plugin *self, const char *section, const struct ngw_cfg_key *keys,
                      size_t n, void *out)
{
	struct fakehost *h = (struct fakehost *)self;
	struct bind_ud b = {h, section, keys, n, out, calloc(n + 1, sizeof(bool)), 0, 0};
	int rc;

	if (!b.seen)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (keys[i].def && set_value(&b, &keys[i], keys[i].def, 0) < 0)
			b.bad = 1;
	rc = walk(h, bind_cb, &b);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (keys[i].required && !b.seen[i]) {
			reportf(h, b.sec_line, section, keys[i].name, "missing (required)");
			b.bad = 1;
		}
	free(b.seen);
	if (rc < 0)
		return rc;
	return b.bad ? -EINVAL : 0;
}

static void h_cfg_free(const struct ngw_cfg_key *keys, size_t n, void *out)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].type == NGW_CFG_STR) {
			char **p = (char **)(void *)((char *)out + keys[i].offset);
			free(*p);
			*p = NULL;
		}
}

struct line_ud {
	const char *section, *key;
	int line;
};

static int find_line_cb(void *ud, int no, const char *sec, const char *key, const char *val)
{
	struct line_ud *l = ud;
	if (strcmp(sec, l->section) != 0)
		return 0;
	if (!key && !l->line)
		l->line = no;
	if (key && l->key && strcmp(key, l->key) == 0)
		l->line = no;
	return 0;
}

static void h_cfg_error(struct ngw_plugin *self, const char *section, const char *key,
                        const char *fmt, ...)
{
	struct fakehost *h = (struct fakehost *)self;
	struct line_ud l = {section, key, 0};
	va_list ap;

	walk(h, find_line_cb, &l);
	va_start(ap, fmt);
	report(h, l.line, section, key, fmt, ap);
	va_end(ap);
}

/* ---- the rest of the API --------------------------------------------------------- */
static sd_event *h_event(struct ngw_plugin *self)
{
	return ((struct fakehost *)self)->ev;
}

static void h_log(struct ngw_plugin *self, int level, const char *fmt, ...)
{
	va_list ap;
	if (level > LOG_INFO && !getenv("MBHOST_DEBUG"))
		return;
	/* like the daemon, which names the plugin in front of each message */
	fputs("modbus: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void print_event(struct fakehost *h, const char *kind, const char *k1, const char *v1,
                        const char *k2, const char *json)
{
	if (!h->out)
		return;
	/* json is an object's text already: splice it in as is */
	fprintf(h->out, "{\"event\":\"%s\",\"%s\":\"%s\",\"%s\":%s}\n", kind, k1, v1, k2,
	        json ? json : "null");
	fflush(h->out);
}

static int h_note_put(struct ngw_plugin *self, const char *notefile, const char *body,
                      const void *payload, size_t len, ngw_put_cb cb, void *ud, const char **why)
{
	struct fakehost *h = (struct fakehost *)self;
	h->notes++;
	print_event(h, "note", "file", notefile, "body", body);
	if (cb)
		cb(ud, 0, NULL);
	return 0;
}

static int h_inbound_done(struct ngw_plugin *self, int64_t id)
{
	struct fakehost *h = (struct fakehost *)self;
	char buf[32];
	h->dones++;
	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	print_event(h, "done", "file", "-", "id", buf);
	return 0;
}

static void h_emit(struct ngw_plugin *self, const char *topic, const char *json)
{
	struct fakehost *h = (struct fakehost *)self;
	h->emits++;
	print_event(h, "emit", "topic", topic, "json", json);
}

static char *h_status_json(struct ngw_plugin *self)
{
	struct fakehost *h = (struct fakehost *)self;
	return strdup(h->status ? h->status : "{}");
}

static const char *h_state_dir(struct ngw_plugin *self)
{
	return "/tmp";
}

static int read_text(const char *file, char **out)
{
	FILE *f = fopen(file, "r");
	char *t;
	long n;

	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	t = calloc(1, (size_t)n + 1);
	if (!t || fread(t, 1, (size_t)n, f) != (size_t)n) {
		free(t);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	*out = t;
	return 0;
}

int fakehost_reread(struct fakehost *h)
{
	char *t;
	int rc = read_text(h->file, &t);
	if (rc < 0)
		return rc;
	free(h->text);
	h->text = t;
	return 0;
}

int fakehost_init(struct fakehost *h, const char *file, const char *text, sd_event *ev)
{
	memset(h, 0, sizeof(*h));
	h->ev = ev;
	h->file = file ? file : "test.conf";
	if (file) {
		int rc = read_text(file, &h->text);
		if (rc < 0)
			return rc;
	} else {
		h->text = strdup(text);
	}
	if (!h->text)
		return -ENOMEM;
	h->api.abi = NGW_PLUGIN_ABI;
	h->api.event = h_event;
	h->api.log = h_log;
	h->api.cfg_sections = h_cfg_sections;
	h->api.cfg_bind = h_cfg_bind;
	h->api.cfg_free = h_cfg_free;
	h->api.cfg_error = h_cfg_error;
	h->api.note_put = h_note_put;
	h->api.inbound_done = h_inbound_done;
	h->api.status_json = h_status_json;
	h->api.state_dir = h_state_dir;
	h->api.emit = h_emit;
	h->plugin.host = &h->api;
	return 0;
}

void fakehost_fini(struct fakehost *h)
{
	free(h->text);
	free(h->status);
	h->text = h->status = NULL;
}
