/* The plugin loader: dlopen each *.so of the plugin directory, check its ABI,
 * configure, start, reload, stop; fan inbound notes and status out to them. The
 * API the daemon offers plugins is plugin_host.c. */
#ifndef NOTEGW_PLUGINS_H
#define NOTEGW_PLUGINS_H
#include <jansson.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "notegw/plugin.h"

struct cfg;
struct cfg_diag;
struct cfg_doc;
struct link;
struct plugins;
struct store;
struct submit;

/* What the host API offers plugins comes from these, all borrowed. The lifecycle
 * fills them in as it opens them (plugins use them from start() on) and points cfg
 * at the running configuration after a reload. */
struct plugin_env {
	sd_event *loop;
	const struct cfg *cfg;
	const char *config_file;
	const struct submit *submit; /* note_put, note_put_sync */
	struct store *store;         /* inbound_done */
	struct link *link;           /* card_request; NULL: -ENODEV */
	/* status_json: the daemon's status as text (caller frees) */
	char *(*status_text)(void *ud);
	/* a consumer's instance was replaced: offer it its pending inbound notes again */
	void (*reoffer)(void *ud, const char *consumer);
	void *ud; /* for both */
};

/* Load and configure every plugin in dir (their sections validated into diag; a
 * plugin whose configure fails is left out); none is started. Sections a plugin owns
 * are claimed in doc. quiet: "loaded" at debug level only (a reload's check). env
 * is borrowed until plugins_free. */
int plugins_load(const struct plugin_env *env, const char *dir, struct cfg_doc *doc, bool quiet,
                 struct cfg_diag *diag, struct plugins **out);
int plugins_start(struct plugins *ps);
int plugins_reload(struct plugins *ps, struct cfg_doc *doc, struct cfg_diag *diag);
void plugins_stop(struct plugins *ps);
void plugins_free(struct plugins *ps);
void plugins_inbound(struct plugins *ps, const struct ngw_note *note);
/* Offer an inbound note to one plugin by name (0, or -ENOENT if not running). */
int plugins_inbound_one(struct plugins *ps, const char *name, const struct ngw_note *note);
void plugins_status(struct plugins *ps, const char *status_json);
/* Whether a running plugin takes status pushes (else nobody needs them on a timer). */
bool plugins_want_status(struct plugins *ps);
void plugins_env(struct plugins *ps, const char *name, const char *value);
void plugins_error(struct plugins *ps, const char *source, const char *error);
/* {"name":{"state":..,...}} caller decrefs */
json_t *plugins_stats(struct plugins *ps);
/* Names of running plugins that consume inbound notes (borrowed). */
bool plugins_consumes_inbound(struct plugins *ps, const char **names, size_t max, size_t *n);
#endif
