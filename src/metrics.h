/* Prometheus metrics in node-exporter's textfile format, rewritten every 15 s (off
 * unless configured). The card's clock is chrony.h's. */
#ifndef NOTEGW_METRICS_H
#define NOTEGW_METRICS_H
#include <jansson.h>
#include <systemd/sd-event.h>

struct metrics;

/* The daemon's status for the textfile (caller decrefs). */
typedef json_t *(*metrics_status_fn)(void *ud);

/* Write status(ud) to textfile (copied) now and then, on loop (borrowed until
 * metrics_free). */
int metrics_new(sd_event *loop, metrics_status_fn status, void *ud, const char *textfile,
                struct metrics **out);
void metrics_free(struct metrics *m);
/* Rewrite the textfile now (after news worth not waiting 15 s for); NULL is a no-op. */
void metrics_update(struct metrics *m);
/* Render a status object as Prometheus text (caller frees). Exposed for tests. */
char *metrics_render(json_t *status);
#endif
