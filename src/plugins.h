/* The plugin loader: dlopen each *.so of the plugin directory, check its ABI,
 * configure, start, reload, stop; fan inbound notes and status out to them. */
#ifndef NOTEGW_PLUGINS_H
#define NOTEGW_PLUGINS_H
#include <jansson.h>
#include <stdbool.h>
#include "notegw/plugin.h"

struct gw;
struct cfg_diag;
struct cfg_doc;
struct plugins;

/* Load every plugin in dir. With check_only, plugins are configured (their sections
 * validated into diag) but not started. Sections a plugin owns are claimed in doc. */
int plugins_load(struct gw *gw, const char *dir, struct cfg_doc *doc, struct cfg_diag *diag,
                 struct plugins **out);
int plugins_start(struct plugins *ps);
int plugins_reload(struct plugins *ps, struct cfg_doc *doc, struct cfg_diag *diag);
void plugins_stop(struct plugins *ps);
void plugins_free(struct plugins *ps);
void plugins_inbound(struct plugins *ps, const struct ngw_note *note);
/* Offer an inbound note to one plugin by name (0, or -ENOENT if not running). */
int plugins_inbound_one(struct plugins *ps, const char *name, const struct ngw_note *note);
void plugins_status(struct plugins *ps, const char *status_json);
void plugins_env(struct plugins *ps, const char *name, const char *value);
void plugins_error(struct plugins *ps, const char *source, const char *error);
json_t *plugins_stats(struct plugins *ps);
/* Names of running plugins that consume inbound notes (borrowed). */
bool plugins_consumes_inbound(struct plugins *ps, const char **names, size_t max, size_t *n); /* {"name":{"state":..,...}} caller decrefs */
#endif
