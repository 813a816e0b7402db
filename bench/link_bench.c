/* link_bench: notes per second for a 160-byte note.add through the real request
 * layer and transports, next to the limit the protocol's own pacing allows for
 * the same bytes.
 *  - I2C: the real i2c.c framing on bench/vcard.c's simulated bus (100 kHz, 9 clocks per byte,
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
#include "vcard.h"

#define NOTES 200
/* the simulator's note.add processing time (real timing); a slower card is shown too,
 * where the 50 ms poll interval starts to cost */
static double PROC_MS = 25.0;
#define BAUD 9600.0

/* The 160-byte request line (crc included) every run sends. */
static json_t *note_req(void)
{
	json_t *req =
	    json_pack("{s:s,s:s,s:{s:f,s:f,s:s,s:s}}", "req", "note.add", "file", "sensors.qo",
	              "body", "temp", 21.5, "hum", 48.25, "site", "plant-7", "_id", "");
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

static void bench_i2c(unsigned chunk)
{
	struct vcard *v;
	struct card_timing tm = card_timing_default;
	tm.i2c_chunk_max = chunk;
	struct card_transport *t;
	struct card *c;
	if (vcard_new(PROC_MS, &tm, &v, &t, &c) < 0) {
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
	double limit = vcard_i2c_limit_us(&tm, PROC_MS, req_bytes, rsp_bytes);
	printf("i2c %3u-byte chunks, %2.0f ms card: %zu-byte request, %zu-byte answer: %6.2f "
	       "notes/s; pacing "
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
			size_t len =
			    card_crc_append("{\"total\":1}", 11, seq, out, sizeof(out) - 2);
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
	double req_b = (double)(t->bytes_out - out0) / notes,
	       rsp_b = (double)(t->bytes_in - in0) / notes;
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
