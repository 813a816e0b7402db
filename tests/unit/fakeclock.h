/* A fake clock for the Notecard link tests: sleeping advances time at once and
 * every sleep is recorded, so the card's pacing can be checked exactly. */
#ifndef NOTEGW_TEST_FAKECLOCK_H
#define NOTEGW_TEST_FAKECLOCK_H
#include "notecard/transport.h"
#include <stdint.h>
#include <string.h>

#define FAKECLOCK_LOG 4096
struct fakeclock {
	uint64_t now_us;
	uint64_t sleeps[FAKECLOCK_LOG];
	size_t n_sleeps;
	struct card_clock clock;
};

static inline uint64_t fakeclock_now_ms(void *ctx)
{
	struct fakeclock *f = ctx;
	return f->now_us / 1000u;
}

static inline void fakeclock_sleep_us(void *ctx, uint64_t us)
{
	struct fakeclock *f = ctx;
	f->now_us += us;
	if (f->n_sleeps < FAKECLOCK_LOG)
		f->sleeps[f->n_sleeps++] = us;
}

static inline void fakeclock_init(struct fakeclock *f)
{
	memset(f, 0, sizeof(*f));
	f->now_us = 1000000;
	f->clock.now_ms = fakeclock_now_ms;
	f->clock.sleep_us = fakeclock_sleep_us;
	f->clock.ctx = f;
}
#endif
