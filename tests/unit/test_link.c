/* The link's conversation with the card, step by step on a fake card and an
 * in-memory store: hub agreement (no write when equal), the outbound drain with
 * _id, urgency and encryption, the card's room, refused notes not blocking the
 * queue, crash-safe inbound, environment changes, the status snapshot; and the
 * thread's hand-offs through sd-event for a card that is absent. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "crypto.h"
#include "fakecard.h"
#include "notecard/attn.h"
#include "notecard/link_int.h"
#include "store.h"
#include "util.h"

/* ---- an in-memory store: just what the link uses ------------------------------ */
struct store {
	struct store_out *out[64];
	int failed[64];
	size_t n_out;
	int64_t next_seq;
	struct {
		char *file, *body;
		int64_t time;
	} in[64];
	size_t n_in;
	int64_t marks[64]; /* store_out_sent_later, not yet committed */
	size_t n_marks;
	int commits; /* store_out_commit_marks that committed something */
};
static struct store fake_store;
static int store_open_err;
static int store_sent_err, store_in_err; /* a full disk: marks and inbound fail */

int store_open(const char *path, const struct store_opts *opts, struct store **out)
{
	if (store_open_err)
		return store_open_err;
	*out = &fake_store;
	return 0;
}
void store_close(struct store *st)
{
}
const char *store_gateway_id(struct store *st)
{
	return "gw7";
}
void store_out_free(struct store_out *n)
{
	if (!n)
		return;
	free(n->file);
	free(n->body);
	free(n->payload);
	free(n);
}
static void fs_add(const char *file, const char *body, int prio)
{
	struct store_out *n = calloc(1, sizeof(*n));
	n->id = n->seq = ++fake_store.next_seq;
	n->file = strdup(file);
	n->body = body ? strdup(body) : NULL;
	n->prio = prio;
	fake_store.out[fake_store.n_out++] = n;
}
static bool fs_marked(int64_t id)
{
	for (size_t i = 0; i < fake_store.n_marks; i++)
		if (fake_store.marks[i] == id)
			return true;
	return false;
}
/* the next note not marked sent, or -1 */
static int fs_head(void)
{
	int best = -1;
	for (size_t i = 0; i < fake_store.n_out; i++)
		if (!fs_marked(fake_store.out[i]->id) &&
		    (best < 0 || fake_store.out[i]->prio > fake_store.out[best]->prio))
			best = (int)i;
	return best;
}
int store_peek_out(struct store *st, struct store_out **out)
{
	*out = NULL;
	if (fs_head() < 0)
		return 0;
	struct store_out *h = st->out[fs_head()], *c = calloc(1, sizeof(*c));
	*c = *h;
	c->file = strdup(h->file);
	c->body = h->body ? strdup(h->body) : NULL;
	c->payload = NULL;
	if (h->payload) {
		c->payload = malloc(h->payload_len);
		memcpy(c->payload, h->payload, h->payload_len);
	}
	*out = c;
	return 0;
}
static int fs_find(int64_t id)
{
	for (size_t i = 0; i < fake_store.n_out; i++)
		if (fake_store.out[i]->id == id)
			return (int)i;
	return -1;
}
int store_out_sent(struct store *st, int64_t id)
{
	if (store_sent_err)
		return store_sent_err;
	int i = fs_find(id);
	assert_true(i >= 0);
	store_out_free(st->out[i]);
	memmove(&st->out[i], &st->out[i + 1], (st->n_out - (size_t)i - 1) * sizeof(st->out[0]));
	st->n_out--;
	return 0;
}
int store_out_sent_later(struct store *st, int64_t id)
{
	assert_true(st->n_marks < 64);
	st->marks[st->n_marks++] = id;
	return 0;
}
size_t store_out_marks(const struct store *st)
{
	return st->n_marks;
}
int store_out_commit_marks(struct store *st)
{
	if (store_sent_err)
		return store_sent_err;
	for (size_t i = 0; i < st->n_marks; i++) {
		int j = fs_find(st->marks[i]);
		assert_true(j >= 0);
		store_out_free(st->out[j]);
		memmove(&st->out[j], &st->out[j + 1],
		        (st->n_out - (size_t)j - 1) * sizeof(st->out[0]));
		st->n_out--;
	}
	if (st->n_marks)
		st->commits++;
	st->n_marks = 0;
	return 0;
}
int store_out_failed(struct store *st, int64_t id, const char *why)
{
	int i = fs_find(id);
	assert_true(i >= 0);
	st->failed[i]++;
	return 0;
}
int store_inbound_add(struct store *st, const char *file, const char *note, const char *body,
                      const char *payload, int64_t time, int64_t *id_out)
{
	if (store_in_err)
		return store_in_err;
	for (size_t i = 0; i < st->n_in; i++)
		if (!strcmp(st->in[i].file, file) && st->in[i].time == time &&
		    !strcmp(st->in[i].body ?: "", body ?: ""))
			return 1;
	st->in[st->n_in].file = strdup(file);
	st->in[st->n_in].body = body ? strdup(body) : NULL;
	st->in[st->n_in].time = time;
	st->n_in++;
	*id_out = (int64_t)st->n_in + 100;
	return 0;
}
int store_checkpoint(struct store *st)
{
	return 0;
}
static char *audited[8]; /* "action detail" of store_audit rows */
static size_t n_audited;
int store_audit(struct store *st, const char *actor, const char *action, const char *detail)
{
	if (store_in_err)
		return store_in_err;
	if (n_audited < 8)
		audited[n_audited++] = xasprintf("%s %s", action, detail ? detail : "");
	return 0;
}
/* the kv the link keeps learned templates in (link_tmpl.c): nothing kept here */
int store_kv_get(struct store *st, const char *key, char **value)
{
	*value = NULL;
	return -ENOENT;
}
int store_kv_set(struct store *st, const char *key, const char *value)
{
	return 0;
}
static void fs_clear(void)
{
	for (size_t i = 0; i < fake_store.n_out; i++)
		store_out_free(fake_store.out[i]);
	for (size_t i = 0; i < fake_store.n_in; i++) {
		free(fake_store.in[i].file);
		free(fake_store.in[i].body);
	}
	memset(&fake_store, 0, sizeof(fake_store));
	store_sent_err = store_in_err = 0;
	for (size_t i = 0; i < n_audited; i++)
		free(audited[i]);
	n_audited = 0;
}

/* ---- a stand-in for the crypto module: reversible, visibly "sealed" ---------- */
struct crypto_key {
	int p384; /* 0: behaves as an RSA key (envelope body), 1: P-384 (sealed payload) */
};
static struct crypto_key the_key;
int crypto_key_load_public(const char *path, struct crypto_key **out)
{
	*out = &the_key;
	return 0;
}
void crypto_key_free(struct crypto_key *k)
{
}
int crypto_seal(const struct crypto_key *pub, const char *plaintext, size_t len, json_t **env)
{
	*env = json_pack("{s:s,s:s%}", "alg", "test", "sealed", plaintext, len);
	return 0;
}
enum crypto_key_type crypto_key_type(const struct crypto_key *k)
{
	return k->p384 ? CRYPTO_KEY_P384 : CRYPTO_KEY_RSA;
}
int crypto_seal_payload(const struct crypto_key *pub, const char *plaintext, size_t len,
                        uint8_t **out, size_t *out_len)
{
	/* "S" then the plaintext: visibly sealed, and the test can read it back */
	*out = malloc(len + 1);
	(*out)[0] = 'S';
	memcpy(*out + 1, plaintext, len);
	*out_len = len + 1;
	return 0;
}

/* ---- fixture ------------------------------------------------------------------ */
static struct fakecard *F;
static struct link *L;

static int setup(void **state)
{
	F = calloc(1, sizeof(*F));
	fakecard_init(F);
	L = calloc(1, sizeof(*L));
	pthread_mutex_init(&L->mu, NULL);
	L->evs_tail = &L->evs;
	L->reqs_tail = &L->reqs;
	L->loop_efd = -1;
	L->card = fakecard_card(F);
	L->st = &fake_store;
	L->o.device = strdup("/dev/fake");
	L->o.card_max_pending = 25;
	L->o.hub_outbound = L->o.hub_inbound = -1;
	L->o.poll_ms = 1000;
	return 0;
}

static int teardown(void **state)
{
	struct link_ev *e = L->evs;
	while (e) {
		struct link_ev *n = e->next;
		free(e->a);
		free(e->b);
		free(e);
		e = n;
	}
	card_free(L->card);
	json_decref(L->version);
	json_decref(L->hub);
	json_decref(L->wireless);
	json_decref(L->sync_status);
	json_decref(L->card_status);
	json_decref(L->env);
	json_decref(L->status);
	for (size_t i = 0; i < L->n_in_files; i++)
		free(L->in_files[i]);
	free(L->in_files);
	link_tmpl_free(L);
	link_opts_clear(&L->o);
	pthread_mutex_destroy(&L->mu);
	free(L);
	fakecard_clear(F);
	free(F);
	fs_clear();
	return 0;
}

/* Pop the next queued event of a kind, or NULL. Caller frees a, b and it. */
static struct link_ev *take_ev(enum link_ev_kind kind)
{
	for (struct link_ev **p = &L->evs; *p; p = &(*p)->next) {
		if ((*p)->kind == kind) {
			struct link_ev *e = *p;
			*p = e->next;
			if (!*p)
				L->evs_tail = p;
			return e;
		}
	}
	return NULL;
}
static void ev_done(struct link_ev *e)
{
	free(e->a);
	free(e->b);
	free(e);
}

/* ---- tests ---------------------------------------------------------------------- */
static void test_probe_hub_agree(void **state)
{
	L->o.hub_product = strdup("com.example.user:gw"); /* equal: no write */
	L->o.hub_mode = strdup("continuous");             /* differs */
	L->o.hub_outbound = 5;                            /* unset on the card */
	assert_int_equal(link_probe(L), 0);
	assert_int_equal(F->hub_sets, 1);
	json_t *set = NULL;
	size_t i;
	json_t *r;
	json_array_foreach(F->log, i, r) if (!strcmp(json_string_value(json_object_get(r, "req")),
	                                             "hub.set")) set = r;
	assert_non_null(set);
	assert_null(json_object_get(set, "product")); /* only what differs */
	assert_string_equal(json_string_value(json_object_get(set, "mode")), "continuous");
	assert_int_equal(json_integer_value(json_object_get(set, "outbound")), 5);
	struct link_ev *e = take_ev(LEV_AUDIT);
	assert_non_null(e);
	assert_string_equal(e->a, "hub.set");
	assert_string_equal(e->b, "{\"mode\":\"continuous\",\"outbound\":5}");
	ev_done(e);
	/* a restart against the same card writes nothing */
	assert_int_equal(link_probe(L), 0);
	assert_int_equal(F->hub_sets, 1);
	assert_null(take_ev(LEV_AUDIT));
}

static void test_drain_order_id_sync(void **state)
{
	fs_add("data.qo", "{\"t\":1}", 0);
	fs_add("alarm.qo", "{\"t\":2}", 1);
	fs_add("data.qo", NULL, 0);
	assert_int_equal(link_probe(L), 0);
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_false(more);
	assert_int_equal(fake_store.n_out, 0);
	assert_int_equal(json_array_size(F->added), 3);
	json_t *a0 = json_array_get(F->added, 0), *a1 = json_array_get(F->added, 1),
	       *a2 = json_array_get(F->added, 2);
	/* urgent first, with sync:true */
	assert_string_equal(json_string_value(json_object_get(a0, "file")), "alarm.qo");
	assert_true(json_is_true(json_object_get(a0, "sync")));
	assert_null(json_object_get(a1, "sync"));
	json_t *b = json_object_get(a1, "body");
	assert_int_equal(json_integer_value(json_object_get(b, "t")), 1);
	assert_string_equal(json_string_value(json_object_get(b, "_id")), "gw7:1");
	assert_string_equal(json_string_value(json_object_get(json_object_get(a2, "body"), "_id")),
	                    "gw7:3");
	assert_int_equal(L->cnt.notes_sent, 3);
}

static void test_card_room(void **state)
{
	L->o.card_max_pending = 2;
	for (int i = 0; i < 5; i++)
		fs_add("data.qo", "{}", 0);
	assert_int_equal(link_probe(L), 0);
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(json_array_size(F->added), 2);
	assert_true(L->card_full);
	assert_int_equal(fake_store.n_out, 3);
	/* still full: nothing more, and the card is not asked again before the recheck */
	int asked = fakecard_count(F, "file.changes.pending");
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fakecard_count(F, "file.changes.pending"), asked);
	/* the card syncs; after the recheck interval the rest flows */
	F->pending = 0;
	fakeclock_sleep_us(&F->clk, 16000000);
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(json_array_size(F->added), 4);
	F->pending = 0;
	fakeclock_sleep_us(&F->clk, 16000000);
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(json_array_size(F->added), 5);
	assert_int_equal(fake_store.n_out, 0);
}

/* With no card_max_pending the card's storage decides: notes flow past any count,
 * the storage is looked at before the first note and then every so often, a card
 * at its high-water mark gets nothing more and is asked to sync, and it is looked
 * at again within seconds (not a blind 15 s). */
static void test_card_room_learned(void **state)
{
	L->o.card_max_pending = 0;
	for (int i = 0; i < 60; i++)
		fs_add("data.qo", "{}", 0);
	assert_int_equal(link_probe(L), 0);
	F->storage = 75;
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(json_array_size(F->added), 0);
	assert_true(L->card_full);
	assert_int_equal(F->syncs, 1);
	/* the sync frees the card: it is looked at again after a second, not 15 */
	F->storage = 20;
	F->pending = 0;
	fakeclock_sleep_us(&F->clk, 1100 * 1000);
	for (int i = 0; i < 8 && fake_store.n_out; i++)
		assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(json_array_size(F->added), 60); /* past 25, no sync waited for */
	assert_int_equal(fake_store.n_out, 0);
	assert_false(L->card_full);
	int looks = fakecard_count(F, "card.status");
	assert_true(looks >= 2 && looks <= 4); /* every 64 notes, not every note */
	assert_int_equal(F->syncs, 1);
}

/* A card that refuses for want of room: the note stays, a sync is asked once (not
 * with the hub off), and the note goes as soon as the card takes it again. */
static void test_full_refusal_asks_sync(void **state)
{
	L->o.card_max_pending = 0;
	fs_add("data.qo", "{}", 0);
	fs_add("data.qo", "{}", 0);
	assert_int_equal(link_probe(L), 0);
	F->full = true;
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fake_store.n_out, 2);
	assert_int_equal(F->syncs, 1);
	fakeclock_sleep_us(&F->clk, 1100 * 1000);
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(F->syncs, 1); /* asked at most once a minute */
	assert_int_equal(fakecard_count(F, "note.add"), 2);
	F->full = false;
	fakeclock_sleep_us(&F->clk, 2100 * 1000);
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fake_store.n_out, 0);
	assert_int_equal(json_array_size(F->added), 2);
	/* a hub that is off syncs nothing: never asked */
	json_object_set_new(L->hub, "mode", json_string("off"));
	fs_add("data.qo", "{}", 0);
	F->full = true;
	fakeclock_sleep_us(&F->clk, 61 * 1000 * 1000);
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(F->syncs, 1);
	assert_int_equal(fake_store.n_out, 1);
}

/* Sent marks share commits: the first alone (a full disk stops the queue after one
 * note), then batches that double; all committed when the queue runs empty, and a
 * note marked but not committed is never sent twice meanwhile. */
static void test_marks_batched(void **state)
{
	for (int i = 0; i < 60; i++)
		fs_add("data.qo", "{}", 0);
	L->o.card_max_pending = 0;
	assert_int_equal(link_probe(L), 0);
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_true(more);
	assert_int_equal(json_array_size(F->added), 16);
	assert_true(fake_store.n_marks > 0); /* waiting for their commit */
	assert_int_equal(fake_store.n_out, 60 - 16 + fake_store.n_marks);
	for (int i = 0; i < 8 && fake_store.n_out; i++)
		assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(json_array_size(F->added), 60); /* each once */
	assert_int_equal(fake_store.n_out, 0);
	assert_int_equal(fake_store.n_marks, 0);
	assert_true(fake_store.commits <= 6); /* 1, 2, 4, 8, 16, the rest */
}

static void test_refused_note_does_not_block(void **state)
{
	fs_add("bad.qo", "{\"x\":1}", 0);
	fs_add("data.qo", "{\"x\":2}", 0);
	assert_int_equal(link_probe(L), 0);
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fake_store.n_out, 0);
	assert_int_equal(json_array_size(F->added), 1);
	assert_int_equal(fakecard_count(F, "note.add"), 4); /* 3 refusals + the good one */
	assert_int_equal(L->cnt.notes_dropped, 1);
	struct link_ev *e = take_ev(LEV_AUDIT);
	assert_non_null(e);
	assert_string_equal(e->a, "note-dropped");
	assert_non_null(strstr(e->b, "bad.qo"));
	ev_done(e);
}

static void test_full_card_holds(void **state)
{
	fs_add("data.qo", "{}", 0);
	assert_int_equal(link_probe(L), 0);
	F->full = true;
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fake_store.n_out, 1); /* held, not refused */
	assert_int_equal(fake_store.failed[0], 0);
	assert_true(L->card_full);
	F->full = false;
	fakeclock_sleep_us(&F->clk, 16000000);
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fake_store.n_out, 0);
}

static void test_sealed_waits_for_key(void **state)
{
	L->o.uplink = CFG_UPLINK_HOST;
	fs_add("data.qo", "{\"secret\":1}", 0);
	assert_int_equal(link_probe(L), 0);
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	/* never in the clear, never refused: it waits */
	assert_int_equal(json_array_size(F->added), 0);
	assert_int_equal(fake_store.n_out, 1);
	assert_int_equal(fake_store.failed[0], 0);
	L->pub = &the_key;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fake_store.n_out, 0);
	json_t *b = json_object_get(json_array_get(F->added, 0), "body");
	assert_string_equal(json_string_value(json_object_get(b, "sealed")), "{\"secret\":1}");
	assert_null(json_object_get(b, "secret"));
}

static void test_card_silent_keeps_note(void **state)
{
	fs_add("data.qo", "{}", 0);
	assert_int_equal(link_probe(L), 0);
	F->fail_all = 1;
	bool more;
	assert_int_equal(link_drain(L, 16, &more), -ETIMEDOUT);
	assert_int_equal(fake_store.n_out, 1);
	F->fail_all = 0;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fake_store.n_out, 0);
	assert_int_equal(json_array_size(F->added), 1);
}

static void test_io_errors_retried(void **state)
{
	for (int i = 0; i < 10; i++)
		fs_add("data.qo", "{}", 0);
	assert_int_equal(link_probe(L), 0);
	F->io_every = 3;
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(fake_store.n_out, 0);
	assert_int_equal(json_array_size(F->added), 10);
}

/* The card took a note but its "sent" mark cannot commit (a full disk): the store's
 * condition, not the card's. The link keeps the card, holds the queue (the note is
 * never sent again), leaves inbound notes on the card, says so in the status, and
 * commits the mark and drains by itself once the store can be written. */
static void test_store_full_holds(void **state)
{
	for (int i = 0; i < 5; i++)
		fs_add("data.qo", "{}", 0);
	json_array_append_new(F->inq, json_pack("{s:{s:i},s:i}", "body", "cmd", 1, "time", 100));
	assert_int_equal(link_probe(L), 0);
	L->state = LINK_READY;
	store_sent_err = store_in_err = -EAGAIN;
	bool more;
	assert_int_equal(link_drain(L, 16, &more), 0); /* not a card failure */
	assert_int_equal(json_array_size(F->added), 1);
	assert_int_equal(L->hold.err, -EAGAIN);
	assert_int_equal(L->hold.sent_id, 1);
	struct link_ev *e = take_ev(LEV_AUDIT);
	assert_non_null(e);
	assert_string_equal(e->a, "store-hold");
	ev_done(e);
	/* an inbound note stays on the card */
	assert_int_equal(link_inbound(L), 0);
	assert_int_equal(json_array_size(F->inq), 1);
	link_publish_status(L);
	json_t *h = json_object_get(json_object_get(L->status, "link"), "store_hold");
	assert_string_equal(json_string_value(json_object_get(h, "error")), "disk full");
	assert_int_equal(json_integer_value(json_object_get(h, "sent_unmarked_seq")), 1);
	/* held: retries back off and never send the note again */
	for (int i = 0; i < 20; i++) {
		fakeclock_sleep_us(&F->clk, 500 * 1000);
		if (link_store_ready(L)) {
			unsigned ev = L->hold.events;
			assert_int_equal(link_drain(L, 16, &more), 0);
			link_store_settled(L, ev);
		}
	}
	assert_int_equal(json_array_size(F->added), 1);
	assert_int_equal(fake_store.n_out, 5);
	assert_true(L->hold.backoff_ms >= 4000);
	assert_null(take_ev(LEV_AUDIT)); /* said once */
	/* space returns: the mark commits, the queue drains, the hold is over */
	store_sent_err = store_in_err = 0;
	fakeclock_sleep_us(&F->clk, 31 * 1000 * 1000);
	assert_true(link_store_ready(L));
	unsigned ev = L->hold.events;
	assert_int_equal(link_drain(L, 16, &more), 0);
	assert_int_equal(link_inbound(L), 0);
	link_store_settled(L, ev);
	assert_int_equal(L->hold.err, 0);
	assert_int_equal(fake_store.n_out, 0);
	assert_int_equal(json_array_size(F->added), 5); /* each note once */
	assert_int_equal(json_array_size(F->inq), 0);
	assert_int_equal(fake_store.n_in, 1);
	e = take_ev(LEV_AUDIT);
	assert_non_null(e);
	assert_string_equal(e->a, "store-resumed");
	ev_done(e);
}

static void test_inbound_crash_safe(void **state)
{
	json_array_append_new(F->inq, json_pack("{s:{s:i},s:i}", "body", "cmd", 1, "time", 100));
	json_array_append_new(F->inq, json_pack("{s:{s:i},s:i}", "body", "cmd", 2, "time", 101));
	assert_int_equal(link_probe(L), 0);
	/* the pop after the first commit fails: the note is in the store and on the card */
	F->fail_delete = 5;
	assert_true(link_inbound(L) < 0);
	assert_int_equal(fake_store.n_in, 1);
	assert_int_equal(json_array_size(F->inq), 2);
	/* what is committed is announced even though the pass failed */
	struct link_ev *e = take_ev(LEV_INBOUND);
	assert_non_null(e);
	assert_int_equal(e->id, 101);
	ev_done(e);
	/* next pass: the duplicate is recognised, both end up once in the store */
	assert_int_equal(link_inbound(L), 0);
	assert_int_equal(fake_store.n_in, 2);
	assert_int_equal(json_array_size(F->inq), 0);
	assert_string_equal(fake_store.in[1].body, "{\"cmd\":2}");
	e = take_ev(LEV_INBOUND);
	assert_non_null(e);
	assert_int_equal(e->id, 102); /* the first new one of this pass */
	ev_done(e);
	assert_int_equal(L->cnt.inbound, 2);
}

/* An inbound note the gateway cannot parse (a body with \u0000, duplicate keys) is
 * moved off the card into the audit log and reported; the notes behind it arrive. */
static void test_inbound_unparseable_quarantined(void **state)
{
	json_array_append_new(F->inq, json_string("{\"body\":{\"a\":\"x\\u0000y\"},\"time\":100}"));
	json_array_append_new(F->inq, json_string("{\"body\":{\"a\":1,\"a\":2},\"time\":101}"));
	json_array_append_new(F->inq,
	                      json_pack("{s:{s:s},s:i}", "body", "write", "coil", "time", 102));
	assert_int_equal(link_probe(L), 0);
	assert_int_equal(link_inbound(L), 0); /* not a card failure */
	assert_int_equal(json_array_size(F->inq), 0);
	assert_int_equal(fake_store.n_in, 1);
	assert_string_equal(fake_store.in[0].body, "{\"write\":\"coil\"}");
	assert_int_equal(L->cnt.inbound_quarantined, 2);
	assert_int_equal(n_audited, 2);
	assert_non_null(strstr(audited[0], "inbound-quarantined data.qi"));
	assert_non_null(strstr(audited[0], "x\\u0000y")); /* the raw text is kept */
	assert_non_null(strstr(audited[1], "\"a\":1,\"a\":2"));
	int errors = 0;
	struct link_ev *e;
	while ((e = take_ev(LEV_ERROR))) {
		assert_string_equal(e->a, "inbound");
		assert_non_null(strstr(e->b, "data.qi"));
		errors++;
		ev_done(e);
	}
	assert_int_equal(errors, 2);
	link_publish_status(L);
	json_t *c = json_object_get(json_object_get(L->status, "link"), "counters");
	assert_int_equal(json_integer_value(json_object_get(c, "inbound_quarantined")), 2);
}

static void test_attn_arm(void **state)
{
	assert_int_equal(link_probe(L), 0);
	assert_int_equal(link_inbound(L), 0); /* learns data.qi from file.changes */
	assert_int_equal(link_attn_arm(L), 0);
	json_t *last = json_array_get(F->log, json_array_size(F->log) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "mode")), "arm,files,env");
	json_t *files = json_object_get(last, "files");
	assert_int_equal(json_array_size(files), 1);
	assert_string_equal(json_string_value(json_array_get(files, 0)), "data.qi");
	assert_true(L->attn_armed);
}

static void test_env(void **state)
{
	json_object_set_new(F->env, "rate", json_string("10"));
	json_object_set_new(F->env, "mode", json_string("fast"));
	F->env_time = 1000;
	assert_int_equal(link_env(L), 0);
	int n = 0;
	struct link_ev *e;
	while ((e = take_ev(LEV_ENV))) {
		n++;
		ev_done(e);
	}
	assert_int_equal(n, 2);
	/* unchanged: one cheap env.modified, no env.get */
	assert_int_equal(link_env(L), 0);
	assert_int_equal(F->env_gets, 1);
	assert_null(take_ev(LEV_ENV));
	/* one changes, one goes */
	json_object_set_new(F->env, "rate", json_string("20"));
	json_object_del(F->env, "mode");
	F->env_time = 2000;
	assert_int_equal(link_env(L), 0);
	e = take_ev(LEV_ENV);
	assert_string_equal(e->a, "rate");
	assert_string_equal(e->b, "20");
	ev_done(e);
	e = take_ev(LEV_ENV);
	assert_string_equal(e->a, "mode");
	assert_null(e->b);
	ev_done(e);
	assert_null(take_ev(LEV_ENV));
}

static void test_note_request_seal(void **state)
{
	struct link_opts o = {0};
	char plain[] = "plain.qo", fast[] = "fast.qo", data[] = "data.qo", body[] = "{\"v\":1}";
	char arr[] = "[1,2]", key[] = "uplink_pub", pl[] = "\x01\x02\x03";
	struct link_notefile nf[2] = {{plain, CFG_OFF, false}, {fast, CFG_INHERIT, true}};
	o.nf = nf;
	o.n_nf = 2;
	struct store_out n = {.id = 1, .seq = 9, .file = data, .body = body};
	json_t *req;
	/* host sealing: the envelope replaces the body, _id outside it */
	o.uplink = CFG_UPLINK_HOST;
	assert_int_equal(link_note_request(&o, &the_key, "g", &n, &req), 0);
	json_t *b = json_object_get(req, "body");
	assert_string_equal(json_string_value(json_object_get(b, "sealed")), "{\"v\":1}");
	assert_string_equal(json_string_value(json_object_get(b, "_id")), "g:9");
	assert_null(json_object_get(b, "v"));
	assert_null(json_object_get(req, "payload"));
	json_decref(req);
	/* a P-384 key: the sealed bytes go as the binary payload, only _id in the body */
	the_key.p384 = 1;
	assert_int_equal(link_note_request(&o, &the_key, "g", &n, &req), 0);
	b = json_object_get(req, "body");
	assert_int_equal(json_object_size(b), 1);
	assert_string_equal(json_string_value(json_object_get(b, "_id")), "g:9");
	assert_string_equal(json_string_value(json_object_get(req, "payload")), "U3sidiI6MX0=");
	json_decref(req);
	/* ... unless the note has a payload of its own: then the envelope body */
	n.payload = pl;
	n.payload_len = 3;
	assert_int_equal(link_note_request(&o, &the_key, "g", &n, &req), 0);
	b = json_object_get(req, "body");
	assert_string_equal(json_string_value(json_object_get(b, "sealed")), "{\"v\":1}");
	assert_string_equal(json_string_value(json_object_get(req, "payload")), "AQID");
	json_decref(req);
	n.payload = NULL;
	n.payload_len = 0;
	the_key.p384 = 0;
	/* no key loaded: refused to build rather than send plaintext */
	assert_int_equal(link_note_request(&o, NULL, "g", &n, &req), -ENOKEY);
	/* a notefile with encrypt = off goes in the clear */
	n.file = plain;
	assert_int_equal(link_note_request(&o, NULL, "g", &n, &req), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(req, "body"), "v")), 1);
	json_decref(req);
	/* card sealing: the key's name goes along */
	n.file = data;
	o.uplink = CFG_UPLINK_NOTECARD;
	o.key_name = key;
	assert_int_equal(link_note_request(&o, NULL, "g", &n, &req), 0);
	assert_string_equal(json_string_value(json_object_get(req, "key")), "uplink_pub");
	json_decref(req);
	/* urgent notefile, payload in base64 */
	o.uplink = CFG_UPLINK_OFF;
	n.file = fast;
	n.payload = pl;
	n.payload_len = 3;
	assert_int_equal(link_note_request(&o, NULL, "g", &n, &req), 0);
	assert_true(json_is_true(json_object_get(req, "sync")));
	assert_string_equal(json_string_value(json_object_get(req, "payload")), "AQID");
	json_decref(req);
	/* a stored body that is not an object */
	n.body = arr;
	assert_int_equal(link_note_request(&o, NULL, "g", &n, &req), -EINVAL);
}

static void test_status(void **state)
{
	assert_int_equal(link_probe(L), 0);
	assert_int_equal(link_refresh_status(L), 0);
	L->state = LINK_READY;
	link_publish_status(L);
	json_t *s = L->status;
	json_t *c = json_object_get(s, "notecard");
	assert_string_equal(json_string_value(json_object_get(c, "state")), "ready");
	assert_string_equal(json_string_value(json_object_get(c, "uid")), "dev:864475044204278");
	assert_string_equal(json_string_value(json_object_get(c, "sku")), "NOTE-WBNAN");
	assert_string_equal(json_string_value(json_object_get(c, "firmware")), "notecard-8.1.3");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "signal"), "bars")),
	                 3);
	assert_true(json_is_true(json_object_get(c, "connected")));
	assert_int_equal(json_integer_value(json_object_get(c, "storage_pct")), 8);
	json_t *h = json_object_get(s, "hub");
	assert_string_equal(json_string_value(json_object_get(h, "mode")), "periodic");
	assert_int_equal(json_integer_value(json_object_get(h, "last_sync")), 1700000000);
	assert_non_null(json_object_get(json_object_get(s, "link"), "counters"));
}

static void test_attn_spec(void **state)
{
	char chip[32];
	unsigned line = 99;
	assert_int_equal(attn_parse("gpiochip0:17", chip, sizeof(chip), &line), 0);
	assert_string_equal(chip, "gpiochip0");
	assert_int_equal(line, 17);
	assert_int_equal(attn_parse("/dev/gpiochip4:0", chip, sizeof(chip), &line), 0);
	assert_string_equal(chip, "/dev/gpiochip4");
	assert_int_equal(line, 0);
	const char *bad[] = {"gpiochip0",
	                     "gpiochip0:",
	                     ":17",
	                     "gpiochip0:-1",
	                     "gpiochip0:17x",
	                     "gpiochip0:99999",
	                     "a-very-long-chip-name-that-does-not-fit:1",
	                     NULL};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(attn_parse(bad[i], chip, sizeof(chip), &line), -EINVAL);
	/* no such chip here: an error the link logs before it polls instead */
	struct attn *a = NULL;
	assert_true(attn_open("gpiochip-notegw-test:3", &a) < 0);
	assert_null(a);
}

/* ---- the thread, with a card that is not there -------------------------------- */
static int replies, reply_err;
static void on_reply(void *ud, int err, const char *rsp)
{
	replies++;
	reply_err = err;
	sd_event_exit(ud, 0);
}
static int statuses;
static void on_status(void *ud)
{
	statuses++;
}

static void test_thread_absent_card(void **state)
{
	struct cfg cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.notecard.transport = CFG_TRANSPORT_SERIAL;
	char dev[] = "/dev/notecard-absent-test", path[] = "/nonexistent/store.db";
	cfg.notecard.device = dev;
	cfg.notecard.baud = 9600;
	cfg.notecard.poll_ms = 1000;
	cfg.notecard.timing_scale_pct = 5;
	cfg.hub.mode = -1;
	cfg.hub.outbound = cfg.hub.inbound = -1;
	cfg.store.path = path;
	cfg.store.card_max_pending = 25;
	sd_event *loop;
	assert_int_equal(sd_event_new(&loop), 0);
	struct link_events ev = {.status = on_status, .ud = NULL};
	struct link *l;
	assert_int_equal(link_start(loop, &cfg, &ev, &l), 0);
	/* a raw request is answered (on the loop thread) with "no device" */
	replies = 0;
	assert_int_equal(link_request(l, "{\"req\":\"card.version\"}", on_reply, loop), 0);
	assert_true(sd_event_loop(loop) >= 0);
	assert_int_equal(replies, 1);
	assert_int_equal(reply_err, -ENODEV);
	/* The thread answers the request before it publishes its new state: wait
	 * (boundedly) for the snapshot rather than race it. */
	json_t *s = NULL, *c = NULL;
	for (int i = 0; i < 500; i++) {
		json_decref(s);
		s = link_status(l);
		c = json_object_get(s, "notecard");
		const char *st = json_string_value(json_object_get(c, "state"));
		if (st && strcmp(st, "starting") != 0)
			break;
		usleep(10000);
	}
	assert_string_equal(json_string_value(json_object_get(c, "state")), "absent");
	assert_non_null(json_object_get(c, "retry_in_ms"));
	json_decref(s);
	/* a request still queued at shutdown is cancelled, not lost */
	link_free(l);
	sd_event_unref(loop);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_probe_hub_agree),
	    T(test_drain_order_id_sync),
	    T(test_card_room),
	    T(test_refused_note_does_not_block),
	    T(test_full_card_holds),
	    T(test_card_room_learned),
	    T(test_full_refusal_asks_sync),
	    T(test_marks_batched),
	    T(test_card_silent_keeps_note),
	    T(test_sealed_waits_for_key),
	    T(test_io_errors_retried),
	    T(test_inbound_crash_safe),
	    T(test_store_full_holds),
	    T(test_inbound_unparseable_quarantined),
	    T(test_attn_arm),
	    T(test_env),
	    T(test_note_request_seal),
	    T(test_status),
	    cmocka_unit_test(test_attn_spec),
	    cmocka_unit_test(test_thread_absent_card),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
