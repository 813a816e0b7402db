/* watchdog.c: WATCHDOG=1 to systemd while the loop turns. A ping comes from a loop
 * timer, so a loop that hangs stops pinging and systemd restarts the daemon. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "watchdog.h"

static int on_ping(sd_event_source *s, uint64_t usec, void *ud)
{
	uint64_t period_us = (uint64_t)(uintptr_t)ud;

	sd_notify(0, "WATCHDOG=1");
	int r = sd_event_source_set_time(s, usec + period_us);
	return r < 0 ? r : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

int watchdog_start(sd_event *loop, uint64_t interval_ms)
{
	uint64_t limit_us = 0, period_us = interval_ms * 1000;
	int r;

	if (interval_ms == 0) { /* sd-event pings at half of WatchdogSec= */
		r = sd_event_set_watchdog(loop, true);
		return r < 0 ? r : 0;
	}
	r = sd_watchdog_enabled(0, &limit_us);
	if (r < 0)
		log_warn("watchdog: WATCHDOG_USEC unreadable (%s); not pinging", strerror(-r));
	if (r <= 0)
		return 0; /* systemd watches nothing: a ping would go nowhere */
	if (period_us > limit_us / 2) {
		log_warn("watchdog: [daemon] watchdog = %llums is not under half of the unit's "
		         "WatchdogSec= (%llums); pinging every %llums instead",
		         (unsigned long long)interval_ms, (unsigned long long)(limit_us / 1000),
		         (unsigned long long)(limit_us / 2000));
		period_us = limit_us / 2;
	}
	log_debug("watchdog: WATCHDOG=1 every %llums", (unsigned long long)(period_us / 1000));
	return sd_event_add_time_relative(loop, NULL, CLOCK_MONOTONIC, period_us, 0, on_ping,
	                                  (void *)(uintptr_t)period_us);
}
