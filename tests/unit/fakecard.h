/* A small Notecard model behind a fake transport, for the link's unit tests and
 * the bench: it checks each request's crc field, answers with its own, keeps
 * notefiles, hub settings and environment variables, and injects faults. */
#ifndef NOTEGW_TEST_FAKECARD_H
#define NOTEGW_TEST_FAKECARD_H
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fakeclock.h"
#include "notecard/card.h"

struct fakecard {
	struct fakeclock clk;
	struct card_timing tm;
	json_t *hub;   /* hub.get answer */
	json_t *added; /* array of note.add requests received */
	json_t *inq;   /* array of inbound notes in data.qi (a string: raw answer text) */
	json_t *env;   /* env vars */
	long long env_time;
	long long pending; /* unsynced notes */
	int hub_sets, env_gets, attn_arms, requests;
	bool full;       /* note.add answers {file-storage-full} */
	int storage;     /* card.status storage percent (0: 8) */
	int syncs;       /* hub.sync requests */
	int fail_delete; /* fail this many note.get delete:true with a timeout */
	int fail_all;    /* every request: timeout */
	int io_every;    /* every n-th request answers {io} (0: never) */
	json_t *log;     /* every request, in order */
	char rsp[65536];
	size_t rsp_len;
	int rsp_err;
	bool have_rsp;
};

static inline json_t *fc_answer(struct fakecard *f, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "req"));
	if (!name)
		return NULL;
	if (f->io_every && f->requests % f->io_every == 0)
		return json_pack("{s:s}", "err", "injected {io}");
	if (!strcmp(name, "card.version"))
		return json_pack("{s:s,s:s,s:s}", "device", "dev:864475044204278", "sku",
		                 "NOTE-WBNAN", "version", "notecard-8.1.3");
	if (!strcmp(name, "hub.get"))
		return json_deep_copy(f->hub);
	if (!strcmp(name, "hub.set")) {
		f->hub_sets++;
		const char *k;
		json_t *v;
		json_object_foreach(req, k, v) if (strcmp(k, "req") && strcmp(k, "crc"))
		    json_object_set(f->hub, k, v);
		return json_object();
	}
	if (!strcmp(name, "file.changes.pending"))
		return f->pending ? json_pack("{s:I,s:I,s:b}", "total", (json_int_t)f->pending,
		                              "changes", (json_int_t)f->pending, "pending", 1)
		                  : json_object();
	if (!strcmp(name, "note.add")) {
		const char *file = json_string_value(json_object_get(req, "file"));
		if (file && strstr(file, "bad"))
			return json_pack("{s:s}", "err", "bad notefile name {notefile-bad-name}");
		if (f->full)
			return json_pack("{s:s}", "err", "no room {file-storage-full}");
		json_array_append(f->added, req);
		f->pending++;
		return json_pack("{s:i}", "total", (int)f->pending);
	}
	if (!strcmp(name, "file.changes")) {
		size_t n = json_array_size(f->inq);
		return json_pack("{s:{s:{s:i,s:i},s:{s:i}}}", "info", "data.qi", "changes", (int)n,
		                 "total", (int)n, "data.qo", "total", 0);
	}
	if (!strcmp(name, "note.get")) {
		if (json_array_size(f->inq) == 0)
			return json_pack("{s:s}", "err", "no note is available {note-noexist}");
		json_t *n = json_deep_copy(json_array_get(f->inq, 0));
		if (json_is_true(json_object_get(req, "delete"))) {
			if (f->fail_delete > 0) {
				f->fail_delete--;
				json_decref(n);
				return NULL; /* silence: a timeout */
			}
			json_array_remove(f->inq, 0);
		}
		return n;
	}
	if (!strcmp(name, "env.modified"))
		return json_pack("{s:I}", "time", (json_int_t)f->env_time);
	if (!strcmp(name, "env.get")) {
		f->env_gets++;
		return json_pack("{s:O}", "body", f->env);
	}
	if (!strcmp(name, "card.wireless"))
		return json_pack("{s:s,s:{s:i,s:i,s:s}}", "status", "{modem-on}", "net", "bars", 3,
		                 "rssi", -71, "rat", "lte");
	if (!strcmp(name, "hub.sync.status"))
		return json_pack("{s:s,s:i,s:i}", "status", "completed {sync-end}", "time",
		                 1700000000, "completed", 42);
	if (!strcmp(name, "card.status"))
		return json_pack("{s:s,s:b,s:i}", "status", "{normal}", "connected", 1, "storage",
		                 f->storage ? f->storage : 8);
	if (!strcmp(name, "hub.sync")) {
		f->syncs++;
		return json_object();
	}
	if (!strcmp(name, "card.attn")) {
		f->attn_arms++;
		return json_object();
	}
	return json_pack("{s:s}", "err", "unknown request {not-supported}");
}

static inline int fc_open(struct card_transport *t)
{
	return 0;
}
static inline void fc_close(struct card_transport *t)
{
}
static inline int fc_reset(struct card_transport *t)
{
	struct fakecard *f = t->priv;
	f->have_rsp = false;
	return 0;
}
static inline int fc_send(struct card_transport *t, const char *buf, size_t len)
{
	struct fakecard *f = t->priv;
	char line[65536];
	if (len >= sizeof(line) || buf[len - 1] != '\n')
		return -EMSGSIZE;
	memcpy(line, buf, len - 1);
	size_t n = len - 1;
	line[n] = 0;
	f->requests++;
	f->have_rsp = false;
	/* every req carries a correct crc field: check it as a card would */
	int seq = -1;
	const char *c = strstr(line, ",\"crc\":\"");
	if (!c)
		c = strstr(line, "{\"crc\":\"");
	if (c) {
		seq = (int)strtol(strchr(c, ':') + 2, NULL, 16);
		if (card_crc_check(line, &n, (uint16_t)seq) != 0)
			return -EIO; /* test failure surfaces as an error */
	}
	json_t *req = json_loadb(line, n, 0, NULL);
	if (!req)
		return -EIO;
	json_array_append(f->log, req);
	json_t *rsp = f->fail_all ? NULL : fc_answer(f, req);
	bool is_req = json_object_get(req, "req") != NULL;
	json_decref(req);
	if (!is_req || !rsp) {
		json_decref(rsp);
		return 0;
	}
	/* a string in inq is an answer's raw text, sent as it is (what jansson refuses) */
	char *text =
	    json_is_string(rsp) ? strdup(json_string_value(rsp)) : json_dumps(rsp, JSON_COMPACT);
	json_decref(rsp);
	f->rsp_len = card_crc_append(text, strlen(text), (uint16_t)seq, f->rsp, sizeof(f->rsp));
	free(text);
	f->have_rsp = f->rsp_len > 0;
	return 0;
}
static inline int fc_recv(struct card_transport *t, char *buf, size_t cap, size_t *len,
                          unsigned first_ms)
{
	struct fakecard *f = t->priv;
	if (!f->have_rsp) {
		fakeclock_sleep_us(&f->clk, (uint64_t)first_ms * 1000);
		return -ETIMEDOUT;
	}
	f->have_rsp = false;
	if (f->rsp_len + 1 > cap)
		return -EMSGSIZE;
	memcpy(buf, f->rsp, f->rsp_len);
	buf[f->rsp_len] = 0;
	*len = f->rsp_len;
	return 0;
}
static inline void fc_free(struct card_transport *t)
{
	free(t);
}
static const struct card_transport_ops fakecard_ops = {"fakecard", fc_open, fc_close, fc_reset,
                                                       fc_send,    fc_recv, fc_free};

static inline void fakecard_init(struct fakecard *f)
{
	memset(f, 0, sizeof(*f));
	fakeclock_init(&f->clk);
	f->tm = card_timing_default;
	f->hub = json_pack("{s:s,s:s}", "product", "com.example.user:gw", "mode", "periodic");
	f->added = json_array();
	f->inq = json_array();
	f->env = json_object();
	f->log = json_array();
}

static inline void fakecard_clear(struct fakecard *f)
{
	json_decref(f->hub);
	json_decref(f->added);
	json_decref(f->inq);
	json_decref(f->env);
	json_decref(f->log);
}

/* A card on top of it (the transport is owned by the card). */
static inline struct card *fakecard_card(struct fakecard *f)
{
	struct card_transport *t = calloc(1, sizeof(*t));
	t->ops = &fakecard_ops;
	t->timing = &f->tm;
	t->clock = &f->clk.clock;
	t->priv = f;
	struct card *c = NULL;
	if (card_new(t, &c) < 0)
		free(t);
	return c;
}

/* How many logged requests were named name. */
static inline int fakecard_count(struct fakecard *f, const char *name)
{
	int n = 0;
	size_t i;
	json_t *r;
	json_array_foreach(f->log, i, r)
	{
		if (!strcmp(json_string_value(json_object_get(r, "req")) ?: "", name))
			n++;
	}
	return n;
}
#endif
