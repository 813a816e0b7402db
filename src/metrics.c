/* Metrics; see metrics.h. The textfile is written whole and renamed into place, so
 * node-exporter never reads half a file. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define METRICS_PERIOD_US (15 * 1000000ULL)

struct metrics {
	metrics_status_fn status;
	void *status_ud;
	char *textfile;
	sd_event_source *mtimer;
};

/* ---- Prometheus ----------------------------------------------------------------- */

static void put(FILE *f, const char *name, const char *type, const char *help, const char *labels,
                double v)
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
	    {"store.oldest_age_s", "queue_oldest_age_seconds", "gauge",
	     "age of the oldest queued note"},
	    {"store.sent", "notes_sent_total", "counter", "notes the Notecard accepted"},
	    {"store.dropped", "notes_dropped_total", "counter", "notes dropped by drop-oldest"},
	    {"store.refused", "notes_refused_total", "counter", "notes refused (store full)"},
	    {"store.inbound", "inbound_notes_total", "counter", "notes received from Notehub"},
	    {"store.bytes_written", "store_bytes_written_total", "counter",
	     "bytes committed to disk"},
	    {"store.damage_count", "store_damage_total", "counter",
	     "damage found in the store at start"},
	    {"link.counters.requests", "card_requests_total", "counter",
	     "requests to the Notecard"},
	    {"link.counters.retries", "card_retries_total", "counter", "retried requests"},
	    {"link.counters.resets", "card_resets_total", "counter", "channel resets"},
	    {"link.counters.bytes_out", "card_bytes_out_total", "counter",
	     "bytes written to the card"},
	    {"link.counters.bytes_in", "card_bytes_in_total", "counter",
	     "bytes read from the card"},
	    {"link.pending_on_card", "card_pending_notes", "gauge",
	     "notes on the card not yet synced"},
	    {"notecard.signal.bars", "signal_bars", "gauge", "signal bars reported by the card"},
	    {"notecard.signal.rssi", "signal_rssi_dbm", "gauge", "RSSI reported by the card"},
	    {"notecard.connected", "connected", "gauge",
	     "1 when the card reports a hub connection"},
	    {"hub.last_sync", "last_sync_timestamp_seconds", "gauge", "time of the last sync"},
	    {"time.offset_s", "clock_offset_seconds", "gauge", "card time minus system time"},
	    {"daemon.uptime_s", "uptime_seconds", "gauge", "seconds since notegwd started"},
	    {"daemon.rss_bytes", "memory_rss_bytes", "gauge", "resident memory (VmRSS)"},
	    {"daemon.pss_bytes", "memory_pss_bytes", "gauge",
	     "proportional set size: shared pages divided among their users"},
	    {"daemon.private_bytes", "memory_private_bytes", "gauge",
	     "memory only notegwd holds (private dirty: heap, stacks, library data)"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		double v = num(st, rows[i].path);
		if (!isnan(v))
			put(f, rows[i].name, rows[i].type, rows[i].help, NULL, v);
	}
	/* Errors by kind, one labelled family. */
	static const char *const kinds[] = {"timeouts", "crc_errors", "io_errors", "notes_failed",
	                                    "inbound_quarantined"};
	fprintf(
	    f,
	    "# HELP notegw_errors_total link errors by kind\n# TYPE notegw_errors_total counter\n");
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
	fprintf(f,
	        "# HELP notegw_plugin_up 1 when the plugin runs\n# TYPE notegw_plugin_up gauge\n");
	json_object_foreach(ps, pname, pv)
	{
		const char *state = json_string_value(json_object_get(pv, "state"));
		fprintf(f, "notegw_plugin_up{plugin=\"%s\"} %d\n", pname,
		        state && strcmp(state, "running") == 0);
	}
	json_object_foreach(ps, pname, pv)
	{
		const char *k;
		json_t *v;
		json_object_foreach(pv, k, v)
		{
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

void metrics_update(struct metrics *m)
{
	if (m && write_textfile(m) < 0)
		log_warn("metrics: cannot write %s", m->textfile);
}

int metrics_new(sd_event *loop, metrics_status_fn status, void *ud, const char *textfile,
                struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->status = status;
	m->status_ud = ud;
	int r = -ENOMEM;
	if (!(m->textfile = strdup(textfile)))
		goto fail;
	if ((r = sd_event_add_time_relative(loop, &m->mtimer, CLOCK_MONOTONIC, 1000000, 0,
	                                    on_metrics, m)) < 0)
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
	free(m->textfile);
	free(m);
}
