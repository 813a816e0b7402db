/* Fake plugin host for the plugin tests: the daemon's config reader and binder, and
 * recording stand-ins for what lies below a plugin (the store, other plugins, status). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cfg.h"
#include "fakehost.h"

/* Count and show what the reader or the binder reported into d, then forget it. */
static void take_diag(struct fakehost *h, struct cfg_diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		snprintf(h->last_error, sizeof(h->last_error), "%s", d->msgs[i]);
		fprintf(stderr, "%s\n", d->msgs[i]);
		h->errors++;
	}
	cfg_diag_clear(d);
}

static int load(struct fakehost *h, const char *text)
{
	struct cfg_diag d = {0};
	struct cfg_doc *doc =
	    text ? cfg_doc_parse_string(text, h->file, &d) : cfg_doc_load(h->file, NULL, &d);

	take_diag(h, &d);
	if (!doc)
		return -EIO;
	if (h->doc) {
		struct cfg_doc **o = realloc(h->olds, (h->n_olds + 1) * sizeof(*o));
		if (!o) {
			cfg_doc_free(doc);
			return -ENOMEM;
		}
		h->olds = o;
		h->olds[h->n_olds++] = h->doc;
	}
	h->doc = doc;
	return 0;
}

/* ---- configuration: the daemon's own code ---------------------------------------- */
static int h_cfg_sections(struct ngw_plugin *self, const char *pattern, const char ***names)
{
	struct fakehost *h = (struct fakehost *)self;
	*names = NULL;
	return (int)cfg_doc_match(h->doc, pattern, names);
}

static int h_cfg_bind(struct ngw_plugin *self, const char *section, const struct ngw_cfg_key *keys,
                      size_t n, void *out)
{
	struct fakehost *h = (struct fakehost *)self;
	struct cfg_diag d = {0};
	int rc = cfg_bind(h->doc, section, keys, n, out, &d);

	take_diag(h, &d);
	return rc;
}

static void h_cfg_free(const struct ngw_cfg_key *keys, size_t n, void *out)
{
	cfg_free_bound(keys, n, out);
}

/* As the daemon reports a plugin's cross-key problem: at the key's line, else the
 * section's, as "FILE:LINE: [section] key: message". */
static void h_cfg_error(struct ngw_plugin *self, const char *section, const char *key,
                        const char *fmt, ...)
{
	struct fakehost *h = (struct fakehost *)self;
	struct cfg_diag d = {0};
	const char *file = NULL;
	unsigned line = 0;
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (section)
		file = cfg_blame(h->doc, section, key, &line);
	if (!file)
		file = h->file;
	cfg_diag_add(&d, file, line, "[%s]%s%s: %s", section ? section : "", key ? " " : "",
	             key ? key : "", msg);
	take_diag(h, &d);
}

/* ---- what lies below: recorded ------------------------------------------------- */
static sd_event *h_event(struct ngw_plugin *self)
{
	return ((struct fakehost *)self)->ev;
}

static void h_log(struct ngw_plugin *self, int level, const char *fmt, ...)
{
	struct fakehost *h = (struct fakehost *)self;
	va_list ap;
	if (level > h->log_max && !getenv("MBHOST_DEBUG"))
		return;
	/* like the daemon, which names the plugin in front of each message */
	fprintf(stderr, "<%d> %s: ", level, h->name);
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

int fakehost_reread(struct fakehost *h)
{
	return load(h, NULL);
}

int fakehost_init(struct fakehost *h, const char *file, const char *text, sd_event *ev)
{
	memset(h, 0, sizeof(*h));
	h->ev = ev;
	h->name = "modbus";
	h->log_max = LOG_INFO;
	h->file = file ? file : "test.conf";
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
	return load(h, file ? NULL : text);
}

void fakehost_fini(struct fakehost *h)
{
	for (size_t i = 0; i < h->n_olds; i++)
		cfg_doc_free(h->olds[i]);
	free(h->olds);
	cfg_doc_free(h->doc);
	free(h->status);
	h->olds = NULL;
	h->n_olds = 0;
	h->doc = NULL;
	h->status = NULL;
}
