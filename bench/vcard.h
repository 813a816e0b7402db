/* A Notecard on a simulated I2C bus in virtual time, for crypto_bench: the real
 * i2c.c framing and pacing run on it (100 kHz, 9 clocks per byte, an address byte
 * per message), the card answers every request with a crc after proc_ms, and no
 * real time passes, so a bench measures the code's choices, not the host. */
#ifndef NOTEGW_BENCH_VCARD_H
#define NOTEGW_BENCH_VCARD_H
#include <stddef.h>
#include <stdint.h>

#include "notecard/card.h"
#include "notecard/i2c.h"

#define VCARD_BUS_HZ 100000.0

struct vclock {
	double now_us;
	struct card_clock c;
};

struct vcard {
	struct vclock clk;
	double proc_ms; /* the card's processing time per request */
	char in[4096];
	size_t in_len;
	char out[1024];
	size_t out_len, out_pos;
	double ready_at_us; /* when the answer becomes available */
	uint64_t bus_bytes;
};

/* A card, its i2c transport and the request layer over it, with timing tm
 * (borrowed while they live). Free with card_free (which frees t), then free(v). */
int vcard_new(double proc_ms, const struct card_timing *tm, struct vcard **v,
              struct card_transport **t, struct card **c);
/* Bus time of that many bytes. */
double vcard_bus_us(size_t bytes);
/* What the pacing alone allows per request of req bytes answered by rsp bytes:
 * every mandated pause, every necessary transfer's bus time, and the card's own
 * processing where it is longer than the pause after the last chunk. Computed from
 * the timing constants, independently of i2c.c. */
double vcard_i2c_limit_us(const struct card_timing *tm, double proc_ms, size_t req, size_t rsp);
#endif
