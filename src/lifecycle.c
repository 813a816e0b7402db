/* The daemon's lifecycle; see lifecycle.h. Every module is handed the few
 * collaborators it uses; the views in struct gw (submit, delivery, penv) are filled
 * in here as each collaborator opens and re-pointed here when a reload replaces the
 * configuration. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "batch.h"
#include "cfg.h"
#include "chrony.h"
#include "control.h"
#include "crypto.h"
#include "delivery.h"
#include "fleet.h"
#include "gw.h"
#include "health.h"
#include "intake.h"
#include "lifecycle.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "ota.h"
#include "plugins.h"
#include "status.h"
#include "store.h"
#include "submit.h"
#include "util.h"

/* ---- what plugins and metrics are offered ----------------------------------------- */

static char *env_status_text(void *ud)
{
	return status_text(ud);
}

static void env_reoffer(void *ud, const char *consumer)
{
	struct gw *gw = ud;
	delivery_reoffer(&gw->delivery, consumer);
}

static json_t *metrics_status(void *ud)
{
	return status_snapshot(ud);
}

/* ---- loading ---------------------------------------------------------------------- */

int config_check(const char *file, const char *overlay, struct plugin_env *env, bool quiet,
                 struct cfg_diag *diag, struct cfg **cfgp, struct plugins **psp)
{
	struct cfg_doc *doc = cfg_doc_load(file, NULL, diag);
	if (!doc)
		return -ENOENT;
	cfg_fleet_read_overlay(doc, overlay, diag);
	for (const char *const *s = cfg_core_sections; *s; s++)
		cfg_doc_claim(doc, *s);
	struct cfg *cfg = cfg_from_doc(doc, file, diag); /* takes doc */
	/* A bad core key must not hide the plugins' own problems behind "unknown section":
	 * without a bound [daemon], its plugin_dir as written, if absolute. */
	const char *raw = cfg_doc_value(doc, "daemon", "plugin_dir");
	const char *dir = cfg ? cfg->daemon.plugin_dir : raw && raw[0] == '/' ? raw : PLUGINDIR;
	struct plugins *ps = NULL;
	env->cfg = cfg;
	plugins_load(env, dir, cfg ? cfg->doc : doc, quiet, diag, &ps);
	cfg_doc_report_unclaimed(cfg ? cfg->doc : doc, diag);
	if (!cfg)
		cfg_doc_free(doc);
	if (diag->n > 0 || !cfg) {
		plugins_free(ps);
		cfg_free(cfg);
		env->cfg = NULL;
		return -EINVAL;
	}
	*cfgp = cfg;
	*psp = ps;
	return 0;
}

int gw_load(struct gw *gw, const char *file, struct cfg_diag *diag)
{
	gw->penv = (struct plugin_env){
	    .config_file = gw->config_file,
	    .submit = &gw->submit,
	    .status_text = env_status_text,
	    .reoffer = env_reoffer,
	    .ud = gw,
	};
	int r = config_check(file, NULL, &gw->penv, false, diag, &gw->cfg, &gw->plugins);
	if (r < 0)
		return r;
	gw->submit.cfg = gw->cfg;
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

/* ---- link events, delivered on the loop thread -------------------------------- */
static void ev_inbound(void *ud)
{
	struct gw *gw = ud;
	delivery_run(&gw->delivery);
}

static void ev_env(void *ud, const char *name, const char *value)
{
	struct gw *gw = ud;
	if (gw->fleet)
		fleet_env(gw->fleet, name, value);
	plugins_env(gw->plugins, name, value);
}

static void ev_status(void *ud)
{
	status_push(ud);
}

static void ev_audit(void *ud, const char *action, const char *detail)
{
	struct gw *gw = ud;
	store_audit(gw->store, "daemon", action, detail);
}

static void ev_error(void *ud, const char *source, const char *text)
{
	struct gw *gw = ud;
	free(gw->last_error);
	gw->last_error = xasprintf("%s: %s", source ? source : "", text ? text : "");
	plugins_error(gw->plugins, source, text);
	status_push(gw);
}

static void batch_committed(void *ud)
{
	struct gw *gw = ud;
	if (gw->link)
		link_kick(gw->link);
}

/* ---- the rules the broker plugin reads ---------------------------------------------- */

/* [notefile.*], whole and nothing else, beside the store as notefiles.conf
 * (docs/mqtt.md): the broker plugin runs as mosquitto, which reaches the queue
 * directory through notegw-store and may not read this configuration (0640
 * root:notegw; it may name keys and a password file). Written under a temporary
 * name and renamed, so a reader sees the old rules or the new ones. A failure only
 * leaves the broker's rules as they were: logged, not fatal. */
static void export_rules(const struct cfg *cfg)
{
	char dir[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX];
	const char *slash = strrchr(cfg->store.path, '/');
	int len = slash ? (int)(slash - cfg->store.path) : 1;
	const char *base = slash ? cfg->store.path : ".";

	if (xsnprintf(dir, sizeof(dir), "%.*s", len, base) < 0 ||
	    xsnprintf(dst, sizeof(dst), "%s/" INTAKE_RULES_FILE, dir) < 0 ||
	    xsnprintf(tmp, sizeof(tmp), "%s.tmp", dst) < 0)
		return;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd >= 0)
		(void)fchmod(fd, 0640); /* whatever the umask: notegw-store reads it */
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int r = f ? 0 : -errno;
	if (!f && fd >= 0)
		close(fd);
	if (f) {
		fprintf(f, "# notegwd's [notefile.*] rules for the mosquitto broker plugin; "
		           "rewritten at every start and reload\n\n");
		r = cfg_doc_write(cfg->doc, "notefile.**", f);
		if (r == 0 && (fflush(f) != 0 || fsync(fileno(f)) < 0))
			r = -errno;
		if (fclose(f) != 0 && r == 0)
			r = -errno;
	}
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0) {
		log_warn("store: cannot write %s for the broker plugin: %s", dst, strerror(-r));
		unlink(tmp);
	}
}

/* ---- start and stop --------------------------------------------------------------- */

static int open_store(struct gw *gw)
{
	const struct cfg *cfg = gw->cfg;
	struct store_opts so = {
	    .max_size = cfg->store.max_size,
	    .when_full =
	        cfg->store.when_full == CFG_REFUSE_NEW ? STORE_REFUSE_NEW : STORE_DROP_OLDEST,
	};
	int r = settle_store_path(gw);
	if (r < 0)
		return r;
	r = store_open(cfg->store.path, &so, &gw->store);
	if (r < 0) {
		log_err("store: cannot open %s: %s", cfg->store.path, strerror(-r));
		return r;
	}
	r = batch_new(gw->loop, gw->store, cfg->store.commit_delay_ms, batch_committed, gw,
	              &gw->batch);
	if (r < 0)
		return r;
	gw->submit.store = gw->store;
	gw->submit.batch = gw->batch;
	gw->penv.store = gw->store;
	gw->delivery.store = gw->store;
	return 0;
}

static int open_key(struct gw *gw)
{
	const struct cfg *cfg = gw->cfg;
	if (!cfg->crypto.private_key)
		return 0;
	/* Private keys go to OpenSSL's locked heap, out of swap and core dumps. */
	if (crypto_secure_heap_init() < 0)
		log_warn("crypto: no secure heap; the key stays in ordinary memory");
	int r = crypto_key_load_private(cfg->crypto.private_key, &gw->crypto_priv);
	if (r < 0) {
		log_err("crypto: cannot use private key %s: %s", cfg->crypto.private_key,
		        strerror(-r));
		return r;
	}
	gw->delivery.key = gw->crypto_priv;
	return 0;
}

static int open_link(struct gw *gw)
{
	static struct link_events ev = {ev_inbound, ev_env, ev_status, ev_audit, NULL, ev_error};
	ev.ud = gw;
	int r = link_start(gw->loop, gw->cfg, &ev, &gw->link);
	if (r < 0) {
		log_err("link: cannot start: %s", strerror(-r));
		return r;
	}
	gw->submit.link = gw->link;
	gw->penv.link = gw->link;
	return 0;
}

static void on_clock_sample(void *ud)
{
	struct gw *gw = ud;
	metrics_update(gw->metrics); /* the offset shows without waiting for the next round */
}

/* The fleet's view of the lifecycle: the check every configuration passes, and the
 * reload that takes it. */
static const struct fleet_host fleet_host = {.check = config_check, .reload = gw_reload};

/* Updates and metrics are not worth refusing to forward notes for. */
static void open_extras(struct gw *gw)
{
	const struct cfg *cfg = gw->cfg;
	int r;
	if (cfg->update.enabled) {
		struct ota_opts oo = {
		    .spool_dir = cfg->update.spool_dir,
		    .trusted_dir = cfg->update.trusted_dir,
		    .interval_ms = cfg->update.interval_ms,
		    .chunk = (unsigned)cfg->update.chunk,
		    .auto_apply = cfg->update.auto_apply,
		};
		r = ota_new(gw->loop, gw->store, gw->link, &oo, &gw->ota);
		if (r < 0)
			log_err("update: disabled: cannot use %s: %s", oo.spool_dir, strerror(-r));
	}
	if (cfg->daemon.metrics_file) {
		r = metrics_new(gw->loop, metrics_status, gw, cfg->daemon.metrics_file,
		                &gw->metrics);
		if (r < 0)
			log_err("metrics: disabled: %s", strerror(-r));
	}
	if ((r = fleet_new(gw, &fleet_host, &gw->fleet)) < 0)
		log_err("fleet: disabled: %s", strerror(-r));
	if ((r = health_new(gw, &gw->health)) < 0)
		log_err("health: disabled: %s", strerror(-r));
	/* The clock is read even without chrony: `notegw status` shows the offset. */
	r = chrony_new(gw->loop, gw->link, cfg->daemon.chrony_socket, on_clock_sample, gw,
	               &gw->clock);
	if (r < 0)
		log_err("time: disabled: %s", strerror(-r));
}

int gw_start(struct gw *gw)
{
	const struct cfg *cfg = gw->cfg;
	gw->penv.loop = gw->loop;
	gw->delivery.plugins = gw->plugins;
	int r = open_store(gw);
	if (r == 0)
		export_rules(gw->cfg);
	if (r == 0)
		r = open_key(gw);
	if (r < 0)
		return r;
	r = control_open(gw, cfg->control.socket, cfg->control.group, cfg->control.admin_group,
	                 &gw->control);
	if (r < 0) {
		log_err("control: cannot listen on %s: %s", cfg->control.socket, strerror(-r));
		return r;
	}
	r = open_link(gw);
	if (r < 0)
		return r;
	open_extras(gw);
	plugins_start(gw->plugins);
	delivery_run(&gw->delivery); /* what earlier runs stored but plugins did not deliver */
	return 0;
}

void gw_stop(struct gw *gw)
{
	/* Orderly drain: producers stop first, their pending notes are committed, then
	 * the link finishes the transaction under way. */
	plugins_stop(gw->plugins);
	health_free(gw->health);
	gw->health = NULL;
	fleet_free(gw->fleet);
	gw->fleet = NULL;
	free(gw->last_error);
	gw->last_error = NULL;
	ota_free(gw->ota);
	gw->ota = NULL;
	chrony_free(gw->clock);
	gw->clock = NULL;
	metrics_free(gw->metrics);
	gw->metrics = NULL;
	if (gw->batch)
		batch_free(gw->batch);
	gw->batch = NULL;
	gw->submit.batch = NULL;
	link_free(gw->link);
	gw->link = gw->submit.link = gw->penv.link = NULL;
	control_free(gw->control);
	gw->control = NULL;
	plugins_free(gw->plugins);
	gw->plugins = gw->delivery.plugins = NULL;
	crypto_key_free(gw->crypto_priv);
	gw->crypto_priv = NULL;
	gw->delivery.key = NULL;
	store_close(gw->store);
	gw->store = gw->submit.store = gw->penv.store = gw->delivery.store = NULL;
}

/* ---- reload ----------------------------------------------------------------------- */

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

/* Take cfg, checked, as the running configuration: the plugins that can reload
 * reconfigure from it, then the core. 0, or <0 with diag filled and nothing taken. */
static int reload_apply(struct gw *gw, struct cfg *cfg, struct cfg_diag *diag)
{
	if (plugins_reload(gw->plugins, cfg->doc, diag) < 0 || diag->n > 0)
		return -EINVAL;
	struct cfg *old = gw->cfg;
	keep_store_path(gw, cfg);
	if (strcmp(cfg->daemon.plugin_dir, old->daemon.plugin_dir) != 0)
		log_warn("plugin: plugin_dir changed to %s; it takes effect when notegwd restarts",
		         cfg->daemon.plugin_dir);
	gw->cfg = cfg;
	gw->submit.cfg = cfg;
	gw->penv.cfg = cfg;
	if (gw->link)
		link_reconfigure(gw->link, cfg);
	store_set_limits(gw->store, cfg->store.max_size,
	                 cfg->store.when_full == CFG_REFUSE_NEW ? STORE_REFUSE_NEW
	                                                        : STORE_DROP_OLDEST);
	cfg_free(old);
	health_reconfigured(gw->health);
	gw->reloads++;
	return 0;
}

/* A reload checks the file exactly as a start would (config_check) and takes all
 * of it or none: any problem keeps the running configuration, each problem is
 * logged as FILE:LINE, and the audit log records the refusal with the first. */
int gw_reload(struct gw *gw)
{
	struct cfg_diag diag = {0};
	struct plugin_env env = {.config_file = gw->config_file, .submit = &gw->submit, .ud = gw};
	struct cfg *cfg = NULL;
	struct plugins *checked = NULL;
	sd_notify(0, "RELOADING=1");
	int r = config_check(gw->config_file, NULL, &env, true, &diag, &cfg, &checked);
	plugins_free(checked); /* configured to check them; the running ones stay */
	if (r == 0 && (r = reload_apply(gw, cfg, &diag)) < 0)
		cfg_free(cfg);
	for (size_t i = 0; i < diag.n; i++)
		log_err("%s", diag.msgs[i]);
	if (r == 0) {
		export_rules(gw->cfg);
		log_notice("notegwd: configuration reloaded");
		store_audit(gw->store, "daemon", "reload", gw->config_file);
	} else {
		char detail[1024];
		snprintf(detail, sizeof(detail), "%s: %zu problem(s)%s%s", gw->config_file, diag.n,
		         diag.n ? "; first: " : (r == -ENOENT ? "; cannot read it" : ""),
		         diag.n ? diag.msgs[0] : "");
		log_err("notegwd: reload refused; still running with the previous configuration");
		store_audit(gw->store, "daemon", "reload-refused", detail);
	}
	cfg_diag_clear(&diag);
	delivery_run(&gw->delivery); /* to the plugins reloaded, what their old instance held */
	sd_notify(0, "READY=1");
	return r;
}
