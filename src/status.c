/* The daemon's status; see status.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "chrony.h"
#include "gw.h"
#include "link.h"
#include "ota.h"
#include "plugins.h"
#include "status.h"
#include "store.h"
#include "util.h"

static json_t *store_part(struct store *st)
{
	struct store_stats ss;
	if (!st || store_stats(st, &ss) < 0)
		return NULL;
	json_t *s = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "queued", (json_int_t)ss.queued, "bytes",
	    (json_int_t)ss.bytes, "oldest_ms", (json_int_t)ss.oldest_ms, "dropped",
	    (json_int_t)ss.dropped, "refused", (json_int_t)ss.refused, "sent", (json_int_t)ss.sent,
	    "inbound", (json_int_t)ss.inbound, "inbound_pending", (json_int_t)ss.inbound_pending,
	    "bytes_written", (json_int_t)ss.bytes_written);
	if (ss.oldest_ms > 0)
		json_object_set_new(
		    s, "oldest_age_s",
		    json_integer((json_int_t)((int64_t)now_real_ms() - ss.oldest_ms) / 1000));
	/* damage the store met at open (store_damage): how often, and what last time */
	int64_t count = 0;
	char *last = NULL;
	if (store_damage(st, &count, &last) == 0) {
		json_object_set_new(s, "damage_count", json_integer((json_int_t)count));
		if (last)
			json_object_set_new(s, "damage", json_string(last));
		free(last);
	}
	return s;
}

/* Adds "<name>_bytes" from the "Key: N kB" line of a /proc file; nothing if absent. */
static void proc_kb(json_t *d, const char *file, const char *const keys[][2], size_t n)
{
	char line[128];
	FILE *f = fopen(file, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < n; i++) {
			size_t k = strlen(keys[i][0]);
			if (strncmp(line, keys[i][0], k) != 0 || line[k] != ':')
				continue;
			char *end;
			errno = 0;
			long long kb = strtoll(line + k + 1, &end, 10);
			if (errno || end == line + k + 1 || kb < 0)
				continue;
			json_t *v = json_object_get(d, keys[i][1]);
			long long had = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
			json_object_set_new(d, keys[i][1],
			                    json_integer((json_int_t)(had + kb * 1024)));
		}
	}
	fclose(f);
}

/* VmRSS counts the shared libraries (~5 MiB, shared with every process that maps
 * them); Pss shares them out; private memory (Private_Dirty: heap, stacks, the
 * libraries' data) is what the daemon alone holds. Private_Clean is left out: text no
 * other process happens to map just now, which moves with what else runs. */
static void memory_part(json_t *d)
{
	static const char *const status_keys[][2] = {{"VmRSS", "rss_bytes"}};
	static const char *const rollup_keys[][2] = {{"Pss", "pss_bytes"},
	                                             {"Private_Dirty", "private_bytes"}};
	proc_kb(d, "/proc/self/status", status_keys, 1);
	proc_kb(d, "/proc/self/smaps_rollup", rollup_keys, 2);
}

json_t *status_snapshot(struct gw *gw)
{
	json_t *st = json_object();
	json_t *d = json_pack("{s:s,s:I,s:I,s:I,s:s?}", "version", PACKAGE_VERSION, "pid",
	                      (json_int_t)getpid(), "uptime_s",
	                      (json_int_t)((now_ms() - gw->started_ms) / 1000), "reloads",
	                      (json_int_t)gw->reloads, "config", gw->config_file);
	if (d)
		memory_part(d);
	json_object_set_new(st, "daemon", d);
	if (gw->link) {
		json_t *l = link_status(gw->link);
		if (json_is_object(l))
			json_object_update(st, l);
		json_decref(l);
	}
	json_t *s = store_part(gw->store);
	if (s)
		json_object_set_new(st, "store", s);
	if (gw->plugins)
		json_object_set_new(st, "plugins", plugins_stats(gw->plugins));
	if (gw->ota)
		json_object_set_new(st, "update", ota_status(gw->ota));
	if (gw->status_section) {
		const char *name = NULL;
		json_t *sec = gw->status_section(gw->status_section_ud, &name);
		if (sec && name)
			json_object_set_new(st, name, sec);
		else
			json_decref(sec);
	}
	if (gw->last_error)
		json_object_set_new(json_object_get(st, "daemon"), "last_error",
		                    json_string(gw->last_error));
	json_t *t = chrony_status(gw->clock);
	if (t)
		json_object_set_new(st, "time", t);
	return st;
}

char *status_text(struct gw *gw)
{
	json_t *st = status_snapshot(gw);
	char *s = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	return s;
}

void status_push(struct gw *gw)
{
	char *s = status_text(gw);
	if (!s)
		return;
	plugins_status(gw->plugins, s);
	free(s);
	if (gw->status_pushed)
		gw->status_pushed(gw->status_pushed_ud);
	struct store_stats ss;
	if (store_stats(gw->store, &ss) == 0)
		sd_notifyf(0, "STATUS=%lld queued, %lld sent", (long long)ss.queued,
		           (long long)ss.sent);
}
