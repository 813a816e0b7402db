/* What the gateway tells the rest of the machine: Prometheus metrics in
 * node-exporter's textfile format, and the Notecard's network time as a chrony
 * SOCK reference clock (a Raspberry Pi has no RTC; TLS fails while its clock is
 * wrong). The textfile and the clock socket are off unless configured; the card's
 * time is asked for every 64 s regardless, for the offset `notegw status` shows. */
#ifndef NOTEGW_METRICS_H
#define NOTEGW_METRICS_H
#include <jansson.h>
#include <systemd/sd-event.h>

struct link;
struct metrics;

/* The daemon's status for the textfile (caller decrefs). */
typedef json_t *(*metrics_status_fn)(void *ud);

/* loop and link (borrowed until metrics_free) run the timers and ask card.time;
 * status(ud) gives what the textfile shows. */
int metrics_new(sd_event *loop, struct link *link, metrics_status_fn status, void *ud,
                const char *textfile, const char *chrony_socket, struct metrics **out);
void metrics_free(struct metrics *m);
/* Clock state for `notegw status` (caller decrefs); NULL before the first sample. */
json_t *metrics_time_status(struct metrics *m);
/* Render a status object as Prometheus text (caller frees). Exposed for tests. */
char *metrics_render(json_t *status);
#endif
