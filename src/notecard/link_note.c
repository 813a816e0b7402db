/* Building note.add from a queued note: the gateway's id for end-to-end dedup,
 * the body sealed on the host or handed to the card's own encryption, payload in
 * base64, sync now for urgent notes. A templated notefile's request is fitted to its
 * template afterwards, by the sender (link_card.c through link_tmpl.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "crypto.h"
#include "notecard/link_int.h"
#include "store.h"
#include "util.h"

static const struct link_notefile *policy(const struct link_opts *o, const char *file)
{
	for (size_t i = 0; i < o->n_nf; i++)
		if (strcmp(o->nf[i].name, file) == 0)
			return &o->nf[i];
	return NULL;
}

enum link_seal link_seal_for(const struct link_opts *o, const char *file)
{
	const struct link_notefile *p = policy(o, file);
	int enc = p ? p->encrypt : CFG_INHERIT;
	if (enc == CFG_OFF)
		return LINK_SEAL_NONE;
	if (enc == CFG_ON)
		/* on: encrypted even when [crypto] uplink is off, by the card only if
		 * that is the configured way, else on the host */
		return o->uplink == CFG_UPLINK_NOTECARD ? LINK_SEAL_CARD : LINK_SEAL_HOST;
	switch (o->uplink) {
	case CFG_UPLINK_HOST:
		return LINK_SEAL_HOST;
	case CFG_UPLINK_NOTECARD:
		return LINK_SEAL_CARD;
	default:
		return LINK_SEAL_NONE;
	}
}

int link_note_request(const struct link_opts *o, const struct crypto_key *pub,
                      const char *gateway_id, const struct store_out *n, json_t **req)
{
	int r = -ENOMEM;
	json_t *body = NULL, *rq = NULL;
	char *id = NULL;
	if (n->body) {
		json_error_t jerr;
		body = json_loads(n->body, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(body)) {
			r = -EINVAL;
			goto out;
		}
	}
	enum link_seal seal = link_seal_for(o, n->file);
	if (seal == LINK_SEAL_HOST && body) {
		if (!pub) {
			r = -ENOKEY;
			goto out;
		}
		json_t *env = NULL;
		r = crypto_seal(pub, n->body, strlen(n->body), &env);
		if (r < 0)
			goto out;
		json_decref(body);
		body = env;
	}
	if (seal == LINK_SEAL_CARD && !o->key_name) {
		r = -ENOKEY;
		goto out;
	}
	id = xasprintf("%s:%lld", gateway_id ? gateway_id : "", (long long)n->seq);
	if (!id)
		goto out;
	if (!body && !(body = json_object()))
		goto out;
	/* outside any envelope: Notehub-side dedup needs it in the clear */
	if (json_object_set_new(body, "_id", json_string(id)) < 0)
		goto out;
	rq = json_pack("{s:s,s:s}", "req", "note.add", "file", n->file);
	if (!rq)
		goto out;
	json_object_set(rq, "body", body);
	if (n->payload && n->payload_len) {
		char *b64 = b64_encode(n->payload, n->payload_len);
		if (!b64)
			goto out;
		json_object_set_new(rq, "payload", json_string(b64));
		free(b64);
	}
	const struct link_notefile *p = policy(o, n->file);
	if (n->prio > 0 || (p && p->urgent))
		json_object_set_new(rq, "sync", json_true());
	if (seal == LINK_SEAL_CARD && o->key_name)
		json_object_set_new(rq, "key", json_string(o->key_name));
	*req = rq;
	rq = NULL;
	r = 0;
out:
	json_decref(rq);
	json_decref(body);
	free(id);
	return r;
}
