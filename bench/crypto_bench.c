/* What end-to-end encryption costs per note, next to what the link costs for the
 * same note. For a 160-byte body it builds the note.add the link really sends
 * (link_note_request): in the clear, sealed as a v2 payload (P-384), and as a v1
 * envelope body (P-384 as before v2, RSA-3072). For each it prints the bytes added
 * on the air (the card stores and sends a payload as binary, a body as its JSON
 * text), the request line's length, the seal CPU time per note (median of ROUNDS
 * rounds, next to building the plain request in the same rounds) and the link time
 * two ways:
 * - "note-c": what Blues' note-c pacing needs for those very bytes (the request line
 *   and the card's answer, both counted on the wire below), computed from note-c's
 *   constants alone (n_lib.h, n_i2c.c, n_serial.c; the same model as
 *   bench/link_bench.py), over I2C at 100 kHz and over a 9600-baud UART. This is the
 *   limit cpu/link is taken against: it does not come from notegw's timing code.
 * - "notegw": the request sent through notegw's real request layer and i2c.c pacing
 *   to bench/vcard.c's virtual I2C card, in virtual time (a cross-check of the
 *   first: the two should be close).
 * The card's own processing (CARD_MS) is in both: it is the simulator's setting.
 * Usage: crypto_bench [ROUNDS]. Figures with date and machine: docs/benchmarks.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchlib.h"
#include "cfg.h"
#include "crypto.h"
#include "notecard/link_int.h"
#include "store.h"
#include "vcard.h"

#define BODY_LEN   160
#define CARD_MS    25.0 /* the simulator's note.add processing time, as link_bench */
#define LINK_NOTES 20
#define GATEWAY_ID "dev:864475046552637"
#define NOTE_SEQ   123456

/* note-c's pacing (n_lib.h, n_i2c.c, n_serial.c) and the bus and line speeds */
#define NC_I2C_MAX          253
#define NC_DELAY_IO_MS      6.0
#define NC_CHUNK_DELAY_MS   20.0
#define NC_SEGMENT_BYTES    250
#define NC_SEGMENT_DELAY_MS 250.0
#define NC_POLL_MS          50.0
#define NC_SERIAL_SEG_BYTES 250
#define NC_SERIAL_SEG_DELAY 250.0
#define NC_BUS_HZ           100000.0
#define NC_BAUD             9600.0

/* One I2C message of n data bytes plus the address byte, 9 clocks a byte. */
static double bus_ms(size_t n)
{
	return (double)(n + 1) * 9 * 1000.0 / NC_BUS_HZ;
}

/* note-c over I2C: chunks of <= 253 bytes, 6 ms before each and 20 ms after, 250 ms
 * once a segment has passed 250 bytes; then the length polled every 50 ms until the
 * card has answered; then the answer read back to back. */
static double notec_i2c_ms(size_t req, size_t rsp)
{
	double t = 0, waited;
	size_t seg = 0, left = req;
	while (left) {
		size_t n = left < NC_I2C_MAX ? left : NC_I2C_MAX;
		t += NC_DELAY_IO_MS + bus_ms(1 + n);
		seg += n;
		left -= n;
		if (seg > NC_SEGMENT_BYTES) {
			seg = 0;
			t += NC_SEGMENT_DELAY_MS;
		}
		t += NC_CHUNK_DELAY_MS;
	}
	waited = NC_CHUNK_DELAY_MS + NC_DELAY_IO_MS;
	t += NC_DELAY_IO_MS + bus_ms(2) + bus_ms(2);
	while (waited < CARD_MS) {
		t += NC_POLL_MS + bus_ms(2) + bus_ms(2);
		waited += NC_POLL_MS;
	}
	for (left = rsp; left;) {
		size_t n = left < NC_I2C_MAX ? left : NC_I2C_MAX;
		t += bus_ms(2) + bus_ms(2 + n);
		left -= n;
	}
	return t;
}

/* note-c over a UART: the bytes at 10 bits each, 250 ms after each full 250-byte
 * segment with more after it, and the card's processing. */
static double notec_serial_ms(size_t req, size_t rsp)
{
	size_t pauses = req ? (req - 1) / NC_SERIAL_SEG_BYTES : 0;
	return (double)(req + rsp) * 10 * 1000.0 / NC_BAUD + (double)pauses * NC_SERIAL_SEG_DELAY +
	       CARD_MS;
}

/* Link time per note for this request: virtual time on the simulated I2C card; the
 * request's and the answer's bytes on the wire per note. */
static double link_ms(json_t *req, size_t *line, size_t *answer)
{
	struct vcard *v;
	struct card_transport *t;
	struct card *c;
	json_t *rsp;
	if (vcard_new(CARD_MS, &card_timing_default, &v, &t, &c) < 0)
		return -1;
	double per = -1;
	if (card_request(c, req, &rsp) < 0) /* open and resync: not part of the rate */
		goto out;
	json_decref(rsp);
	uint64_t out0 = t->bytes_out, in0 = t->bytes_in;
	double t0 = v->clk.now_us;
	for (int i = 0; i < LINK_NOTES; i++) {
		if (card_request(c, req, &rsp) < 0)
			goto out;
		json_decref(rsp);
	}
	per = (v->clk.now_us - t0) / LINK_NOTES / 1000.0;
	*line = (size_t)((t->bytes_out - out0) / LINK_NOTES);
	*answer = (size_t)((t->bytes_in - in0) / LINK_NOTES);
out:
	card_free(c);
	free(v);
	return per;
}

/* Bytes the card keeps and sends for a note: the body's JSON text plus the payload. */
static size_t air_bytes(json_t *req)
{
	json_t *b = json_object_get(req, "body"), *p = json_object_get(req, "payload");
	char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
	size_t n = s ? strlen(s) : 0;
	free(s);
	if (json_is_string(p))
		n += json_string_length(p) / 4 * 3 -
		     (json_string_value(p)[json_string_length(p) - 1] == '=') -
		     (json_string_length(p) > 1 &&
		      json_string_value(p)[json_string_length(p) - 2] == '=');
	return n;
}

/* The request before v2 sealed P-384 notes as a payload: the v1 envelope body. */
static int v1_request(const struct crypto_key *k, const struct store_out *n, json_t **req)
{
	json_t *env;
	int r = crypto_seal(k, n->body, strlen(n->body), &env);
	if (r < 0)
		return r;
	char id[64];
	snprintf(id, sizeof(id), "%s:%lld", GATEWAY_ID, (long long)n->seq);
	json_object_set_new(env, "_id", json_string(id));
	*req = json_pack("{s:s,s:s,s:o}", "req", "note.add", "file", n->file, "body", env);
	return *req ? 0 : -ENOMEM;
}

/* plain; sealed the way the link seals (v2 payload for P-384, v1 envelope for RSA);
 * the v1 envelope P-384 notes had before v2 */
enum way { PLAIN, LINK, V1_ENVELOPE };

/* One note's request, the way given; the seal (or plain build) CPU time added to *cpu. */
static int build(enum way w, const struct link_opts *o, const struct crypto_key *k,
                 const struct store_out *n, json_t **req, double *cpu)
{
	double t0 = bench_now_s();
	int r =
	    w == V1_ENVELOPE ? v1_request(k, n, req) : link_note_request(o, k, GATEWAY_ID, n, req);
	*cpu += bench_now_s() - t0;
	return r;
}

static int row(const char *name, enum way w, struct crypto_key *k, const struct store_out *n,
               int rounds, int per_round, size_t plain_air, double plain_link)
{
	/* plain_link: note-c's I2C time for the plain request (< 0: this is it) */
	char nf_name[] = "data.qo";
	struct link_notefile nf = {nf_name, w == PLAIN ? CFG_OFF : CFG_ON, false};
	struct link_opts o = {.uplink = CFG_UPLINK_HOST, .nf = &nf, .n_nf = 1};
	double *cpu = calloc((size_t)rounds, sizeof(*cpu));
	json_t *req = NULL;
	if (!cpu)
		return -ENOMEM;
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < per_round; i++) {
			json_decref(req);
			req = NULL;
			if (build(w, &o, k, n, &req, &cpu[r]) < 0) {
				fprintf(stderr, "crypto_bench: %s: building the request failed\n",
				        name);
				free(cpu);
				return -EIO;
			}
		}
	for (int r = 0; r < rounds; r++)
		cpu[r] /= per_round;
	double per_note = bench_median(cpu, rounds);
	size_t line = 0, answer = 0;
	double own = link_ms(req, &line, &answer);
	double i2c = notec_i2c_ms(line, answer), uart = notec_serial_ms(line, answer);
	size_t air = air_bytes(req);
	printf("%-21s %4zu (+%3zd) %5zu %8.1f (+%5.1f) %8.1f %8.1f %8.4f %9.5f %9.5f\n", name, air,
	       (ssize_t)air - (ssize_t)plain_air, line, i2c,
	       plain_link > 0 ? i2c - plain_link : 0.0, uart, own, per_note * 1e3,
	       per_note * 1e3 / i2c, per_note * 1e3 / uart);
	json_decref(req);
	free(cpu);
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 7;
	char body[BODY_LEN + 1], file[] = "data.qo";
	struct crypto_key *p384 = NULL, *rsa = NULL;
	if (rounds < 1) {
		fprintf(stderr, "usage: crypto_bench [ROUNDS]\n");
		return 2;
	}
	/* A 160-byte JSON body, like a sensor note. */
	int n = snprintf(body, sizeof(body),
	                 "{\"temp\":21.5,\"humidity\":48.2,\"voltage\":230.1,\"current\":4.71,"
	                 "\"power\":1083.8,\"energy\":123456.7,\"status\":\"ok\",\"seq\":1,"
	                 "\"pad\":\"");
	while (n < BODY_LEN - 2)
		body[n++] = 'x';
	body[n++] = '"';
	body[n++] = '}';
	body[n] = '\0';
	struct store_out note = {.id = 1, .seq = NOTE_SEQ, .file = file, .body = body};
	if (crypto_key_generate(CRYPTO_KEY_P384, 0, &p384) < 0 ||
	    crypto_key_generate(CRYPTO_KEY_RSA, 3072, &rsa) < 0) {
		fprintf(stderr, "crypto_bench: key generation failed\n");
		return 1;
	}
	/* the plain request first: the baseline the others are compared with */
	char nf_name[] = "data.qo";
	struct link_notefile nf = {nf_name, CFG_OFF, false};
	struct link_opts o = {.uplink = CFG_UPLINK_OFF, .nf = &nf, .n_nf = 1};
	json_t *plain = NULL;
	size_t plain_line = 0, plain_answer = 0;
	if (link_note_request(&o, NULL, GATEWAY_ID, &note, &plain) < 0) {
		fprintf(stderr, "crypto_bench: plain request failed\n");
		return 1;
	}
	size_t plain_air = air_bytes(plain);
	if (link_ms(plain, &plain_line, &plain_answer) < 0) {
		fprintf(stderr, "crypto_bench: the virtual card did not answer\n");
		return 1;
	}
	double plain_link = notec_i2c_ms(plain_line, plain_answer);
	json_decref(plain);
	printf("crypto_bench: %d-byte body, one note.add, %.0f ms card processing; seal CPU the "
	       "median of %d rounds\n",
	       BODY_LEN, CARD_MS, rounds);
	printf("  air: bytes the card keeps and sends (payload as binary); line: request bytes "
	       "on the wire, crc and newline included\n");
	printf("  link: note-c's pacing for these bytes over I2C (100 kHz) and a 9600-baud UART; "
	       "notegw: its own pacing on the virtual card (cross-check)\n");
	printf("%-21s %4s %6s %5s %8s %8s %8s %8s %8s %9s %9s\n", "", "air", "added", "line",
	       "i2c ms", "added", "uart ms", "notegw", "cpu ms", "cpu/i2c", "cpu/uart");
	/* a v2 round is one whole batch: each round pays exactly one key setup */
	int r =
	    row("plain", PLAIN, NULL, &note, rounds, 1000, plain_air, -1) ||
	    row("P-384 v2 payload", LINK, p384, &note, rounds, (int)CRYPTO_PAYLOAD_BATCH, plain_air,
	        plain_link) ||
	    row("P-384 v1 envelope", V1_ENVELOPE, p384, &note, rounds, 50, plain_air, plain_link) ||
	    row("RSA-3072 v1 envelope", LINK, rsa, &note, rounds, 50, plain_air, plain_link);
	crypto_key_free(p384);
	crypto_key_free(rsa);
	return r ? 1 : 0;
}
