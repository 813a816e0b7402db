/* The request layer on a scripted fake transport and a fake clock: CRC known
 * answers, the crc field, sequence numbers, and the retry/reset policy for each
 * fault (timeout, garbled, crc and sequence mismatch, a card error without a crc, {io},
 * {io}{not-supported}, semantic errors, {bad-bin}, heartbeats), timeouts per request. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakeclock.h"
#include "notecard/card.h"

enum act { A_LINE, A_CRC, A_BADCRC, A_BADSEQ, A_ERR };
struct step {
	enum act act;
	const char *text; /* the answer's JSON (A_CRC: the crc is added for the request's seq) */
	int err;          /* A_ERR */
};

struct fake {
	struct fakeclock clk;
	struct step script[64];
	size_t n, pos;
	char sent[64][512];
	size_t n_sent;
	unsigned first_ms[64];
	size_t n_recv;
	int resets, opens, closes;
	int open_err;
	uint16_t last_seq;
};

static struct fake *F;
static struct card_timing tm;

static int f_open(struct card_transport *t)
{
	F->opens++;
	return F->open_err;
}
static void f_close(struct card_transport *t)
{
	F->closes++;
}
static int f_reset(struct card_transport *t)
{
	F->resets++;
	return 0;
}
static int f_send(struct card_transport *t, const char *buf, size_t len)
{
	assert_true(len < 512);
	assert_int_equal(buf[len - 1], '\n');
	assert_null(memchr(buf, '\n', len - 1)); /* one line */
	memcpy(F->sent[F->n_sent], buf, len - 1);
	F->sent[F->n_sent][len - 1] = 0;
	const char *c = strstr(F->sent[F->n_sent], "\"crc\":\"");
	if (c)
		F->last_seq = (uint16_t)strtoul(c + 7, NULL, 16);
	F->n_sent++;
	return 0;
}
static int f_recv(struct card_transport *t, char *buf, size_t cap, size_t *len, unsigned first_ms)
{
	F->first_ms[F->n_recv++] = first_ms;
	if (F->pos >= F->n)
		return -ETIMEDOUT;
	struct step *s = &F->script[F->pos++];
	if (s->act == A_ERR)
		return s->err;
	size_t n = strlen(s->text);
	if (s->act == A_LINE) {
		memcpy(buf, s->text, n + 1);
		*len = n;
		return 0;
	}
	uint16_t seq = F->last_seq;
	if (s->act == A_BADSEQ)
		seq++;
	*len = card_crc_append(s->text, n, seq, buf, cap);
	assert_true(*len > 0);
	if (s->act == A_BADCRC)
		buf[*len - 4] = buf[*len - 4] == '0' ? '1' : '0';
	return 0;
}
static void f_free(struct card_transport *t)
{
	free(t);
}
static const struct card_transport_ops fops = {"fake", f_open, f_close, f_reset,
                                               f_send, f_recv, f_free};

static struct card *C;

static int setup(void **state)
{
	F = calloc(1, sizeof(*F));
	fakeclock_init(&F->clk);
	tm = card_timing_default;
	struct card_transport *t = calloc(1, sizeof(*t));
	t->ops = &fops;
	t->timing = &tm;
	t->clock = &F->clk.clock;
	assert_int_equal(card_new(t, &C), 0);
	return 0;
}
static int teardown(void **state)
{
	card_free(C);
	free(F);
	return 0;
}

static void script(enum act a, const char *text)
{
	F->script[F->n++] = (struct step){a, text, 0};
}
static void script_err(int err)
{
	F->script[F->n++] = (struct step){A_ERR, NULL, err};
}

static int req(const char *text, json_t **rsp)
{
	json_t *r = json_loads(text, 0, NULL);
	assert_non_null(r);
	int rc = card_request(C, r, rsp);
	json_decref(r);
	return rc;
}

/* ---- CRC ---------------------------------------------------------------------- */
static void test_crc32_known(void **state)
{
	assert_int_equal(card_crc32("123456789", 9), 0xCBF43926u);
	assert_int_equal(card_crc32("", 0), 0);
}

static void test_crc_field(void **state)
{
	char out[128];
	const char *r = "{\"req\":\"card.version\"}";
	size_t n = card_crc_append(r, strlen(r), 0, out, sizeof(out));
	out[n] = 0;
	assert_string_equal(out, "{\"req\":\"card.version\",\"crc\":\"0000:9295BAB2\"}");
	n = card_crc_append("{}", 2, 0x1a2b, out, sizeof(out));
	out[n] = 0;
	assert_string_equal(out, "{\"crc\":\"1A2B:A3A6BF43\"}");
	/* too small a buffer, or not an object */
	assert_int_equal(card_crc_append(r, strlen(r), 0, out, 30), 0);
	assert_int_equal(card_crc_append("[1]", 3, 0, out, sizeof(out)), 0);
}

static void test_crc_check(void **state)
{
	char buf[128];
	size_t len;
	strcpy(buf, "{\"ok\":true,\"crc\":\"0007:A7D45F90\"}");
	len = strlen(buf);
	assert_int_equal(card_crc_check(buf, &len, 7), 0);
	assert_string_equal(buf, "{\"ok\":true}");
	assert_int_equal(len, 11);
	/* lowercase hex is the same number */
	strcpy(buf, "{\"ok\":true,\"crc\":\"0007:a7d45f90\"}");
	len = strlen(buf);
	assert_int_equal(card_crc_check(buf, &len, 7), 0);
	strcpy(buf, "{\"ok\":true,\"crc\":\"0007:A7D45F91\"}");
	len = strlen(buf);
	assert_int_equal(card_crc_check(buf, &len, 7), -EBADMSG);
	strcpy(buf, "{\"ok\":true,\"crc\":\"0008:A7D45F90\"}");
	len = strlen(buf);
	assert_int_equal(card_crc_check(buf, &len, 7), -ERANGE);
	strcpy(buf, "{\"ok\":true}");
	len = strlen(buf);
	assert_int_equal(card_crc_check(buf, &len, 7), 1);
	assert_string_equal(buf, "{\"ok\":true}");
	strcpy(buf, "{\"crc\":\"0003:A3A6BF43\"}");
	len = strlen(buf);
	assert_int_equal(card_crc_check(buf, &len, 3), 0);
	assert_string_equal(buf, "{}");
	/* a crc-looking value inside a body is not the field */
	strcpy(buf, "{\"body\":{\"crc\":\"0003:A3A6BF43\"},\"x\":1}");
	len = strlen(buf);
	assert_int_equal(card_crc_check(buf, &len, 3), 1);
}

/* ---- requests ------------------------------------------------------------------ */
static void test_ok_and_sequence(void **state)
{
	json_t *rsp;
	script(A_CRC, "{\"version\":\"notecard-8.1.3\"}");
	assert_int_equal(req("{\"req\":\"card.version\"}", &rsp), 0);
	assert_string_equal(json_string_value(json_object_get(rsp, "version")), "notecard-8.1.3");
	assert_null(json_object_get(rsp, "crc")); /* stripped */
	json_decref(rsp);
	assert_string_equal(F->sent[0], "{\"req\":\"card.version\",\"crc\":\"0000:9295BAB2\"}");
	assert_int_equal(F->resets, 1); /* resync once at start */
	assert_int_equal(F->opens, 1);
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"hub.get\"}", &rsp), 0);
	json_decref(rsp);
	assert_non_null(strstr(F->sent[1], "\"crc\":\"0001:"));
	assert_int_equal(F->resets, 1);
	/* compact: no whitespace in what went out */
	assert_null(strchr(F->sent[1], ' '));
	/* the crc field is the last field */
	assert_int_equal(F->sent[1][strlen(F->sent[1]) - 1], '}');
	assert_int_equal(F->sent[1][strlen(F->sent[1]) - 2], '"');
}

static void test_retry_timeout(void **state)
{
	json_t *rsp;
	script_err(-ETIMEDOUT);
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"card.status\"}", &rsp), 0);
	json_decref(rsp);
	assert_int_equal(F->n_sent, 2);
	assert_string_equal(F->sent[0], F->sent[1]); /* same seq on the retry */
	assert_int_equal(F->resets, 2);              /* start + after the fault */
	struct card_counters cc;
	card_counters(C, &cc);
	assert_int_equal(cc.timeouts, 1);
	assert_int_equal(cc.retries, 1);
	/* and the pause between attempts */
	int paused = 0;
	for (size_t i = 0; i < F->clk.n_sleeps; i++)
		paused |= F->clk.sleeps[i] == 500000;
	assert_true(paused);
}

static void test_retry_garbled(void **state)
{
	json_t *rsp;
	script(A_LINE, "{\"vers\xff");
	script(A_LINE, "not json at all");
	script(A_CRC, "{\"ok\":1}");
	assert_int_equal(req("{\"req\":\"card.status\"}", &rsp), 0);
	json_decref(rsp);
	assert_int_equal(F->n_sent, 3);
	assert_int_equal(F->resets, 3);
}

static void test_retry_crc_and_seq(void **state)
{
	json_t *rsp;
	script(A_BADCRC, "{\"ok\":1}");
	script(A_BADSEQ, "{\"ok\":1}");
	script(A_CRC, "{\"ok\":1}");
	assert_int_equal(req("{\"req\":\"card.status\"}", &rsp), 0);
	json_decref(rsp);
	assert_int_equal(F->n_sent, 3);
	assert_string_equal(F->sent[0], F->sent[2]);
	struct card_counters cc;
	card_counters(C, &cc);
	assert_int_equal(cc.crc_errors, 2);
}

static void test_missing_crc(void **state)
{
	json_t *rsp;
	/* a card without CRC support: answers accepted as they are */
	script(A_LINE, "{\"ok\":1}");
	assert_int_equal(req("{\"req\":\"card.status\"}", &rsp), 0);
	json_decref(rsp);
	/* once it has shown CRC support, a missing crc is a fault */
	script(A_CRC, "{\"ok\":2}");
	assert_int_equal(req("{\"req\":\"card.status\"}", &rsp), 0);
	json_decref(rsp);
	script(A_LINE, "{\"ok\":3}");
	script(A_CRC, "{\"ok\":4}");
	assert_int_equal(req("{\"req\":\"card.status\"}", &rsp), 0);
	assert_int_equal(json_integer_value(json_object_get(rsp, "ok")), 4);
	json_decref(rsp);
	/* but an error answer without one is the card's own error, as note-c takes it:
	 * one attempt, no reset, the error handed to the caller */
	size_t sent = F->n_sent;
	int resets = F->resets;
	script(A_LINE, "{\"err\":\"note not found {note-noexist}\"}");
	assert_int_equal(req("{\"req\":\"note.get\",\"file\":\"x.qi\"}", &rsp), 0);
	assert_true(card_err_has(rsp, "{note-noexist}"));
	json_decref(rsp);
	assert_int_equal(F->n_sent, sent + 1);
	assert_int_equal(F->resets, resets);
	/* an "err" only inside a body does not excuse a missing crc */
	script(A_LINE, "{\"body\":{\"err\":\"x\"}}");
	script(A_CRC, "{\"ok\":5}");
	assert_int_equal(req("{\"req\":\"card.status\"}", &rsp), 0);
	assert_int_equal(json_integer_value(json_object_get(rsp, "ok")), 5);
	json_decref(rsp);
}

static void test_io_retried_without_reset(void **state)
{
	json_t *rsp;
	script(A_CRC, "{\"err\":\"i2c busy {io}\"}");
	script(A_CRC, "{\"ok\":1}");
	assert_int_equal(req("{\"req\":\"note.add\",\"body\":{}}", &rsp), 0);
	assert_false(card_err_has(rsp, "{io}"));
	json_decref(rsp);
	assert_int_equal(F->n_sent, 2);
	assert_int_equal(F->resets, 1); /* only the initial one */

	/* {io} five times: give up with -EIO */
	for (int i = 0; i < 5; i++)
		script(A_CRC, "{\"err\":\"{io}\"}");
	assert_int_equal(req("{\"req\":\"note.add\",\"body\":{}}", &rsp), -EIO);
	assert_null(rsp);
	assert_int_equal(F->n_sent, 7);
}

static void test_not_retried(void **state)
{
	json_t *rsp;
	script(A_CRC, "{\"err\":\"no such request {io}{not-supported}\"}");
	assert_int_equal(req("{\"req\":\"card.frobnicate\"}", &rsp), 0);
	assert_true(card_err_has(rsp, "{not-supported}"));
	json_decref(rsp);
	assert_int_equal(F->n_sent, 1);

	script(A_CRC, "{\"err\":\"notefile must end in .qo {bad-notefile}\"}");
	assert_int_equal(req("{\"req\":\"note.add\",\"file\":\"x\"}", &rsp), 0);
	assert_true(card_err_has(rsp, "{bad-notefile}"));
	json_decref(rsp);
	assert_int_equal(F->n_sent, 2);

	script(A_CRC, "{\"err\":\"binary buffer {bad-bin}{io}\"}");
	assert_int_equal(req("{\"req\":\"card.binary\"}", &rsp), 0);
	assert_true(card_err_has(rsp, "{bad-bin}"));
	json_decref(rsp);
	assert_int_equal(F->n_sent, 3);
}

static void test_heartbeat(void **state)
{
	json_t *rsp;
	script(A_CRC, "{\"err\":\"still working {heartbeat}\"}");
	script(A_CRC, "{\"err\":\"still working {heartbeat}\"}");
	script(A_CRC, "{\"result\":200}");
	assert_int_equal(req("{\"req\":\"web.get\",\"route\":\"r\"}", &rsp), 0);
	assert_int_equal(json_integer_value(json_object_get(rsp, "result")), 200);
	json_decref(rsp);
	assert_int_equal(F->n_sent, 1);
}

static void test_cmd(void **state)
{
	assert_int_equal(req("{\"cmd\":\"hub.set\",\"mode\":\"off\"}", NULL), 0);
	assert_string_equal(F->sent[0], "{\"cmd\":\"hub.set\",\"mode\":\"off\"}");
	assert_int_equal(F->n_recv, 0);
	/* not a request */
	assert_int_equal(req("{\"x\":1}", NULL), -EINVAL);
	json_t *rsp;
	assert_int_equal(req("{\"req\":\"\"}", &rsp), -EINVAL);
}

static void test_timeouts(void **state)
{
	json_t *rsp;
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"note.add\"}", &rsp), 0);
	json_decref(rsp);
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"web.post\"}", &rsp), 0);
	json_decref(rsp);
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"web.post\",\"seconds\":120}", &rsp), 0);
	json_decref(rsp);
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"note.add\",\"milliseconds\":45000}", &rsp), 0);
	json_decref(rsp);
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"dfu.get\"}", &rsp), 0);
	json_decref(rsp);
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"card.binary.get\"}", &rsp), 0);
	json_decref(rsp);
	assert_int_equal(F->first_ms[0], 30000);
	assert_int_equal(F->first_ms[1], 90000);
	assert_int_equal(F->first_ms[2], 121000);
	assert_int_equal(F->first_ms[3], 46000);
	assert_int_equal(F->first_ms[4], 90000);
	assert_int_equal(F->first_ms[5], 90000);
}

static void test_gone(void **state)
{
	json_t *rsp;
	F->open_err = -ENODEV;
	assert_int_equal(req("{\"req\":\"card.version\"}", &rsp), -ENODEV);
	F->open_err = 0;
	script_err(-ENODEV);
	assert_int_equal(req("{\"req\":\"card.version\"}", &rsp), -ENODEV);
	assert_int_equal(F->closes, 1);
	/* comes back: reopened and resynchronised */
	script(A_CRC, "{}");
	assert_int_equal(req("{\"req\":\"card.version\"}", &rsp), 0);
	json_decref(rsp);
	assert_int_equal(F->opens, 3);
	assert_int_equal(F->resets, 2);
}

static void test_text(void **state)
{
	char *out = NULL;
	script(A_CRC, "{\"a\":1}");
	assert_int_equal(card_request_text(C, "{\"req\":\"card.status\",\"crc\":\"junk\"}", &out),
	                 0);
	assert_string_equal(out, "{\"a\":1}");
	/* the caller's stale crc was replaced by ours */
	assert_null(strstr(F->sent[0], "junk"));
	free(out);
	assert_int_equal(card_request_text(C, "{nope", &out), -EINVAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_crc32_known),       T(test_crc_field),     T(test_crc_check),
	    T(test_ok_and_sequence),   T(test_retry_timeout), T(test_retry_garbled),
	    T(test_retry_crc_and_seq), T(test_missing_crc),   T(test_io_retried_without_reset),
	    T(test_not_retried),       T(test_heartbeat),     T(test_cmd),
	    T(test_timeouts),          T(test_gone),          T(test_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
