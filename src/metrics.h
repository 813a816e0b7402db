/* Prometheus metrics in node-exporter's textfile format, rewritten every 15 s (off
 * unless configured). The card's clock is chrony.h's. */
#ifndef NOTEGW_METRICS_H
#define NOTEGW_METRICS_H
#include <jansson.h>

struct gw;
struct metrics;

/* Write gw_status(gw) to textfile (copied) now and then; gw borrowed until metrics_free. */
int metrics_new(struct gw *gw, const char *textfile, struct metrics **out);
void metrics_free(struct metrics *m);
/* Rewrite the textfile now (after news worth not waiting 15 s for); NULL is a no-op. */
void metrics_update(struct metrics *m);
/* Render a status object as Prometheus text (caller frees). Exposed for tests. */
char *metrics_render(json_t *status);
#endif
