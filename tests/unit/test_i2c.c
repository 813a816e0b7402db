/* The i2c transport's framing, byte by byte, on a fake bus and a fake clock:
 * chunk sizes and prefixes, the pacing, the [available][sent] read header at the
 * edges, corrupted headers (sent or available out of range), NACKs, timeouts and
 * the resync. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakeclock.h"
#include "notecard/i2c.h"

#define MAXX 2048

struct xfer_rec {
	uint64_t at_us;
	size_t wlen, rlen;
	uint8_t w[256];
	unsigned sent; /* data bytes returned in a read */
};

struct fakebus {
	struct fakeclock clk;
	/* what the host wrote, reassembled from the [len][data] frames */
	uint8_t in[8192];
	size_t in_len;
	/* what the card holds for the host */
	uint8_t out[8192];
	size_t out_len, out_pos;
	struct xfer_rec x[MAXX];
	size_t nx;
	/* faults */
	int nack_next;               /* fail the next transfers with -EREMOTEIO */
	int eio_next;                /* fail the next transfers with -EIO (a short or broken one) */
	int fail_read_data;          /* a read of data bytes breaks after the card sent them */
	int nack_reads;              /* NACK the next read transfers */
	int bad_sent_next;           /* header claims one byte more than asked */
	int bad_avail_next;          /* header advertises 254 bytes, more than a card may */
	int garbage_on_reset;        /* answer this many resets with garbage */
	int answer_resets;           /* answer a lone "\n" with "\r\n" */
	unsigned reveal_after_polls; /* hold the answer back for this many polls */
	unsigned polls;
	int opened;
};

static void card_hold(struct fakebus *b, const char *s, size_t n)
{
	memcpy(b->out + b->out_len, s, n);
	b->out_len += n;
}

static int fb_open(void *ctx, const char *dev, unsigned addr)
{
	struct fakebus *b = ctx;
	assert_int_equal(addr, 0x17);
	if (strcmp(dev, "/dev/i2c-gone") == 0)
		return -ENOENT;
	b->opened++;
	return 3;
}

static void fb_close(void *ctx, int h)
{
	(void)ctx;
	(void)h;
}

static int fb_xfer(void *ctx, int h, unsigned addr, const uint8_t *w, size_t wlen, uint8_t *r,
                   size_t rlen)
{
	struct fakebus *b = ctx;
	assert_int_equal(h, 3);
	assert_true(b->nx < MAXX);
	struct xfer_rec *x = &b->x[b->nx++];
	x->at_us = b->clk.now_us;
	x->wlen = wlen;
	x->rlen = rlen;
	assert_true(wlen <= 256);
	memcpy(x->w, w, wlen);
	if (b->nack_next) {
		b->nack_next--;
		return -EREMOTEIO;
	}
	if (b->eio_next) {
		b->eio_next--;
		return -EIO;
	}
	/* every transfer is at most 255 bytes on the wire (2 header + 253) */
	assert_true(wlen <= 255 && rlen <= 255);
	if (!rlen) {
		/* a write: [len][data] */
		assert_true(wlen >= 2);
		assert_int_equal(w[0], wlen - 1);
		memcpy(b->in + b->in_len, w + 1, wlen - 1);
		b->in_len += wlen - 1;
		if (wlen == 2 && w[1] == '\n') {
			if (b->garbage_on_reset > 0) {
				b->garbage_on_reset--;
				card_hold(b, "garbage\r\n", 9);
			} else if (b->answer_resets) {
				card_hold(b, "\r\n", 2);
			}
		}
		return 0;
	}
	/* a read: [0][n] then n + 2 bytes */
	if (b->nack_reads) {
		b->nack_reads--;
		return -EREMOTEIO;
	}
	assert_int_equal(wlen, 2);
	assert_int_equal(w[0], 0);
	size_t n = w[1];
	assert_int_equal(rlen, n + 2);
	size_t held = b->out_len - b->out_pos;
	if (b->polls < b->reveal_after_polls) {
		b->polls++;
		held = 0;
	}
	assert_true(n <= held);
	if (b->fail_read_data && n) {
		b->out_pos += n; /* the card sent them; the host lost them */
		return -EIO;
	}
	memset(r, 0xee, rlen);
	memcpy(r + 2, b->out + b->out_pos, n);
	b->out_pos += n;
	r[0] = (uint8_t)((held - n) > 253 ? 253 : held - n); /* a card never says more */
	if (b->bad_avail_next) {
		b->bad_avail_next = 0;
		r[0] = 254;
	}
	r[1] = (uint8_t)n;
	if (b->bad_sent_next && n) {
		b->bad_sent_next = 0;
		r[1] = (uint8_t)(n + 1);
	}
	x->sent = n;
	return 0;
}

static struct fakebus *bus;
static struct card_timing tm;
static struct card_transport *t;

static int setup(void **state)
{
	bus = calloc(1, sizeof(*bus));
	fakeclock_init(&bus->clk);
	tm = card_timing_default;
	struct card_i2c_bus ops = {fb_open, fb_close, fb_xfer, bus};
	assert_int_equal(
	    card_transport_i2c_new_bus("/dev/i2c-1", 0x17, &tm, &bus->clk.clock, &ops, &t), 0);
	assert_int_equal(t->ops->open(t), 0);
	return 0;
}

static int teardown(void **state)
{
	card_transport_free(t);
	free(bus);
	return 0;
}

static void reset_log(void)
{
	bus->nx = 0;
	bus->clk.n_sleeps = 0;
	bus->in_len = 0;
}

/* Send len bytes and check chunks, prefixes and every pause, against note-c's
 * rule written out independently: 6 ms before each transfer, 20 ms after each
 * chunk, 250 ms more when a segment's count passes 250. */
static void check_send(size_t len)
{
	char *buf = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + i % 26);
	reset_log();
	assert_int_equal(t->ops->send(t, buf, len), 0);
	assert_int_equal(bus->in_len, len);
	assert_memory_equal(bus->in, buf, len);
	size_t expect_chunks = (len + 252) / 253;
	assert_int_equal(bus->nx, expect_chunks);
	size_t s = 0, left = len, seg = 0;
	for (size_t i = 0; i < bus->nx; i++) {
		size_t n = left < 253 ? left : 253;
		assert_int_equal(bus->x[i].wlen, n + 1);
		assert_int_equal(bus->x[i].w[0], n);
		assert_int_equal(bus->clk.sleeps[s++], 6000);
		seg += n;
		if (seg > 250) {
			seg = 0;
			assert_int_equal(bus->clk.sleeps[s++], 250000);
		}
		assert_int_equal(bus->clk.sleeps[s++], 20000);
		left -= n;
	}
	assert_int_equal(bus->clk.n_sleeps, s);
	free(buf);
}

static void test_send_edges(void **state)
{
	reset_log();
	assert_int_equal(t->ops->send(t, "", 0), 0);
	assert_int_equal(bus->nx, 0); /* empty: nothing on the bus */
	size_t sizes[] = {1, 250, 251, 253, 254, 255, 256, 506, 507, 1000, 4000};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_send(sizes[i]);
	/* spot-check the rule with literal numbers */
	check_send(251);
	assert_int_equal(bus->clk.n_sleeps, 3);
	assert_int_equal(bus->clk.sleeps[1], 250000);
	check_send(250);
	assert_int_equal(bus->clk.n_sleeps, 2);
}

static void test_send_small_chunks(void **state)
{
	/* note-c's Arduino default of 30 bytes, through the same code */
	tm.i2c_chunk_max = 30;
	reset_log();
	char buf[100];
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(t->ops->send(t, buf, sizeof(buf)), 0);
	assert_int_equal(bus->nx, 4);
	assert_int_equal(bus->x[3].w[0], 10);
	assert_int_equal(bus->in_len, 100);
}

/* The card holds an answer of len bytes + "\r\n": read it back whole. */
static void check_recv(size_t len)
{
	char *want = malloc(len + 3);
	for (size_t i = 0; i < len; i++)
		want[i] = (char)('A' + i % 26);
	memcpy(want + len, "\r\n", 2);
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, want, len + 2);
	reset_log();
	char got[8192];
	size_t glen = 999;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), 0);
	assert_int_equal(glen, len);
	assert_memory_equal(got, want, len);
	assert_int_equal(got[len], '\0');
	/* first a header-only poll, then chunks of at most 253, never more than held */
	assert_int_equal(bus->x[0].rlen, 2);
	size_t total = 0;
	for (size_t i = 0; i < bus->nx; i++) {
		assert_true(bus->x[i].rlen - 2 <= 253);
		total += bus->x[i].sent;
	}
	assert_int_equal(total, len + 2);
	assert_int_equal(bus->out_pos, bus->out_len); /* everything drained */
	/* reads: the poll plus ceil((len+2)/253) chunks */
	assert_int_equal(bus->nx, 1 + (len + 2 + 252) / 253);
	/* the data reads follow the poll back to back: note-c waits its 6 ms before
	 * writes and length polls only */
	for (size_t i = 1; i < bus->nx; i++)
		assert_int_equal(bus->x[i].at_us, bus->x[0].at_us);
	free(want);
}

static void test_recv_edges(void **state)
{
	size_t sizes[] = {0, 1, 250, 251, 253, 255, 256, 1000, 5000};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_recv(sizes[i]);
}

static void test_recv_polls_and_timeout(void **state)
{
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{}\r\n", 4);
	bus->reveal_after_polls = 5;
	bus->polls = 0;
	reset_log();
	char got[64];
	size_t glen;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), 0);
	assert_string_equal(got, "{}");
	/* five empty polls 50 ms apart (each after the 6 ms pre-I/O pause) */
	assert_int_equal(bus->x[0].rlen, 2);
	assert_int_equal(bus->x[1].at_us - bus->x[0].at_us, 56000);
	assert_int_equal(bus->x[5].rlen, 2);

	/* nothing ever comes: -ETIMEDOUT after first_ms of fake time */
	bus->out_len = bus->out_pos = 0;
	reset_log();
	uint64_t t0 = bus->clk.now_us;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 2000), -ETIMEDOUT);
	uint64_t took = bus->clk.now_us - t0;
	assert_true(took >= 2000000 && took < 2000000 + 60000);
}

static void test_recv_half_line_never_handed_up(void **state)
{
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{\"half\":", 8);
	char got[64];
	size_t glen;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), -ETIMEDOUT);
	/* the card now finishes some other line: the half must not be glued to it */
	card_hold(bus, "{\"b\":1}\r\n", 9);
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), 0);
	assert_string_equal(got, "{\"b\":1}");
}

static void test_recv_bad_header(void **state)
{
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{\"a\":1}\r\n", 9);
	bus->bad_sent_next = 1;
	char got[64];
	size_t glen;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), -EIO);
	/* more than 253 advertised: corrupt too (note-go and note-arduino say so) */
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{\"a\":1}\r\n", 9);
	bus->bad_avail_next = 1;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), -EIO);
}

static void test_recv_nack_and_short(void **state)
{
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{}\r\n", 4);
	bus->nack_next = 2;
	reset_log();
	char got[64];
	size_t glen;
	/* NACKed polls moved nothing: polled again after note-c's 1 s pause */
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), 0);
	assert_string_equal(got, "{}");
	assert_int_equal(bus->clk.sleeps[1], 1000000);
	/* a bus that NACKs every read: bounded, then an error for the layer above */
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{}\r\n", 4);
	bus->nack_reads = 1000;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), -EIO);
	assert_true(bus->nack_reads >= 1000 - 9);
	bus->nack_reads = 0;
	/* the write side: a NACK is an error, with the pause */
	bus->nack_next = 1;
	reset_log();
	assert_int_equal(t->ops->send(t, "x\n", 2), -EIO);
	assert_int_equal(bus->clk.sleeps[bus->clk.n_sleeps - 1], 1000000);
	/* and a broken transfer while the data is read */
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{\"b\":2}\r\n", 9);
	bus->fail_read_data = 1;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), -EIO);
	bus->fail_read_data = 0;
	/* nothing half-read is kept: the next line comes up clean */
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{\"c\":3}\r\n", 9);
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), 0);
	assert_string_equal(got, "{\"c\":3}");
}

static void test_recv_two_lines_and_cap(void **state)
{
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{\"err\":\"{heartbeat}\"}\r\n{\"ok\":1}\r\n", 34);
	char got[64];
	size_t glen;
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), 0);
	assert_string_equal(got, "{\"err\":\"{heartbeat}\"}");
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), 0);
	assert_string_equal(got, "{\"ok\":1}");

	/* a line longer than the caller's buffer is an error, not a truncation */
	bus->out_len = bus->out_pos = 0;
	char big[300];
	memset(big, 'z', sizeof(big));
	card_hold(bus, big, sizeof(big));
	card_hold(bus, "\r\n", 2);
	assert_int_equal(t->ops->recv_line(t, got, sizeof(got), &glen, 30000), -EMSGSIZE);
}

static void test_reset(void **state)
{
	bus->out_len = bus->out_pos = 0;
	bus->answer_resets = 1;
	reset_log();
	assert_int_equal(t->ops->reset(t), 0);
	assert_int_equal(bus->in_len, 1);
	assert_int_equal(bus->in[0], '\n');
	/* 250 ms settle after the newline, then a drain of at least 500 ms */
	int settled = 0;
	for (size_t i = 0; i < bus->clk.n_sleeps; i++)
		settled |= bus->clk.sleeps[i] == 250000;
	assert_true(settled);
	assert_true(bus->x[bus->nx - 1].at_us - bus->x[1].at_us >= 494000);

	/* stale garbage from an aborted answer: drained, and a second newline proves sync */
	bus->out_len = bus->out_pos = 0;
	card_hold(bus, "{\"stale\":", 9);
	bus->garbage_on_reset = 1;
	reset_log();
	assert_int_equal(t->ops->reset(t), 0);
	assert_int_equal(bus->in_len, 2);

	/* NACKs while draining are no garbage: still in sync */
	bus->out_len = bus->out_pos = 0;
	bus->answer_resets = 1;
	bus->nack_reads = 2;
	reset_log();
	assert_int_equal(t->ops->reset(t), 0);
	assert_int_equal(bus->in_len, 1);
	assert_int_equal(bus->nack_reads, 0);
	/* this card has echoed resyncs: once it stays silent, it is not in sync */
	bus->out_len = bus->out_pos = 0;
	bus->answer_resets = 0;
	reset_log();
	assert_int_equal(t->ops->reset(t), -EIO);
	assert_int_equal(bus->in_len, 10);
	bus->answer_resets = 1;
	/* a bus that fails every transfer: -EIO after the tries, and it ends */
	bus->eio_next = 1000000;
	reset_log();
	assert_int_equal(t->ops->reset(t), -EIO);
	bus->eio_next = 0;

	/* a card that keeps talking nonsense: give up after 10 tries */
	bus->garbage_on_reset = 1000;
	reset_log();
	assert_int_equal(t->ops->reset(t), -EIO);
	assert_int_equal(bus->in_len, 10);
	bus->garbage_on_reset = 0;
}

static void test_open_gone(void **state)
{
	struct card_transport *g;
	struct card_i2c_bus ops = {fb_open, fb_close, fb_xfer, bus};
	assert_int_equal(
	    card_transport_i2c_new_bus("/dev/i2c-gone", 0x17, &tm, &bus->clk.clock, &ops, &g), 0);
	assert_int_equal(g->ops->open(g), -ENODEV);
	card_transport_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_send_edges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_small_chunks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_edges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_polls_and_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_half_line_never_handed_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_bad_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_nack_and_short, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_two_lines_and_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_gone, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
