/* The daemon's hand-offs: producers' notes into the store (group commit), inbound
 * notes out of the store to the plugins (decrypted when they are envelopes for
 * us), and the status snapshot everything reports from. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "chrony.h"
#include "config.h"
#include "crypto.h"
#include "gw.h"
#include "link.h"
#include "log.h"
#include "notecard/template.h"
#include "ota.h"
#include "plugins.h"
#include "store.h"
#include "util.h"

/* The largest body a producer may queue: a Notecard note body must fit the card's
 * request buffer with room for the request around it; 8 KiB of JSON is well inside
 * what note.add accepts and what a cellular plan should carry in one note. */
#define NOTE_BODY_MAX (8 * 1024)
#define NOTE_PAYLOAD_MAX (8 * 1024)

/* The checks of gw_note_validate; *obj (may be NULL) gets the parsed body, or NULL
 * when there is none (caller decrefs). */
static int note_check(const char *file, const char *body, size_t payload_len, json_t **obj,
                      const char **why)
{
	if (obj)
		*obj = NULL;
	if (!file || !notefile_is_outbound(file)) {
		*why = "notefile must be a name ending in .qo, .qos, .db or .dbs";
		return -EINVAL;
	}
	if (!body && payload_len == 0) {
		*why = "a note needs a body or a payload";
		return -EINVAL;
	}
	if (payload_len > NOTE_PAYLOAD_MAX) {
		*why = "payload larger than 8 KiB";
		return -EMSGSIZE;
	}
	if (body) {
		if (strlen(body) > NOTE_BODY_MAX) {
			*why = "body larger than 8 KiB";
			return -EMSGSIZE;
		}
		json_error_t e;
		json_t *o = json_loads(body, JSON_REJECT_DUPLICATES, &e);
		if (!json_is_object(o)) {
			*why = o ? "body is not a JSON object" : "body is not valid JSON";
			json_decref(o);
			return -EINVAL;
		}
		if (obj)
			*obj = o;
		else
			json_decref(o);
	}
	return 0;
}

int gw_note_validate(const char *file, const char *body, size_t payload_len, const char **why)
{
	return note_check(file, body, payload_len, NULL, why);
}

/* A satellite (ntn) notefile's notes travel only as compact templated records of at
 * most TMPL_NTN_MAX_BYTES (see notecard/template.h for the sources): a body that
 * cannot be templated, or that takes more even in the tightest template, is refused
 * here, where the producer still hears why, rather than failing on the card. */
static int ntn_validate(struct gw *gw, const char *file, json_t *body, size_t payload_len,
                        const char **why)
{
	const struct cfg_notefile *nf = gw->cfg ? cfg_notefile(gw->cfg, file) : NULL;
	if (!nf || !nf->ntn)
		return 0;
	json_t *o = body ? json_incref(body) : json_object();
	size_t n = tmpl_min_size(o, payload_len);
	json_decref(o);
	if (n == SIZE_MAX) {
		*why = "a satellite (ntn) notefile takes flat bodies only: numbers, strings and "
		       "booleans (its notes are sent templated)";
		return -EINVAL;
	}
	/* the link adds "_id":"<gateway_id>:<seq>" */
	const char *gid = gw->store ? store_gateway_id(gw->store) : NULL;
	n += (gid ? strlen(gid) : 16) + 1 + TMPL_ID_SEQ_DIGITS;
	if (n > TMPL_NTN_MAX_BYTES) {
		*why = "note too big for a satellite (ntn) notefile: more than 256 bytes on the "
		       "air even templated";
		return -EMSGSIZE;
	}
	return 0;
}

/* Check a producer's note and make the text the store keeps (the body re-serialised
 * compactly, exactly what goes up): one parse serves the object check, the satellite
 * size limit and the compaction. *compact is NULL without a body; caller frees. */
static int note_prepare(struct gw *gw, const char *file, const char *body, size_t payload_len,
                        char **compact, const char **why)
{
	json_t *o = NULL;
	*compact = NULL;
	int r = note_check(file, body, payload_len, &o, why);
	if (r == 0)
		r = ntn_validate(gw, file, o, payload_len, why);
	if (r == 0 && o && !(*compact = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
		*why = "out of memory";
		r = -ENOMEM;
	}
	json_decref(o);
	return r;
}

static int note_prio(struct gw *gw, const char *file)
{
	const struct cfg_notefile *nf = cfg_notefile(gw->cfg, file);
	return nf && nf->urgent ? 1 : 0;
}

int gw_note_put(struct gw *gw, const char *actor, const char *file, const char *body,
                const void *payload, size_t payload_len, gw_put_cb cb, void *ud,
                const char **why)
{
	char *compact = NULL;
	int r = note_prepare(gw, file, body, payload_len, &compact, why);
	if (r < 0)
		return r;
	r = batch_put(gw->batch, file, compact, payload, payload_len, note_prio(gw, file), cb, ud,
	              why);
	free(compact);
	if (r < 0)
		log_info("%s: note for %s refused: %s", actor, file, *why ? *why : strerror(-r));
	return r;
}

int gw_note_put_sync(struct gw *gw, const char *actor, const char *file, const char *body,
                     const void *payload, size_t payload_len, const char **why)
{
	char *compact = NULL;
	int r = note_prepare(gw, file, body, payload_len, &compact, why);
	if (r < 0)
		return r;
	/* Whatever the batch holds goes first, so order is kept per notefile. */
	batch_flush(gw->batch);
	r = store_enqueue(gw->store, file, compact, payload, payload_len, note_prio(gw, file),
	                  NULL);
	free(compact);
	if (r == -ENOSPC)
		*why = "store full";
	else if (r < 0)
		*why = "store could not commit the note";
	if (r < 0) {
		log_warn("%s: note for %s not accepted: %s", actor, file, *why);
		return r;
	}
	if (gw->link)
		link_kick(gw->link);
	return 0;
}

/* ---- inbound -------------------------------------------------------------------- */

/* The last inbound row offered to each consumer: not offered twice while the
 * consumer runs (it marks delivery itself), offered again after it was reloaded
 * (gw_inbound_reoffer) or the daemon restarted. */
static int64_t *offered_slot(struct gw *gw, const char *name)
{
	for (size_t i = 0; i < GW_CONSUMERS_MAX; i++) {
		struct gw_offered *o = &gw->offered[i];
		if (o->name[0] == '\0') {
			snprintf(o->name, sizeof(o->name), "%s", name);
			return &o->last;
		}
		if (strcmp(o->name, name) == 0)
			return &o->last;
	}
	return NULL;
}

/* Decrypt an envelope body for local delivery. 0 with *plain (caller frees) or the
 * body unchanged (*plain NULL); <0 when it is an envelope we cannot open. */
static int inbound_plain(struct gw *gw, const char *body, char **plain, const char **why)
{
	*plain = NULL;
	if (!body || !gw->crypto_priv)
		return 0;
	json_t *o = json_loads(body, 0, NULL);
	if (!o)
		return 0;
	int r = 0;
	if (crypto_is_envelope(o)) {
		size_t len = 0;
		r = crypto_open(gw->crypto_priv, o, plain, &len, why);
	}
	json_decref(o);
	return r;
}

void gw_deliver_inbound(struct gw *gw)
{
	const char *names[16];
	size_t n;
	if (!gw->plugins || !plugins_consumes_inbound(gw->plugins, names, 16, &n))
		return;
	for (size_t k = 0; k < n; k++) {
		int64_t *last = offered_slot(gw, names[k]);
		if (!last)
			continue;
		store_consumer_add(gw->store, names[k]);
		struct store_in **v = NULL;
		size_t cnt = 0;
		if (store_inbound_pending(gw->store, names[k], *last, &v, &cnt) < 0)
			continue;
		for (size_t i = 0; i < cnt; i++) {
			char *plain = NULL;
			const char *why = NULL;
			*last = v[i]->id;
			if (inbound_plain(gw, v[i]->body, &plain, &why) < 0) {
				char msg[256];
				snprintf(msg, sizeof(msg),
				         "inbound note %lld in %s cannot be decrypted: %s; kept in the store",
				         (long long)v[i]->id, v[i]->file, why ? why : "unknown error");
				log_warn("gw: %s", msg);
				plugins_error(gw->plugins, "inbound", msg);
				store_in_free(v[i]);
				continue;
			}
			struct ngw_note note = {
				.id = v[i]->id,
				.file = v[i]->file,
				.note = v[i]->note,
				.body = plain ? plain : v[i]->body,
				.payload = v[i]->payload,
				.time = v[i]->time,
			};
			plugins_inbound_one(gw->plugins, names[k], &note);
			if (plain) {
				crypto_wipe(plain, strlen(plain));
				free(plain);
			}
			store_in_free(v[i]);
		}
		free(v);
	}
}

/* A plugin's reload replaces its running instance, and with it whatever the old
 * one held undelivered (an MQTT publish whose PUBACK had not come, a note waiting
 * for the broker, a Modbus write in its queue). The store still has those notes
 * pending for it, so the next gw_deliver_inbound offers them all again. One that
 * had in fact arrived may arrive twice, as after a crash: delivery is
 * at-least-once. */
void gw_inbound_reoffer(struct gw *gw, const char *consumer)
{
	int64_t *last = offered_slot(gw, consumer);
	if (last)
		*last = 0;
}

/* ---- status --------------------------------------------------------------------- */

json_t *gw_status(struct gw *gw)
{
	json_t *st = json_object();
	json_t *d = json_pack("{s:s,s:I,s:I,s:I,s:s?}", "version", PACKAGE_VERSION, "pid",
	                      (json_int_t)getpid(), "uptime_s",
	                      (json_int_t)((now_ms() - gw->started_ms) / 1000), "reloads",
	                      (json_int_t)gw->reloads, "config", gw->config_file);
	json_object_set_new(st, "daemon", d);
	if (gw->link) {
		json_t *l = link_status(gw->link);
		if (json_is_object(l))
			json_object_update(st, l);
		json_decref(l);
	}
	struct store_stats ss;
	if (gw->store && store_stats(gw->store, &ss) == 0) {
		json_t *s = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "queued",
		                      (json_int_t)ss.queued, "bytes", (json_int_t)ss.bytes,
		                      "oldest_ms", (json_int_t)ss.oldest_ms, "dropped",
		                      (json_int_t)ss.dropped, "refused", (json_int_t)ss.refused,
		                      "sent", (json_int_t)ss.sent, "inbound",
		                      (json_int_t)ss.inbound, "inbound_pending",
		                      (json_int_t)ss.inbound_pending, "bytes_written",
		                      (json_int_t)ss.bytes_written);
		if (ss.oldest_ms > 0)
			json_object_set_new(
				s, "oldest_age_s",
				json_integer((json_int_t)((int64_t)now_real_ms() - ss.oldest_ms) / 1000));
		json_object_set_new(st, "store", s);
	}
	if (gw->plugins)
		json_object_set_new(st, "plugins", plugins_stats(gw->plugins));
	if (gw->ota)
		json_object_set_new(st, "update", ota_status(gw->ota));
	json_t *t = chrony_status(gw->clock);
	if (t)
		json_object_set_new(st, "time", t);
	return st;
}

char *gw_status_json(struct gw *gw)
{
	json_t *st = gw_status(gw);
	char *s = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	return s;
}
