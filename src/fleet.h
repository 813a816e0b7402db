/* Configuration from Notehub, governed (docs/fleet.md): environment variables named
 * <[fleet] env_prefix><section>.<key> become a generated overlay file, read after
 * conf.d. Every variable of the prefix, as Notehub now has them, is one batch: it is
 * checked against [fleet] allow and the keys never settable remotely, then exactly
 * as --check-config checks a file, and taken by the normal reload, or refused whole.
 * A refusal or a rolled-back reload is told on every channel: the log, the audit
 * log, the plugins' error channel (MQTT <prefix>/error), `notegw status` and
 * `notegw fleet`, and a note on [fleet] notefile for Notehub. */
#ifndef NOTEGW_FLEET_H
#define NOTEGW_FLEET_H
#include <jansson.h>
#include <stdbool.h>

struct gw;
struct fleet;
struct cfg;
struct cfg_diag;
struct plugins;
struct plugin_env;

/* What the fleet asks of the lifecycle that owns it: the one configuration check
 * (config_check) and the reload (gw_reload). */
struct fleet_host {
	int (*check)(const char *file, const char *overlay, struct plugin_env *env, bool quiet,
	             struct cfg_diag *diag, struct cfg **cfgp, struct plugins **psp);
	int (*reload)(struct gw *gw);
};

/* Read the overlay in force (its revision) and add the fleet's section to `notegw
 * status`; gw and host borrowed until fleet_free. 0 or -ENOMEM. */
int fleet_new(struct gw *gw, const struct fleet_host *host, struct fleet **out);
void fleet_free(struct fleet *f);
/* A Notehub variable changed (value NULL: deleted). True when it is one of the
 * fleet's (the prefix): the batch is then looked at once the changes settle. */
bool fleet_env(struct fleet *f, const char *name, const char *value);
/* The overlay's revision, 0 when none was ever applied. */
long long fleet_revision(const struct fleet *f);
/* For `notegw status` (short: revision, last outcome, refusals) and `notegw fleet`
 * (full: also the variables and the overlay's text). New reference. */
json_t *fleet_status(const struct fleet *f, bool full);
#endif
