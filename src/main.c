/* notegwd: parse the options, turn the one sd-event loop and answer its signals;
 * what starts, reloads and stops is lifecycle.c. SIGTERM drains and exits; SIGHUP
 * reloads without losing anything queued. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "cfg.h"
#include "commands.h"
#include "gw.h"
#include "lifecycle.h"
#include "log.h"
#include "plugins.h"
#include "status.h"
#include "store.h"
#include "util.h"
#include "watchdog.h"

#define STATUS_PUSH_MS 30000
/* With nobody to push status to (no plugin takes it, no systemd), the timer only
 * prunes: an idle daemon then wakes this seldom. */
#define PRUNE_ONLY_MS (3600 * 1000)

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

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	log_notice("notegwd: signal %u, draining and stopping", si->ssi_signo);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *ud)
{
	gw_reload(ud);
	return 0;
}

/* Inbound notes every consumer has delivered are kept a week, then pruned. */
#define INBOUND_KEEP_MS (7 * 24 * 3600 * 1000LL)

static int on_status_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct gw *gw = ud;
	status_push(gw);
	store_inbound_prune(gw->store, (int64_t)now_real_ms() - INBOUND_KEEP_MS);
	bool listened = plugins_want_status(gw->plugins) || getenv("NOTIFY_SOCKET");
	sd_event_source_set_time(s, usec + (listened ? STATUS_PUSH_MS : PRUNE_ONLY_MS) * 1000ULL);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT); /* timers are one-shot */
	return 0;
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
	/* WATCHDOG=1 while the loop turns: every [daemon] watchdog, or half of WatchdogSec=. */
	if ((r = watchdog_start(gw->loop, gw->cfg->daemon.watchdog_ms)) < 0)
		log_warn("watchdog: %s", strerror(-r));

	r = gw_start(gw);
	if (r < 0)
		goto out;
	commands_register(gw->control);
	const struct cfg *cfg = gw->cfg;
	sd_event_add_time_relative(gw->loop, NULL, CLOCK_MONOTONIC, 1000 * 1000ULL, 0,
	                           on_status_timer, gw);

	log_notice("notegwd %s: running (store %s, card %s)", PACKAGE_VERSION, cfg->store.path,
	           cfg->notecard.device);
	sd_notify(0, "READY=1\nSTATUS=running");
	r = sd_event_loop(gw->loop);

out:
	gw_stop(gw);
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
	int r = gw_load(&gw, file, &diag);
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
