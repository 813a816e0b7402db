/* The daemon's door for producers' notes; see submit.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "intake.h"
#include "link.h"
#include "log.h"
#include "store.h"
#include "submit.h"

static struct intake_rules rules_of(const struct submit *s)
{
	return (struct intake_rules){
	    .cfg = s->cfg,
	};
}

/* A prepared note (or the intake's refusal, r < 0) into group commit. */
static int put(const struct submit *s, const char *actor, const char *file, int r,
               struct intake_note *n, const void *payload, size_t payload_len, ngw_put_cb cb,
               void *ud, const char **why)
{
	if (r < 0)
		return r;
	r = batch_put(s->batch, file, n->body, payload, payload_len, n->prio, cb, ud, why);
	intake_note_clear(n);
	if (r < 0)
		log_info("%s: note for %s refused: %s", actor, file, *why ? *why : strerror(-r));
	return r;
}

int submit_note(const struct submit *s, const char *actor, const char *file, const char *body,
                const void *payload, size_t payload_len, ngw_put_cb cb, void *ud, const char **why)
{
	struct intake_rules rules = rules_of(s);
	struct intake_note n;
	int r = intake_prepare(&rules, file, body, payload_len, &n, why);
	return put(s, actor, file, r, &n, payload, payload_len, cb, ud, why);
}

/* A prepared note queued once per key (see batch_put_once); n is cleared. */
static int put_once(const struct submit *s, const char *actor, const void *key, size_t key_len,
                    const char *file, struct intake_note *n, const void *payload,
                    size_t payload_len, ngw_put_cb cb, void *ud, const char **why)
{
	int r = batch_put_once(s->batch, key, key_len, file, n->body, payload, payload_len, n->prio,
	                       cb, ud, why);
	intake_note_clear(n);
	if (r < 0)
		log_info("%s: note for %s refused: %s", actor, file, *why ? *why : strerror(-r));
	return r;
}

int submit_note_once(const struct submit *s, const char *actor, const void *key, size_t key_len,
                     const char *file, const char *body, const void *payload, size_t payload_len,
                     ngw_put_cb cb, void *ud, const char **why)
{
	struct intake_rules rules = rules_of(s);
	struct intake_note n;
	int r = intake_prepare(&rules, file, body, payload_len, &n, why);
	if (r < 0)
		return r;
	return put_once(s, actor, key, key_len, file, &n, payload, payload_len, cb, ud, why);
}

int submit_note_obj(const struct submit *s, const char *actor, const char *file, json_t *body,
                    const void *payload, size_t payload_len, ngw_put_cb cb, void *ud,
                    const char **why)
{
	struct intake_rules rules = rules_of(s);
	struct intake_note n;
	int r = intake_prepare_obj(&rules, file, body, payload_len, &n, why);
	return put(s, actor, file, r, &n, payload, payload_len, cb, ud, why);
}

int submit_note_obj_once(const struct submit *s, const char *actor, const void *key, size_t key_len,
                         const char *file, json_t *body, const void *payload, size_t payload_len,
                         ngw_put_cb cb, void *ud, const char **why)
{
	struct intake_rules rules = rules_of(s);
	struct intake_note n;
	int r;

	if (!key)
		return submit_note_obj(s, actor, file, body, payload, payload_len, cb, ud, why);
	r = intake_prepare_obj(&rules, file, body, payload_len, &n, why);
	if (r < 0)
		return r;
	return put_once(s, actor, key, key_len, file, &n, payload, payload_len, cb, ud, why);
}

void submit_flush(const struct submit *s)
{
	if (s->batch)
		batch_flush(s->batch);
}

int submit_note_sync(const struct submit *s, const char *actor, const char *file, const char *body,
                     const void *payload, size_t payload_len, const char **why)
{
	struct intake_rules rules = rules_of(s);
	struct intake_note n;
	int r = intake_prepare(&rules, file, body, payload_len, &n, why);
	if (r < 0)
		return r;
	/* Whatever the batch holds goes first, so order is kept per notefile. */
	batch_flush(s->batch);
	r = store_enqueue(s->store, file, n.body, payload, payload_len, n.prio, NULL);
	intake_note_clear(&n);
	if (r == -ENOSPC)
		*why = "store full";
	else if (r == -EAGAIN)
		*why = "disk full";
	else if (r < 0)
		*why = "store could not commit the note";
	if (r < 0) {
		log_warn("%s: note for %s not accepted: %s", actor, file, *why);
		return r;
	}
	if (s->link)
		link_kick(s->link);
	return 0;
}
