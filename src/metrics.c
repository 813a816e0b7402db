/* Metrics and time; see metrics.h. The textfile is written whole and renamed into
 * place, so node-exporter never reads half a file. The clock sample is card.time
 * (whole seconds) against the midpoint of the request, so it is good to about a
 * second: enough to get TLS working after a boot without an RTC, and chrony is told
 * so (precision 1 in its refclock line). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "link.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define METRICS_PERIOD_US (15 * 1000000ULL)
#define CLOCK_PERIOD_US (64 * 1000000ULL)
#define SOCK_MAGIC 0x534f434b

/* chrony's refclock_sock.c sample, as it reads it from the datagram. */
struct sock_sample {
	struct timeval tv;
	double offset;
	int pulse;
	int leap;
	int _pad;
	int magic;
};

struct metrics {
	struct link *link;
	metrics_status_fn status;
	void *status_ud;
	char *textfile, *chrony;
	sd_event_source *mtimer, *ctimer;
	bool asking;
	uint64_t asked_real_us, asked_mono_us;
	bool have_sample;
	double offset_s;
	int64_t card_time;
	uint64_t samples, sent;
};

static uint64_t real_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* ---- Prometheus ----------------------------------------------------------------- */

static void put(FILE *f, const char *name, const char *type, const char *help,
                const char *labels, double v)
{
	fprintf(f, "# HELP notegw_%s %s\n# TYPE notegw_%s %s\n", name, help, name, type);
	fprintf(f, "notegw_%s%s %.17g\n", name, labels ? labels : "", v);
}

static double num(json_t *o, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *v = o;
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v;
	     k = strtok_r(NULL, ".", &save))
		v = json_object_get(v, k);
	if (json_is_true(v))
		return 1;
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A metric name part from a JSON key: [a-z0-9_] only. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			*s = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : '_';
}

char *metrics_render(json_t *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	static const struct {
		const char *path, *name, *type, *help;
	} rows[] = {
		{"store.queued", "queue_notes", "gauge", "notes waiting in the store"},
		{"store.bytes", "queue_bytes", "gauge", "bytes of notes waiting in the store"},
		{"store.oldest_age_s", "queue_oldest_age_seconds", "gauge", "age of the oldest queued note"},
		{"store.sent", "notes_sent_total", "counter", "notes the Notecard accepted"},
		{"store.dropped", "notes_dropped_total", "counter", "notes dropped by drop-oldest"},
		{"store.refused", "notes_refused_total", "counter", "notes refused (store full)"},
		{"store.inbound", "inbound_notes_total", "counter", "notes received from Notehub"},
		{"store.bytes_written", "store_bytes_written_total", "counter", "bytes committed to disk"},
		{"link.counters.requests", "card_requests_total", "counter", "requests to the Notecard"},
		{"link.counters.retries", "card_retries_total", "counter", "retried requests"},
		{"link.counters.resets", "card_resets_total", "counter", "channel resets"},
		{"link.counters.bytes_out", "card_bytes_out_total", "counter", "bytes written to the card"},
		{"link.counters.bytes_in", "card_bytes_in_total", "counter", "bytes read from the card"},
		{"link.pending_on_card", "card_pending_notes", "gauge", "notes on the card not yet synced"},
		{"notecard.signal.bars", "signal_bars", "gauge", "signal bars reported by the card"},
		{"notecard.signal.rssi", "signal_rssi_dbm", "gauge", "RSSI reported by the card"},
		{"notecard.connected", "connected", "gauge", "1 when the card reports a hub connection"},
		{"hub.last_sync", "last_sync_timestamp_seconds", "gauge", "time of the last sync"},
		{"time.offset_s", "clock_offset_seconds", "gauge", "card time minus system time"},
		{"daemon.uptime_s", "uptime_seconds", "gauge", "seconds since notegwd started"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		double v = num(st, rows[i].path);
		if (!isnan(v))
			put(f, rows[i].name, rows[i].type, rows[i].help, NULL, v);
	}
	/* Errors by kind, one labelled family. */
	static const char *const kinds[] = {"timeouts", "crc_errors", "io_errors", "notes_failed",
	                                    "inbound_quarantined"};
	fprintf(f, "# HELP notegw_errors_total link errors by kind\n# TYPE notegw_errors_total counter\n");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char p[64];
		snprintf(p, sizeof(p), "link.counters.%s", kinds[i]);
		double v = num(st, p);
		if (!isnan(v))
			fprintf(f, "notegw_errors_total{kind=\"%s\"} %.17g\n", kinds[i], v);
	}
	/* Plugins: up, and every numeric counter they report. */
	json_t *ps = json_object_get(st, "plugins");
	const char *pname;
	json_t *pv;
	fprintf(f, "# HELP notegw_plugin_up 1 when the plugin runs\n# TYPE notegw_plugin_up gauge\n");
	json_object_foreach(ps, pname, pv) {
		const char *state = json_string_value(json_object_get(pv, "state"));
		fprintf(f, "notegw_plugin_up{plugin=\"%s\"} %d\n", pname,
		        state && strcmp(state, "running") == 0);
	}
	json_object_foreach(ps, pname, pv) {
		const char *k;
		json_t *v;
		json_object_foreach(pv, k, v) {
			if (!json_is_number(v))
				continue;
			char key[64];
			snprintf(key, sizeof(key), "%s", k);
			sanitize(key);
			fprintf(f, "notegw_plugin_%s{plugin=\"%s\"} %.17g\n", key, pname,
			        json_number_value(v));
		}
	}
	fclose(f);
	return buf;
}

static int write_textfile(struct metrics *m)
{
	json_t *st = m->status(m->status_ud);
	json_t *t = metrics_time_status(m);
	if (t)
		json_object_set_new(st, "time", t);
	char *text = metrics_render(st);
	json_decref(st);
	if (!text)
		return -ENOMEM;
	char tmp[4096];
	int r = xsnprintf(tmp, sizeof(tmp), "%s.tmp", m->textfile);
	int fd = r < 0 ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = r < 0 ? r : -errno;
	} else {
		r = write_all(fd, text, strlen(text));
		close(fd);
		if (r == 0 && rename(tmp, m->textfile) < 0)
			r = -errno;
	}
	free(text);
	return r;
}

static int on_metrics(sd_event_source *s, uint64_t usec, void *ud)
{
	struct metrics *m = ud;
	int r = write_textfile(m);
	if (r < 0)
		log_warn("metrics: cannot write %s: %s", m->textfile, strerror(-r));
	sd_event_source_set_time(s, usec + METRICS_PERIOD_US);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* ---- time ------------------------------------------------------------------------- */

static void send_sample(struct metrics *m, uint64_t at_real_us)
{
	struct sock_sample s = {0};
	s.tv.tv_sec = (time_t)(at_real_us / 1000000u);
	s.tv.tv_usec = (suseconds_t)(at_real_us % 1000000u);
	s.offset = m->offset_s;
	s.magic = SOCK_MAGIC;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(m->chrony) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, m->chrony, strlen(m->chrony) + 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, &s, sizeof(s), 0, (struct sockaddr *)&sa, sizeof(sa)) == (ssize_t)sizeof(s))
		m->sent++;
	else
		log_debug("time: chrony socket %s: %m", m->chrony);
	close(fd);
}

static void on_time(void *ud, int err, const char *rsp)
{
	struct metrics *m = ud;
	m->asking = false;
	uint64_t now_real = real_us();
	json_t *o = err < 0 ? NULL : json_loads(rsp, 0, NULL);
	json_int_t t = json_integer_value(json_object_get(o, "time"));
	bool bad = !o || json_object_get(o, "err") || t < 1600000000;
	json_decref(o);
	if (bad)
		return; /* no time yet: the card has not synced */
	/* The card answered somewhere in the round trip: take its middle. */
	uint64_t mid = m->asked_real_us + (now_real - m->asked_real_us) / 2;
	m->card_time = t;
	/* card.time is whole seconds: add half a second for the truncation. */
	m->offset_s = ((double)t + 0.5) - (double)mid / 1e6;
	m->have_sample = true;
	m->samples++;
	if (m->chrony)
		send_sample(m, mid);
	if (m->textfile && write_textfile(m) < 0)
		log_warn("metrics: cannot write %s", m->textfile);
}

static int on_clock(sd_event_source *s, uint64_t usec, void *ud)
{
	struct metrics *m = ud;
	if (!m->asking && m->link) {
		m->asked_real_us = real_us();
		if (link_request(m->link, "{\"req\":\"card.time\"}", on_time, m) == 0)
			m->asking = true;
	}
	sd_event_source_set_time(s, usec + CLOCK_PERIOD_US);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

json_t *metrics_time_status(struct metrics *m)
{
	if (!m || !m->have_sample)
		return NULL;
	return json_pack("{s:I,s:f,s:I,s:I,s:s?}", "card_time", (json_int_t)m->card_time,
	                 "offset_s", m->offset_s, "samples", (json_int_t)m->samples,
	                 "chrony_samples", (json_int_t)m->sent, "chrony_socket", m->chrony);
}

int metrics_new(sd_event *loop, struct link *link, metrics_status_fn status, void *ud,
                const char *textfile, const char *chrony, struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->link = link;
	m->status = status;
	m->status_ud = ud;
	int r = -ENOMEM;
	if ((textfile && !(m->textfile = strdup(textfile))) || (chrony && !(m->chrony = strdup(chrony))))
		goto fail;
	if (m->textfile && (r = sd_event_add_time_relative(loop, &m->mtimer, CLOCK_MONOTONIC,
	                                                   1000000, 0, on_metrics, m)) < 0)
		goto fail;
	/* The clock is read even without chrony: `notegw status` shows the offset. */
	if ((r = sd_event_add_time_relative(loop, &m->ctimer, CLOCK_MONOTONIC, 3000000, 0,
	                                    on_clock, m)) < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	metrics_free(m);
	return r;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	sd_event_source_disable_unref(m->mtimer);
	sd_event_source_disable_unref(m->ctimer);
	free(m->textfile);
	free(m->chrony);
	free(m);
}
