/* Health notes on a timer and on state change; see health.h. Reads the running
 * [health] settings at each turn, so a reload changes the interval or turns the
 * notes on and off without restarting anything. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cfg.h"
#include "fleet.h"
#include "gw.h"
#include "health.h"
#include "health_note.h"
#include "log.h"
#include "status.h"
#include "submit.h"
#include "util.h"

struct health {
	struct gw *gw;
	sd_event_source *timer;
	uint64_t last_ms; /* monotonic, 0: none sent */
	char *state;      /* what the last note's state was made of */
	bool pending;     /* a state change waits for the minimum gap */
	bool stalled;     /* a note was due but could not be made (no store yet) */
	unsigned long long sent;
};

static uint64_t disk_free(const struct cfg *cfg)
{
	struct statvfs v;
	if (!cfg->store.path || statvfs(cfg->store.path, &v) < 0)
		return 0;
	return (uint64_t)v.f_bavail * v.f_frsize;
}

static void put_done(void *ud, int err, const char *why)
{
	if (err < 0)
		log_warn("health: a note was not queued: %s", why ? why : strerror(-err));
}

static void send_note(struct health *h, json_t *body, char *state)
{
	struct gw *gw = h->gw;
	const char *why = NULL;
	if (submit_note_obj(&gw->submit, "health", gw->cfg->health.notefile, body, NULL, 0,
	                    put_done, NULL, &why) < 0)
		log_warn("health: a note was not queued: %s", why ? why : "?");
	free(h->state);
	h->state = state;
	h->last_ms = now_ms();
	h->pending = false;
	h->sent++;
}

/* A note when the interval is up, or when the state changed (changed: a status
 * push) and the minimum gap has passed; a tick with neither costs no snapshot. */
static void turn(struct health *h, bool changed)
{
	struct gw *gw = h->gw;
	const struct cfg *cfg = gw->cfg;
	h->stalled = false;
	if (!cfg || cfg->health.interval_ms == 0)
		return;
	uint64_t now = now_ms();
	bool due = h->last_ms == 0 || now - h->last_ms >= cfg->health.interval_ms;
	if (!due && !changed && !h->pending)
		return;
	if (!gw->store) {
		h->stalled = due;
		return;
	}
	json_t *st = status_snapshot(gw);
	json_t *body =
	    health_note_body(st, disk_free(cfg), fleet_revision(gw->fleet), gw->last_error);
	json_decref(st);
	char *state = body ? health_note_state(body) : NULL;
	if (state && changed && (!h->state || strcmp(state, h->state) != 0))
		h->pending = true;
	if (state && (due || (h->pending && now - h->last_ms >= HEALTH_MIN_GAP_S * 1000ULL))) {
		send_note(h, body, state);
		state = NULL;
	} else if (!state && due) {
		h->stalled = true;
	}
	free(state);
	json_decref(body);
}

/* Sleep until the next note is due: the interval after the last one, or the end of
 * the minimum gap when a state change waits; with the notes off, until a reload. An
 * idle gateway is not woken to find that nothing is due. */
static void schedule(struct health *h)
{
	const struct cfg *cfg = h->gw->cfg;
	if (!cfg || cfg->health.interval_ms == 0) {
		sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
		return;
	}
	uint64_t at = h->last_ms + cfg->health.interval_ms;
	if (h->pending && h->last_ms + HEALTH_MIN_GAP_S * 1000ULL < at)
		at = h->last_ms + HEALTH_MIN_GAP_S * 1000ULL;
	uint64_t now = now_ms();
	uint64_t in_ms = h->last_ms == 0 || at <= now ? 0 : at - now;
	if (h->stalled)
		in_ms = 1000; /* due, but nothing to make it from yet: try again in a second */
	sd_event_source_set_time_relative(h->timer, in_ms * 1000ULL);
	sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *ud)
{
	struct health *h = ud;
	turn(h, false);
	schedule(h);
	return 0;
}

void health_poke(struct health *h)
{
	if (!h)
		return;
	turn(h, true);
	schedule(h);
}

static void status_pushed(void *ud)
{
	health_poke(ud);
}

void health_reconfigured(struct health *h)
{
	if (!h)
		return;
	turn(h, false);
	schedule(h);
}

int health_new(struct gw *gw, struct health **out)
{
	struct health *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->gw = gw;
	int r = sd_event_add_time_relative(gw->loop, &h->timer, CLOCK_MONOTONIC, 0, 0, on_tick, h);
	if (r < 0) {
		free(h);
		return r;
	}
	schedule(h);
	gw->status_pushed = status_pushed;
	gw->status_pushed_ud = h;
	*out = h;
	return 0;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	if (h->gw->status_pushed_ud == h) {
		h->gw->status_pushed = NULL;
		h->gw->status_pushed_ud = NULL;
	}
	sd_event_source_disable_unref(h->timer);
	free(h->state);
	free(h);
}
