/* The daemon's lifecycle: load the configuration and the plugins, start every
 * module in order, reload on SIGHUP or `notegw reload`, stop in the order that
 * loses nothing. main.c parses options and turns the loop in between. */
#ifndef NOTEGW_LIFECYCLE_H
#define NOTEGW_LIFECYCLE_H

#include <stdbool.h>

struct gw;
struct cfg;
struct cfg_diag;
struct plugins;
struct plugin_env;

/* The one check --check-config, a start, a reload and a change from Notehub make of
 * file: the core's sections, the fleet overlay (overlay, or NULL for the one the
 * file names), every plugin in the plugin directory the file names configured
 * against its own (disabled ones too), and no section left unclaimed. env is the
 * plugins' environment (borrowed by *psp; its cfg is set here). 0 with *cfgp and
 * *psp (configured, not started; caller frees both); -ENOENT when file cannot be
 * read; -EINVAL with every problem in diag as FILE:LINE. */
int config_check(const char *file, const char *overlay, struct plugin_env *env, bool quiet,
                 struct cfg_diag *diag, struct cfg **cfgp, struct plugins **psp);

/* Load file's core sections into gw->cfg and the plugins (validating their
 * sections) into gw->plugins; nothing unclaimed may remain. 0; -ENOENT when the
 * file cannot be read; -EINVAL with every problem in diag (gw->cfg and
 * gw->plugins then left NULL). */
int gw_load(struct gw *gw, const char *file, struct cfg_diag *diag);
/* Open the store, group commit, key, control socket, link, updates and metrics on
 * gw->loop, start the plugins and deliver what earlier runs left undelivered.
 * 0, or <0 logged (gw_stop still cleans up). */
int gw_start(struct gw *gw);
/* Re-read the configuration: 0, or <0 keeping the old one. */
int gw_reload(struct gw *gw);
/* Orderly drain and free of everything gw_start opened. */
void gw_stop(struct gw *gw);
#endif
