/* What end-to-end encryption costs per note, next to what the link costs anyway.
 * Prints seal/open time for a 160-byte body with P-384 and RSA-3072, the link
 * time per note, their ratio, and the bytes each envelope adds to a note. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

/* Link time per note: notecard-facts.md §3 ("Physical limits": a 160-byte note.add
 * with note-c pacing and 253-byte chunks runs at ~18 notes/s; pacing, not the bus,
 * sets the rate) rounded to ~1/15 s. A constant, not a measurement. The same
 * pacing adds 250 ms after every 250 bytes written, so a request that grows past
 * a segment boundary costs a whole extra pause: that is printed too. */
#define LINK_S_PER_NOTE (1.0 / 15.0)
#define SEGMENT_BYTES   250
#define SEGMENT_PAUSE_S 0.250
/* {"req":"note.add","file":"data.qo","body":...}\n around the body */
#define NOTE_ADD_WRAPPER 40
#define BODY_LEN         160
#define ITER_P384        300
#define ITER_RSA         100

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(const char *name, enum crypto_key_type type, int iters, const char *body)
{
	struct crypto_key *k = NULL;
	json_t *env = NULL;
	int r = crypto_key_generate(type, 3072, &k);
	if (r < 0) {
		fprintf(stderr, "crypto_bench: keygen %s: %s\n", name, strerror(-r));
		return 1;
	}
	double t0 = now_s();
	for (int i = 0; i < iters; i++) {
		json_decref(env);
		if (crypto_seal(k, body, strlen(body), &env) < 0) {
			fprintf(stderr, "crypto_bench: seal failed\n");
			return 1;
		}
	}
	double seal = (now_s() - t0) / iters;
	char *pt = NULL;
	size_t len = 0;
	const char *why;
	t0 = now_s();
	for (int i = 0; i < iters; i++) {
		crypto_free_plaintext(pt, len);
		if (crypto_open(k, env, &pt, &len, &why) < 0) {
			fprintf(stderr, "crypto_bench: open failed: %s\n", why);
			return 1;
		}
	}
	double open = (now_s() - t0) / iters;
	char *wire = json_dumps(env, JSON_COMPACT);
	size_t env_bytes = wire ? strlen(wire) : 0;
	printf("%-9s seal %8.3f ms/note  open %8.3f ms/note  seal/link %6.4f  "
	       "body %zu -> %zu bytes (+%zu)\n",
	       crypto_key_describe(k), seal * 1e3, open * 1e3, seal / LINK_S_PER_NOTE, strlen(body),
	       env_bytes, env_bytes - strlen(body));
	size_t seg_plain = (strlen(body) + NOTE_ADD_WRAPPER + SEGMENT_BYTES - 1) / SEGMENT_BYTES;
	size_t seg_enc = (env_bytes + NOTE_ADD_WRAPPER + SEGMENT_BYTES - 1) / SEGMENT_BYTES;
	double extra = (double)(seg_enc - seg_plain) * SEGMENT_PAUSE_S;
	printf("%-9s note.add segments %zu -> %zu: +%.0f ms of link pacing per note "
	       "(link time %.1f -> %.1f ms, %.2fx)\n",
	       "", seg_plain, seg_enc, extra * 1e3, LINK_S_PER_NOTE * 1e3,
	       (LINK_S_PER_NOTE + extra) * 1e3, (LINK_S_PER_NOTE + extra) / LINK_S_PER_NOTE);
	free(wire);
	crypto_free_plaintext(pt, len);
	json_decref(env);
	crypto_key_free(k);
	return 0;
}

int main(void)
{
	char body[BODY_LEN + 1];
	/* A 160-byte JSON body, like a sensor note. */
	int n =
	    snprintf(body, sizeof(body),
	             "{\"temp\":21.5,\"humidity\":48.2,\"voltage\":230.1,\"current\":4.71,"
	             "\"power\":1083.8,\"energy\":123456.7,\"status\":\"ok\",\"seq\":1,\"pad\":\"");
	while (n < BODY_LEN - 2)
		body[n++] = 'x';
	body[n++] = '"';
	body[n++] = '}';
	body[n] = '\0';
	printf("link time per note: %.1f ms (~1/15 s: I2C with note-c pacing, notecard-facts.md "
	       "section 3; a constant)\n",
	       LINK_S_PER_NOTE * 1e3);
	if (bench("p384", CRYPTO_KEY_P384, ITER_P384, body) ||
	    bench("rsa3072", CRYPTO_KEY_RSA, ITER_RSA, body))
		return 1;
	return 0;
}
