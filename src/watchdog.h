/* Telling systemd the event loop is alive (WATCHDOG=1), at the period the config
 * asks for or, by default, the one the unit's WatchdogSec= implies. */
#ifndef NOTEGW_WATCHDOG_H
#define NOTEGW_WATCHDOG_H
#include <stdint.h>
#include <systemd/sd-event.h>

/* Start pinging from loop. interval_ms 0: sd-event's own watchdog (half of
 * WATCHDOG_USEC); otherwise every interval_ms, but never slower than half of
 * WATCHDOG_USEC (logged). Nothing when systemd set no watchdog. The timer belongs to
 * loop. Returns 0 or -errno. */
int watchdog_start(sd_event *loop, uint64_t interval_ms);
#endif
