/* The daemon's lifecycle: load the configuration and the plugins, start every
 * module in order, reload on SIGHUP or `notegw reload`, stop in the order that
 * loses nothing. main.c parses options and turns the loop in between. */
#ifndef NOTEGW_LIFECYCLE_H
#define NOTEGW_LIFECYCLE_H

struct gw;
struct cfg_diag;

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
