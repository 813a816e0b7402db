/* The Notecard transport interface: one implementation per wire (i2c, serial).
 * A transport moves one request line down and one response line up, with the
 * card's pacing; it knows nothing of JSON. All calls block (link thread only). */
#ifndef NOTEGW_TRANSPORT_H
#define NOTEGW_TRANSPORT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "notecard/timing.h"

struct card_transport;

struct card_transport_ops {
	const char *name;
	int (*open)(struct card_transport *t);
	void (*close)(struct card_transport *t);
	/* Resynchronise the channel (newline + drain). 0 when in sync, else -EIO. */
	int (*reset)(struct card_transport *t);
	/* Send len bytes (a request line ending in '\n'), paced as the card needs. */
	int (*send)(struct card_transport *t, const char *buf, size_t len);
	/* Receive one line ending '\n' into buf (NUL-terminated, without the line end).
	 * Waits up to first_ms for the first byte and timing->byte_timeout_ms between
	 * bytes. -ETIMEDOUT, -EIO (garbled framing), -EMSGSIZE (line > cap), -ENODEV. */
	int (*recv_line)(struct card_transport *t, char *buf, size_t cap, size_t *len,
	                 unsigned first_ms);
	void (*free)(struct card_transport *t);
};

/* Time and sleeping go through here so unit tests can run on a fake clock. */
struct card_clock {
	uint64_t (*now_ms)(void *ctx);
	void (*sleep_us)(void *ctx, uint64_t us);
	void *ctx;
};
extern const struct card_clock card_clock_real;

struct card_transport {
	const struct card_transport_ops *ops;
	const struct card_timing *timing;
	const struct card_clock *clock;
	void *priv;
	/* counters, for status and benches */
	uint64_t bytes_out, bytes_in, resets, errors;
	/* Set (from another thread) to abandon the transaction under way: waits end
	 * within ~100 ms with -ECANCELED, so a stopping daemon is not held by a 30 s
	 * response timeout. NULL: never cancelled. */
	const _Atomic bool *cancel;
};

/* True once the transport has been asked to give up. */
static inline bool card_transport_cancelled(const struct card_transport *t)
{
	return t->cancel && *t->cancel;
}

/* Constructors. The device path is copied. */
int card_transport_i2c_new(const char *device, unsigned address, const struct card_timing *tm,
                           const struct card_clock *clk, struct card_transport **out);
int card_transport_serial_new(const char *device, unsigned baud, const struct card_timing *tm,
                              const struct card_clock *clk, struct card_transport **out);
void card_transport_free(struct card_transport *t);
#endif
