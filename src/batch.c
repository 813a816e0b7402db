/* batch.c: group commit. Producers' notes wait in memory for at most delay_ms (or
 * until BATCH_MAX are pending) and then go into the store in one transaction, so
 * one fsync serves many notes; every producer hears back only after that commit. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "log.h"
#include "store.h"
#include "util.h"

struct put {
	char *file;
	char *body;
	void *payload;
	size_t len;
	int prio;
	uint64_t bytes;
	int err;
	void (*cb)(void *ud, int err, const char *why);
	void *ud;
};

struct batch {
	sd_event *loop;
	struct store *st; /* borrowed */
	uint64_t delay_ms;
	void (*committed)(void *ud);
	void *ud;
	sd_event_source *timer; /* one-shot: the commit of the pending puts */
	struct put *v;
	size_t n, cap;
	uint64_t pending_bytes;
	bool armed;
};

static void put_clear(struct put *p)
{
	free(p->file);
	free(p->body);
	free(p->payload);
}

static const char *reason(int err)
{
	switch (err) {
	case 0:
		return NULL;
	case -ENOSPC:
		return "store full";
	case -EAGAIN:
		return "disk full";
	case -EINVAL:
		return "invalid note";
	case -EBUSY:
		return "store busy";
	default:
		return "store error";
	}
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	batch_flush(userdata);
	return 0;
}

static int arm(struct batch *b, uint64_t delay_ms)
{
	uint64_t now;
	int r = sd_event_now(b->loop, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	uint64_t when = now + delay_ms * 1000;
	if (b->armed) {
		uint64_t cur = 0;
		if (sd_event_source_get_time(b->timer, &cur) >= 0 && cur <= when)
			return 0;
	}
	if ((r = sd_event_source_set_time(b->timer, when)) < 0 ||
	    (r = sd_event_source_set_enabled(b->timer, SD_EVENT_ONESHOT)) < 0)
		return r;
	b->armed = true;
	return 0;
}

int batch_new(sd_event *loop, struct store *st, uint64_t delay_ms, void (*committed)(void *ud),
              void *ud, struct batch **out)
{
	if (!loop || !st || !out)
		return -EINVAL;
	struct batch *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->loop = sd_event_ref(loop);
	b->st = st;
	b->delay_ms = delay_ms;
	b->committed = committed;
	b->ud = ud;
	int r = sd_event_add_time(loop, &b->timer, CLOCK_MONOTONIC, 0, 0, on_timer, b);
	if (r >= 0)
		r = sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
	if (r < 0) {
		sd_event_source_unref(b->timer);
		sd_event_unref(b->loop);
		free(b);
		return r;
	}
	*out = b;
	return 0;
}

int batch_put(struct batch *b, const char *file, const char *body, const void *payload, size_t len,
              int prio, void (*cb)(void *ud, int err, const char *why), void *ud, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*why = NULL;
	if (!file || !notefile_is_outbound(file) || (len && !payload)) {
		*why = "invalid notefile";
		return -EINVAL;
	}
	uint64_t bytes = store_note_bytes(file, body, len);
	int err = store_check_room(b->st, b->pending_bytes, bytes);
	if (err < 0) {
		*why = reason(err);
		return err;
	}
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : BATCH_MAX;
		struct put *nv = realloc(b->v, nc * sizeof(*nv));
		if (!nv)
			goto oom;
		b->v = nv;
		b->cap = nc;
	}
	struct put *p = &b->v[b->n];
	memset(p, 0, sizeof(*p));
	if (!(p->file = strdup(file)) || (body && !(p->body = strdup(body))) ||
	    (len && !(p->payload = malloc(len)))) {
		put_clear(p);
		goto oom;
	}
	if (len)
		memcpy(p->payload, payload, len);
	p->len = len;
	p->prio = prio;
	p->bytes = bytes;
	p->cb = cb;
	p->ud = ud;
	b->n++;
	b->pending_bytes += bytes;
	err = arm(b, b->n >= BATCH_MAX ? 0 : b->delay_ms);
	if (err < 0) {
		/* Without a timer nothing would ever commit it: do it now rather than
		 * leave the producer waiting (callbacks run later, from the flush). */
		log_warn("batch: cannot arm commit timer: %s", strerror(-err));
		b->n--;
		b->pending_bytes -= bytes;
		put_clear(p);
		*why = "store error";
		return err;
	}
	return 0;
oom:
	*why = "out of memory";
	return -ENOMEM;
}

void batch_flush(struct batch *b)
{
	/* Take the pending list: callbacks may put again, into a fresh list. */
	struct put *v = b->v;
	size_t n = b->n, accepted = 0;
	b->v = NULL;
	b->n = b->cap = 0;
	b->pending_bytes = 0;
	if (b->armed) {
		sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
		b->armed = false;
	}
	if (n == 0) {
		free(v);
		return;
	}
	int cerr = store_begin(b->st);
	if (cerr == 0) {
		for (size_t i = 0; i < n; i++)
			v[i].err = store_enqueue(b->st, v[i].file, v[i].body, v[i].payload,
			                         v[i].len, v[i].prio, NULL);
		cerr = store_commit(b->st);
	}
	if (cerr < 0 && cerr != -EAGAIN) /* a full disk: the store says so once */
		log_warn("batch: %zu note(s) not accepted: %s", n, strerror(-cerr));
	for (size_t i = 0; i < n; i++) {
		int err = cerr < 0 ? cerr : v[i].err;
		if (err == 0)
			accepted++;
		if (v[i].cb)
			v[i].cb(v[i].ud, err, reason(err));
		put_clear(&v[i]);
	}
	free(v);
	if (accepted && b->committed)
		b->committed(b->ud);
}

size_t batch_pending(struct batch *b)
{
	return b->n;
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	batch_flush(b);
	sd_event_source_disable_unref(b->timer);
	sd_event_unref(b->loop);
	free(b->v);
	free(b);
}
