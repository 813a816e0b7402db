/* notegwd: parse the configuration, load the plugins, open the store, start the
 * link thread and serve the control socket, all from one sd-event loop. SIGTERM
 * drains and exits; SIGHUP reloads without losing anything queued. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "batch.h"
#include "chrony.h"
#include "commands.h"
#include "config.h"
#include "control.h"
#include "crypto.h"
#include "gw.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "ota.h"
#include "plugins.h"
#include "store.h"
#include "util.h"

#define STATUS_PUSH_MS 30000

static void usage(FILE *f)
{
	fprintf(f, "Usage: notegwd [-c FILE] [--check-config] [--foreground] [--debug] [--version]\n"
	           "  -c, --config FILE   configuration (default %s, plus conf.d/*.conf)\n"
	           "      --check-config  validate the configuration, print each problem as\n"
	           "                      FILE:LINE: message, exit 0 only when it is usable\n"
	           "  -f, --foreground    log to stderr even under systemd\n"
	           "  -d, --debug         log at debug level\n"
	           "  -V, --version       print the version\n",
	           CFG_DEFAULT_FILE);
}

static void print_diag(const struct cfg_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "%s\n", d->msgs[i]);
}

/* Load everything the configuration names: the core's sections, the plugins'
 * (validated by the plugins themselves) and nothing unclaimed. */
static int load_config(struct gw *gw, const char *file, struct cfg **cfg_out,
                       struct plugins **ps_out, struct cfg_diag *diag)
{
	struct cfg_doc *doc = cfg_doc_load(file, NULL, diag);
	if (!doc)
		return -ENOENT;
	for (const char *const *s = cfg_core_sections; *s; s++)
		cfg_doc_claim(doc, *s);
	struct cfg *cfg = cfg_from_doc(doc, file, diag); /* takes doc */
	const char *dir = cfg ? cfg->daemon.plugin_dir : PLUGINDIR;
	struct plugins *ps = NULL;
	struct cfg *saved = gw->cfg;
	gw->cfg = cfg;
	if (ps_out)
		plugins_load(gw, dir, cfg ? cfg->doc : doc, diag, &ps);
	gw->cfg = saved;
	cfg_doc_report_unclaimed(cfg ? cfg->doc : doc, diag);
	if (!cfg)
		cfg_doc_free(doc);
	if (diag->n > 0 || !cfg) {
		plugins_free(ps);
		cfg_free(cfg);
		return -EINVAL;
	}
	*cfg_out = cfg;
	if (ps_out)
		*ps_out = ps;
	return 0;
}

/* The shared layout keeps the store in a directory of its own, <state_dir>/queue,
 * that the package makes setgid notegw-store so that the mosquitto broker plugin can
 * write it too (notegw.conf(5)). With [store] path set to that layout, the
 * directory is made if missing (private: sharing it is the package's doing) and a
 * store still at <state_dir>/store.db, where the daemon kept it by default before,
 * is moved in before anything opens it. If the move fails the daemon goes on with
 * the old file, loudly: queued notes keep flowing, only the broker plugin cannot
 * reach them. The link and later reloads use the path settled here: both
 * connections must open one file. */
static int settle_store_path(struct gw *gw)
{
	struct cfg *cfg = gw->cfg;
	char dir[PATH_MAX], shared[PATH_MAX], legacy[PATH_MAX];

	if (!(gw->store_path_cfg = strdup(cfg->store.path)))
		return -ENOMEM;
	if (xsnprintf(dir, sizeof(dir), "%s/queue", cfg->daemon.state_dir) < 0 ||
	    xsnprintf(shared, sizeof(shared), "%s/store.db", dir) < 0 ||
	    xsnprintf(legacy, sizeof(legacy), "%s/store.db", cfg->daemon.state_dir) < 0 ||
	    strcmp(cfg->store.path, shared) != 0)
		return 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		log_warn("store: cannot make %s: %s", dir, strerror(errno));
	if (store_adopt(legacy, shared) >= 0)
		return 0;
	log_err("store: going on with %s where it is; move it to %s by hand (daemon stopped) "
	        "to share it with the broker plugin",
	        legacy, shared);
	char *p = strdup(legacy);
	if (!p)
		return -ENOMEM;
	free(cfg->store.path);
	cfg->store.path = p;
	return 0;
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	struct gw *gw = ud;
	log_notice("notegwd: signal %u, draining and stopping", si->ssi_signo);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	gw->stopping = true;
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* Both store connections stay on the file they opened at start: a new [store] path
 * is noted and taken at the next start, not half-applied now. */
static void keep_store_path(struct gw *gw, struct cfg *cfg)
{
	if (strcmp(cfg->store.path, gw->store_path_cfg) != 0)
		log_warn("store: path changed to %s; it takes effect when notegwd restarts",
		         cfg->store.path);
	char *running = strdup(gw->cfg->store.path);
	if (running) {
		free(cfg->store.path);
		cfg->store.path = running;
	}
}

int gw_reload(struct gw *gw)
{
	struct cfg_diag diag = {0};
	struct cfg_doc *doc = cfg_doc_load(gw->config_file, NULL, &diag);
	int r = -EINVAL;
	sd_notify(0, "RELOADING=1");
	if (doc) {
		for (const char *const *s = cfg_core_sections; *s; s++)
			cfg_doc_claim(doc, *s);
		struct cfg *cfg = cfg_from_doc(doc, gw->config_file, &diag);
		if (cfg) {
			/* Plugins validate their sections against the new document first. */
			if (plugins_reload(gw->plugins, cfg->doc, &diag) == 0 && diag.n == 0) {
				struct cfg *old = gw->cfg;
				keep_store_path(gw, cfg);
				gw->cfg = cfg;
				if (gw->link)
					link_reconfigure(gw->link, cfg);
				store_set_limits(gw->store, cfg->store.max_size,
				                 cfg->store.when_full == CFG_REFUSE_NEW
				                         ? STORE_REFUSE_NEW
				                         : STORE_DROP_OLDEST);
				cfg_free(old);
				gw->reloads++;
				r = 0;
			} else {
				cfg_free(cfg);
			}
		} else {
			cfg_doc_free(doc);
		}
	}
	for (size_t i = 0; i < diag.n; i++)
		log_err("%s", diag.msgs[i]);
	cfg_diag_clear(&diag);
	if (r == 0) {
		log_notice("notegwd: configuration reloaded");
		store_audit(gw->store, "daemon", "reload", gw->config_file);
	} else {
		log_err("notegwd: reload refused; still running with the previous configuration");
	}
	gw_deliver_inbound(gw); /* to the plugins reloaded, what their old instance held */
	sd_notify(0, "READY=1");
	return r;
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	gw_reload(ud);
	return 0;
}

static void push_status(struct gw *gw)
{
	char *s = gw_status_json(gw);
	if (!s)
		return;
	plugins_status(gw->plugins, s);
	free(s);
	struct store_stats ss;
	if (store_stats(gw->store, &ss) == 0)
		sd_notifyf(0, "STATUS=%lld queued, %lld sent", (long long)ss.queued,
		           (long long)ss.sent);
}

/* Inbound notes every consumer has delivered are kept a week, then pruned. */
#define INBOUND_KEEP_MS (7 * 24 * 3600 * 1000LL)

static int on_status_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct gw *gw = ud;
	push_status(gw);
	store_inbound_prune(gw->store, (int64_t)now_real_ms() - INBOUND_KEEP_MS);
	sd_event_source_set_time(s, usec + STATUS_PUSH_MS * 1000ULL);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT); /* timers are one-shot */
	return 0;
}

/* ---- link events, delivered on the loop thread -------------------------------- */
static void ev_inbound(void *ud, int64_t first)
{
	gw_deliver_inbound(ud);
}

static void ev_env(void *ud, const char *name, const char *value)
{
	struct gw *gw = ud;
	plugins_env(gw->plugins, name, value);
}

static void ev_status(void *ud)
{
	push_status(ud);
}

static void ev_audit(void *ud, const char *action, const char *detail)
{
	struct gw *gw = ud;
	store_audit(gw->store, "daemon", action, detail);
}

static void on_clock_sample(void *ud)
{
	struct gw *gw = ud;
	metrics_update(gw->metrics); /* the offset shows without waiting for the next round */
}

static void batch_committed(void *ud)
{
	struct gw *gw = ud;
	if (gw->link)
		link_kick(gw->link);
}

static int run(struct gw *gw)
{
	int r;
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = sd_event_default(&gw->loop);
	if (r < 0) {
		log_err("notegwd: event loop: %s", strerror(-r));
		return r;
	}
	sd_event_add_signal(gw->loop, NULL, SIGTERM, on_term, gw);
	sd_event_add_signal(gw->loop, NULL, SIGINT, on_term, gw);
	sd_event_add_signal(gw->loop, NULL, SIGHUP, on_hup, gw);
	/* Pings WATCHDOG=1 at half of WatchdogSec= while the loop turns. */
	sd_event_set_watchdog(gw->loop, true);

	if ((r = settle_store_path(gw)) < 0)
		goto out;
	const struct cfg *cfg = gw->cfg;
	struct store_opts so = {
		.max_size = cfg->store.max_size,
		.when_full = cfg->store.when_full == CFG_REFUSE_NEW ? STORE_REFUSE_NEW
		                                                    : STORE_DROP_OLDEST,
	};
	r = store_open(cfg->store.path, &so, &gw->store);
	if (r < 0) {
		log_err("store: cannot open %s: %s", cfg->store.path, strerror(-r));
		goto out;
	}
	r = batch_new(gw->loop, gw->store, cfg->store.commit_delay_ms, batch_committed, gw,
	              &gw->batch);
	if (r < 0)
		goto out;
	if (cfg->crypto.private_key) {
		/* Private keys go to OpenSSL's locked heap, out of swap and core dumps. */
		if (crypto_secure_heap_init() < 0)
			log_warn("crypto: no secure heap; the key stays in ordinary memory");
		r = crypto_key_load_private(cfg->crypto.private_key, &gw->crypto_priv);
		if (r < 0) {
			log_err("crypto: cannot use private key %s: %s", cfg->crypto.private_key,
			        strerror(-r));
			goto out;
		}
	}
	r = control_open(gw, cfg->control.socket, cfg->control.group, cfg->control.admin_group,
	                 &gw->control);
	if (r < 0) {
		log_err("control: cannot listen on %s: %s", cfg->control.socket, strerror(-r));
		goto out;
	}
	commands_register(gw->control);

	static struct link_events ev = {ev_inbound, ev_env, ev_status, ev_audit, NULL};
	ev.ud = gw;
	r = link_start(gw->loop, cfg, &ev, &gw->link);
	if (r < 0) {
		log_err("link: cannot start: %s", strerror(-r));
		goto out;
	}
	if (cfg->update.enabled) {
		struct ota_opts oo = {
			.spool_dir = cfg->update.spool_dir,
			.trusted_dir = cfg->update.trusted_dir,
			.interval_ms = cfg->update.interval_ms,
			.chunk = (unsigned)cfg->update.chunk,
			.auto_apply = cfg->update.auto_apply,
		};
		r = ota_new(gw, &oo, &gw->ota);
		if (r < 0) /* updates are not worth refusing to forward notes for */
			log_err("update: disabled: cannot use %s: %s", oo.spool_dir, strerror(-r));
	}
	if (cfg->daemon.metrics_file) {
		r = metrics_new(gw, cfg->daemon.metrics_file, &gw->metrics);
		if (r < 0)
			log_err("metrics: disabled: %s", strerror(-r));
	}
	/* The clock is read even without chrony: `notegw status` shows the offset. */
	r = chrony_new(gw->loop, gw->link, cfg->daemon.chrony_socket, on_clock_sample, gw,
	               &gw->clock);
	if (r < 0)
		log_err("time: disabled: %s", strerror(-r));
	plugins_start(gw->plugins);
	gw_deliver_inbound(gw); /* what earlier runs stored but plugins did not deliver */
	sd_event_add_time_relative(gw->loop, NULL, CLOCK_MONOTONIC, 1000 * 1000ULL, 0,
	                           on_status_timer, gw);

	log_notice("notegwd %s: running (store %s, card %s)", PACKAGE_VERSION, cfg->store.path,
	           cfg->notecard.device);
	sd_notify(0, "READY=1\nSTATUS=running");
	r = sd_event_loop(gw->loop);

out:
	/* Orderly drain: producers stop first, their pending notes are committed, then
	 * the link finishes the transaction under way. */
	plugins_stop(gw->plugins);
	ota_free(gw->ota);
	gw->ota = NULL;
	chrony_free(gw->clock);
	gw->clock = NULL;
	metrics_free(gw->metrics);
	gw->metrics = NULL;
	if (gw->batch)
		batch_free(gw->batch);
	gw->batch = NULL;
	link_free(gw->link);
	gw->link = NULL;
	control_free(gw->control);
	gw->control = NULL;
	plugins_free(gw->plugins);
	gw->plugins = NULL;
	crypto_key_free(gw->crypto_priv);
	store_close(gw->store);
	gw->loop = sd_event_unref(gw->loop);
	return r < 0 ? r : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"foreground", no_argument, NULL, 'f'},
		{"debug", no_argument, NULL, 'd'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *file = CFG_DEFAULT_FILE;
	bool check = false, debug = false;
	struct gw gw = {0};
	int c;
	while ((c = getopt_long(argc, argv, "c:fdVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			file = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'f':
			gw.foreground = true;
			break;
		case 'd':
			debug = true;
			break;
		case 'V':
			printf("notegwd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, NGW_PLUGIN_ABI_MAJOR,
			       NGW_PLUGIN_ABI_MINOR);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	/* No core dumps: they would hold keys and note bodies. */
	prctl(PR_SET_DUMPABLE, 0);
	struct rlimit nocore = {0, 0};
	setrlimit(RLIMIT_CORE, &nocore);

	bool journal = !gw.foreground && getenv("JOURNAL_STREAM") && getenv("INVOCATION_ID");
	log_setup(debug ? LOG_DEBUG : LOG_INFO, journal);
	gw.config_file = file;
	gw.started_ms = now_ms();

	struct cfg_diag diag = {0};
	int r = load_config(&gw, file, &gw.cfg, &gw.plugins, &diag);
	if (check) {
		print_diag(&diag);
		if (r == -ENOENT && diag.n == 0)
			fprintf(stderr, "%s: cannot read the configuration\n", file);
		plugins_free(gw.plugins);
		cfg_free(gw.cfg);
		cfg_diag_clear(&diag);
		if (r == 0)
			printf("%s: configuration OK\n", file);
		return r == 0 ? 0 : 1;
	}
	if (r < 0) {
		print_diag(&diag);
		for (size_t i = 0; i < diag.n && journal; i++)
			log_err("%s", diag.msgs[i]);
		log_err("notegwd: configuration unusable; not starting");
		cfg_diag_clear(&diag);
		return 1;
	}
	cfg_diag_clear(&diag);
	if (!debug && gw.cfg->daemon.log_level) {
		int lvl = log_level_from_name(gw.cfg->daemon.log_level);
		if (lvl >= 0)
			log_setup(lvl, journal);
	}
	r = run(&gw);
	cfg_free(gw.cfg);
	free(gw.store_path_cfg);
	return r < 0 ? 1 : 0;
}
