/* link_bench: notes per second for a 160-byte note.add through the real request
 * layer and transports, next to the limit the protocol's own pacing allows for
 * the same bytes.
 *  - I2C: the real i2c.c framing on a simulated bus (100 kHz, 9 clocks per byte,
 *    address byte per message) and a card that needs proc_ms per request; virtual
 *    time, so it runs in a blink and measures the code's choices, not the host.
 *    Once with 253-byte chunks (what Linux allows), once with note-c's 30.
 *  - Serial: the real serial.c on a pseudo-terminal, with a card thread that
 *    holds every byte for its time on a 9600-baud wire; real time (a few seconds).
 * No pass/fail: it prints figures and the ratio achieved / limit. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "notecard/card.h"
#include "notecard/i2c.h"

#define NOTES 200
/* the simulator's note.add processing time (real timing); a slower card is shown too,
 * where the 50 ms poll interval starts to cost */
static double PROC_MS = 25.0;
#define BUS_HZ 100000.0
#define BAUD 9600.0

/* ---- virtual time ---------------------------------------------------------------- */
struct vclock {
	double now_us;
	struct card_clock c;
};
static uint64_t v_now_ms(void *ctx)
{
	return (uint64_t)(((struct vclock *)ctx)->now_us / 1000.0);
}
static void v_sleep_us(void *ctx, uint64_t us)
{
	((struct vclock *)ctx)->now_us += (double)us;
}

/* ---- a card on a simulated I2C bus ---------------------------------------------- */
struct vcard {
	struct vclock clk;
	char in[4096];
	size_t in_len;
	char out[1024];
	size_t out_len, out_pos;
	double ready_at_us; /* when the answer becomes available */
	uint64_t bus_bytes;
};

static double bus_us(size_t bytes)
{
	return (double)bytes * 9.0 * 1e6 / BUS_HZ;
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
	v->ready_at_us = v->clk.now_us + PROC_MS * 1000.0;
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
	v->clk.now_us += bus_us(bytes);
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

/* The 160-byte request line (crc included) every run sends. */
static json_t *note_req(void)
{
	json_t *req = json_pack("{s:s,s:s,s:{s:f,s:f,s:s,s:s}}", "req", "note.add", "file",
	                        "sensors.qo", "body", "temp", 21.5, "hum", 48.25, "site", "plant-7",
	                        "_id", "");
	char *t = json_dumps(req, JSON_COMPACT);
	size_t base = strlen(t) + 22 + 1; /* crc field and newline */
	free(t);
	char pad[200];
	size_t need = 160 > base ? 160 - base : 0;
	memset(pad, 'x', need);
	pad[need] = 0;
	json_object_set_new(json_object_get(req, "body"), "_id", json_string(pad));
	return req;
}

/* What the pacing alone allows per request: every mandated pause, every
 * necessary transfer's bus time, and the card's own processing where it is
 * longer than the pause after the last chunk. */
static double i2c_limit_us(const struct card_timing *tm, size_t req, size_t rsp)
{
	double t = 0, seg = 0, last_pause = 0;
	size_t left = req;
	while (left) {
		size_t n = left < tm->i2c_chunk_max ? left : tm->i2c_chunk_max;
		t += tm->i2c_pre_io_us + bus_us(2 + n);
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
	double wait = tm->i2c_pre_io_us, proc_left = PROC_MS * 1000.0 - last_pause;
	t += (proc_left > wait ? proc_left : wait) + bus_us(1 + 2 + 1 + 2);
	left = rsp;
	while (left) {
		size_t n = left < tm->i2c_chunk_max ? left : tm->i2c_chunk_max;
		t += tm->i2c_pre_io_us + bus_us(1 + 2 + 1 + 2 + n);
		left -= n;
	}
	return t;
}

static void bench_i2c(unsigned chunk)
{
	struct vcard *v = calloc(1, sizeof(*v));
	v->clk.c = (struct card_clock){v_now_ms, v_sleep_us, &v->clk};
	struct card_timing tm = card_timing_default;
	tm.i2c_chunk_max = chunk;
	struct card_i2c_bus bus = {vb_open, vb_close, vb_xfer, v};
	struct card_transport *t;
	struct card *c;
	if (card_transport_i2c_new_bus("/dev/i2c-bench", 0x17, &tm, &v->clk.c, &bus, &t) < 0 ||
	    card_new(t, &c) < 0) {
		fprintf(stderr, "link_bench: setup failed\n");
		exit(1);
	}
	json_t *req = note_req(), *rsp;
	/* one request first: open and the initial resync are not part of the rate */
	if (card_request(c, req, &rsp) < 0) {
		fprintf(stderr, "link_bench: i2c request failed\n");
		exit(1);
	}
	json_decref(rsp);
	uint64_t out0 = t->bytes_out, in0 = t->bytes_in;
	double t0 = v->clk.now_us;
	for (int i = 0; i < NOTES; i++) {
		if (card_request(c, req, &rsp) < 0 || json_object_get(rsp, "err")) {
			fprintf(stderr, "link_bench: i2c request failed\n");
			exit(1);
		}
		json_decref(rsp);
	}
	double per = (v->clk.now_us - t0) / NOTES;
	size_t req_bytes = (size_t)((t->bytes_out - out0) / NOTES);
	size_t rsp_bytes = (size_t)((t->bytes_in - in0) / NOTES);
	double limit = i2c_limit_us(&tm, req_bytes, rsp_bytes);
	printf("i2c %3u-byte chunks, %2.0f ms card: %zu-byte request, %zu-byte answer: %6.2f notes/s; pacing "
	       "limit %6.2f notes/s; ratio %.3f\n",
	       chunk, PROC_MS, req_bytes, rsp_bytes, 1e6 / per, 1e6 / limit, limit / per);
	json_decref(req);
	card_free(c);
	free(v);
}

/* ---- serial at 9600 baud over a pty ---------------------------------------------- */
struct scard {
	int master;
	volatile int stop;
};

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *scard_main(void *arg)
{
	struct scard *s = arg;
	char line[4096];
	size_t n = 0;
	while (!s->stop) {
		struct pollfd p = {s->master, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		char b[512];
		ssize_t k = read(s->master, b, sizeof(b));
		if (k <= 0) {
			/* EIO until the host has opened the pty's other side */
			sleep_s(0.005);
			continue;
		}
		/* the wire delivers 10 bits per byte at the baud rate */
		sleep_s((double)k * 10.0 / BAUD);
		for (ssize_t i = 0; i < k; i++) {
			if (n < sizeof(line) - 1)
				line[n++] = b[i];
			if (b[i] != '\n')
				continue;
			line[n - 1] = 0;
			n = 0;
			if (!strchr(line, '{')) {
				if (write(s->master, "\r\n", 2) != 2)
					return NULL;
				continue;
			}
			const char *c = strstr(line, "\"crc\":\"");
			uint16_t seq = c ? (uint16_t)strtoul(c + 7, NULL, 16) : 0;
			char out[256];
			size_t len = card_crc_append("{\"total\":1}", 11, seq, out, sizeof(out) - 2);
			memcpy(out + len, "\r\n", 2);
			len += 2;
			sleep_s(PROC_MS / 1000.0 + (double)len * 10.0 / BAUD);
			if (write(s->master, out, len) != (ssize_t)len)
				return NULL;
		}
	}
	return NULL;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_serial(void)
{
	int master, slave;
	char path[256];
	if (openpty(&master, &slave, path, NULL, NULL) < 0) {
		printf("serial: no pty available, skipped\n");
		return;
	}
	struct termios tio;
	tcgetattr(master, &tio);
	cfmakeraw(&tio);
	tcsetattr(master, TCSANOW, &tio);
	close(slave);
	struct scard s = {master, 0};
	pthread_t th;
	pthread_create(&th, NULL, scard_main, &s);
	struct card_timing tm = card_timing_default;
	struct card_transport *t;
	struct card *c;
	if (card_transport_serial_new(path, 9600, &tm, &card_clock_real, &t) < 0 ||
	    card_new(t, &c) < 0) {
		fprintf(stderr, "link_bench: serial setup failed\n");
		exit(1);
	}
	json_t *req = note_req(), *rsp;
	int r0 = card_request(c, req, &rsp);
	if (r0 < 0) {
		fprintf(stderr, "link_bench: serial request failed: %s\n", strerror(-r0));
		exit(1);
	}
	json_decref(rsp);
	const int notes = 12;
	uint64_t out0 = t->bytes_out, in0 = t->bytes_in;
	double t0 = mono_s();
	for (int i = 0; i < notes; i++) {
		int r = card_request(c, req, &rsp);
		if (r < 0) {
			fprintf(stderr, "link_bench: serial request failed: %s\n", strerror(-r));
			exit(1);
		}
		json_decref(rsp);
	}
	double per = (mono_s() - t0) / notes;
	double req_b = (double)(t->bytes_out - out0) / notes, rsp_b = (double)(t->bytes_in - in0) / notes;
	double limit = (req_b + rsp_b) * 10.0 / BAUD + PROC_MS / 1000.0;
	printf("serial 9600 baud:   %.0f-byte request, %.0f-byte answer: %6.2f notes/s; wire limit "
	       "%6.2f notes/s; ratio %.3f\n",
	       req_b, rsp_b, 1.0 / per, 1.0 / limit, limit / per);
	s.stop = 1;
	pthread_join(th, NULL);
	json_decref(req);
	card_free(c);
	close(master);
}

int main(void)
{
	printf("link_bench: %d x 160-byte note.add, card processing %.0f ms per request\n", NOTES,
	       PROC_MS);
	bench_i2c(253);
	bench_i2c(30);
	bench_serial();
	PROC_MS = 60.0;
	bench_i2c(253);
	return 0;
}
