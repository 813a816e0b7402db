/* Inbound delivery; see delivery.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "delivery.h"
#include "log.h"
#include "plugins.h"
#include "store.h"

/* The last inbound row offered to each consumer: not offered twice while the
 * consumer runs (it marks delivery itself), offered again after it was reloaded
 * (delivery_reoffer) or the daemon restarted. */
static int64_t *offered_slot(struct delivery *d, const char *name)
{
	for (size_t i = 0; i < DELIVERY_CONSUMERS_MAX; i++) {
		struct delivery_offered *o = &d->offered[i];
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
static int inbound_plain(const struct delivery *d, const char *body, char **plain, const char **why)
{
	*plain = NULL;
	if (!body || !d->key)
		return 0;
	json_t *o = json_loads(body, 0, NULL);
	if (!o)
		return 0;
	int r = 0;
	if (crypto_is_envelope(o)) {
		size_t len = 0;
		r = crypto_open(d->key, o, plain, &len, why);
	}
	json_decref(o);
	return r;
}

/* Offer one stored note to one consumer; one it cannot have (sealed for another
 * key) is reported and kept. */
static void offer_one(struct delivery *d, const char *consumer, const struct store_in *in)
{
	char *plain = NULL;
	const char *why = NULL;
	if (inbound_plain(d, in->body, &plain, &why) < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg),
		         "inbound note %lld in %s cannot be decrypted: %s; kept in the store",
		         (long long)in->id, in->file, why ? why : "unknown error");
		log_warn("gw: %s", msg);
		plugins_error(d->plugins, "inbound", msg);
		return;
	}
	struct ngw_note note = {
	    .id = in->id,
	    .file = in->file,
	    .note = in->note,
	    .body = plain ? plain : in->body,
	    .payload = in->payload,
	    .time = in->time,
	};
	plugins_inbound_one(d->plugins, consumer, &note);
	if (plain) {
		crypto_wipe(plain, strlen(plain));
		free(plain);
	}
}

void delivery_run(struct delivery *d)
{
	const char *names[DELIVERY_CONSUMERS_MAX];
	size_t n;
	if (!d->plugins || !d->store ||
	    !plugins_consumes_inbound(d->plugins, names, DELIVERY_CONSUMERS_MAX, &n))
		return;
	for (size_t k = 0; k < n; k++) {
		int64_t *last = offered_slot(d, names[k]);
		if (!last)
			continue;
		store_consumer_add(d->store, names[k]);
		struct store_in **v = NULL;
		size_t cnt = 0;
		if (store_inbound_pending(d->store, names[k], *last, &v, &cnt) < 0)
			continue;
		for (size_t i = 0; i < cnt; i++) {
			*last = v[i]->id;
			offer_one(d, names[k], v[i]);
			store_in_free(v[i]);
		}
		free(v);
	}
}

/* A plugin's reload replaces its running instance, and with it whatever the old
 * one held undelivered (an MQTT publish whose PUBACK had not come, a note waiting
 * for the broker, a Modbus write in its queue). The store still has those notes
 * pending for it, so the next delivery_run offers them all again. One that had in
 * fact arrived may arrive twice, as after a crash: delivery is at-least-once. */
void delivery_reoffer(struct delivery *d, const char *consumer)
{
	int64_t *last = offered_slot(d, consumer);
	if (last)
		*last = 0;
}
