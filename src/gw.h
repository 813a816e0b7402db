/* The daemon's context: every module it runs, for main, the lifecycle (start,
 * reload, stop), the control-socket commands and the status report. The other
 * modules are handed only the few collaborators they use. */
#ifndef NOTEGW_GW_H
#define NOTEGW_GW_H
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "delivery.h"
#include "plugins.h"
#include "submit.h"

struct cfg;
struct store;
struct link;
struct control;
struct batch;
struct crypto_key;
struct ota;
struct metrics;
struct chrony;
struct fleet;
struct health;

struct gw {
	sd_event *loop;
	struct cfg *cfg;
	const char *config_file;
	char *store_path_cfg; /* [store] path as configured at start (may differ from cfg's) */
	struct store *store;  /* main-thread connection */
	struct batch *batch;  /* group commit of producers' notes */
	struct link *link;
	struct control *control;
	struct plugins *plugins;
	struct crypto_key *crypto_priv; /* downlink key, or NULL */
	struct ota *ota;                /* host updates, or NULL */
	struct metrics *metrics;        /* textfile, or NULL */
	struct chrony *clock;           /* the card's time, to status and chrony */
	struct fleet *fleet;            /* configuration from Notehub */
	struct health *health;          /* health notes to Notehub */
	char *last_error;               /* the last error told on the error channels */
	/* What modules started after the status hang on it, so that status.c includes
	 * none of them: one more section of the snapshot (the fleet's), and a call after
	 * each status push (health notes on a state change). NULL: none. */
	struct json_t *(*status_section)(void *ud, const char **name);
	void *status_section_ud;
	void (*status_pushed)(void *ud);
	void *status_pushed_ud;
	bool foreground;
	uint64_t started_ms;
	uint64_t reloads;
	/* Each module's view of the above, kept current by the lifecycle. */
	struct submit submit;     /* producers' notes into the store */
	struct delivery delivery; /* inbound notes out to the plugins */
	struct plugin_env penv;   /* what the host API offers plugins */
};
#endif
