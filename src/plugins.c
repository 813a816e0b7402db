/* The plugin loader. Each plugin is a shared object exporting
 * notegw_plugin_describe(); its descriptor's ABI major must equal ours. A plugin
 * that fails to load, configure or start is unloaded and logged, and the daemon
 * goes on without it. What plugins are offered is plugin_host.c. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "plugin_abi.h"
#include "plugins-private.h"
#include "util.h"

static const char *const state_names[] = {"loaded",  "configured", "disabled",
                                          "running", "failed",     "stopped"};

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
		log_err("plugin: %s exports no notegw_plugin_describe(); not a notegw plugin",
		        path);
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
			log_err(
			    "plugin: %s: a plugin named '%s' is already loaded from %s; refused",
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
	p->pub.host = &plugin_host_api;
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

int plugins_load(const struct plugin_env *env, const char *dir, struct cfg_doc *doc, bool quiet,
                 struct cfg_diag *diag, struct plugins **out)
{
	struct plugins *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->env = env;
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
			log_err("plugin: %s: configuration refused (%s)%s", p->desc->name,
			        r < 0 ? strerror(-r) : "see the errors above",
			        quiet ? "" : "; plugin unloaded");
			plugin_unload(p);
			continue;
		}
		p->state =
		    (p->desc->disabled && p->desc->disabled(&p->pub)) ? P_DISABLED : P_CONFIGURED;
		ps->v[ps->n++] = p;
		log_msg(quiet ? LOG_DEBUG : LOG_INFO, "plugin: %s %s loaded from %s%s",
		        p->desc->name, p->desc->version ? p->desc->version : "", path,
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
			log_err(
			    "plugin: %s: start failed: %s; unloaded, the daemon goes on without it",
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
		if (ps->env->reoffer)
			ps->env->reoffer(ps->env->ud, p->desc->name);
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
#define FOR_RUNNING(ps, p)                                                                         \
	for (size_t i_ = 0; (ps) && i_ < (ps)->n; i_++)                                            \
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

bool plugins_want_status(struct plugins *ps)
{
	FOR_RUNNING(ps, p)
	if (p->desc->on_status)
		return true;
	return false;
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
