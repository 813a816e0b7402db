/* The host API: what the daemon offers every plugin (struct ngw_host_api in
 * include/notegw/plugin.h), as mosquitto keeps src/plugin_public.c apart from its
 * loader. Each call reaches only the collaborator it needs, through the
 * plugin_env the loader was given: notes go in through submit (the intake),
 * inbound marks to the store, raw requests to the link. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "cfg.h"
#include "link.h"
#include "log.h"
#include "plugins-private.h"
#include "store.h"
#include "submit.h"

static struct plugin *P(struct ngw_plugin *self)
{
	return (struct plugin *)self;
}

static sd_event *h_event(struct ngw_plugin *self)
{
	return P(self)->owner->env->loop;
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
	const struct cfg *cfg = p->owner->env->cfg;
	return cfg ? cfg->doc : NULL;
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
		file = p->owner->env->config_file ? p->owner->env->config_file : "config";
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
	return submit_note(P(self)->owner->env->submit, P(self)->desc->name, notefile, body,
	                   payload, payload_len, cb, ud, why);
}

static int h_note_put_sync(struct ngw_plugin *self, const char *notefile, const char *body,
                           const void *payload, size_t payload_len, const char **why)
{
	return submit_note_sync(P(self)->owner->env->submit, P(self)->desc->name, notefile, body,
	                        payload, payload_len, why);
}

static int h_note_put_once(struct ngw_plugin *self, const void *key, size_t key_len,
                           const char *notefile, const char *body, const void *payload,
                           size_t payload_len, ngw_put_cb cb, void *ud, const char **why)
{
	return submit_note_once(P(self)->owner->env->submit, P(self)->desc->name, key, key_len,
	                        notefile, body, payload, payload_len, cb, ud, why);
}

static int h_note_put_json(struct ngw_plugin *self, const void *key, size_t key_len,
                           const char *notefile, struct json_t *body, const void *payload,
                           size_t payload_len, ngw_put_cb cb, void *ud, const char **why)
{
	return submit_note_obj_once(P(self)->owner->env->submit, P(self)->desc->name, key, key_len,
	                            notefile, body, payload, payload_len, cb, ud, why);
}

static void h_note_flush(struct ngw_plugin *self)
{
	submit_flush(P(self)->owner->env->submit);
}

static int h_inbound_done(struct ngw_plugin *self, int64_t id)
{
	return store_inbound_done(P(self)->owner->env->store, P(self)->desc->name, id);
}

static int h_card_request(struct ngw_plugin *self, const char *req, ngw_reply_cb cb, void *ud)
{
	struct link *link = P(self)->owner->env->link;
	if (!link)
		return -ENODEV;
	return link_request(link, req, cb, ud);
}

static char *h_status_json(struct ngw_plugin *self)
{
	const struct plugin_env *env = P(self)->owner->env;
	return env->status_text ? env->status_text(env->ud) : NULL;
}

static const char *h_state_dir(struct ngw_plugin *self)
{
	const struct cfg *cfg = P(self)->owner->env->cfg;
	return cfg ? cfg->daemon.state_dir : LOCALSTATEDIR "/lib/notegw";
}

static const char *h_gateway_id(struct ngw_plugin *self)
{
	struct store *st = P(self)->owner->env->store;
	return st ? store_gateway_id(st) : NULL;
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

const struct ngw_host_api plugin_host_api = {
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
    .note_put_once = h_note_put_once,
    .gateway_id = h_gateway_id,
    .note_put_json = h_note_put_json,
    .note_flush = h_note_flush,
};
