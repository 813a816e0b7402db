/* The link thread and its hand-offs: the only owner of the Notecard. The loop
 * thread gives it raw requests and kicks through a queue and an eventfd; it gives
 * the loop thread events and replies the same way, delivered by an sd-event io
 * source, so every callback runs on the loop thread. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cfg.h"
#include "crypto.h"
#include "log.h"
#include "notecard/attn.h"
#include "notecard/link_int.h"
#include "store.h"

#define BACKOFF_MIN_MS  1000
#define BACKOFF_MAX_MS  30000
#define STORE_CHECK_MS  1000 /* without inotify, look this often: another process may enqueue */
#define STATUS_EVERY_MS 60000
/* With ATTN the card says when there is something to read, and an idle gateway does not
 * wake at all; it still looks this often in case an edge was lost. */
#define ATTN_FALLBACK_MS (3600 * 1000)
#define ENV_MIN_MS       5000
#define DRAIN_BATCH      16 /* notes per turn, so raw requests never wait long */

/* ---- options ------------------------------------------------------------------- */
static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int link_opts_from_cfg(const struct cfg *cfg, struct link_opts *o)
{
	memset(o, 0, sizeof(*o));
	const struct cfg_notecard *nc = &cfg->notecard;
	o->transport = nc->transport;
	o->device = dup_or_null(nc->device);
	o->address = (unsigned)nc->address;
	o->baud = nc->baud > 0 ? (unsigned)nc->baud : 9600;
	o->attn = dup_or_null(nc->attn);
	o->poll_ms = nc->poll_ms ? nc->poll_ms : 15000;
	o->timing_pct = nc->timing_scale_pct > 0 ? (unsigned)nc->timing_scale_pct : 100;
	o->hub_product = dup_or_null(cfg->hub.product);
	o->hub_mode = cfg->hub.mode >= 0 ? dup_or_null(cfg_hub_modes[cfg->hub.mode]) : NULL;
	o->hub_sn = dup_or_null(cfg->hub.sn);
	o->hub_outbound = cfg->hub.outbound;
	o->hub_inbound = cfg->hub.inbound;
	o->store_path = dup_or_null(cfg->store.path);
	o->store_max_size = cfg->store.max_size;
	o->store_when_full = cfg->store.when_full;
	/* 0: as many as the card's storage takes (link_card.c learns it) */
	o->card_max_pending =
	    cfg->store.card_max_pending > 0 ? (unsigned)cfg->store.card_max_pending : 0;
	o->uplink = cfg->crypto.uplink;
	o->public_key = dup_or_null(cfg->crypto.public_key);
	o->key_name = dup_or_null(cfg->crypto.key_name);
	if (cfg->n_notefiles) {
		o->nf = calloc(cfg->n_notefiles, sizeof(*o->nf));
		if (!o->nf)
			goto nomem;
		for (size_t i = 0; i < cfg->n_notefiles; i++) {
			o->nf[i].name = strdup(cfg->notefiles[i].name);
			if (!o->nf[i].name)
				goto nomem;
			o->nf[i].encrypt = cfg->notefiles[i].encrypt;
			o->nf[i].urgent = cfg->notefiles[i].urgent;
			o->nf[i].learn =
			    cfg->notefiles[i].learn > 0 ? (unsigned)cfg->notefiles[i].learn : 10;
			o->nf[i].ntn = cfg->notefiles[i].ntn;
			if (cfg->notefiles[i].template_ &&
			    !(o->nf[i].template_ = strdup(cfg->notefiles[i].template_))) {
				free(o->nf[i].name);
				goto nomem;
			}
			o->n_nf++;
		}
	}
	if (!o->device || !o->store_path)
		goto nomem;
	return 0;
nomem:
	link_opts_clear(o);
	return -ENOMEM;
}

void link_opts_clear(struct link_opts *o)
{
	free(o->device);
	free(o->attn);
	free(o->hub_product);
	free(o->hub_mode);
	free(o->hub_sn);
	free(o->store_path);
	free(o->public_key);
	free(o->key_name);
	for (size_t i = 0; i < o->n_nf; i++) {
		free(o->nf[i].name);
		free(o->nf[i].template_);
	}
	free(o->nf);
	memset(o, 0, sizeof(*o));
}

/* ---- events to the loop thread ------------------------------------------------ */
static void efd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t k = write(fd, &one, sizeof(one));
	(void)k; /* a full counter already means "wake up" */
}

static void efd_clear(int fd)
{
	uint64_t v;
	ssize_t k = read(fd, &v, sizeof(v));
	(void)k;
}

static void ev_free(struct link_ev *e)
{
	free(e->a);
	free(e->b);
	free(e);
}

static void push_ev(struct link *l, struct link_ev *e)
{
	pthread_mutex_lock(&l->mu);
	*l->evs_tail = e;
	l->evs_tail = &e->next;
	pthread_mutex_unlock(&l->mu);
	efd_signal(l->loop_efd);
}

void link_emit(struct link *l, enum link_ev_kind kind, int64_t id, const char *a, const char *b)
{
	struct link_ev *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->kind = kind;
	e->id = id;
	e->a = dup_or_null(a);
	e->b = dup_or_null(b);
	if ((a && !e->a) || (b && !e->b)) {
		ev_free(e);
		return;
	}
	push_ev(l, e);
}

static void reply(struct link *l, struct link_req *q, int err, char *text /* stolen */)
{
	struct link_ev *e = calloc(1, sizeof(*e));
	if (!e) {
		free(text);
		return; /* the caller's reply is lost only if memory is */
	}
	e->kind = LEV_REPLY;
	e->err = err;
	e->b = text;
	e->cb = q->cb;
	e->ud = q->ud;
	push_ev(l, e);
}

static void dispatch(struct link *l)
{
	pthread_mutex_lock(&l->mu);
	struct link_ev *e = l->evs;
	l->evs = NULL;
	l->evs_tail = &l->evs;
	pthread_mutex_unlock(&l->mu);
	while (e) {
		struct link_ev *next = e->next;
		const struct link_events *c = &l->cbs;
		switch (e->kind) {
		case LEV_INBOUND:
			if (c->inbound)
				c->inbound(c->ud);
			break;
		case LEV_ENV:
			if (c->env)
				c->env(c->ud, e->a, e->b);
			break;
		case LEV_STATUS:
			if (c->status)
				c->status(c->ud);
			break;
		case LEV_AUDIT:
			if (c->audit)
				c->audit(c->ud, e->a, e->b);
			break;
		case LEV_REPLY:
			if (e->cb)
				e->cb(e->ud, e->err, e->b);
			break;
		case LEV_ERROR:
			if (c->error)
				c->error(c->ud, e->a, e->b);
			break;
		}
		ev_free(e);
		e = next;
	}
}

static int on_loop_efd(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct link *l = ud;
	efd_clear(fd);
	pthread_mutex_lock(&l->mu);
	bool wake = l->watch_wake;
	l->watch_wake = false;
	pthread_mutex_unlock(&l->mu);
	if (wake) {
		sd_event_source_set_time_relative(l->watch_src, 1000000);
		sd_event_source_set_enabled(l->watch_src, SD_EVENT_ONESHOT);
	}
	dispatch(l);
	return 0;
}

/* ---- the thread ----------------------------------------------------------------- */
static uint64_t mono_ms(void)
{
	return card_clock_real.now_ms(NULL);
}

/* How long the request in progress has waited beyond its answer's time, or 0; the
 * caller holds mu. name gets what it is. */
static uint64_t overdue_ms(struct link *l, char *name, size_t cap)
{
	if (!l->ask_since)
		return 0;
	uint64_t waited = mono_ms() - l->ask_since;
	if (waited < l->ask_limit_ms)
		return 0;
	snprintf(name, cap, "%s", l->ask_name);
	return waited;
}

/* The loop's watch over a card that answers nothing: the link thread is stuck in
 * the request, so it is the loop that says so, once per request. */
static int on_watch(sd_event_source *s, uint64_t usec, void *ud)
{
	struct link *l = ud;
	char name[32];
	pthread_mutex_lock(&l->mu);
	uint64_t waited = overdue_ms(l, name, sizeof(name));
	bool say = waited && !l->ask_overdue;
	if (say)
		l->ask_overdue = true;
	/* nothing to watch while the thread sleeps: sleep too, until it wakes */
	bool park = !l->ask_since && l->thread_idle;
	l->watch_parked = park;
	pthread_mutex_unlock(&l->mu);
	if (say)
		log_warn("card: no answer to %s for %llu ms on %s: the card is not answering "
		         "(still retrying)",
		         name, (unsigned long long)waited, l->o.device ? l->o.device : "?");
	if (park)
		return 0;
	sd_event_source_set_time_relative(s, 1000000);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

static int make_card(struct link *l)
{
	struct card_transport *t = NULL;
	int r;
	if (l->o.transport == CFG_TRANSPORT_I2C)
		r = card_transport_i2c_new(l->o.device, l->o.address ? l->o.address : 0x17,
		                           &l->timing, &card_clock_real, &t);
	else
		r = card_transport_serial_new(l->o.device, l->o.baud, &l->timing, &card_clock_real,
		                              &t);
	if (r < 0)
		return r;
	t->cancel = &l->cancel;
	r = card_new(t, &l->card);
	if (r < 0)
		card_transport_free(t);
	return r;
}

static void set_state(struct link *l, enum link_state s)
{
	if (l->state == s)
		return;
	l->state = s;
	/* published before any reply that follows, so a caller sees the new state */
	link_publish_status(l);
	link_emit(l, LEV_STATUS, 0, NULL, NULL);
}

/* The card is gone or silent: close it and try again later, doubling the wait. */
static void lost(struct link *l, int r)
{
	/* Every failure visible, once per kind: a card that never came up says why too. */
	if (l->state == LINK_READY || l->last_err != r)
		log_warn("card: %s on %s%s; retrying with backoff", strerror(-r), l->o.device,
		         r == -EBUSY ? " (another process holds it exclusively)" : "");
	l->last_err = r;
	if (l->card)
		card_close(l->card);
	l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (l->backoff_ms > BACKOFF_MAX_MS)
		l->backoff_ms = BACKOFF_MAX_MS;
	l->retry_at = mono_ms() + l->backoff_ms;
	/* a device that cannot be opened at all is absent; one that opens and then
	 * fails to answer is silent */
	enum link_state s = LINK_SILENT;
	if (r == -ENODEV || r == -ENOENT || r == -EACCES || r == -EPERM || r == -EBUSY)
		s = LINK_ABSENT;
	else if (r == -ESTALE)
		s = LINK_STORE_DOWN;
	set_state(l, s);
}

static void take_reconfig(struct link *l)
{
	pthread_mutex_lock(&l->mu);
	bool have = l->reconfig;
	struct link_opts n = l->next_opts;
	if (have)
		memset(&l->next_opts, 0, sizeof(l->next_opts));
	l->reconfig = false;
	pthread_mutex_unlock(&l->mu);
	if (!have)
		return;
	bool new_card = n.transport != l->o.transport || strcmp(n.device, l->o.device) != 0 ||
	                n.address != l->o.address || n.baud != l->o.baud ||
	                n.timing_pct != l->o.timing_pct;
	link_opts_clear(&l->o);
	l->o = n;
	/* the key may have been fixed: load it again */
	crypto_key_free(l->pub);
	l->pub = NULL;
	l->key_warned = false;
	link_tmpl_free(l); /* rebuilt from the new notefile settings on next use */
	if (new_card) {
		card_free(l->card);
		l->card = NULL;
		card_timing_scaled(&l->timing, l->o.timing_pct);
	}
	/* hub settings may differ now: probe again, which agrees hub.set */
	l->state = LINK_STARTING;
	l->retry_at = 0;
	l->backoff_ms = 0;
}

static void serve_requests(struct link *l)
{
	for (;;) {
		pthread_mutex_lock(&l->mu);
		struct link_req *q = l->reqs;
		if (q) {
			l->reqs = q->next;
			if (!l->reqs)
				l->reqs_tail = &l->reqs;
		}
		pthread_mutex_unlock(&l->mu);
		if (!q)
			return;
		char *rsp = NULL;
		int r = l->state == LINK_READY    ? link_raw(l, q->text, &rsp)
		        : l->state == LINK_SILENT ? -ETIMEDOUT
		                                  : -ENODEV;
		reply(l, q, r, rsp);
		if (l->state == LINK_READY && (r == -ENODEV || r == -ETIMEDOUT || r == -EIO))
			lost(l, r);
		free(q->text);
		free(q);
	}
}

static int open_store(struct link *l)
{
	if (l->st)
		return 0;
	struct store_opts so = {
	    .max_size = l->o.store_max_size,
	    .when_full =
	        l->o.store_when_full == CFG_REFUSE_NEW ? STORE_REFUSE_NEW : STORE_DROP_OLDEST,
	};
	int r = store_open(l->o.store_path, &so, &l->st);
	if (r < 0)
		log_err("link: cannot open the store %s: %s", l->o.store_path, strerror(-r));
	return r;
}

static void open_key(struct link *l)
{
	if (l->pub || !l->o.public_key)
		return;
	int r = crypto_key_load_public(l->o.public_key, &l->pub);
	if (r < 0)
		log_err("crypto: cannot load uplink key %s: %s; sealed notefiles wait in the store",
		        l->o.public_key, strerror(-r));
}

/* The card is not ready and its retry is due: open the store, load the key, open and
 * probe the card. Ready with every look due now, or lost with backoff. */
static void reconnect(struct link *l, uint64_t now)
{
	int r = open_store(l);
	if (r < 0) {
		lost(l, -ESTALE); /* -ESTALE: the store, not the card */
		l->last_err = r;
		return;
	}
	open_key(l);
	r = l->card ? 0 : make_card(l);
	if (r == 0)
		r = link_probe(l);
	if (r < 0) {
		lost(l, r == -ENOMEM || r == -EINVAL ? -ENODEV : r);
		return;
	}
	l->backoff_ms = 0;
	l->next_store_check = l->next_inbound = l->next_env = now;
	l->next_status = now;
	set_state(l, LINK_READY);
}

/* The CLI and the broker plugin write the store from processes of their own: a
 * change to its files (the WAL, in WAL mode) says so, so the link need not poll it.
 * Without inotify the link looks every STORE_CHECK_MS. */
static void store_watch_open(struct link *l)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(l->o.store_path, '/');
	size_t n = slash ? (size_t)(slash - l->o.store_path) : 0;
	if (!slash || n + 1 > sizeof(dir))
		return;
	memcpy(dir, l->o.store_path, n);
	dir[n ? n : 1] = '\0';
	if (!n)
		dir[0] = '/';
	l->store_ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (l->store_ino < 0)
		return;
	if (inotify_add_watch(l->store_ino, dir, IN_MODIFY | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		log_warn("link: cannot watch %s (%s); looking at the store every %d ms", dir,
		         strerror(errno), STORE_CHECK_MS);
		close(l->store_ino);
		l->store_ino = -1;
	}
}

/* Consume the watch's events; true when one was about the store's files. */
static bool store_watch_read(struct link *l)
{
	const char *slash = strrchr(l->o.store_path, '/');
	const char *base = slash ? slash + 1 : l->o.store_path;
	size_t blen = strlen(base);
	bool ours = false;
	char buf[4096];
	ssize_t k;
	while ((k = read(l->store_ino, buf, sizeof(buf))) > 0) {
		for (const char *p = buf; p + sizeof(struct inotify_event) <= buf + k;) {
			/* copied out: a cast of the byte buffer trips -Wcast-align on armhf */
			struct inotify_event ev;
			memcpy(&ev, p, sizeof(ev));
			const char *name = p + sizeof(ev);
			if (ev.len && strncmp(name, base, blen) == 0)
				ours = true;
			p += sizeof(ev) + ev.len;
		}
	}
	return ours;
}

static bool queue_empty(struct link *l)
{
	struct store_out *n = NULL;
	if (store_peek_out(l->st, &n) < 0)
		return false;
	bool empty = !n;
	store_out_free(n);
	return empty;
}

/* One turn of work on a ready card. Returns 0, or the error that lost it. */
static int work(struct link *l, bool attn_fired, uint64_t now, bool *busy)
{
	int r;
	bool kicked;
	pthread_mutex_lock(&l->mu);
	kicked = l->kicked;
	l->kicked = false;
	pthread_mutex_unlock(&l->mu);
	/* a store that cannot be written holds the queue both ways, not the card */
	bool store_ok = link_store_ready(l);
	unsigned trouble = l->hold.events;
	if (store_ok && (kicked || now >= l->next_store_check)) {
		bool more = false;
		r = link_drain(l, DRAIN_BATCH, &more);
		if (r < 0)
			return r;
		/* Notes left that the card did not take (full, a missing key) are looked at
		 * again in a second. So is the store a second after it changed: another
		 * process's commit writes its WAL (the event) before readers can see it
		 * (the WAL index, after the fsync), so the look the event brought may
		 * come too early. Otherwise an empty queue waits for a write, looked at
		 * with the inbound looks anyway in case a change went unseen. */
		bool settle = l->store_changed;
		l->store_changed = false;
		l->next_store_check = l->store_ino >= 0 && !settle && queue_empty(l)
		                          ? now + (l->attn ? ATTN_FALLBACK_MS : l->o.poll_ms)
		                          : now + STORE_CHECK_MS;
		if (more) {
			/* come straight back after serving any raw request */
			*busy = true;
			pthread_mutex_lock(&l->mu);
			l->kicked = true;
			pthread_mutex_unlock(&l->mu);
		}
	}
	/* arm before looking, so a note that lands while we read raises ATTN again */
	if (l->attn && !l->attn_armed) {
		r = link_attn_arm(l);
		if (r < 0)
			return r;
	}
	if (store_ok && (attn_fired || now >= l->next_inbound)) {
		r = link_inbound(l);
		if (r < 0)
			return r;
		l->next_inbound = now + (l->attn ? ATTN_FALLBACK_MS : l->o.poll_ms);
	}
	if (store_ok)
		link_store_settled(l, trouble);
	/* ATTN also fires on env changes (armed with "env"), and says the card's status
	 * may have moved */
	if (attn_fired || now >= l->next_env) {
		r = link_env(l);
		if (r < 0)
			return r;
		l->next_env = now + (l->attn                     ? ATTN_FALLBACK_MS
		                     : l->o.poll_ms > ENV_MIN_MS ? l->o.poll_ms
		                                                 : ENV_MIN_MS);
	}
	if (attn_fired || now >= l->next_status) {
		r = link_refresh_status(l);
		if (r < 0)
			return r;
		l->next_status = now + (l->attn                          ? ATTN_FALLBACK_MS
		                        : l->o.poll_ms > STATUS_EVERY_MS ? l->o.poll_ms
		                                                         : STATUS_EVERY_MS);
		link_emit(l, LEV_STATUS, 0, NULL, NULL);
	}
	return 0;
}

static uint64_t next_deadline(struct link *l)
{
	if (l->state != LINK_READY)
		return l->retry_at;
	/* while the store holds the queue, both ways wait for its retry, not their looks */
	uint64_t d = l->hold.err ? l->hold.retry_at : l->next_store_check;
	if (!l->hold.err && l->next_inbound < d)
		d = l->next_inbound;
	if (l->next_env < d)
		d = l->next_env;
	if (l->next_status < d)
		d = l->next_status;
	return d;
}

static void *thread_main(void *arg)
{
	struct link *l = arg;
	card_timing_scaled(&l->timing, l->o.timing_pct);
	if (l->o.attn) {
		int r = attn_open(l->o.attn, &l->attn);
		if (r < 0)
			log_warn("card: ATTN line %s unusable (%s); polling every %llu ms",
			         l->o.attn, strerror(-r), (unsigned long long)l->o.poll_ms);
	}
	store_watch_open(l);
	bool attn_fired = false;
	for (;;) {
		pthread_mutex_lock(&l->mu);
		bool stop = l->stop;
		pthread_mutex_unlock(&l->mu);
		if (stop)
			break;
		take_reconfig(l);
		uint64_t now = mono_ms();
		bool busy = false;
		if (l->state != LINK_READY && now >= l->retry_at)
			reconnect(l, now);
		serve_requests(l);
		if (l->state == LINK_READY) {
			int r = work(l, attn_fired, now, &busy);
			attn_fired = false;
			if (r < 0)
				lost(l, r == -ENOMEM ? -EIO : r);
		}
		link_publish_status(l);

		/* sleep until the next thing is due, a kick, a request, ATTN or another
		 * process's write to the store; nothing else wakes an idle link */
		struct pollfd pfd[3] = {{.fd = l->wake_efd, .events = POLLIN},
		                        {.fd = l->attn ? attn_fd(l->attn) : -1, .events = POLLIN},
		                        {.fd = l->store_ino, .events = POLLIN}};
		uint64_t d = next_deadline(l);
		now = mono_ms();
		int timeout = busy ? 0 : d > now ? (int)(d - now > INT_MAX ? INT_MAX : d - now) : 0;
		pthread_mutex_lock(&l->mu);
		l->thread_idle = true;
		pthread_mutex_unlock(&l->mu);
		int pr = poll(pfd, 3, timeout);
		pthread_mutex_lock(&l->mu);
		l->thread_idle = false;
		bool wake_watch = l->watch_parked;
		if (wake_watch) {
			l->watch_parked = false;
			l->watch_wake = true;
		}
		pthread_mutex_unlock(&l->mu);
		if (wake_watch)
			efd_signal(l->loop_efd);
		if (pr > 0 && (pfd[0].revents & POLLIN))
			efd_clear(l->wake_efd);
		if (pr > 0 && (pfd[2].revents & POLLIN) && store_watch_read(l)) {
			l->store_changed = true;
			pthread_mutex_lock(&l->mu);
			l->kicked = true;
			pthread_mutex_unlock(&l->mu);
		}
		if (pr > 0 && (pfd[1].revents & POLLIN)) {
			if (attn_read(l->attn) > 0) {
				attn_fired = true;
				l->attn_armed = false; /* the card disarms when it fires */
				l->cnt.attn++;
			}
		}
	}
	return NULL;
}

/* ---- the public interface ---------------------------------------------------- */
int link_start(sd_event *loop, const struct cfg *cfg, const struct link_events *ev,
               struct link **out)
{
	struct link *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	int r;
	pthread_mutex_init(&l->mu, NULL);
	l->reqs_tail = &l->reqs;
	l->evs_tail = &l->evs;
	l->wake_efd = l->loop_efd = l->store_ino = -1;
	if (ev)
		l->cbs = *ev;
	r = link_opts_from_cfg(cfg, &l->o);
	if (r < 0)
		goto fail;
	l->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	l->loop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_efd < 0 || l->loop_efd < 0) {
		r = -errno;
		goto fail;
	}
	l->loop = sd_event_ref(loop);
	r = sd_event_add_io(loop, &l->ev_src, l->loop_efd, EPOLLIN, on_loop_efd, l);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(l->ev_src, "link");
	r = sd_event_add_time_relative(loop, &l->watch_src, CLOCK_MONOTONIC, 1000000, 100000,
	                               on_watch, l);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(l->watch_src, "link watch");
	link_publish_status(l);
	r = -pthread_create(&l->thread, NULL, thread_main, l);
	if (r < 0)
		goto fail;
	l->thread_started = true;
	*out = l;
	return 0;
fail:
	link_free(l);
	return r;
}

void link_free(struct link *l)
{
	if (!l)
		return;
	if (l->thread_started) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_mutex_unlock(&l->mu);
		l->cancel = true; /* end a transaction that waits on a silent card */
		efd_signal(l->wake_efd);
		pthread_join(l->thread, NULL);
	}
	/* requests the thread never reached, then everything it left to say */
	struct link_req *q = l->reqs;
	while (q) {
		struct link_req *n = q->next;
		if (q->cb)
			q->cb(q->ud, -ECANCELED, NULL);
		free(q->text);
		free(q);
		q = n;
	}
	l->reqs = NULL;
	dispatch(l);
	sd_event_source_disable_unref(l->ev_src);
	sd_event_source_disable_unref(l->watch_src);
	sd_event_unref(l->loop);
	if (l->wake_efd >= 0)
		close(l->wake_efd);
	if (l->loop_efd >= 0)
		close(l->loop_efd);
	if (l->store_ino >= 0)
		close(l->store_ino);
	card_free(l->card);
	if (l->st)
		store_close(l->st);
	attn_close(l->attn);
	crypto_key_free(l->pub);
	json_decref(l->version);
	json_decref(l->hub);
	json_decref(l->wireless);
	json_decref(l->sync_status);
	json_decref(l->card_status);
	json_decref(l->env);
	json_decref(l->status);
	for (size_t i = 0; i < l->n_in_files; i++)
		free(l->in_files[i]);
	free(l->in_files);
	link_tmpl_free(l);
	link_opts_clear(&l->o);
	link_opts_clear(&l->next_opts);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void link_kick(struct link *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->kicked = true;
	pthread_mutex_unlock(&l->mu);
	efd_signal(l->wake_efd);
}

int link_request(struct link *l, const char *req_json, ngw_reply_cb cb, void *ud)
{
	struct link_req *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->text = strdup(req_json);
	if (!q->text) {
		free(q);
		return -ENOMEM;
	}
	q->cb = cb;
	q->ud = ud;
	pthread_mutex_lock(&l->mu);
	bool stop = l->stop;
	if (!stop) {
		*l->reqs_tail = q;
		l->reqs_tail = &q->next;
	}
	pthread_mutex_unlock(&l->mu);
	if (stop) {
		free(q->text);
		free(q);
		return -ECANCELED;
	}
	efd_signal(l->wake_efd);
	/* cppcheck-suppress memleak ; q is on l->reqs, the link thread frees it */
	return 0;
}

json_t *link_status(struct link *l)
{
	char name[32], why[96];
	pthread_mutex_lock(&l->mu);
	json_t *s = l->status ? json_deep_copy(l->status) : json_object();
	uint64_t waited = overdue_ms(l, name, sizeof(name));
	pthread_mutex_unlock(&l->mu);
	/* the snapshot is the thread's, taken before it got stuck in the request */
	json_t *card = json_object_get(s, "notecard");
	if (waited && json_is_object(card)) {
		snprintf(why, sizeof(why), "no answer to %s for %llu s", name,
		         (unsigned long long)(waited / 1000));
		json_object_set_new(card, "state", json_string("not answering"));
		json_object_set_new(card, "error", json_string(why));
	}
	return s;
}

int link_reconfigure(struct link *l, const struct cfg *cfg)
{
	struct link_opts n;
	int r = link_opts_from_cfg(cfg, &n);
	if (r < 0)
		return r;
	pthread_mutex_lock(&l->mu);
	link_opts_clear(&l->next_opts);
	l->next_opts = n;
	l->reconfig = true;
	pthread_mutex_unlock(&l->mu);
	efd_signal(l->wake_efd);
	return 0;
}
