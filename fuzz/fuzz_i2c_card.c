/* Fuzz the I2C framing state machine and the request layer above it: every byte the
 * "card" puts on the bus (read headers, data, NACKs) comes from the input, on a
 * fake clock so that the pacing and the retries cost no time. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "notecard/card.h"
#include "notecard/i2c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
	const uint8_t *p;
	size_t n, pos;
	uint64_t now_us;
};

static uint64_t f_now_ms(void *ctx)
{
	return ((struct feed *)ctx)->now_us / 1000;
}

static void f_sleep(void *ctx, uint64_t us)
{
	((struct feed *)ctx)->now_us += us;
}

static int b_open(void *ctx, const char *dev, unsigned addr)
{
	return 3;
}

static void b_close(void *ctx, int h)
{
}

static int b_xfer(void *ctx, int h, unsigned addr, const uint8_t *w, size_t wlen, uint8_t *r,
                  size_t rlen)
{
	struct feed *f = ctx;
	f->now_us += 100;
	if (rlen == 0)
		return 0;
	if (f->pos >= f->n)
		return -EIO; /* the card has gone quiet */
	uint8_t ctl = f->p[f->pos++];
	if (ctl == 0xff)
		return -EREMOTEIO; /* a NACK */
	for (size_t i = 0; i < rlen; i++)
		r[i] = f->pos < f->n ? f->p[f->pos++] : 0;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f = {data, size, 0, 0};
	struct card_clock clk = {f_now_ms, f_sleep, &f};
	struct card_i2c_bus bus = {b_open, b_close, b_xfer, &f};
	struct card_timing tm = card_timing_default;
	tm.response_timeout_ms = 2000;
	tm.retries = 2;
	struct card_transport *t = NULL;
	struct card *c = NULL;
	if (card_transport_i2c_new_bus("/dev/i2c-fuzz", 0x17, &tm, &clk, &bus, &t) < 0)
		return 0;
	if (card_new(t, &c) < 0)
		return 0;
	if (t->ops->open(t) == 0) {
		json_t *req = json_pack("{s:s}", "req", "card.version"), *rsp = NULL;
		card_request(c, req, &rsp);
		json_decref(rsp);
		json_decref(req);
	}
	card_free(c);
	return 0;
}
