/* The link: one thread that owns the Notecard. It drains the store's outbound queue
 * into note.add, pulls inbound notes into the store (peek, commit, then delete),
 * watches ATTN or polls, keeps hub.set in agreement with [hub], and serves raw
 * requests. The main loop talks to it only through a queue and an eventfd. */
#ifndef NOTEGW_LINK_H
#define NOTEGW_LINK_H
#include "notegw/plugin.h"
#include <jansson.h>
#include <systemd/sd-event.h>

struct link;
struct cfg;

/* What the link tells the main loop (delivered on the loop thread). */
struct link_events {
	void (*inbound)(void *ud);                            /* new inbound notes stored */
	void (*env)(void *ud, const char *name, const char *value);
	void (*status)(void *ud);                             /* card/hub state changed  */
	void (*audit)(void *ud, const char *action, const char *detail); /* hub.set etc. */
	void *ud;
	/* something a user must hear of (an inbound note quarantined): the error channels */
	void (*error)(void *ud, const char *source, const char *text);
};

/* Start the thread with its own store connection and transport from cfg (borrowed
 * until link_free). Never fails for a missing card: it retries with backoff. */
int link_start(sd_event *loop, const struct cfg *cfg, const struct link_events *ev,
               struct link **out);
/* Stop the thread (finishing the transaction under way) and free. */
void link_free(struct link *l);
/* New outbound notes are committed: wake the drain. Thread-safe. */
void link_kick(struct link *l);
/* A raw request; cb runs on the loop thread with the response text. */
int link_request(struct link *l, const char *req_json, ngw_reply_cb cb, void *ud);
/* Snapshot of card, hub and link state for `notegw status` (caller decrefs). */
json_t *link_status(struct link *l);
/* New config after SIGHUP (hub settings, poll interval); copied. */
int link_reconfigure(struct link *l, const struct cfg *cfg);
#endif
