/* The Notecard's pauses in one table (note-c's numbers) and the real clock.
 * Scaling exists so tests and the simulator's fast mode can shrink the pauses
 * without touching the protocol; timeouts keep a floor so a slow test host
 * never mistakes its own slowness for a dead card. */
#include <errno.h>
#include <time.h>

#include "notecard/timing.h"
#include "notecard/transport.h"

const struct card_timing card_timing_default = {
	.i2c_chunk_max = 253,
	.i2c_pre_io_us = 6000,
	.i2c_chunk_delay_ms = 20,
	.segment_bytes = 250,
	.segment_delay_ms = 250,
	.poll_ms = 50,
	.nack_delay_ms = 1000,
	.reset_settle_ms = 250,
	.reset_drain_ms = 500,
	.reset_tries = 10,
	.byte_timeout_ms = 1000,
	.response_timeout_ms = 30000,
	.long_timeout_ms = 90000,
	.retries = 5,
	.retry_delay_ms = 500,
};

static unsigned scale(unsigned v, unsigned pct, unsigned floor)
{
	unsigned long long s = (unsigned long long)v * pct / 100u;
	if (s < floor)
		s = floor < v ? floor : v;
	return s > 0xffffffffu ? 0xffffffffu : (unsigned)s;
}

void card_timing_scaled(struct card_timing *out, unsigned pct)
{
	const struct card_timing *d = &card_timing_default;
	*out = *d;
	out->i2c_pre_io_us = scale(d->i2c_pre_io_us, pct, 0);
	out->i2c_chunk_delay_ms = scale(d->i2c_chunk_delay_ms, pct, 0);
	out->segment_delay_ms = scale(d->segment_delay_ms, pct, 0);
	out->poll_ms = scale(d->poll_ms, pct, 1);
	out->nack_delay_ms = scale(d->nack_delay_ms, pct, 0);
	out->reset_settle_ms = scale(d->reset_settle_ms, pct, 0);
	out->reset_drain_ms = scale(d->reset_drain_ms, pct, 10);
	out->retry_delay_ms = scale(d->retry_delay_ms, pct, 0);
	/* Waits for the card are limits, not pauses: scaled, but never so short that
	 * a loaded machine (sanitizers, two cores) looks like a silent card. */
	out->byte_timeout_ms = scale(d->byte_timeout_ms, pct, 500);
	out->response_timeout_ms = scale(d->response_timeout_ms, pct, 1500);
	out->long_timeout_ms = scale(d->long_timeout_ms, pct, 4500);
}

static uint64_t real_now_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void real_sleep_us(void *ctx, uint64_t us)
{
	(void)ctx;
	if (!us)
		return;
	struct timespec ts = {.tv_sec = (time_t)(us / 1000000u),
	                      .tv_nsec = (long)(us % 1000000u) * 1000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const struct card_clock card_clock_real = {
	.now_ms = real_now_ms,
	.sleep_us = real_sleep_us,
	.ctx = 0,
};

void card_transport_free(struct card_transport *t)
{
	if (!t)
		return;
	if (t->ops->close)
		t->ops->close(t);
	t->ops->free(t);
}
