/* crypto_bench's virtual I2C Notecard (bench/vcard.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vcard.h"

static uint64_t v_now_ms(void *ctx)
{
	return (uint64_t)(((struct vclock *)ctx)->now_us / 1000.0);
}
static void v_sleep_us(void *ctx, uint64_t us)
{
	((struct vclock *)ctx)->now_us += (double)us;
}

double vcard_bus_us(size_t bytes)
{
	return (double)bytes * 9.0 * 1e6 / VCARD_BUS_HZ;
}

static void vcard_answer(struct vcard *v)
{
	/* the request's seq, echoed with a crc as a real card does */
	v->in[v->in_len - 1] = 0;
	const char *c = strstr(v->in, "\"crc\":\"");
	uint16_t seq = c ? (uint16_t)strtoul(c + 7, NULL, 16) : 0;
	const char *rsp = "{\"total\":1}";
	v->out_len = card_crc_append(rsp, strlen(rsp), seq, v->out, sizeof(v->out) - 2);
	memcpy(v->out + v->out_len, "\r\n", 2);
	v->out_len += 2;
	v->out_pos = 0;
	v->in_len = 0;
	v->ready_at_us = v->clk.now_us + v->proc_ms * 1000.0;
}

static int vb_open(void *ctx, const char *d, unsigned a)
{
	return 1;
}
static void vb_close(void *ctx, int h)
{
}
static int vb_xfer(void *ctx, int h, unsigned addr, const uint8_t *w, size_t wlen, uint8_t *r,
                   size_t rlen)
{
	struct vcard *v = ctx;
	size_t bytes = (wlen ? 1 + wlen : 0) + (rlen ? 1 + rlen : 0);
	v->clk.now_us += vcard_bus_us(bytes);
	v->bus_bytes += bytes;
	if (!rlen) {
		memcpy(v->in + v->in_len, w + 1, w[0]);
		v->in_len += w[0];
		if (v->in_len == 1 && v->in[0] == '\n') {
			/* a resync's lone newline: answered with a bare line end */
			memcpy(v->out, "\r\n", 2);
			v->out_len = 2;
			v->out_pos = 0;
			v->in_len = 0;
			v->ready_at_us = v->clk.now_us;
		} else if (v->in_len && v->in[v->in_len - 1] == '\n') {
			vcard_answer(v);
		}
		return 0;
	}
	size_t held = v->clk.now_us >= v->ready_at_us ? v->out_len - v->out_pos : 0;
	size_t n = w[1] <= held ? w[1] : held;
	r[0] = (uint8_t)(held - n > 255 ? 255 : held - n);
	r[1] = (uint8_t)n;
	memcpy(r + 2, v->out + v->out_pos, n);
	v->out_pos += n;
	return 0;
}

/* What the pacing alone allows per request: every mandated pause, every
 * necessary transfer's bus time, and the card's own processing where it is
 * longer than the pause after the last chunk. */
double vcard_i2c_limit_us(const struct card_timing *tm, double proc_ms, size_t req, size_t rsp)
{
	double t = 0, seg = 0, last_pause = 0;
	size_t left = req;
	while (left) {
		size_t n = left < tm->i2c_chunk_max ? left : tm->i2c_chunk_max;
		t += tm->i2c_pre_io_us + vcard_bus_us(2 + n);
		seg += (double)n;
		left -= n;
		double pause = tm->i2c_chunk_delay_ms * 1000.0;
		if (seg > tm->segment_bytes) {
			seg = 0;
			pause += tm->segment_delay_ms * 1000.0;
		}
		t += pause;
		last_pause = pause;
	}
	/* the poll that learns the length: its pre-I/O pause runs while the card works */
	double wait = tm->i2c_pre_io_us, proc_left = proc_ms * 1000.0 - last_pause;
	t += (proc_left > wait ? proc_left : wait) + vcard_bus_us(1 + 2 + 1 + 2);
	left = rsp;
	while (left) {
		size_t n = left < tm->i2c_chunk_max ? left : tm->i2c_chunk_max;
		t += tm->i2c_pre_io_us + vcard_bus_us(1 + 2 + 1 + 2 + n);
		left -= n;
	}
	return t;
}

int vcard_new(double proc_ms, const struct card_timing *tm, struct vcard **v_out,
              struct card_transport **t_out, struct card **c_out)
{
	struct vcard *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->proc_ms = proc_ms;
	v->clk.c = (struct card_clock){v_now_ms, v_sleep_us, &v->clk};
	struct card_i2c_bus bus = {vb_open, vb_close, vb_xfer, v};
	int r = card_transport_i2c_new_bus("/dev/i2c-bench", 0x17, tm, &v->clk.c, &bus, t_out);
	if (r < 0) {
		free(v);
		return r;
	}
	if ((r = card_new(*t_out, c_out)) < 0) {
		card_transport_free(*t_out);
		free(v);
		return r;
	}
	*v_out = v;
	return 0;
}
