/* The Modbus plugin: polls field devices on timers in the daemon's loop, turns each
 * poll into one note, writes points on request from the cloud, and serves the
 * latest values to local SCADA. I/O runs on bus workers (bus.c); this file owns all
 * state and talks to the host, from the loop thread only. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "bus.h"
#include "conf.h"
#include "notegw/plugin.h"
#include "server.h"
#include "values.h"

enum dev_state { ST_UNKNOWN, ST_UP, ST_DOWN };
static const char *const state_names[] = {"unknown", "up", "down"};

struct mod;

struct dev_rt {
	struct mod *m;
	const struct mb_device *cfg;
	struct mb_bus *bus; /* borrowed from mod->buses */
	sd_event_source *timer;
	bool busy;
	enum dev_state state;
	unsigned fails; /* consecutive failed polls */
	uint64_t polls, ok, requests, errors[MB_FAULT_COUNT], notes, notes_refused;
	bool put_failing; /* log a refused note once, not once per poll */
	bool rs485_warned;
	char last_error[160];
	int64_t last_error_time, last_ok_time, since; /* epoch seconds */
	double *rep; /* last reported value per point (report = change) */
	bool *has_rep;
};

struct mod {
	struct ngw_plugin *self;
	struct mb_conf *conf;
	bool running;
	struct dev_rt *devs;
	struct mb_bus **buses;
	size_t n_buses;
	struct mb_doneq done;
	bool done_ready;
	sd_event_source *done_src;
	struct mb_server *server;
	sd_event_source *status_timer;
	uint64_t writes_ok, writes_failed, writes_refused;
};

/* A write in flight: what to answer with once the bus is done. */
struct pending_write {
	int64_t id;
	double value;
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- results going up ------------------------------------------------------------ */
/* Late refusals (store full) are the store's to count and log; the userdata is not
 * used because a reload may free the device before the store answers. */
static void on_note_put(void *ud, int err, const char *why)
{
}

static void put_json(struct mod *m, const char *notefile, json_t *body, struct dev_rt *d)
{
	const struct ngw_host_api *h = m->self->host;
	const char *why = NULL;
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
	int rc;

	if (!text)
		return;
	rc = h->note_put(m->self, notefile, text, NULL, 0, on_note_put, NULL, &why);
	if (rc < 0) {
		if (!d || !d->put_failing)
			h->log(m->self, LOG_WARNING, "%s refused: %s", notefile,
			       why ? why : strerror(-rc));
		if (d) {
			d->notes_refused++;
			d->put_failing = true;
		}
	} else if (d) {
		d->notes++;
		d->put_failing = false;
	}
	free(text);
}

static void set_state(struct dev_rt *d, enum dev_state st, const char *error)
{
	struct mod *m = d->m;
	const struct ngw_host_api *h = m->self->host;
	json_t *ev;
	char *text;

	if (d->state == st)
		return;
	d->state = st;
	d->since = now_s();
	mb_server_set_device(m->server, d->cfg->index, st);
	if (st == ST_DOWN)
		h->log(m->self, LOG_WARNING, "%s down: %s", d->cfg->name, error);
	else
		h->log(m->self, LOG_NOTICE, "%s up", d->cfg->name);
	ev = json_pack("{s:s,s:s,s:I}", "device", d->cfg->name, "state", state_names[st], "since",
	               (json_int_t)d->since);
	if (!ev)
		return;
	if (error)
		json_object_set_new(ev, "error", json_string(error));
	text = json_dumps(ev, JSON_COMPACT);
	if (text)
		h->emit(m->self, "modbus/state", text);
	free(text);
	json_decref(ev);
}

static void poll_ok(struct dev_rt *d, const struct mb_job *j)
{
	const struct mb_device *dev = d->cfg;
	json_t *body = json_object();

	d->ok++;
	d->fails = 0;
	d->last_ok_time = now_s();
	for (size_t i = 0; i < dev->n_points; i++) {
		const struct mb_point *p = &dev->points[i];
		double v = mb_point_value(dev, p, j->data);
		mb_server_set_point(d->m->server, p->index, v);
		if (dev->report == MB_REPORT_CHANGE && !mb_changed(p, d->has_rep[i], d->rep[i], v))
			continue;
		d->rep[i] = v;
		d->has_rep[i] = true;
		if (body)
			json_object_set_new(body, p->name, mb_value_json(p, v));
	}
	/* report = change sends nothing when nothing moved */
	if (body && json_object_size(body) > 0)
		put_json(d->m, dev->notefile, body, d);
	json_decref(body);
	set_state(d, ST_UP, NULL);
}

static void poll_failed(struct dev_rt *d, const struct mb_job *j)
{
	d->errors[j->fault]++;
	d->fails++;
	snprintf(d->last_error, sizeof(d->last_error), "%s", j->msg);
	d->last_error_time = now_s();
	d->m->self->host->log(d->m->self, LOG_DEBUG, "%s: %s", d->cfg->name, j->msg);
	if (d->fails >= d->cfg->down_after)
		set_state(d, ST_DOWN, j->msg);
}

/* After a failure retry sooner than the interval at first, then back off, so a
 * glitch costs one short gap and a dead device a request per backoff_max. */
static uint64_t next_delay_ms(const struct dev_rt *d)
{
	const struct mb_device *c = d->cfg;
	uint64_t cap = c->backoff_max_ms > c->interval_ms ? c->backoff_max_ms : c->interval_ms;
	uint64_t delay = c->backoff_ms;

	for (unsigned i = 1; i < d->fails && delay < cap; i++)
		delay *= 2;
	return delay < cap ? delay : cap;
}

static void arm(struct dev_rt *d, uint64_t at_us)
{
	sd_event_source_set_time(d->timer, at_us);
	sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

static void send_result(struct mod *m, const char *device, const char *point, json_t *value,
                        const char *error, int64_t id)
{
	const struct ngw_host_api *h = m->self->host;
	json_t *r = json_object();
	char *text;

	if (!r)
		return;
	if (device)
		json_object_set_new(r, "device", json_string(device));
	if (point)
		json_object_set_new(r, "point", json_string(point));
	if (value)
		json_object_set(r, "value", value);
	json_object_set_new(r, "ok", json_boolean(!error));
	if (error)
		json_object_set_new(r, "error", json_string(error));
	put_json(m, m->conf->result_notefile, r, NULL);
	text = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(12));
	if (text)
		h->emit(m->self, "modbus/result", text);
	free(text);
	json_decref(r);
	if (id >= 0)
		h->inbound_done(m->self, id);
}

static void warn_rs485(struct dev_rt *d)
{
	if (d->rs485_warned)
		return;
	d->rs485_warned = true;
	d->m->self->host->log(d->m->self, LOG_WARNING,
	                      "%s: %s has no RS-485 mode (TIOCSRS485); using it as it is",
	                      d->cfg->name, d->cfg->url.path);
}

static void job_done(struct mod *m, struct mb_job *j)
{
	struct dev_rt *d = &m->devs[j->dev->index];

	if (j->rs485_unsupported)
		warn_rs485(d);
	if (j->type == MB_JOB_WRITE) {
		struct pending_write *pw = j->userdata;
		json_t *v =
		    j->point->type == MB_BOOL ? json_boolean(pw->value != 0) : json_real(pw->value);
		if (j->point->type != MB_BOOL && pw->value == floor(pw->value) &&
		    fabs(pw->value) < 9e15) {
			json_decref(v);
			v = json_integer((json_int_t)pw->value);
		}
		if (j->fault == MB_OK)
			m->writes_ok++;
		else
			m->writes_failed++;
		m->self->host->log(m->self, j->fault ? LOG_WARNING : LOG_INFO, "write %s.%s: %s",
		                   j->dev->name, j->point->name, j->fault ? j->msg : "ok");
		send_result(m, j->dev->name, j->point->name, v, j->fault ? j->msg : NULL, pw->id);
		json_decref(v);
		free(pw);
		return;
	}
	d->busy = false;
	d->polls++;
	d->requests += (uint64_t)j->requests;
	if (j->fault == MB_OK)
		poll_ok(d, j);
	else
		poll_failed(d, j);
	if (!m->running)
		return;
	if (j->fault == MB_OK) {
		/* keep the cadence from the start of the poll, not its end */
		uint64_t next = j->started_ms * 1000u + d->cfg->interval_ms * 1000u;
		uint64_t now = mono_us();
		arm(d, next > now ? next : now);
	} else {
		arm(d, mono_us() + next_delay_ms(d) * 1000u);
	}
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct mod *m = ud;
	struct mb_job *j = mb_doneq_take(&m->done);

	while (j) {
		struct mb_job *n = j->next;
		job_done(m, j);
		mb_job_free(j);
		j = n;
	}
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct dev_rt *d = ud;
	struct mb_job *j;

	if (d->busy)
		return 0; /* rearmed when the poll in progress comes back */
	j = mb_job_new(MB_JOB_POLL, d->cfg);
	if (!j) {
		arm(d, mono_us() + d->cfg->interval_ms * 1000u);
		return 0;
	}
	d->busy = true;
	mb_bus_submit(d->bus, j);
	return 0;
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct mod *m = ud;
	char *st = m->self->host->status_json(m->self);
	mb_server_set_status(m->server, st);
	free(st);
	/* from now, not from usec: the first run was scheduled at 0 */
	sd_event_source_set_time(s, mono_us() + 5000000u);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* ---- plugin callbacks ------------------------------------------------------------ */
static void mod_free(struct mod *m)
{
	if (!m)
		return;
	mb_conf_free(m->conf);
	free(m);
}

static int mb_configure(struct ngw_plugin *self)
{
	struct mod *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return -ENOMEM;
	m->self = self;
	rc = mb_conf_load(self, &m->conf);
	if (rc < 0) {
		free(m);
		return rc;
	}
	self->priv = m;
	return 0;
}

static int mb_disabled(struct ngw_plugin *self)
{
	struct mod *m = self->priv;
	return !m || !m->conf->enabled;
}

static void mb_stop(struct ngw_plugin *self);

static int mb_start(struct ngw_plugin *self)
{
	struct mod *m = self->priv;
	const struct mb_conf *c = m->conf;
	sd_event *ev = self->host->event(self);
	char err[200];
	int rc;

	m->devs = calloc(c->n_devices + 1, sizeof(*m->devs));
	m->buses = calloc(c->n_devices + 1, sizeof(*m->buses));
	if (!m->devs || !m->buses) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = mb_doneq_init(&m->done);
	if (rc < 0)
		goto fail;
	m->done_ready = true;
	rc = sd_event_add_io(ev, &m->done_src, m->done.efd, EPOLLIN, on_done, m);
	if (rc < 0)
		goto fail;
	m->running = true;
	if (c->server_on) {
		rc = mb_server_new(ev, c, &m->server, err, sizeof(err));
		if (rc < 0) {
			self->host->log(self, LOG_ERR, "server: %s", err);
			goto fail;
		}
		self->host->log(self, LOG_INFO, "serving on %s:%d", c->server_host,
		                mb_server_port(m->server));
		rc = sd_event_add_time(ev, &m->status_timer, CLOCK_MONOTONIC, 0, 100000,
		                       on_status_timer, m);
		if (rc < 0)
			goto fail;
	}
	for (size_t i = 0; i < c->n_devices; i++) {
		struct dev_rt *d = &m->devs[i];
		const struct mb_device *dev = &c->devices[i];
		d->m = m;
		d->cfg = dev;
		d->rep = calloc(dev->n_points, sizeof(*d->rep));
		d->has_rep = calloc(dev->n_points, sizeof(*d->has_rep));
		if (!d->rep || !d->has_rep) {
			rc = -ENOMEM;
			goto fail;
		}
		for (size_t b = 0; b < m->n_buses && !d->bus; b++)
			if (mb_bus_matches(m->buses[b], dev))
				d->bus = m->buses[b];
		if (!d->bus) {
			rc = mb_bus_new(dev, &m->done, &m->buses[m->n_buses]);
			if (rc < 0)
				goto fail;
			d->bus = m->buses[m->n_buses++];
		}
		if (dev->url.rs485 && mb_bus_rs485_unsupported(d->bus))
			warn_rs485(d);
		/* a small stagger so devices sharing a line do not all queue at once */
		rc = sd_event_add_time(ev, &d->timer, CLOCK_MONOTONIC, mono_us() + i * 10000u, 1000,
		                       on_timer, d);
		if (rc < 0)
			goto fail;
	}
	self->host->log(self, LOG_INFO, "polling %zu devices on %zu connections", c->n_devices,
	                m->n_buses);
	return 0;
fail:
	mb_stop(self);
	return rc;
}

static void drop_jobs(struct mb_job *j)
{
	while (j) {
		struct mb_job *n = j->next;
		/* a write never tried stays undelivered: the store offers it again */
		if (j->type == MB_JOB_WRITE)
			free(j->userdata);
		mb_job_free(j);
		j = n;
	}
}

static void mb_stop(struct ngw_plugin *self)
{
	struct mod *m = self->priv;

	if (!m)
		return;
	m->running = false;
	for (size_t i = 0; m->buses && i < m->n_buses; i++)
		drop_jobs(mb_bus_free(m->buses[i])); /* joins: nothing runs after this */
	free(m->buses);
	m->buses = NULL;
	m->n_buses = 0;
	if (m->done_ready) {
		/* finished jobs still count; finished writes still owe their answer */
		on_done(NULL, -1, 0, m);
		mb_doneq_destroy(&m->done);
		m->done_ready = false;
	}
	for (size_t i = 0; m->devs && i < m->conf->n_devices; i++) {
		sd_event_source_disable_unref(m->devs[i].timer);
		free(m->devs[i].rep);
		free(m->devs[i].has_rep);
	}
	free(m->devs);
	m->devs = NULL;
	m->done_src = sd_event_source_disable_unref(m->done_src);
	m->status_timer = sd_event_source_disable_unref(m->status_timer);
	mb_server_free(m->server);
	m->server = NULL;
}

static void mb_destroy(struct ngw_plugin *self)
{
	mod_free(self->priv);
	self->priv = NULL;
}

static int mb_reload(struct ngw_plugin *self, void *new_priv)
{
	struct mod *old = self->priv, *m = new_priv;
	bool was_running = old && old->running;

	mb_stop(self);
	mod_free(old);
	m->self = self;
	self->priv = m;
	if (was_running && m->conf->enabled)
		return mb_start(self);
	return 0;
}

static void mb_on_inbound(struct ngw_plugin *self, const struct ngw_note *note)
{
	struct mod *m = self->priv;
	struct mb_write w;
	struct pending_write *pw;
	struct mb_job *j;
	char err[200];
	json_t *req, *value = NULL;
	const char *device = NULL, *point = NULL;

	if (!m || !m->running || !note->file || strcmp(note->file, m->conf->write_notefile) != 0)
		return;
	/* echo what was asked for in the answer, even when it was wrong */
	req = note->body ? json_loads(note->body, 0, NULL) : NULL;
	if (json_is_object(req)) {
		device = json_string_value(json_object_get(req, "device"));
		point = json_string_value(json_object_get(req, "point"));
		value = json_object_get(req, "value");
	}
	if (mb_write_parse(m->conf, note->body, &w, err, sizeof(err)) < 0) {
		m->writes_refused++;
		self->host->log(self, LOG_WARNING, "write refused: %s", err);
		send_result(m, device, point, value, err, note->id);
		json_decref(req);
		return;
	}
	j = mb_job_new(MB_JOB_WRITE, w.dev);
	pw = calloc(1, sizeof(*pw));
	if (!j || !pw) {
		free(pw);
		mb_job_free(j);
		json_decref(req);
		return; /* not marked done: delivered again later */
	}
	pw->id = note->id;
	pw->value = w.value;
	j->point = w.point;
	memcpy(j->words, w.words, sizeof(j->words));
	j->userdata = pw;
	mb_bus_submit(m->devs[w.dev->index].bus, j);
	json_decref(req);
}

static void mb_on_status(struct ngw_plugin *self, const char *status_json)
{
	struct mod *m = self->priv;
	if (m && m->server)
		mb_server_set_status(m->server, status_json);
}

static char *mb_stats_json(struct ngw_plugin *self)
{
	struct mod *m = self->priv;
	json_t *o, *devs;
	char *text;

	if (!m)
		return NULL;
	o = json_object();
	devs = json_object();
	for (size_t i = 0; m->devs && i < m->conf->n_devices; i++) {
		struct dev_rt *d = &m->devs[i];
		json_t *errs = json_object(), *dj;
		for (int f = MB_TIMEOUT; f < MB_FAULT_COUNT; f++)
			json_object_set_new(errs, mb_fault_name(f),
			                    json_integer((json_int_t)d->errors[f]));
		dj = json_pack("{s:s,s:s,s:I,s:I,s:I,s:o,s:I,s:I,s:I}", "state",
		               state_names[d->state], "url", d->cfg->url_text, "polls",
		               (json_int_t)d->polls, "ok", (json_int_t)d->ok, "requests",
		               (json_int_t)d->requests, "errors", errs, "consecutive_failures",
		               (json_int_t)d->fails, "notes", (json_int_t)d->notes, "notes_refused",
		               (json_int_t)d->notes_refused);
		if (!dj)
			continue;
		json_object_set_new(dj, "last_ok",
		                    d->last_ok_time ? json_integer(d->last_ok_time) : json_null());
		json_object_set_new(dj, "last_error",
		                    d->last_error[0] ? json_string(d->last_error) : json_null());
		json_object_set_new(dj, "last_error_time",
		                    d->last_error_time ? json_integer(d->last_error_time)
		                                       : json_null());
		json_object_set_new(devs, d->cfg->name, dj);
	}
	json_object_set_new(o, "devices", devs);
	json_object_set_new(o, "writes",
	                    json_pack("{s:I,s:I,s:I}", "ok", (json_int_t)m->writes_ok, "failed",
	                              (json_int_t)m->writes_failed, "refused",
	                              (json_int_t)m->writes_refused));
	if (m->server)
		json_object_set_new(o, "server", mb_server_stats(m->server));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static const char *const sections[] = {"modbus", "modbus.*", "modbus.*.*", NULL};

static const struct ngw_plugin_desc desc = {
    .abi = NGW_PLUGIN_ABI,
    .name = "modbus",
    .description = "poll Modbus TCP/RTU devices, write points from the cloud, serve SCADA",
    .version = PACKAGE_VERSION,
    .sections = sections,
    .configure = mb_configure,
    .disabled = mb_disabled,
    .start = mb_start,
    .reload = mb_reload,
    .stop = mb_stop,
    .destroy = mb_destroy,
    .on_inbound = mb_on_inbound,
    .on_status = mb_on_status,
    .stats_json = mb_stats_json,
};

const struct ngw_plugin_desc *notegw_plugin_describe(void)
{
	return &desc;
}
