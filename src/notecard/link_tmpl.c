/* The link's side of note templates, on the link thread: per notefile, decide
 * whether a note.add goes templated (template.c), keep a learned template in the
 * store's kv so a restart does not learn again, register it with the card
 * (note.template) before the first templated note.add and clear it before a plain
 * one, and count the bytes each note costs for `notegw status`.
 *
 * Encrypted bodies are never templated: a host-sealed body is an envelope whose
 * ciphertext is one opaque base64 string of varying length (no fields to type, and
 * a fixed-size string slot would have to fit the largest), and with the card's own
 * encryption (`key`) the card encrypts the whole body, which a fixed-layout record
 * of the plaintext's fields cannot carry. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "notegw/notefile.h"
#include "notecard/link_int.h"
#include "notecard/template.h"
#include "store.h"
#include "util.h"

#define MAX_FILES 256 /* notefiles counted; past that a note is sent but not counted */

enum card_tmpl { CARD_UNKNOWN, CARD_HAS, CARD_NONE, CARD_STALE };

struct tmpl_entry {
	char *file;
	struct tmpl_nf nf;
	bool ntn;
	int port;            /* ntn: 1..100, stable in the kv */
	enum card_tmpl card; /* what the card holds for this notefile */
	bool refused;        /* the card refused our template: plain until a probe */
	bool warned;         /* said once why this notefile is not templated */
	uint64_t notes, templated, bytes_json, bytes_air;
};

struct link_tmpl {
	struct tmpl_entry *e;
	size_t n;
};

static const struct link_notefile *policy(const struct link_opts *o, const char *file)
{
	for (size_t i = 0; i < o->n_nf; i++)
		if (strcmp(o->nf[i].name, file) == 0)
			return &o->nf[i];
	return NULL;
}

static char *kv_key(const char *prefix, const char *file)
{
	return xasprintf("%s.%s", prefix, file);
}

/* A learned template from an earlier run, if the kv holds a valid one. New ref. */
static json_t *kv_hints(struct link *l, const char *file)
{
	char *key = kv_key("template", file), *text = NULL;
	json_t *h = NULL;
	if (key && l->st && store_kv_get(l->st, key, &text) == 0) {
		char err[256];
		h = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
		if (h && tmpl_hints_check(h, err, sizeof(err)) < 0) {
			log_warn("template: stored template for %s ignored: %s", file, err);
			json_decref(h);
			h = NULL;
		}
	}
	free(text);
	free(key);
	return h;
}

static void kv_save_hints(struct link *l, const char *file, const json_t *h)
{
	char *key = kv_key("template", file);
	char *text = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
	if (!key || !text || !l->st || store_kv_set(l->st, key, text) < 0)
		log_warn("template: could not keep the template for %s; it is learned again "
		         "after a restart",
		         file);
	free(key);
	free(text);
}

static bool port_used(const struct link_tmpl *t, int port)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].port == port)
			return true;
	return false;
}

/* A port for an ntn notefile: the one it had (kv), else the first free one from a
 * hash of its name, kept so the port Notehub knows the notefile by never moves. */
static int assign_port(struct link *l, struct link_tmpl *t, const char *file)
{
	char *key = kv_key("template-port", file), *text = NULL;
	int port = 0;
	if (key && l->st && store_kv_get(l->st, key, &text) == 0) {
		long p = strtol(text, NULL, 10);
		if (p >= TMPL_PORT_MIN && p <= TMPL_PORT_MAX && !port_used(t, (int)p))
			port = (int)p;
	}
	free(text);
	if (!port) {
		unsigned h = 2166136261u;
		for (const char *s = file; *s; s++)
			h = (h ^ (unsigned char)*s) * 16777619u;
		int span = TMPL_PORT_MAX - TMPL_PORT_MIN + 1;
		for (int k = 0; k < span && !port; k++) {
			int p = TMPL_PORT_MIN + (int)((h + (unsigned)k) % (unsigned)span);
			if (!port_used(t, p))
				port = p;
		}
		char buf[24];
		snprintf(buf, sizeof(buf), "%d", port);
		if (port && key && l->st)
			store_kv_set(l->st, key, buf);
	}
	free(key);
	if (!port)
		log_err("template: no free port (1..100) for satellite notefile %s", file);
	return port;
}

static struct tmpl_entry *add_entry(struct link *l, struct link_tmpl *t, const char *file)
{
	if (t->n >= MAX_FILES)
		return NULL;
	struct tmpl_entry *v = realloc(t->e, (t->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	t->e = v;
	struct tmpl_entry *e = &v[t->n];
	memset(e, 0, sizeof(*e));
	if (!(e->file = strdup(file)))
		return NULL;
	const struct link_notefile *p = policy(&l->o, file);
	enum tmpl_mode mode = TMPL_OFF;
	json_t *hints = NULL;
	const char *tv = p && p->template_ ? p->template_ : "off";
	if (strcmp(tv, "auto") == 0) {
		mode = TMPL_AUTO;
		hints = kv_hints(l, file);
		if (hints)
			log_info("template: %s: using the template learned before", file);
	} else if (strcmp(tv, "off") != 0) {
		char err[512];
		if (tmpl_load_file(tv, &hints, err, sizeof(err)) < 0) {
			log_err("template: %s; notes for %s go untemplated", err, file);
		} else {
			/* the link adds "_id" to every body: the template holds it, sized
			 * for this gateway's ids whatever the file says */
			const char *gid = l->st ? store_gateway_id(l->st) : NULL;
			char len[24];
			snprintf(len, sizeof(len), "%zu",
			         (gid ? strlen(gid) : 16) + 1 + TMPL_ID_SEQ_DIGITS);
			json_object_set_new(hints, "_id", json_string(len));
			mode = TMPL_FILE;
		}
	}
	if (mode != TMPL_OFF && !ngw_notefile_is_queue_out(file)) {
		/* note.template applies to outbound queues (.qo/.qos) only */
		log_warn("template: %s is not a .qo/.qos queue; its notes go untemplated", file);
		mode = TMPL_OFF;
	}
	int r = tmpl_nf_init(&e->nf, mode, p && p->learn ? p->learn : 10, hints);
	json_decref(hints);
	if (r < 0) {
		free(e->file);
		return NULL;
	}
	e->ntn = p && p->ntn;
	t->n++;
	if (e->ntn)
		e->port = assign_port(l, t, file);
	return e;
}

static struct link_tmpl *get(struct link *l)
{
	if (l->tmpl)
		return l->tmpl;
	struct link_tmpl *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	l->tmpl = t;
	/* configured notefiles first, in order, so ntn ports are assigned stably */
	for (size_t i = 0; i < l->o.n_nf; i++)
		add_entry(l, t, l->o.nf[i].name);
	return t;
}

static struct tmpl_entry *entry(struct link *l, const char *file)
{
	struct link_tmpl *t = get(l);
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->e[i].file, file) == 0)
			return &t->e[i];
	return add_entry(l, t, file);
}

/* The template as registered: satellite templates are compact (no metadata), so
 * the card's `_time` keyword keeps the time a note was made. New reference. */
static json_t *registered_hints(const struct tmpl_entry *e)
{
	json_t *h = json_deep_copy(e->nf.hints);
	if (h && e->ntn && !json_object_get(h, "_time"))
		json_object_set_new(h, "_time", json_integer(14));
	return h;
}

/* note.template for e (hints NULL: clear). 0 and *err_out (borrowed from rsp,
 * which the caller decrefs) or a transport error. */
static int send_template(struct link *l, struct tmpl_entry *e, const json_t *hints, json_t **rsp)
{
	*rsp = NULL;
	json_t *rq = tmpl_request(e->file, hints, hints && e->ntn, hints ? e->port : 0);
	if (!rq)
		return -ENOMEM;
	int r = card_request(l->card, rq, rsp);
	json_decref(rq);
	if (r < 0)
		l->last_err = r;
	return r;
}

static int register_template(struct link *l, struct tmpl_entry *e, bool *ok)
{
	*ok = false;
	json_t *h = registered_hints(e), *rsp = NULL;
	if (!h)
		return -ENOMEM;
	size_t rec = tmpl_record_size(h, e->ntn);
	if (e->ntn && rec > TMPL_NTN_MAX_BYTES) {
		if (!e->warned)
			log_err("template: %s: a note takes %zu bytes in its template, more than "
			        "the %d a satellite (ntn) note may; notes go untemplated",
			        e->file, rec, TMPL_NTN_MAX_BYTES);
		e->warned = true;
		json_decref(h);
		return 0;
	}
	int r = send_template(l, e, h, &rsp);
	json_decref(h);
	if (r < 0)
		return r;
	const char *err = json_string_value(json_object_get(rsp, "err"));
	if (err) {
		log_warn("card: note.template %s refused: %s; its notes go untemplated", e->file,
		         err);
		link_emit(l, LEV_AUDIT, 0, "template-refused", err);
		e->refused = true;
		e->card = CARD_UNKNOWN;
	} else {
		log_info("card: %s: template registered (%zu bytes a note)", e->file, rec);
		e->card = CARD_HAS;
		*ok = true;
	}
	json_decref(rsp);
	return 0;
}

static int clear_template(struct link *l, struct tmpl_entry *e)
{
	json_t *rsp = NULL;
	int r = send_template(l, e, NULL, &rsp);
	if (r < 0)
		return r;
	const char *err = json_string_value(json_object_get(rsp, "err"));
	if (err)
		log_warn("card: clearing the template of %s: %s", e->file, err);
	/* either way: asking again before every note would not help */
	e->card = CARD_NONE;
	json_decref(rsp);
	return 0;
}

int link_tmpl_prepare(struct link *l, const struct store_out *n, json_t *req,
                      struct link_tmpl_note *tn)
{
	memset(tn, 0, sizeof(*tn));
	json_t *body = json_object_get(req, "body");
	tn->json = tn->air = tmpl_json_size(body, n->payload_len);
	struct tmpl_entry *e = entry(l, n->file);
	if (!e)
		return 0; /* not counted, sent as built */
	bool want = false;
	if (link_seal_for(&l->o, n->file) != LINK_SEAL_NONE) {
		if (e->ntn && !e->warned)
			log_err(
			    "template: %s is a satellite (ntn) notefile but encrypted: encrypted "
			    "notes cannot be templated, so they travel only over cellular or WiFi",
			    n->file);
		else if (e->nf.mode != TMPL_OFF && !e->warned)
			log_notice("template: %s is encrypted; encrypted notes are not templated",
			           n->file);
		e->warned = e->nf.mode != TMPL_OFF;
	} else {
		bool changed = false;
		want = tmpl_nf_decide(&e->nf, body, &changed);
		if (!want && e->ntn && e->nf.hints) {
			char why[160];
			if (!tmpl_fits(e->nf.hints, body, why, sizeof(why)))
				log_warn(
				    "template: %s seq %lld does not fit the satellite template "
				    "(%s); sent untemplated, it travels only over cellular or WiFi",
				    n->file, (long long)n->seq, why);
		}
		if (changed) {
			char *text = json_dumps(e->nf.hints, JSON_COMPACT | JSON_SORT_KEYS);
			log_notice("template: %s: learned %s", n->file, text ? text : "");
			free(text);
			kv_save_hints(l, n->file, e->nf.hints);
			e->refused = false;
			if (e->card == CARD_HAS)
				e->card = CARD_UNKNOWN; /* the card holds the old one */
		}
	}
	if (want && e->refused)
		want = false;
	if (want && e->card != CARD_HAS) {
		int r = register_template(l, e, &want);
		if (r < 0)
			return r;
	}
	if (!want && e->card != CARD_NONE && (e->nf.mode != TMPL_OFF || e->card == CARD_STALE)) {
		int r = clear_template(l, e);
		if (r < 0)
			return r;
	}
	if (want) {
		json_t *h = registered_hints(e);
		tn->air = h ? tmpl_air_size(h, e->ntn, n->payload_len) : tn->json;
		json_decref(h);
	}
	tn->templated = want;
	return 0;
}

void link_tmpl_sent(struct link *l, const char *file, const struct link_tmpl_note *tn)
{
	struct tmpl_entry *e = entry(l, file);
	if (!e)
		return;
	e->notes++;
	e->templated += tn->templated;
	e->bytes_json += tn->json;
	e->bytes_air += tn->air;
}

void link_tmpl_refused(struct link *l, const char *file, const char *err)
{
	struct tmpl_entry *e = entry(l, file);
	/* the card's template and the note disagree (one left from an earlier run, or
	 * one the card holds unknown to us): settle it before the next attempt */
	if (e && err && strstr(err, "template"))
		e->card = CARD_STALE;
}

void link_tmpl_card_reset(struct link *l)
{
	get(l); /* built at the first probe: a bad template file is reported at start */
	for (size_t i = 0; l->tmpl && i < l->tmpl->n; i++) {
		l->tmpl->e[i].card = CARD_UNKNOWN;
		l->tmpl->e[i].refused = false;
	}
}

static const char *mode_name(const struct tmpl_entry *e)
{
	switch (e->nf.mode) {
	case TMPL_OFF:
		return "off";
	case TMPL_FILE:
		return "file";
	case TMPL_AUTO:
		return e->nf.hints ? "learned" : "learning";
	}
	return "?";
}

json_t *link_tmpl_status(struct link *l)
{
	json_t *o = json_object();
	for (size_t i = 0; o && l->tmpl && i < l->tmpl->n; i++) {
		const struct tmpl_entry *e = &l->tmpl->e[i];
		json_t *f = json_pack(
		    "{s:I,s:I,s:I,s:I,s:I,s:s}", "notes", (json_int_t)e->notes, "templated",
		    (json_int_t)e->templated, "bytes", (json_int_t)e->bytes_air, "bytes_json",
		    (json_int_t)e->bytes_json, "bytes_per_note",
		    (json_int_t)(e->notes ? e->bytes_air / e->notes : 0), "template", mode_name(e));
		json_t *h = e->nf.hints ? registered_hints(e) : NULL;
		if (f && h)
			json_object_set_new(f, "bytes_per_templated_note",
			                    json_integer((json_int_t)tmpl_record_size(h, e->ntn)));
		json_decref(h);
		if (f && e->ntn)
			json_object_set_new(f, "port", json_integer(e->port));
		json_object_set_new(o, e->file, f);
	}
	return o;
}

void link_tmpl_free(struct link *l)
{
	if (!l->tmpl)
		return;
	for (size_t i = 0; i < l->tmpl->n; i++) {
		free(l->tmpl->e[i].file);
		tmpl_nf_clear(&l->tmpl->e[i].nf);
	}
	free(l->tmpl->e);
	free(l->tmpl);
	l->tmpl = NULL;
}
