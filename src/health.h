/* Health notes to Notehub: the compact body of health_note.c queued on [health]
 * notefile every [health] interval, and at once when the state changes (card,
 * plugins, fleet revision, last error), at most once a HEALTH_MIN_GAP_S. */
#ifndef NOTEGW_HEALTH_H
#define NOTEGW_HEALTH_H
#define HEALTH_MIN_GAP_S 10

struct gw;
struct health;

/* Arm the timer for the first note when [health] interval is set (gw borrowed until
 * health_free). 0, or -errno. */
int health_new(struct gw *gw, struct health **out);
void health_free(struct health *h);
/* The status changed: send now when what a state is made of differs from the last
 * note's (or when a reload turned the notes on). */
void health_poke(struct health *h);
/* The running configuration changed (a reload): the interval, or notes on or off. */
void health_reconfigured(struct health *h);
#endif
