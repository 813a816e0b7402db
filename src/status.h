/* The daemon's status: one snapshot of every module's state, which `notegw status`,
 * the plugins (on_status, status_json) and the metrics textfile all report from. */
#ifndef NOTEGW_STATUS_H
#define NOTEGW_STATUS_H
#include <jansson.h>

struct gw;

/* The snapshot (caller decrefs) and as JSON text (caller frees; NULL without memory). */
json_t *status_snapshot(struct gw *gw);
char *status_text(struct gw *gw);
/* Tell the plugins and systemd (STATUS=) how things stand. */
void status_push(struct gw *gw);
#endif
