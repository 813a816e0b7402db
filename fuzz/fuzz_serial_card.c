/* Fuzz the request layer over the serial framing: every byte the "card" sends back
 * comes from the input, cut into the chunks a tty read would return, and goes
 * through the same line buffer (rxbuf) the serial transport uses, then through the
 * CRC check and the response parser in card.c. A fake transport ops table stands in
 * for the tty (a pty per input would be slow and racy); time is a fake clock.
 * Input: byte 0 picks the request, then (chunk length byte, chunk bytes)... */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notecard/card.h"
#include "notecard/rxbuf.h"
#include "notecard/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RX_LIMIT (1u << 20)

struct feed {
	const uint8_t *p;
	size_t n, pos;
	uint64_t now_us;
	struct rxbuf rx;
	int open;
};

static uint64_t f_now_ms(void *ctx)
{
	return ((struct feed *)ctx)->now_us / 1000;
}

static void f_sleep(void *ctx, uint64_t us)
{
	((struct feed *)ctx)->now_us += us;
}

/* The next chunk "read" from the tty into rx: 0 when the input is spent. */
static int feed_chunk(struct card_transport *t)
{
	struct feed *f = t->priv;
	f->now_us += 1000;
	if (f->pos >= f->n)
		return 0;
	size_t k = f->p[f->pos++] % 64 + 1;
	if (k > f->n - f->pos)
		k = f->n - f->pos;
	if (k == 0)
		return 0;
	if (rxbuf_append(&f->rx, f->p + f->pos, k, RX_LIMIT) < 0)
		return -EMSGSIZE;
	f->pos += k;
	t->bytes_in += k;
	return (int)k;
}

static int t_open(struct card_transport *t)
{
	struct feed *f = t->priv;
	f->open = 1;
	rxbuf_clear(&f->rx);
	return 0;
}

static void t_close(struct card_transport *t)
{
	struct feed *f = t->priv;
	f->open = 0;
	rxbuf_clear(&f->rx);
}

/* As serial_reset: in sync when only line ends came back. */
static int t_reset(struct card_transport *t)
{
	struct feed *f = t->priv;
	t->resets++;
	rxbuf_clear(&f->rx);
	int r = feed_chunk(t);
	if (r < 0)
		return -EIO;
	int clean = rxbuf_only_control(f->rx.buf, f->rx.len);
	rxbuf_clear(&f->rx);
	return clean ? 0 : -EIO;
}

static int t_send(struct card_transport *t, const char *buf, size_t len)
{
	struct feed *f = t->priv;
	if (!f->open)
		return -ENODEV;
	if (len == 0 || buf[len - 1] != '\n')
		abort(); /* the request layer must send whole lines */
	t->bytes_out += len;
	return 0;
}

/* As serial_recv_line, with the input in place of the tty. */
static int t_recv_line(struct card_transport *t, char *buf, size_t cap, size_t *len,
                       unsigned first_ms)
{
	struct feed *f = t->priv;
	int r;
	if (!f->open)
		return -ENODEV;
	for (;;) {
		r = rxbuf_take_line(&f->rx, buf, cap, len);
		if (r > 0) {
			if (*len >= cap || buf[*len] != '\0')
				abort(); /* a line handed up is NUL-terminated within cap */
			return 0;
		}
		if (r < 0)
			goto fail;
		if (f->rx.len > cap + 1) {
			r = -EMSGSIZE;
			goto fail;
		}
		r = feed_chunk(t);
		if (r < 0)
			goto fail;
		if (r == 0) {
			f->now_us += (uint64_t)first_ms * 1000;
			r = -ETIMEDOUT;
			goto fail;
		}
	}
fail:
	rxbuf_clear(&f->rx);
	t->errors++;
	return r;
}

static void t_free(struct card_transport *t)
{
	free(t);
}

static const struct card_transport_ops fake_serial_ops = {
    .name = "serial",
    .open = t_open,
    .close = t_close,
    .reset = t_reset,
    .send = t_send,
    .recv_line = t_recv_line,
    .free = t_free,
};

/* Requests that take different paths through card.c: a plain req, a note with a
 * body (the crc field appended), a cmd (no response read) and text in/out. */
static void run(struct card *c, unsigned pick)
{
	json_t *req = NULL, *rsp = NULL;
	char *text = NULL;
	switch (pick % 4) {
	case 0:
		req = json_pack("{s:s}", "req", "card.version");
		break;
	case 1:
		req = json_pack("{s:s,s:s,s:{s:i}}", "req", "note.add", "file", "data.qo", "body",
		                "temp", 21);
		break;
	case 2:
		req = json_pack("{s:s,s:b}", "cmd", "hub.sync", "allow", 1);
		break;
	default:
		card_request_text(c, "{\"req\":\"hub.sync.status\"}", &text);
		free(text);
		return;
	}
	if (req)
		card_request(c, req, &rsp);
	json_decref(rsp);
	json_decref(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct feed f = {.p = data + 1, .n = size - 1};
	struct card_clock clk = {f_now_ms, f_sleep, &f};
	struct card_timing tm = card_timing_default;
	tm.response_timeout_ms = 2000;
	tm.retries = 2;
	struct card_transport *t = calloc(1, sizeof(*t));
	struct card *c = NULL;
	if (!t)
		return 0;
	t->ops = &fake_serial_ops;
	t->timing = &tm;
	t->clock = &clk;
	t->priv = &f;
	if (card_new(t, &c) < 0) {
		free(t);
		return 0;
	}
	/* two requests on one card: the sequence numbers and leftovers carry over */
	run(c, data[0]);
	run(c, data[0] >> 2);
	card_free(c);
	rxbuf_free(&f.rx);
	return 0;
}
