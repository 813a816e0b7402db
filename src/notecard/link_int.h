/* Internal to the link: its state, shared by the thread and event glue (link.c),
 * the conversation with the card (link_card.c) and the note.add builder
 * (link_note.c). Fields under `mu` are touched by both threads; the rest belongs
 * to the link thread alone. */
#ifndef NOTEGW_NOTECARD_LINK_INT_H
#define NOTEGW_NOTECARD_LINK_INT_H
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "link.h"
#include "notecard/card.h"
#include "notecard/timing.h"

struct store;
struct store_out;
struct crypto_key;
struct attn;
struct link_tmpl;

/* What the link needs of the configuration, copied so the main thread can
 * reload and free its cfg while the link thread works. */
struct link_notefile {
	char *name;
	int encrypt; /* enum cfg_tristate */
	bool urgent;
	char *template_; /* "off", "auto" or a path (link_tmpl.c) */
	unsigned learn;
	bool ntn;
};

struct link_opts {
	int transport; /* enum cfg_transport */
	char *device;
	unsigned address, baud;
	char *attn;
	uint64_t poll_ms;
	unsigned timing_pct;
	char *hub_product, *hub_mode, *hub_sn;
	long long hub_outbound, hub_inbound; /* -1 unset */
	char *store_path;
	uint64_t store_max_size;
	int store_when_full;
	unsigned card_max_pending;
	int uplink; /* enum cfg_uplink */
	char *public_key, *key_name;
	struct link_notefile *nf;
	size_t n_nf;
};

int link_opts_from_cfg(const struct cfg *cfg, struct link_opts *o);
void link_opts_clear(struct link_opts *o);

/* Encryption actually applied to a notefile's notes. */
enum link_seal { LINK_SEAL_NONE, LINK_SEAL_HOST, LINK_SEAL_CARD };
enum link_seal link_seal_for(const struct link_opts *o, const char *file);

/* The one place a store note becomes a note.add request: the seam for templates.
 * pub may be NULL unless the notefile is sealed on the host. *req caller decrefs.
 * -EINVAL for a body that is not a JSON object, -ENOKEY when sealing is asked for
 * without a key, or crypto_seal's error. */
int link_note_request(const struct link_opts *o, const struct crypto_key *pub,
                      const char *gateway_id, const struct store_out *n, json_t **req);

/* Events for the loop thread. */
enum link_ev_kind { LEV_INBOUND, LEV_ENV, LEV_STATUS, LEV_AUDIT, LEV_REPLY, LEV_ERROR };
struct link_ev {
	struct link_ev *next;
	enum link_ev_kind kind;
	int64_t id;
	char *a, *b; /* env name/value, audit action/detail, error source/text, reply text */
	int err;
	ngw_reply_cb cb;
	void *ud;
};

struct link_req {
	struct link_req *next;
	char *text;
	ngw_reply_cb cb;
	void *ud;
};

enum link_state { LINK_STARTING, LINK_READY, LINK_ABSENT, LINK_SILENT, LINK_STORE_DOWN };

struct link_counters {
	uint64_t notes_sent, notes_failed, notes_dropped, inbound, env_changes, hub_sets, attn,
	    raw_requests, probes, inbound_quarantined, syncs_asked, mark_commits;
};

struct link {
	/* ---- shared, under mu ---- */
	pthread_mutex_t mu;
	struct link_req *reqs, **reqs_tail;
	struct link_ev *evs, **evs_tail;
	bool stop, kicked, reconfig;
	_Atomic bool cancel;        /* the transport's cancel flag: set by link_free */
	struct link_opts next_opts; /* from link_reconfigure, taken by the thread */
	json_t *status;             /* snapshot for link_status */
	/* the card request in progress: since when (mono ms, 0: none), what, and how long
	 * its answer may take; a card that lets that pass is shown as not answering
	 * (link_status) and logged (the loop's watch) while the thread still waits */
	uint64_t ask_since;
	unsigned ask_limit_ms;
	char ask_name[32];
	bool ask_overdue; /* said so */
	/* the watch sleeps while the link thread does (idle, no request): it is woken
	 * through loop_efd (watch_wake) when the thread wakes */
	bool thread_idle, watch_parked, watch_wake;

	/* ---- loop thread ---- */
	sd_event *loop;
	sd_event_source *ev_src;
	sd_event_source *watch_src; /* checks ask_since once a second, while the thread works */
	struct link_events cbs;
	int loop_efd; /* link → loop */

	/* ---- link thread ---- */
	pthread_t thread;
	bool thread_started;
	int wake_efd;       /* loop → link */
	int store_ino;      /* inotify on the store's directory (-1: poll the store instead) */
	bool store_changed; /* it said so: look now and once more a second later */
	struct link_opts o;
	struct card_timing timing;
	struct card *card;
	struct store *st;
	struct crypto_key *pub;
	struct attn *attn;
	enum link_state state;
	int last_err;
	uint64_t backoff_ms, retry_at;
	/* card facts */
	json_t *version, *hub, *wireless, *sync_status, *card_status, *env;
	int64_t env_modified;
	bool env_known;
	/* outbound: the card's room, learned from what it reports (link_card.c) */
	int64_t pending_on_card; /* notes added and not yet synced (estimate) */
	bool card_full;
	int full_why; /* enum in link_card.c: what made it full */
	uint64_t full_recheck_at, full_backoff_ms;
	int64_t storage_pct;       /* card.status storage at the last look, -1 unknown */
	unsigned notes_since_look; /* note.adds since storage was looked at */
	unsigned look_next;        /* ... and how many before the next look (0: the first) */
	bool sync_asked;           /* hub.sync asked at sync_asked_at */
	uint64_t sync_asked_at;
	/* sent marks waiting in the store for one commit (store_out_sent_later) */
	unsigned mark_batch; /* marks per commit now: grows after each good commit */
	uint64_t marks_since;
	int64_t last_mark_id, last_mark_seq;
	int64_t fail_id; /* the note failing semantically, and how often */
	unsigned fail_count;
	bool key_warned; /* said once that sealed notes wait for a key */
	/* The store cannot be written (a full disk): not the card's failure. The link
	 * keeps the card, stops taking notes out and in, and tries again with backoff;
	 * sent_id is a note the card took whose "sent" mark is still to commit. */
	struct {
		int err; /* 0: writable (as far as the link knows) */
		int64_t sent_id, sent_seq;
		uint64_t since_ms, retry_at, backoff_ms;
		unsigned events; /* store failures met, to tell a clean pass */
	} hold;
	/* inbound */
	char **in_files;
	size_t n_in_files;
	bool attn_armed, db_started;
	uint64_t next_inbound, next_env, next_status, next_store_check;
	struct link_counters cnt;
	struct link_tmpl *tmpl; /* note templates, built on first use (link_tmpl.c) */
};

/* link_card.c: one step each, on the link thread; -ENODEV/-ETIMEDOUT/-EIO mean the
 * card is gone or silent (the thread then backs off). */
int link_probe(struct link *l);
int link_drain(struct link *l, unsigned max_notes, bool *more);
int link_inbound(struct link *l);
int link_env(struct link *l);
int link_refresh_status(struct link *l);
int link_attn_arm(struct link *l);
/* The store failed (r < 0) on a write the link needs: hold (see struct link's hold).
 * sent_id/sent_seq: the note the card just took, or 0. Logged once per hold. */
void link_store_trouble(struct link *l, int r, int64_t sent_id, int64_t sent_seq);
/* Before store work: false while held (not yet time to retry, or the pending mark
 * still fails). */
bool link_store_ready(struct link *l);
/* After a pass of store work that met no failure: the hold, if any, is over. */
void link_store_settled(struct link *l, unsigned events_before);
int link_raw(struct link *l, const char *text, char **rsp);
/* card_request with the request in progress noted for the watch (ask_since). */
int link_card_request(struct link *l, json_t *req, json_t **rsp);
void link_publish_status(struct link *l);
/* link_tmpl.c: note templates around each note.add. prepare decides how the built
 * request goes (sending note.template first when the card must learn or forget a
 * template); -ENODEV/-ETIMEDOUT/-EIO as above. */
struct link_tmpl_note {
	bool templated;
	size_t json, air; /* bytes of the note as JSON and as sent */
};
int link_tmpl_prepare(struct link *l, const struct store_out *n, json_t *req,
                      struct link_tmpl_note *tn);
void link_tmpl_sent(struct link *l, const char *file, const struct link_tmpl_note *tn);
void link_tmpl_refused(struct link *l, const char *file, const char *err);
void link_tmpl_card_reset(struct link *l); /* after a probe: the card may hold anything */
json_t *link_tmpl_status(struct link *l);  /* new reference */
void link_tmpl_free(struct link *l);
/* Queue an event for the loop thread (link.c). Strings are copied. */
void link_emit(struct link *l, enum link_ev_kind kind, int64_t id, const char *a, const char *b);
#endif
