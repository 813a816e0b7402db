/* The link's conversation with the card, one step per function, all on the link
 * thread: probe and hub agreement, draining the store into note.add within the
 * card's room, pulling inbound notes crash-safely, environment changes, and the
 * status snapshot. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "notecard/link_int.h"
#include "notegw/notefile.h"
#include "store.h"
#include "util.h"

#define SEMANTIC_TRIES      3  /* a note the card refuses this often is dropped */
#define STORAGE_HIGH_PCT    70 /* a card this full takes no more notes: room for inbound */
#define ROOM_LOOK_NOTES     64 /* storage looked at after this many notes at first, */
#define ROOM_LOOK_NEAR      8  /* then as its filling rate says, within these bounds */
#define ROOM_LOOK_MAX       512
#define FULL_RECHECK_MIN_MS 1000  /* a full card is looked at again after this, */
#define FULL_RECHECK_MAX_MS 15000 /* doubling up to this */
#define SYNC_ASK_MS         60000 /* hub.sync asked again this often while full */

/* Card-side conditions that pass: hold the note, do not count it against it. */
static const char *const hold_tokens[] = {
    "{full}",        "{file-storage-full}", "{file-write-failure}", "{note-max}",
    "{note-paused}", "{filesys-reinit}",    "{dfu-in-progress}",    NULL,
};

static bool transient(int r)
{
	return r == -ENODEV || r == -ETIMEDOUT || r == -EIO;
}

static uint64_t clock_ms(struct link *l)
{
	const struct card_clock *c = card_transport(l->card)->clock;
	return c->now_ms(c->ctx);
}

/* Note the request in progress, so that the loop thread can tell a card that
 * answers nothing from one that is slow, long before card_request gives up (its
 * retries and resets add up to minutes). */
static void ask_begin(struct link *l, const char *name)
{
	bool web = name && strncmp(name, "web.", 4) == 0;
	pthread_mutex_lock(&l->mu);
	l->ask_since = card_clock_real.now_ms(NULL); /* the watch's clock, not the card's */
	l->ask_limit_ms = web ? l->timing.long_timeout_ms : l->timing.response_timeout_ms;
	snprintf(l->ask_name, sizeof(l->ask_name), "%s", name ? name : "a request");
	pthread_mutex_unlock(&l->mu);
}

static void ask_end(struct link *l, int r)
{
	pthread_mutex_lock(&l->mu);
	bool overdue = l->ask_overdue;
	l->ask_since = 0;
	l->ask_overdue = false;
	pthread_mutex_unlock(&l->mu);
	if (overdue && r == 0)
		log_notice("card: answering again");
}

int link_card_request(struct link *l, json_t *req, json_t **rsp)
{
	const char *name = json_string_value(json_object_get(req, "req"));
	if (!name)
		name = json_string_value(json_object_get(req, "cmd"));
	ask_begin(l, name);
	int r = card_request(l->card, req, rsp);
	ask_end(l, r);
	return r;
}

/* A request built with json_pack; stolen. 0 with *rsp (maybe carrying err). */
static int ask(struct link *l, json_t *req, json_t **rsp)
{
	*rsp = NULL;
	if (!req)
		return -ENOMEM;
	int r = link_card_request(l, req, rsp);
	json_decref(req);
	if (r < 0)
		l->last_err = r;
	return r;
}

static const char *err_of(json_t *rsp)
{
	return json_string_value(json_object_get(rsp, "err"));
}

static void add_in_file(struct link *l, const char *f)
{
	for (size_t i = 0; i < l->n_in_files; i++)
		if (strcmp(l->in_files[i], f) == 0)
			return;
	char **v = realloc(l->in_files, (l->n_in_files + 1) * sizeof(*v));
	if (!v)
		return;
	l->in_files = v;
	if ((v[l->n_in_files] = strdup(f)))
		l->n_in_files++;
	l->attn_armed = false; /* the watched set grew: arm again */
}

/* ---- probe and hub -------------------------------------------------------------- */
static void hub_want(struct link *l, json_t *set, json_t *have, const char *key, json_t *want,
                     json_t *changes)
{
	json_t *cur = json_object_get(have, key);
	if (json_equal(cur, want)) {
		json_decref(want);
		return;
	}
	json_object_set(set, key, want);
	json_object_set_new(changes, key, want);
}

/* Make hub.set agree with [hub] where it differs; a set writes the card's flash,
 * so an agreeing card is left alone. */
static int hub_agree(struct link *l)
{
	const struct link_opts *o = &l->o;
	json_t *set = json_pack("{s:s}", "req", "hub.set");
	json_t *changes = json_object();
	int r = 0;
	if (!set || !changes) {
		r = -ENOMEM;
		goto out;
	}
	if (o->hub_product)
		hub_want(l, set, l->hub, "product", json_string(o->hub_product), changes);
	if (o->hub_mode)
		hub_want(l, set, l->hub, "mode", json_string(o->hub_mode), changes);
	if (o->hub_sn)
		hub_want(l, set, l->hub, "sn", json_string(o->hub_sn), changes);
	if (o->hub_outbound >= 0)
		hub_want(l, set, l->hub, "outbound", json_integer(o->hub_outbound), changes);
	if (o->hub_inbound >= 0)
		hub_want(l, set, l->hub, "inbound", json_integer(o->hub_inbound), changes);
	if (json_object_size(changes) == 0)
		goto out;
	json_t *rsp;
	r = ask(l, json_incref(set), &rsp);
	if (r < 0)
		goto out;
	char *detail = json_dumps(changes, JSON_COMPACT | JSON_SORT_KEYS);
	if (err_of(rsp)) {
		log_err("card: hub.set %s refused: %s", detail ? detail : "", err_of(rsp));
		link_emit(l, LEV_AUDIT, 0, "hub.set-refused", err_of(rsp));
	} else {
		log_notice("card: hub.set %s", detail ? detail : "");
		link_emit(l, LEV_AUDIT, 0, "hub.set", detail ? detail : "");
		l->cnt.hub_sets++;
		json_object_update(l->hub, changes);
	}
	free(detail);
	json_decref(rsp);
out:
	json_decref(set);
	json_decref(changes);
	return r;
}

int link_probe(struct link *l)
{
	json_t *rsp;
	l->cnt.probes++;
	int r = ask(l, json_pack("{s:s}", "req", "card.version"), &rsp);
	if (r < 0)
		return r;
	json_decref(l->version);
	l->version = rsp;
	r = ask(l, json_pack("{s:s}", "req", "hub.get"), &rsp);
	if (r < 0)
		return r;
	json_decref(l->hub);
	l->hub = rsp;
	r = hub_agree(l);
	if (r < 0)
		return r;
	/* what the card already holds unsynced counts against card_max_pending */
	r = ask(l, json_pack("{s:s}", "req", "file.changes.pending"), &rsp);
	if (r < 0)
		return r;
	l->pending_on_card = json_integer_value(json_object_get(rsp, "total"));
	json_decref(rsp);
	l->card_full = false;
	l->storage_pct = -1;
	l->notes_since_look = ROOM_LOOK_NOTES; /* look at its storage before the first note */
	l->look_next = 0;
	l->attn_armed = false;
	l->db_started = false;
	link_tmpl_card_reset(l);
	log_info("card: %s %s %s ready",
	         json_string_value(json_object_get(l->version, "device")) ?: "?",
	         json_string_value(json_object_get(l->version, "sku")) ?: "?",
	         json_string_value(json_object_get(l->version, "version")) ?: "?");
	return 0;
}

/* ---- outbound ---------------------------------------------------------------------- */
/* The card's room is learned from what it reports, never assumed: its storage
 * (card.status, looked at every ROOM_LOOK_NOTES note.adds, more often near the top),
 * its refusals ({file-storage-full} and the other hold tokens) and, with
 * [store] card_max_pending set, its count of unsynced notes (file.changes.pending).
 * A full card is asked to sync (hub.sync, unless the hub is off) while notes wait,
 * and looked at again after a backoff that starts at a second. */
enum full_why { FULL_CAP = 1, FULL_STORAGE, FULL_REFUSED };

/* Ask the card to sync: notes wait for room on it. */
static int ask_sync(struct link *l)
{
	const char *mode = json_string_value(json_object_get(l->hub, "mode"));
	uint64_t now = clock_ms(l);
	if (mode && strcmp(mode, "off") == 0)
		return 0; /* nothing syncs: the card holds what it has */
	if (l->sync_asked && now - l->sync_asked_at < SYNC_ASK_MS)
		return 0;
	json_t *rsp;
	int r = ask(l, json_pack("{s:s}", "req", "hub.sync"), &rsp);
	if (r < 0)
		return r;
	l->sync_asked = true;
	l->sync_asked_at = now;
	l->cnt.syncs_asked++;
	if (err_of(rsp))
		log_warn("card: hub.sync: %s", err_of(rsp));
	else
		log_info("card: %" PRId64
		         " notes wait on the card and more in the store: sync asked",
		         l->pending_on_card);
	json_decref(rsp);
	return 0;
}

/* The card has no room now: hold the queue, ask for a sync, look again later. */
static int card_now_full(struct link *l, enum full_why why)
{
	if (!l->card_full) {
		/* full again after room returned: a sync made that room, ask for the next */
		l->full_backoff_ms = 0;
		l->sync_asked = false;
		log_info("card: %s; holding the rest in the store",
		         why == FULL_CAP       ? "card_max_pending notes wait for a sync"
		         : why == FULL_STORAGE ? "its storage is nearly full"
		                               : "it takes no more notes now");
	}
	l->card_full = true;
	l->full_why = why;
	l->full_backoff_ms = l->full_backoff_ms ? l->full_backoff_ms * 2 : FULL_RECHECK_MIN_MS;
	if (l->full_backoff_ms > FULL_RECHECK_MAX_MS)
		l->full_backoff_ms = FULL_RECHECK_MAX_MS;
	l->full_recheck_at = clock_ms(l) + l->full_backoff_ms;
	return ask_sync(l);
}

static int look_pending(struct link *l)
{
	json_t *rsp;
	int r = ask(l, json_pack("{s:s}", "req", "file.changes.pending"), &rsp);
	if (r < 0)
		return r;
	l->pending_on_card = json_integer_value(json_object_get(rsp, "total"));
	json_decref(rsp);
	return 0;
}

static int look_storage(struct link *l)
{
	json_t *rsp;
	int r = ask(l, json_pack("{s:s}", "req", "card.status"), &rsp);
	if (r < 0)
		return r;
	json_t *v = json_object_get(rsp, "storage");
	int64_t prev = l->storage_pct, now = json_is_integer(v) ? json_integer_value(v) : -1;
	uint64_t n = l->notes_since_look;
	l->storage_pct = now;
	l->notes_since_look = 0;
	json_decref(rsp);
	/* the next look: half way to the next mark (the early sync's, then the top) at the
	 * rate the last notes filled it; twice as far while they left no trace */
	uint64_t next = ROOM_LOOK_NOTES;
	int64_t mark = now < STORAGE_HIGH_PCT / 2 ? STORAGE_HIGH_PCT / 2 : STORAGE_HIGH_PCT;
	if (prev >= 0 && now >= 0 && n > 0)
		next = now > prev ? n * (uint64_t)(mark > now ? mark - now : 0) /
		                        (2 * (uint64_t)(now - prev))
		                  : 2 * n;
	else if (now >= STORAGE_HIGH_PCT - 15)
		next = ROOM_LOOK_NEAR;
	l->look_next = next < ROOM_LOOK_NEAR  ? ROOM_LOOK_NEAR
	               : next > ROOM_LOOK_MAX ? ROOM_LOOK_MAX
	                                      : (unsigned)next;
	return 0;
}

static unsigned look_every(const struct link *l)
{
	return l->look_next ? l->look_next : ROOM_LOOK_NOTES;
}

/* Whether the card has room for one more note; asks it only when due. */
static int has_room(struct link *l, bool *room)
{
	int64_t cap = l->o.card_max_pending; /* 0: as its storage allows */
	int r;
	*room = false;
	if (l->card_full) {
		if (clock_ms(l) < l->full_recheck_at)
			return 0;
		/* after a refusal the next note.add asks again; full until it passes */
		if (l->full_why == FULL_REFUSED) {
			*room = true;
			return 0;
		}
		if (l->full_why == FULL_CAP && (r = look_pending(l)) < 0)
			return r;
		if (l->full_why == FULL_STORAGE && (r = look_storage(l)) < 0)
			return r;
		if ((l->full_why == FULL_CAP && l->pending_on_card >= cap) ||
		    (l->full_why == FULL_STORAGE && l->storage_pct >= STORAGE_HIGH_PCT))
			return card_now_full(l, l->full_why);
		l->card_full = false;
		log_info("card: room again; the queue drains");
	}
	if (cap && l->pending_on_card >= cap) {
		if ((r = look_pending(l)) < 0)
			return r;
		if (l->pending_on_card >= cap)
			return card_now_full(l, FULL_CAP);
	}
	if (l->notes_since_look >= look_every(l)) {
		if ((r = look_storage(l)) < 0)
			return r;
		if (l->storage_pct >= STORAGE_HIGH_PCT)
			return card_now_full(l, FULL_STORAGE);
		/* half way there with notes still coming: a sync now makes room before
		 * the card is full, so the feed need not stop */
		if (l->storage_pct >= STORAGE_HIGH_PCT / 2 && (r = ask_sync(l)) < 0)
			return r;
	}
	*room = true;
	return 0;
}

/* ---- sent marks: many notes, one commit ------------------------------------------ */
#define MARK_BATCH_MAX 256   /* marks per commit at most: the notes a crash sends again */
#define MARK_AGE_MS    10000 /* and no mark waits longer than this while notes flow */

/* Commit the marks waiting in the store. The first commit after a start or a hold
 * carries one mark, so a store that cannot be written stops the queue after one
 * note; each good commit doubles the batch. A failure holds the link (it retries
 * the same marks); the notes are not sent again meanwhile. */
static void commit_marks(struct link *l)
{
	if (!store_out_marks(l->st))
		return;
	int r = store_out_commit_marks(l->st);
	if (r < 0) {
		l->mark_batch = 1;
		link_store_trouble(l, r, l->last_mark_id, l->last_mark_seq);
		return;
	}
	l->cnt.mark_commits++;
	l->mark_batch = l->mark_batch ? l->mark_batch * 2 : 2;
	if (l->mark_batch > MARK_BATCH_MAX)
		l->mark_batch = MARK_BATCH_MAX;
}

/* The card took note n. */
static void mark_sent(struct link *l, const struct store_out *n)
{
	if (!store_out_marks(l->st))
		l->marks_since = clock_ms(l);
	int r = store_out_sent_later(l->st, n->id);
	if (r < 0) {
		r = store_out_sent(l->st, n->id); /* no memory for a batch: one commit */
		if (r < 0)
			link_store_trouble(l, r, n->id, n->seq);
		return;
	}
	l->last_mark_id = n->id;
	l->last_mark_seq = n->seq;
	if (store_out_marks(l->st) >= (l->mark_batch ? l->mark_batch : 1) ||
	    clock_ms(l) - l->marks_since >= MARK_AGE_MS)
		commit_marks(l);
}

static bool has_token(const char *err, const char *const *tokens)
{
	for (int i = 0; err && tokens[i]; i++)
		if (strstr(err, tokens[i]))
			return true;
	return false;
}

/* A note the card refuses for what it is (bad notefile, bad body): recorded each
 * time, dropped from the queue after SEMANTIC_TRIES so it cannot block the notes
 * behind it forever; the audit log keeps what happened. */
static int note_refused(struct link *l, const struct store_out *n, const char *why)
{
	if (l->fail_id != n->id) {
		l->fail_id = n->id;
		l->fail_count = 0;
	}
	l->fail_count++;
	l->cnt.notes_failed++;
	int r = store_out_failed(l->st, n->id, why);
	if (r < 0) {
		link_store_trouble(l, r, 0, 0);
		return 0;
	}
	if (l->fail_count < SEMANTIC_TRIES)
		return 0;
	char *detail = xasprintf("%s seq %lld: %s", n->file, (long long)n->seq, why);
	log_err("card: note %s seq %lld refused %u times (%s); dropped from the queue", n->file,
	        (long long)n->seq, l->fail_count, why);
	link_emit(l, LEV_AUDIT, 0, "note-dropped", detail ? detail : why);
	free(detail);
	l->cnt.notes_dropped++;
	l->fail_id = 0;
	l->fail_count = 0;
	r = store_out_sent(l->st, n->id);
	if (r < 0)
		link_store_trouble(l, r, n->id, n->seq);
	return 0;
}

static int drain(struct link *l, unsigned max_notes, bool *more)
{
	unsigned trouble = l->hold.events; /* a store failure in this pass stops it */
	*more = false;
	for (unsigned i = 0; i < max_notes; i++) {
		bool room;
		int r = has_room(l, &room);
		if (r < 0)
			return r;
		if (!room)
			return 0;
		struct store_out *n = NULL;
		r = store_peek_out(l->st, &n);
		if (r < 0) {
			link_store_trouble(l, r, 0, 0);
			return 0;
		}
		if (!n)
			return 0;
		json_t *req = NULL, *rsp = NULL;
		r = link_note_request(&l->o, l->pub, store_gateway_id(l->st), n, &req);
		if (r == -ENOKEY) {
			/* sealing is asked for but no key could be loaded: a configuration
			 * fault, not the note's; it waits (never sent in the clear) */
			if (!l->key_warned)
				log_err(
				    "crypto: %s must be sealed but no uplink key is loaded; notes "
				    "wait in the store",
				    n->file);
			l->key_warned = true;
			store_out_free(n);
			return 0;
		}
		if (r < 0) {
			/* cannot be built (a stored body that is not an object) */
			r = note_refused(l, n, strerror(-r));
			store_out_free(n);
			if (r < 0)
				return r;
			if (l->hold.events != trouble)
				return 0;
			continue;
		}
		struct link_tmpl_note tn;
		r = link_tmpl_prepare(l, n, req, &tn);
		if (r >= 0)
			r = link_card_request(l, req, &rsp);
		json_decref(req);
		if (r < 0) {
			l->last_err = r;
			store_out_free(n);
			return r; /* kept in the store; the link backs off */
		}
		const char *err = err_of(rsp);
		if (!err) {
			if (l->card_full) {
				l->card_full = false;
				log_info("card: takes notes again; the queue drains");
			}
			link_tmpl_sent(l, n->file, &tn);
			l->cnt.notes_sent++;
			l->pending_on_card++;
			if (l->fail_id == n->id)
				l->fail_id = 0;
			l->notes_since_look++;
			/* The card has it: a mark that cannot commit is the store's trouble,
			 * never the card's. The mark waits in memory (the link holds); the
			 * note is not sent again meanwhile. */
			mark_sent(l, n);
			r = 0;
		} else if (has_token(err, hold_tokens)) {
			log_info("card: %s: holding notes (%s)", n->file, err);
			r = card_now_full(l, FULL_REFUSED);
		} else {
			log_warn("card: note.add %s refused: %s", n->file, err);
			link_tmpl_refused(l, n->file, err);
			r = note_refused(l, n, err);
		}
		json_decref(rsp);
		store_out_free(n);
		if (r < 0)
			return r;
		if (l->card_full || l->hold.events != trouble)
			return 0;
	}
	*more = true;
	return 0;
}

int link_drain(struct link *l, unsigned max_notes, bool *more)
{
	unsigned trouble = l->hold.events;
	int r = drain(l, max_notes, more);
	/* the queue pauses (empty, a full card, a lost card): the marks commit now,
	 * unless the store failed in this pass (the hold retries them) */
	if (l->hold.events == trouble && (!*more || store_out_marks(l->st) >= MARK_BATCH_MAX))
		commit_marks(l);
	return r;
}

/* ---- a store that cannot be written ---------------------------------------------- */
#define HOLD_MIN_MS 1000
#define HOLD_MAX_MS 30000

void link_store_trouble(struct link *l, int r, int64_t sent_id, int64_t sent_seq)
{
	uint64_t now = clock_ms(l);
	l->hold.events++;
	if (sent_id) {
		l->hold.sent_id = sent_id;
		l->hold.sent_seq = sent_seq;
	}
	if (!l->hold.err) {
		l->hold.since_ms = now;
		l->hold.backoff_ms = 0;
		if (l->hold.sent_id)
			log_err("link: the store cannot be written (%s): note seq %lld went to the "
			        "card and waits to be marked sent; holding the queue, the card "
			        "stays up, retrying with backoff",
			        r == -EAGAIN ? "disk full" : strerror(-r), (long long)sent_seq);
		else
			log_err("link: the store cannot be written (%s): holding the queue, the "
			        "card stays up, retrying with backoff",
			        r == -EAGAIN ? "disk full" : strerror(-r));
		link_emit(l, LEV_AUDIT, 0, "store-hold", r == -EAGAIN ? "disk full" : strerror(-r));
	}
	l->hold.err = r;
	l->hold.backoff_ms = l->hold.backoff_ms ? l->hold.backoff_ms * 2 : HOLD_MIN_MS;
	if (l->hold.backoff_ms > HOLD_MAX_MS)
		l->hold.backoff_ms = HOLD_MAX_MS;
	l->hold.retry_at = now + l->hold.backoff_ms;
	link_emit(l, LEV_STATUS, 0, NULL, NULL);
}

bool link_store_ready(struct link *l)
{
	if (!l->hold.err)
		return true;
	if (clock_ms(l) < l->hold.retry_at)
		return false;
	/* a WAL that filled the disk gives its space back only through a checkpoint */
	(void)store_checkpoint(l->st);
	if (l->hold.sent_id) {
		int r = store_out_marks(l->st) ? store_out_commit_marks(l->st)
		                               : store_out_sent(l->st, l->hold.sent_id);
		if (r < 0) {
			link_store_trouble(l, r, 0, 0);
			return false;
		}
		l->cnt.mark_commits++;
		l->hold.sent_id = 0;
	}
	return true;
}

void link_store_settled(struct link *l, unsigned events_before)
{
	if (!l->hold.err || l->hold.events != events_before || l->hold.sent_id)
		return;
	log_notice("link: the store can be written again after %llu s; the queue drains",
	           (unsigned long long)((clock_ms(l) - l->hold.since_ms) / 1000));
	link_emit(l, LEV_AUDIT, 0, "store-resumed", NULL);
	memset(&l->hold, 0, sizeof(l->hold));
	link_emit(l, LEV_STATUS, 0, NULL, NULL);
}

/* ---- inbound ----------------------------------------------------------------------- */
static int store_note(struct link *l, const char *file, const char *note, json_t *rsp,
                      int64_t *first)
{
	json_t *body = json_object_get(rsp, "body");
	char *btext = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	const char *payload = json_string_value(json_object_get(rsp, "payload"));
	int64_t time = json_integer_value(json_object_get(rsp, "time"));
	int64_t id = 0;
	int r = store_inbound_add(l->st, file, note, btext, payload, time, &id);
	free(btext);
	if (r < 0) {
		/* left on the card, which offers it again once the store can take it */
		link_store_trouble(l, r, 0, 0);
		return -EAGAIN;
	}
	if (r == 0) {
		l->cnt.inbound++;
		if (!*first)
			*first = id;
	}
	return 0;
}

#define QUARANTINE_KEEP 16384 /* bytes of a quarantined answer kept in the audit log */

static bool unreadable(int r)
{
	return r == -EPROTO || r == -EMSGSIZE;
}

/* The head of an inbound queue came whole but cannot be taken (-EPROTO: not a JSON
 * object we accept, a body with \u0000 or duplicate keys; -EMSGSIZE: longer than the
 * receive buffer). Asking again gets the same answer, so it would block every note
 * behind it: its raw text goes to the audit log (durably, before the card forgets
 * it), then it is taken off the card and reported on the error channels.
 * 0 when done, -EAGAIN when the store holds, or the card's error. */
static int quarantine(struct link *l, const char *file, int why)
{
	size_t len;
	const char *raw = card_last_answer(l->card, &len);
	size_t keep = len > QUARANTINE_KEEP ? QUARANTINE_KEEP : len;
	const char *what = why == -EMSGSIZE ? "longer than the receive buffer"
	                                    : "not a JSON object the gateway accepts";
	char *detail = xasprintf("%s: %s; %zu bytes%s: %.*s", file, what, len,
	                         keep < len ? " (start kept)" : "", (int)keep, raw);
	if (!detail)
		return -ENOMEM;
	int r = store_audit(l->st, "card", "inbound-quarantined", detail);
	free(detail);
	if (r < 0) {
		link_store_trouble(l, r, 0, 0);
		return -EAGAIN;
	}
	/* note.get with delete answers with that same note: it fails the same way, and
	 * is not retried (card_request), so only this note goes */
	json_t *rsp = NULL;
	r = ask(l, json_pack("{s:s,s:s,s:b}", "req", "note.get", "file", file, "delete", 1), &rsp);
	json_decref(rsp);
	if (r < 0 && !unreadable(r))
		return r; /* the next pass finds it again (and audits it again) */
	l->cnt.inbound_quarantined++;
	char *msg = xasprintf("inbound note in %s %s (%zu bytes): taken off the card, its text "
	                      "kept in the audit log (inbound-quarantined)",
	                      file, what, len);
	log_err("card: %s", msg ? msg : file);
	link_emit(l, LEV_ERROR, 0, "inbound", msg ? msg : file);
	free(msg);
	return 0;
}

/* A queue: peek, commit to the store, then pop. A crash between the two leaves
 * the note on the card; the next peek finds it again and the store recognises
 * the duplicate. */
static int pull_queue(struct link *l, const char *file, int64_t *first)
{
	for (int k = 0; k < 100; k++) {
		json_t *rsp;
		int r = ask(l, json_pack("{s:s,s:s}", "req", "note.get", "file", file), &rsp);
		/* a peek is harmless to repeat: once more, so a line garbled on the way
		 * (no crc to tell) is not taken for the card's answer */
		if (unreadable(r))
			r = ask(l, json_pack("{s:s,s:s}", "req", "note.get", "file", file), &rsp);
		if (unreadable(r)) {
			r = quarantine(l, file, r);
			if (r < 0)
				return r == -EAGAIN ? 0 : r;
			continue;
		}
		if (r < 0)
			return r;
		const char *err = err_of(rsp);
		if (err) {
			if (!strstr(err, "{note-noexist}") && !strstr(err, "{notefile-noexist}"))
				log_warn("card: note.get %s: %s", file, err);
			json_decref(rsp);
			return 0;
		}
		r = store_note(l, file, NULL, rsp, first);
		json_decref(rsp);
		if (r < 0)
			return r == -EAGAIN ? 0
			                    : r; /* the store holds: the note stays on the card */
		r = ask(l, json_pack("{s:s,s:s,s:b}", "req", "note.get", "file", file, "delete", 1),
		        &rsp);
		if (r < 0)
			return r;
		/* the popped note is the one just stored (a duplicate the store drops)
		 * unless something else took the queue's head in between: keep it too */
		if (!err_of(rsp))
			r = store_note(l, file, NULL, rsp, first);
		json_decref(rsp);
		if (r < 0)
			return r == -EAGAIN ? 0 : r;
	}
	return 0;
}

/* A database: note.changes with a tracker. The tracker moves on as it answers,
 * so after each start the link asks from the beginning once ("start":true) and
 * lets the store drop what it already has. */
static int pull_db(struct link *l, const char *file, int64_t *first)
{
	for (int k = 0; k < 20; k++) {
		json_t *req = json_pack("{s:s,s:s,s:s,s:i}", "req", "note.changes", "file", file,
		                        "tracker", "notegw", "max", 10);
		if (req && !l->db_started)
			json_object_set_new(req, "start", json_true());
		json_t *rsp;
		int r = ask(l, req, &rsp);
		if (r < 0)
			return r;
		if (err_of(rsp)) {
			json_decref(rsp);
			return 0;
		}
		json_t *notes = json_object_get(rsp, "notes");
		const char *id;
		json_t *note;
		json_object_foreach(notes, id, note)
		{
			r = store_note(l, file, id, note, first);
			if (r < 0)
				break;
		}
		size_t n = json_object_size(notes);
		json_decref(rsp);
		if (r < 0)
			return r == -EAGAIN ? 0 : r;
		if (n < 10)
			return 0;
	}
	return 0;
}

int link_inbound(struct link *l)
{
	unsigned trouble = l->hold.events;
	json_t *rsp;
	int r = ask(l, json_pack("{s:s}", "req", "file.changes"), &rsp);
	if (r < 0)
		return r;
	int64_t first = 0;
	json_t *info = json_object_get(rsp, "info");
	const char *file;
	json_t *v;
	json_object_foreach(info, file, v)
	{
		if (!ngw_notefile_suffix_in(file))
			continue;
		add_in_file(l, file);
		if (json_integer_value(json_object_get(v, "total")) <= 0 &&
		    json_integer_value(json_object_get(v, "changes")) <= 0)
			continue;
		r = ngw_notefile_is_db(file) ? pull_db(l, file, &first)
		                             : pull_queue(l, file, &first);
		if (r < 0 || l->hold.events != trouble)
			break;
	}
	json_decref(rsp);
	if (r == 0 && l->hold.events == trouble)
		l->db_started = true;
	if (first)
		link_emit(l, LEV_INBOUND, first, NULL, NULL);
	return r;
}

int link_attn_arm(struct link *l)
{
	if (!l->n_in_files)
		add_in_file(l, "data.qi");
	json_t *files = json_array();
	for (size_t i = 0; i < l->n_in_files; i++)
		json_array_append_new(files, json_string(l->in_files[i]));
	json_t *rsp;
	int r = ask(
	    l,
	    json_pack("{s:s,s:s,s:o}", "req", "card.attn", "mode", "arm,files,env", "files", files),
	    &rsp);
	if (r < 0)
		return r;
	if (err_of(rsp))
		log_warn("card: card.attn: %s", err_of(rsp));
	else
		l->attn_armed = true;
	json_decref(rsp);
	return 0;
}

/* ---- environment ----------------------------------------------------------------- */
static char *value_text(json_t *v)
{
	if (json_is_string(v))
		return strdup(json_string_value(v));
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* env.modified is one small answer; only when it moves is env.get asked, and
 * only the variables that changed are announced (deleted ones with NULL). */
int link_env(struct link *l)
{
	json_t *rsp;
	int r = ask(l, json_pack("{s:s}", "req", "env.modified"), &rsp);
	if (r < 0)
		return r;
	int64_t t = json_integer_value(json_object_get(rsp, "time"));
	bool err = err_of(rsp) != NULL;
	json_decref(rsp);
	if (err || (l->env_known && t == l->env_modified))
		return 0;
	r = ask(l, json_pack("{s:s}", "req", "env.get"), &rsp);
	if (r < 0)
		return r;
	json_t *body = json_object_get(rsp, "body");
	if (err_of(rsp) || !json_is_object(body)) {
		json_decref(rsp);
		return 0;
	}
	const char *name;
	json_t *v;
	json_object_foreach(body, name, v)
	{
		json_t *old = l->env ? json_object_get(l->env, name) : NULL;
		if (old && json_equal(old, v))
			continue;
		char *text = value_text(v);
		link_emit(l, LEV_ENV, 0, name, text ? text : "");
		free(text);
		l->cnt.env_changes++;
	}
	if (l->env) {
		json_object_foreach(l->env, name, v)
		{
			if (!json_object_get(body, name)) {
				link_emit(l, LEV_ENV, 0, name, NULL);
				l->cnt.env_changes++;
			}
		}
	}
	json_decref(l->env);
	l->env = json_incref(body);
	l->env_modified = t;
	l->env_known = true;
	json_decref(rsp);
	return 0;
}

/* ---- status -------------------------------------------------------------------- */
int link_refresh_status(struct link *l)
{
	json_t *rsp;
	int r = ask(l, json_pack("{s:s}", "req", "card.wireless"), &rsp);
	if (r < 0)
		return r;
	json_decref(l->wireless);
	l->wireless = rsp;
	r = ask(l, json_pack("{s:s}", "req", "hub.sync.status"), &rsp);
	if (r < 0)
		return r;
	json_decref(l->sync_status);
	l->sync_status = rsp;
	r = ask(l, json_pack("{s:s}", "req", "card.status"), &rsp);
	if (r < 0)
		return r;
	json_decref(l->card_status);
	l->card_status = rsp;
	return 0;
}

int link_raw(struct link *l, const char *text, char **rsp)
{
	l->cnt.raw_requests++;
	ask_begin(l, "a raw request");
	int r = card_request_text(l->card, text, rsp);
	ask_end(l, r);
	if (transient(r))
		l->last_err = r;
	return r;
}

static const char *state_name(enum link_state s)
{
	switch (s) {
	case LINK_STARTING:
		return "starting";
	case LINK_READY:
		return "ready";
	case LINK_ABSENT:
		return "absent";
	case LINK_SILENT:
		return "not answering";
	case LINK_STORE_DOWN:
		return "store unavailable";
	}
	return "?";
}

static void copy_field(json_t *dst, const char *dk, json_t *src, const char *sk)
{
	json_t *v = json_object_get(src, sk);
	if (v)
		json_object_set(dst, dk, v);
}

/* Build the snapshot link_status() hands to `notegw status`. */
void link_publish_status(struct link *l)
{
	json_t *card = json_object(), *hub = json_object(), *link = json_object();
	const struct card_transport *t = l->card ? card_transport(l->card) : NULL;
	json_object_set_new(card, "state", json_string(state_name(l->state)));
	json_object_set_new(card, "transport",
	                    json_string(l->o.transport == CFG_TRANSPORT_I2C ? "i2c" : "serial"));
	if (l->o.device)
		json_object_set_new(card, "device", json_string(l->o.device));
	copy_field(card, "uid", l->version, "device");
	copy_field(card, "sku", l->version, "sku");
	copy_field(card, "firmware", l->version, "version");
	json_t *net = json_object_get(l->wireless, "net");
	if (net) {
		json_t *sig = json_object();
		copy_field(sig, "bars", net, "bars");
		copy_field(sig, "rssi", net, "rssi");
		copy_field(sig, "rat", net, "rat");
		json_object_set_new(card, "signal", sig);
	}
	copy_field(card, "wireless", l->wireless, "status");
	/* card.status says whether the card is connected to Notehub now */
	json_t *conn = json_object_get(l->card_status, "connected");
	if (l->card_status)
		json_object_set_new(card, "connected", json_boolean(json_is_true(conn)));
	copy_field(card, "storage_pct", l->card_status, "storage");
	json_object_set_new(card, "attn", json_boolean(l->attn != NULL));
	if (l->state != LINK_READY && l->last_err)
		json_object_set_new(card, "error", json_string(strerror(-l->last_err)));
	if (l->state != LINK_READY && l->backoff_ms)
		json_object_set_new(card, "retry_in_ms", json_integer((json_int_t)l->backoff_ms));

	copy_field(hub, "product", l->hub, "product");
	copy_field(hub, "mode", l->hub, "mode");
	copy_field(hub, "sync_status", l->sync_status, "status");
	copy_field(hub, "last_sync", l->sync_status, "time");
	copy_field(hub, "seconds_since_sync", l->sync_status, "completed");
	copy_field(hub, "penalty_s", l->sync_status, "seconds");

	struct card_counters cc = {0};
	if (l->card)
		card_counters(l->card, &cc);
	json_t *c = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
	    (json_int_t)cc.requests, "retries", (json_int_t)cc.retries, "resets",
	    (json_int_t)cc.resets, "timeouts", (json_int_t)cc.timeouts, "crc_errors",
	    (json_int_t)cc.crc_errors, "io_errors", (json_int_t)cc.io_errors, "notes_sent",
	    (json_int_t)l->cnt.notes_sent, "notes_failed", (json_int_t)l->cnt.notes_failed,
	    "notes_dropped", (json_int_t)l->cnt.notes_dropped, "inbound",
	    (json_int_t)l->cnt.inbound, "env_changes", (json_int_t)l->cnt.env_changes, "hub_sets",
	    (json_int_t)l->cnt.hub_sets, "attn", (json_int_t)l->cnt.attn, "probes",
	    (json_int_t)l->cnt.probes, "bytes_out", (json_int_t)(t ? t->bytes_out : 0), "bytes_in",
	    (json_int_t)(t ? t->bytes_in : 0), "inbound_quarantined",
	    (json_int_t)l->cnt.inbound_quarantined);
	json_object_set_new(link, "counters", c);
	json_object_set_new(link, "pending_on_card", json_integer(l->pending_on_card));
	json_object_set_new(link, "card_full", json_boolean(l->card_full));
	json_object_set_new(link, "syncs_asked", json_integer((json_int_t)l->cnt.syncs_asked));
	json_object_set_new(link, "mark_commits", json_integer((json_int_t)l->cnt.mark_commits));
	if (l->storage_pct >= 0)
		json_object_set_new(link, "card_storage_pct", json_integer(l->storage_pct));
	if (l->hold.err) {
		/* the queue is held for the store, not the card: say why and since when */
		json_t *h = json_pack("{s:s,s:I}", "error",
		                      l->hold.err == -EAGAIN ? "disk full" : strerror(-l->hold.err),
		                      "retry_in_ms", (json_int_t)l->hold.backoff_ms);
		if (h && l->hold.sent_seq && l->hold.sent_id)
			json_object_set_new(h, "sent_unmarked_seq", json_integer(l->hold.sent_seq));
		json_object_set_new(link, "store_hold", h);
	}
	json_t *snap = json_pack("{s:o,s:o,s:o,s:o*}", "notecard", card, "hub", hub, "link", link,
	                         "notefiles", link_tmpl_status(l));
	pthread_mutex_lock(&l->mu);
	json_decref(l->status);
	l->status = snap;
	pthread_mutex_unlock(&l->mu);
}
