/* example: the smallest useful notegw plugin, and the tests' probe. It appends
 * every inbound note, status and emitted event it sees to a file as JSON lines,
 * marks inbound notes delivered, and can queue a heartbeat note on a timer.
 * Built with -DEXAMPLE_ABI_MAJOR=N (and -DEXAMPLE_ABI_MINOR=M) it claims another ABI
 * (a test of refusal). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notegw/plugin.h"

#ifndef EXAMPLE_ABI_MAJOR
#define EXAMPLE_ABI_MAJOR NGW_PLUGIN_ABI_MAJOR
#endif
#ifndef EXAMPLE_ABI_MINOR
#define EXAMPLE_ABI_MINOR NGW_PLUGIN_ABI_MINOR
#endif
#ifndef EXAMPLE_NAME
#define EXAMPLE_NAME "example"
#endif

struct example_cfg {
	bool enabled;
	char *file;
	int fail;           /* 0 none, 1 configure, 2 start, 3 reload */
	uint64_t heartbeat_ms;
	char *notefile;
};

struct example {
	struct example_cfg cfg;
	FILE *out;
	sd_event_source *timer;
	long long beats, inbound;
};

static const char *const fail_modes[] = {"none", "configure", "start", "reload", NULL};

static const struct ngw_cfg_key keys[] = {
    NGW_CFG_KEY(struct example_cfg, "enabled", NGW_CFG_BOOL, "true", enabled),
    NGW_CFG_KEY(struct example_cfg, "file", NGW_CFG_STR, NULL, file),
    NGW_CFG_KEY(struct example_cfg, "fail", NGW_CFG_ENUM, "none", fail, .choices = fail_modes),
    NGW_CFG_KEY(struct example_cfg, "heartbeat", NGW_CFG_DURATION, "0", heartbeat_ms),
    NGW_CFG_KEY(struct example_cfg, "notefile", NGW_CFG_STR, "heartbeat.qo", notefile),
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static void record(struct example *ex, const char *kind, const char *json)
{
	if (!ex->out)
		return;
	fprintf(ex->out, "{\"event\":\"%s\",\"data\":%s}\n", kind, json ? json : "null");
	fflush(ex->out);
}

static int ex_configure(struct ngw_plugin *self)
{
	struct example *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return -ENOMEM;
	self->priv = ex;
	int r = self->host->cfg_bind(self, EXAMPLE_NAME, keys, N_KEYS, &ex->cfg);
	if (r < 0)
		return r;
	if (ex->cfg.fail == 1) {
		self->host->cfg_error(self, EXAMPLE_NAME, "fail", "asked to fail in configure");
		return -EINVAL;
	}
	return 0;
}

static int ex_disabled(struct ngw_plugin *self)
{
	struct example *ex = self->priv;
	return !ex->cfg.enabled;
}

static void beat_done(void *ud, int err, const char *why)
{
	struct ngw_plugin *self = ud;
	if (err < 0)
		self->host->log(self, 4, "heartbeat refused: %s", why ? why : "?");
}

static int on_beat(sd_event_source *s, uint64_t usec, void *ud)
{
	struct ngw_plugin *self = ud;
	struct example *ex = self->priv;
	char body[64];
	const char *why = NULL;
	snprintf(body, sizeof(body), "{\"n\":%lld}", ++ex->beats);
	if (self->host->note_put(self, ex->cfg.notefile, body, NULL, 0, beat_done, self, &why) < 0)
		self->host->log(self, 4, "heartbeat refused: %s", why ? why : "?");
	sd_event_source_set_time(s, usec + ex->cfg.heartbeat_ms * 1000);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT); /* timers are one-shot */
	return 0;
}

static int ex_start(struct ngw_plugin *self)
{
	struct example *ex = self->priv;
	if (ex->cfg.fail == 2)
		return -ECANCELED;
	if (ex->cfg.file) {
		ex->out = fopen(ex->cfg.file, "ae");
		if (!ex->out)
			return -errno;
	}
	if (ex->cfg.heartbeat_ms > 0) {
		int r = sd_event_add_time_relative(self->host->event(self), &ex->timer,
		                                   CLOCK_MONOTONIC, ex->cfg.heartbeat_ms * 1000, 0,
		                                   on_beat, self);
		if (r < 0)
			return r;
	}
	record(ex, "start", NULL);
	return 0;
}

static void ex_stop(struct ngw_plugin *self)
{
	struct example *ex = self->priv;
	record(ex, "stop", NULL);
	ex->timer = sd_event_source_disable_unref(ex->timer);
}

static int ex_reload(struct ngw_plugin *self, void *fresh)
{
	struct example *ex = self->priv, *nx = fresh;
	if (nx->cfg.fail == 3) { /* a reload a plugin refuses after a good check */
		self->host->cfg_free(keys, N_KEYS, &nx->cfg);
		free(nx);
		return -ECANCELED;
	}
	/* Keep the open file and timer; take the new settings. */
	self->host->cfg_free(keys, N_KEYS, &ex->cfg);
	ex->cfg = nx->cfg;
	free(nx);
	record(ex, "reload", NULL);
	return 0;
}

static void ex_destroy(struct ngw_plugin *self)
{
	struct example *ex = self->priv;
	if (!ex)
		return;
	sd_event_source_disable_unref(ex->timer);
	if (ex->out)
		fclose(ex->out);
	self->host->cfg_free(keys, N_KEYS, &ex->cfg);
	free(ex);
	self->priv = NULL;
}

static void ex_inbound(struct ngw_plugin *self, const struct ngw_note *n)
{
	struct example *ex = self->priv;
	char line[16384];
	snprintf(line, sizeof(line), "{\"id\":%lld,\"file\":\"%s\",\"body\":%s}", (long long)n->id,
	         n->file, n->body ? n->body : "null");
	record(ex, "inbound", line);
	ex->inbound++;
	self->host->inbound_done(self, n->id);
}

static void ex_status(struct ngw_plugin *self, const char *json)
{
	record(self->priv, "status", json);
}

static void ex_emit(struct ngw_plugin *self, const char *from, const char *topic, const char *json)
{
	record(self->priv, topic, json);
}

static void ex_error(struct ngw_plugin *self, const char *source, const char *error)
{
	char line[1024];
	snprintf(line, sizeof(line), "{\"source\":\"%s\"}", source);
	record(self->priv, "error", line);
}

static char *ex_stats(struct ngw_plugin *self)
{
	struct example *ex = self->priv;
	char *s = NULL;
	if (asprintf(&s, "{\"heartbeats\":%lld,\"inbound\":%lld}", ex->beats, ex->inbound) < 0)
		return NULL;
	return s;
}

static const char *const sections[] = {EXAMPLE_NAME, NULL};

static const struct ngw_plugin_desc desc = {
	.abi = (EXAMPLE_ABI_MAJOR << 16) | EXAMPLE_ABI_MINOR,
	.name = EXAMPLE_NAME,
	.description = "example plugin: records events, optional heartbeat notes",
	.version = "1",
	.sections = sections,
	.configure = ex_configure,
	.disabled = ex_disabled,
	.start = ex_start,
	.reload = ex_reload,
	.stop = ex_stop,
	.destroy = ex_destroy,
	.on_inbound = ex_inbound,
	.on_status = ex_status,
	.on_error = ex_error,
	.on_emit = ex_emit,
	.stats_json = ex_stats,
};

const struct ngw_plugin_desc *notegw_plugin_describe(void)
{
	return &desc;
}
