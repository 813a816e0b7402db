/* The plugin loader. Each plugin is a shared object exporting
 * notegw_plugin_describe(); its descriptor's ABI major must equal ours. A plugin
 * that fails to load, configure or start is unloaded and logged, and the daemon
 * goes on without it. The host API handed to plugins lives here too. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "gw.h"
#include "link.h"
#include "log.h"
#include "plugin_abi.h"
#include "plugins.h"
#include "store.h"
#include "util.h"

#define MAX_PLUGINS 32

enum plugin_state { P_LOADED, P_CONFIGURED, P_DISABLED, P_RUNNING, P_FAILED, P_STOPPED };
static const char *const state_names[] = {"loaded",  "configured", "disabled",
                                          "running", "failed",     "stopped"};

struct plugin {
	struct ngw_plugin pub; /* first: the host API casts back */
	struct plugins *owner;
	void *dl;
	const struct ngw_plugin_desc *desc; /* &desc_copy */
	struct ngw_plugin_desc desc_copy;   /* the fields the plugin's ABI minor has */
	char *path;
	char name[64];           /* kept after an unload, for status */
	enum plugin_state state;
	struct cfg_diag *diag;  /* where configure() reports, set while it runs */
	const struct cfg_doc *doc;
};

struct plugins {
	struct gw *gw;
	struct plugin *v[MAX_PLUGINS];
	size_t n;
};

static struct plugin *P(struct ngw_plugin *self)
{
	return (struct plugin *)self;
}

/* ---- the host API ------------------------------------------------------------- */

static sd_event *h_event(struct ngw_plugin *self)
{
	return P(self)->owner->gw->loop;
}

static void h_log(struct ngw_plugin *self, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(level, "%s: %s", P(self)->desc->name, buf);
}

static const struct cfg_doc *plugin_doc(struct plugin *p)
{
	if (p->doc)
		return p->doc;
	return p->owner->gw->cfg ? p->owner->gw->cfg->doc : NULL;
}

static int h_cfg_sections(struct ngw_plugin *self, const char *pattern, const char ***names)
{
	const struct cfg_doc *doc = plugin_doc(P(self));
	*names = NULL;
	if (!doc)
		return 0;
	return (int)cfg_doc_match(doc, pattern, names);
}

static int h_cfg_bind(struct ngw_plugin *self, const char *section, const struct ngw_cfg_key *keys,
                      size_t n_keys, void *out)
{
	struct plugin *p = P(self);
	struct cfg_diag scratch = {0};
	struct cfg_diag *d = p->diag ? p->diag : &scratch;
	int r = cfg_bind(plugin_doc(p), section, keys, n_keys, out, d);
	if (!p->diag) { /* outside configure(): log what went wrong */
		for (size_t i = 0; i < d->n; i++)
			log_err("%s", d->msgs[i]);
		cfg_diag_clear(d);
	}
	return r;
}

static void h_cfg_free(const struct ngw_cfg_key *keys, size_t n_keys, void *out)
{
	cfg_free_bound(keys, n_keys, out);
}

static void h_cfg_error(struct ngw_plugin *self, const char *section, const char *key,
                        const char *fmt, ...)
{
	struct plugin *p = P(self);
	char msg[512];
	unsigned line = 0;
	const char *file = NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const struct cfg_doc *doc = plugin_doc(p);
	if (doc && section)
		file = cfg_blame(doc, section, key, &line);
	if (!file)
		file = p->owner->gw->config_file ? p->owner->gw->config_file : "config";
	if (p->diag)
		cfg_diag_add(p->diag, file, line, "[%s]%s%s: %s", section ? section : "",
		             key ? " " : "", key ? key : "", msg);
	else
		log_err("%s:%u: [%s]%s%s: %s", file, line, section ? section : "", key ? " " : "",
		        key ? key : "", msg);
}

static int h_note_put(struct ngw_plugin *self, const char *notefile, const char *body,
                      const void *payload, size_t payload_len, ngw_put_cb cb, void *ud,
                      const char **why)
{
	return gw_note_put(P(self)->owner->gw, P(self)->desc->name, notefile, body, payload,
	                   payload_len, cb, ud, why);
}

static int h_note_put_sync(struct ngw_plugin *self, const char *notefile, const char *body,
                           const void *payload, size_t payload_len, const char **why)
{
	return gw_note_put_sync(P(self)->owner->gw, P(self)->desc->name, notefile, body, payload,
	                        payload_len, why);
}

static int h_inbound_done(struct ngw_plugin *self, int64_t id)
{
	struct gw *gw = P(self)->owner->gw;
	return store_inbound_done(gw->store, P(self)->desc->name, id);
}

static int h_card_request(struct ngw_plugin *self, const char *req, ngw_reply_cb cb, void *ud)
{
	struct gw *gw = P(self)->owner->gw;
	if (!gw->link)
		return -ENODEV;
	return link_request(gw->link, req, cb, ud);
}

static char *h_status_json(struct ngw_plugin *self)
{
	return gw_status_json(P(self)->owner->gw);
}

static const char *h_state_dir(struct ngw_plugin *self)
{
	struct gw *gw = P(self)->owner->gw;
	return gw->cfg ? gw->cfg->daemon.state_dir : LOCALSTATEDIR "/lib/notegw";
}

static void h_emit(struct ngw_plugin *self, const char *topic, const char *json)
{
	struct plugins *ps = P(self)->owner;
	for (size_t i = 0; i < ps->n; i++) {
		struct plugin *q = ps->v[i];
		if (q != P(self) && q->state == P_RUNNING && q->desc->on_emit)
			q->desc->on_emit(&q->pub, P(self)->desc->name, topic, json);
	}
}

static const struct ngw_host_api host_api = {
	.abi = NGW_PLUGIN_ABI,
	.event = h_event,
	.log = h_log,
	.cfg_sections = h_cfg_sections,
	.cfg_bind = h_cfg_bind,
	.cfg_free = h_cfg_free,
	.cfg_error = h_cfg_error,
	.note_put = h_note_put,
	.note_put_sync = h_note_put_sync,
	.inbound_done = h_inbound_done,
	.card_request = h_card_request,
	.status_json = h_status_json,
	.state_dir = h_state_dir,
	.emit = h_emit,
};

/* ---- loading -------------------------------------------------------------------- */

static void plugin_unload(struct plugin *p)
{
	if (!p)
		return;
	if (p->desc && p->desc->destroy && p->pub.priv)
		p->desc->destroy(&p->pub);
	if (p->dl)
		dlclose(p->dl);
	free(p->path);
	free(p);
}

/* Load one shared object; 0 and *out, or <0 (logged) when it is not a usable plugin. */
static int plugin_open(struct plugins *ps, const char *path, struct plugin **out)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		log_err("plugin: cannot load %s: %s", path, dlerror());
		return -ENOEXEC;
	}
	const struct ngw_plugin_desc *(*describe)(void);
	*(void **)&describe = dlsym(dl, "notegw_plugin_describe");
	if (!describe) {
		log_err("plugin: %s exports no notegw_plugin_describe(); not a notegw plugin", path);
		dlclose(dl);
		return -ENOEXEC;
	}
	const struct ngw_plugin_desc *theirs = describe();
	struct ngw_plugin_desc mine;
	const char *why = NULL;
	if (!theirs) {
		log_err("plugin: %s gives no usable descriptor", path);
		dlclose(dl);
		return -ENOEXEC;
	}
	if (plugin_abi_adopt(theirs, &mine, &why) < 0) {
		log_err("plugin: %s was built for plugin ABI %u.%u, this notegwd speaks %u.%u (%s); "
		        "refused",
		        path, theirs->abi >> 16, theirs->abi & 0xffff, NGW_PLUGIN_ABI_MAJOR,
		        NGW_PLUGIN_ABI_MINOR, why);
		dlclose(dl);
		return -EPROTO;
	}
	const struct ngw_plugin_desc *d = &mine;
	if (!d->name || !d->configure) {
		log_err("plugin: %s gives no usable descriptor", path);
		dlclose(dl);
		return -ENOEXEC;
	}
	for (size_t i = 0; i < ps->n; i++)
		if (strcmp(ps->v[i]->name, d->name) == 0) {
			log_err("plugin: %s: a plugin named '%s' is already loaded from %s; refused",
			        path, d->name, ps->v[i]->path);
			dlclose(dl);
			return -EEXIST;
		}
	struct plugin *p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		free(p);
		dlclose(dl);
		return -ENOMEM;
	}
	p->pub.host = &host_api;
	p->owner = ps;
	p->dl = dl;
	p->desc_copy = mine;
	p->desc = &p->desc_copy;
	snprintf(p->name, sizeof(p->name), "%s", d->name);
	*out = p;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int plugins_load(struct gw *gw, const char *dir, struct cfg_doc *doc, struct cfg_diag *diag,
                 struct plugins **out)
{
	struct plugins *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->gw = gw;
	*out = ps;
	DIR *dp = opendir(dir);
	if (!dp) {
		if (errno != ENOENT)
			log_warn("plugin: cannot read %s: %m", dir);
		return 0;
	}
	char *names[MAX_PLUGINS * 2] = {NULL};
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(dp)) && n < MAX_PLUGINS * 2) {
		size_t len = strlen(e->d_name);
		if (len > 3 && strcmp(e->d_name + len - 3, ".so") == 0 && e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	}
	closedir(dp);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct plugin *p = NULL;
		if (!names[i] || xsnprintf(path, sizeof(path), "%s/%s", dir, names[i]) < 0 ||
		    ps->n >= MAX_PLUGINS || plugin_open(ps, path, &p) < 0) {
			free(names[i]);
			continue;
		}
		free(names[i]);
		/* Claim the sections it owns, then let it read them. */
		for (const char *const *s = p->desc->sections; s && *s; s++)
			cfg_doc_claim(doc, *s);
		p->doc = doc;
		p->diag = diag;
		size_t before = diag->n;
		int r = p->desc->configure(&p->pub);
		p->diag = NULL;
		p->doc = NULL;
		if (r < 0 || diag->n > before) {
			log_err("plugin: %s: configuration refused (%s); plugin unloaded", p->desc->name,
			        r < 0 ? strerror(-r) : "see the errors above");
			plugin_unload(p);
			continue;
		}
		p->state = (p->desc->disabled && p->desc->disabled(&p->pub)) ? P_DISABLED : P_CONFIGURED;
		ps->v[ps->n++] = p;
		log_info("plugin: %s %s loaded from %s%s", p->desc->name,
		         p->desc->version ? p->desc->version : "", path,
		         p->state == P_DISABLED ? " (disabled in config)" : "");
	}
	return 0;
}

int plugins_start(struct plugins *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct plugin *p = ps->v[i];
		if (p->state != P_CONFIGURED)
			continue;
		int r = p->desc->start ? p->desc->start(&p->pub) : 0;
		if (r < 0) {
			log_err("plugin: %s: start failed: %s; unloaded, the daemon goes on without it",
			        p->desc->name, strerror(-r));
			if (p->desc->stop)
				p->desc->stop(&p->pub);
			p->state = P_FAILED;
			if (p->desc->destroy && p->pub.priv)
				p->desc->destroy(&p->pub);
			p->pub.priv = NULL;
			p->desc = NULL; /* its memory goes with the object */
			dlclose(p->dl);
			p->dl = NULL;
			continue;
		}
		p->state = P_RUNNING;
	}
	return 0;
}

int plugins_reload(struct plugins *ps, struct cfg_doc *doc, struct cfg_diag *diag)
{
	int bad = 0;
	for (size_t i = 0; i < ps->n; i++) {
		struct plugin *p = ps->v[i];
		if (p->state != P_RUNNING || !p->desc->reload)
			continue;
		/* Configure into a fresh priv, then hand it over. */
		void *old = p->pub.priv;
		p->pub.priv = NULL;
		p->doc = doc;
		p->diag = diag;
		size_t before = diag->n;
		int r = p->desc->configure(&p->pub);
		p->doc = NULL;
		p->diag = NULL;
		void *fresh = p->pub.priv;
		p->pub.priv = old;
		if (r < 0 || diag->n > before) {
			if (fresh && p->desc->destroy) {
				p->pub.priv = fresh;
				p->desc->destroy(&p->pub);
				p->pub.priv = old;
			}
			log_err("plugin: %s: new configuration refused; keeping the old one",
			        p->desc->name);
			bad = -EINVAL;
			continue;
		}
		if (p->desc->reload(&p->pub, fresh) < 0) {
			log_err("plugin: %s: reload failed; keeping the old configuration",
			        p->desc->name);
			bad = -EINVAL;
		}
		/* restarted either way: what the old instance held is offered again */
		gw_inbound_reoffer(ps->gw, p->desc->name);
	}
	return bad;
}

void plugins_stop(struct plugins *ps)
{
	if (!ps)
		return;
	for (size_t i = ps->n; i-- > 0;) {
		struct plugin *p = ps->v[i];
		if (p->state == P_RUNNING && p->desc->stop)
			p->desc->stop(&p->pub);
		if (p->state == P_RUNNING)
			p->state = P_STOPPED;
	}
}

void plugins_free(struct plugins *ps)
{
	if (!ps)
		return;
	for (size_t i = ps->n; i-- > 0;)
		plugin_unload(ps->v[i]);
	free(ps);
}

/* p names the loop variable the macro declares: it cannot be parenthesised. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define FOR_RUNNING(ps, p)                                                                      \
	for (size_t i_ = 0; (ps) && i_ < (ps)->n; i_++)                                         \
		for (struct plugin *p = (ps)->v[i_]; p && p->state == P_RUNNING; p = NULL)
/* NOLINTEND(bugprone-macro-parentheses) */

void plugins_inbound(struct plugins *ps, const struct ngw_note *note)
{
	FOR_RUNNING(ps, p)
	if (p->desc->on_inbound)
		p->desc->on_inbound(&p->pub, note);
}

int plugins_inbound_one(struct plugins *ps, const char *name, const struct ngw_note *note)
{
	FOR_RUNNING(ps, p)
	if (p->desc->on_inbound && strcmp(p->desc->name, name) == 0) {
		p->desc->on_inbound(&p->pub, note);
		return 0;
	}
	return -ENOENT;
}

void plugins_status(struct plugins *ps, const char *status_json)
{
	FOR_RUNNING(ps, p)
	if (p->desc->on_status)
		p->desc->on_status(&p->pub, status_json);
}

void plugins_env(struct plugins *ps, const char *name, const char *value)
{
	FOR_RUNNING(ps, p)
	if (p->desc->on_env)
		p->desc->on_env(&p->pub, name, value);
}

void plugins_error(struct plugins *ps, const char *source, const char *error)
{
	FOR_RUNNING(ps, p)
	if (p->desc->on_error)
		p->desc->on_error(&p->pub, source, error);
}

bool plugins_consumes_inbound(struct plugins *ps, const char **names, size_t max, size_t *n)
{
	*n = 0;
	FOR_RUNNING(ps, p)
	if (p->desc->on_inbound && *n < max)
		names[(*n)++] = p->desc->name;
	return *n > 0;
}

json_t *plugins_stats(struct plugins *ps)
{
	json_t *o = json_object();
	for (size_t i = 0; ps && i < ps->n; i++) {
		struct plugin *p = ps->v[i];
		json_t *s = NULL;
		if (p->state == P_RUNNING && p->desc->stats_json) {
			char *t = p->desc->stats_json(&p->pub);
			if (t)
				s = json_loads(t, 0, NULL);
			free(t);
		}
		if (!json_is_object(s)) {
			json_decref(s);
			s = json_object();
		}
		json_object_set_new(s, "state", json_string(state_names[p->state]));
		if (p->desc && p->desc->version)
			json_object_set_new(s, "version", json_string(p->desc->version));
		json_object_set_new(o, p->name, s);
	}
	return o;
}
