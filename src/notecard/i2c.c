/* The Notecard's serial-over-I2C framing on Linux i2c-dev: length-prefixed writes
 * in chunks with note-c's pacing, reads through the two-byte [available][sent]
 * header, every header checked against its length (the Raspberry Pi's controller
 * corrupts bytes when the card stretches the clock), and the newline-drain resync. */
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "notecard/i2c.h"
#include "notecard/rxbuf.h"

#define I2C_FRAME_MAX 255 /* one transfer: 2 header bytes + up to 253 data bytes */
#define I2C_AVAIL_MAX 253 /* note-go and note-arduino reject a header advertising more */
#define RX_LIMIT      (1u << 20)
#define I2C_NACKS_MAX 8 /* NACKs in a row while reading before the channel is reset */

struct i2c_priv {
	char *device;
	unsigned address;
	struct card_i2c_bus bus;
	int h; /* bus handle, -1 when closed */
	struct rxbuf rx;
	unsigned avail; /* bytes the card said it still holds */
	bool echo_seen; /* the card has answered a resync newline (see serial.c) */
};

/* ---- the real bus: i2c-dev ------------------------------------------------------ */
struct linux_fd {
	int fd;
	bool rdwr_broken; /* adapter without I2C_FUNC_I2C: use I2C_SLAVE + read/write */
};

static int lx_open(void *ctx, const char *device, unsigned address)
{
	(void)ctx;
	int fd = open(device, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, I2C_SLAVE, (unsigned long)address) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static void lx_close(void *ctx, int h)
{
	(void)ctx;
	if (h >= 0)
		close(h);
}

static int lx_xfer(void *ctx, int fd, unsigned address, const uint8_t *w, size_t wlen, uint8_t *r,
                   size_t rlen)
{
	(void)ctx;
	struct i2c_msg msgs[2];
	unsigned n = 0;
	if (wlen)
		msgs[n++] = (struct i2c_msg){.addr = (uint16_t)address,
		                             .flags = 0,
		                             .len = (uint16_t)wlen,
		                             .buf = (uint8_t *)w};
	if (rlen)
		msgs[n++] = (struct i2c_msg){
		    .addr = (uint16_t)address, .flags = I2C_M_RD, .len = (uint16_t)rlen, .buf = r};
	struct i2c_rdwr_ioctl_data data = {.msgs = msgs, .nmsgs = n};
	int rc = ioctl(fd, I2C_RDWR, &data);
	if (rc >= 0)
		return rc == (int)n ? 0 : -EIO;
	if (errno != ENOTTY && errno != EOPNOTSUPP && errno != EINVAL)
		return -errno;
	/* Plain read/write after I2C_SLAVE: not a combined transfer, but every
	 * adapter does it. */
	if (wlen) {
		ssize_t k = write(fd, w, wlen);
		if (k < 0)
			return -errno;
		if ((size_t)k != wlen)
			return -EIO;
	}
	if (rlen) {
		ssize_t k = read(fd, r, rlen);
		if (k < 0)
			return -errno;
		if ((size_t)k != rlen)
			return -EIO;
	}
	return 0;
}

const struct card_i2c_bus card_i2c_bus_linux = {
    .open = lx_open,
    .close = lx_close,
    .xfer = lx_xfer,
    .ctx = NULL,
};

/* ---- framing ----------------------------------------------------------------- */
static void sleep_ms(struct card_transport *t, unsigned ms)
{
	if (ms)
		t->clock->sleep_us(t->clock->ctx, (uint64_t)ms * 1000u);
}

/* Errors from the bus. A NACK (the card busy, rebooting, or the Pi's controller
 * tripping over clock stretching) gets note-c's 1 s pause and is -EAGAIN: nothing
 * was transferred, so a poll may simply be repeated. Anything else may have lost
 * bytes: -EIO. A vanished adapter is -ENODEV. */
static int bus_error(struct card_transport *t, int r)
{
	t->errors++;
	if (r == -ENODEV || r == -ENOENT || r == -EBADF)
		return -ENODEV;
	sleep_ms(t, t->timing->nack_delay_ms);
	if (r == -EREMOTEIO || r == -ENXIO || r == -ETIMEDOUT || r == -EAGAIN)
		return -EAGAIN;
	return -EIO;
}

/* One transfer. `settle` waits note-c's 6 ms first: note-c does so before each
 * write chunk and each length poll, but reads data back to back once a poll has
 * said how much there is (n_i2c.c, _delayIO and _i2cChunkedReceive). */
static int xfer(struct card_transport *t, bool settle, const uint8_t *w, size_t wlen, uint8_t *r,
                size_t rlen)
{
	struct i2c_priv *p = t->priv;
	if (p->h < 0)
		return -ENODEV;
	if (settle && t->timing->i2c_pre_io_us)
		t->clock->sleep_us(t->clock->ctx, t->timing->i2c_pre_io_us);
	int rc = p->bus.xfer(p->bus.ctx, p->h, p->address, w, wlen, r, rlen);
	return rc < 0 ? bus_error(t, rc) : 0;
}

static unsigned chunk_max(const struct card_transport *t)
{
	unsigned m = t->timing->i2c_chunk_max;
	if (m < 1)
		m = 1;
	if (m > I2C_FRAME_MAX - 2)
		m = I2C_FRAME_MAX - 2;
	return m;
}

/* Write [len][data] chunks: 20 ms after each, 250 ms more each time a segment's
 * worth has gone (note-c counts "more than 250" and then starts a new segment). */
static int write_paced(struct card_transport *t, const uint8_t *buf, size_t len)
{
	const struct card_timing *tm = t->timing;
	uint8_t frame[I2C_FRAME_MAX];
	size_t in_segment = 0, cm = chunk_max(t);
	while (len > 0) {
		size_t n = len < cm ? len : cm;
		frame[0] = (uint8_t)n;
		memcpy(frame + 1, buf, n);
		int r = xfer(t, true, frame, n + 1, NULL, 0);
		if (r < 0)
			return r == -ENODEV ? r : -EIO;
		t->bytes_out += n;
		buf += n;
		len -= n;
		in_segment += n;
		if (in_segment > tm->segment_bytes) {
			in_segment = 0;
			sleep_ms(t, tm->segment_delay_ms);
		}
		sleep_ms(t, tm->i2c_chunk_delay_ms);
	}
	return 0;
}

/* One read: ask for n bytes, get [available][sent][data]. A header that does not
 * agree with what was asked, or advertises more than a transfer can carry, is the
 * clock-stretching corruption: -EBADMSG. Only a length poll (n == 0) waits first. */
static int read_chunk(struct card_transport *t, unsigned n, uint8_t *data, unsigned *got)
{
	struct i2c_priv *p = t->priv;
	uint8_t ask[2] = {0, (uint8_t)n};
	uint8_t frame[I2C_FRAME_MAX];
	int r = xfer(t, n == 0, ask, 2, frame, (size_t)n + 2);
	if (r < 0)
		return r;
	unsigned sent = frame[1];
	if (sent > n || frame[0] > I2C_AVAIL_MAX) {
		t->errors++;
		return -EBADMSG;
	}
	memcpy(data, frame + 2, sent);
	p->avail = frame[0];
	*got = sent;
	t->bytes_in += sent;
	return 0;
}

static int i2c_open(struct card_transport *t)
{
	struct i2c_priv *p = t->priv;
	if (p->h >= 0)
		return 0;
	int h = p->bus.open(p->bus.ctx, p->device, p->address);
	if (h < 0) {
		if (h == -ENOENT || h == -ENODEV || h == -ENXIO || h == -EIO)
			return -ENODEV;
		return h;
	}
	p->h = h;
	p->avail = 0;
	rxbuf_clear(&p->rx);
	return 0;
}

static void i2c_close(struct card_transport *t)
{
	struct i2c_priv *p = t->priv;
	if (p->h >= 0)
		p->bus.close(p->bus.ctx, p->h);
	p->h = -1;
	p->avail = 0;
	rxbuf_clear(&p->rx);
}

static int i2c_send(struct card_transport *t, const char *buf, size_t len)
{
	return write_paced(t, (const uint8_t *)buf, len);
}

static int i2c_recv_line(struct card_transport *t, char *buf, size_t cap, size_t *len,
                         unsigned first_ms)
{
	struct i2c_priv *p = t->priv;
	const struct card_timing *tm = t->timing;
	uint8_t data[I2C_FRAME_MAX];
	uint64_t last = t->clock->now_ms(t->clock->ctx);
	bool started = p->rx.len > 0;
	unsigned nacks = 0;
	int r;
	for (;;) {
		/* Pull everything the card holds before handing a line up, as note-c
		 * does, so no stale tail is left to garble the next answer. */
		if (!p->avail) {
			r = rxbuf_take_line(&p->rx, buf, cap, len);
			if (r > 0)
				return 0;
			if (r < 0)
				goto fail;
		}
		unsigned want = p->avail < chunk_max(t) ? p->avail : chunk_max(t);
		unsigned got = 0;
		r = read_chunk(t, want, data, &got);
		if (r == -EAGAIN) {
			/* A NACK moved nothing (the card did not take the [0][n] ask): ask
			 * again, after the NACK pause, a bounded number of times. */
			if (++nacks > I2C_NACKS_MAX) {
				r = -EIO;
				goto fail;
			}
			if (!started && t->clock->now_ms(t->clock->ctx) - last >= first_ms) {
				r = -ETIMEDOUT;
				goto fail;
			}
			continue;
		}
		if (r < 0) {
			if (r != -ENODEV)
				r = -EIO;
			goto fail;
		}
		nacks = 0;
		uint64_t now = t->clock->now_ms(t->clock->ctx);
		if (got) {
			r = rxbuf_append(&p->rx, data, got,
			                 cap + 2 > RX_LIMIT ? cap + 2 : RX_LIMIT);
			if (r < 0)
				goto fail;
			if (p->rx.len > cap + 1 && !memchr(p->rx.buf, '\n', p->rx.len)) {
				r = -EMSGSIZE;
				goto fail;
			}
			started = true;
			last = now;
			continue;
		}
		if (p->avail)
			continue;
		unsigned limit = started ? tm->byte_timeout_ms : first_ms;
		if (now - last >= limit) {
			r = -ETIMEDOUT;
			goto fail;
		}
		if (card_transport_cancelled(t)) {
			r = -ECANCELED;
			goto fail;
		}
		sleep_ms(t, tm->poll_ms);
	}
fail:
	/* never hand up or keep a half-read line */
	rxbuf_clear(&p->rx);
	p->avail = 0;
	if (r == -ETIMEDOUT || r == -EMSGSIZE)
		t->errors++;
	return r;
}

/* Write a lone newline, let the card settle, then drain for at least the drain
 * window (restarted by any byte that is not a line end). In sync when only line
 * ends came back. */
static int i2c_reset(struct card_transport *t)
{
	struct i2c_priv *p = t->priv;
	const struct card_timing *tm = t->timing;
	uint8_t data[I2C_FRAME_MAX];
	int r = -EIO;
	t->resets++;
	for (unsigned try = 0; try < (tm->reset_tries ? tm->reset_tries : 1); try++) {
		rxbuf_clear(&p->rx);
		p->avail = 0;
		r = write_paced(t, (const uint8_t *)"\n", 1);
		if (r == -ENODEV)
			return r;
		if (r < 0)
			continue;
		sleep_ms(t, tm->reset_settle_ms);
		bool clean = true, heard = false, echoed = false;
		uint64_t start = t->clock->now_ms(t->clock->ctx);
		/* a card that never stops talking must not hold the thread forever */
		uint64_t hard = start + 10ull * (tm->reset_drain_ms ? tm->reset_drain_ms : 1);
		for (;;) {
			unsigned want = p->avail < chunk_max(t) ? p->avail : chunk_max(t);
			unsigned got = 0;
			r = read_chunk(t, want, data, &got);
			if (r == -ENODEV)
				break;
			uint64_t now = t->clock->now_ms(t->clock->ctx);
			if (r == -EBADMSG || (r == 0 && got && !rxbuf_only_control(data, got))) {
				/* garbage: not in sync yet, and the window starts again */
				clean = false;
				start = now;
			}
			if (r == -EIO || r == -EBADMSG) {
				clean = false; /* bytes lost: whatever they were */
				p->avail = 0;
			}
			if (r == 0)
				heard = true;
			if (r == 0 && got)
				echoed = true;
			if (now >= hard)
				break;
			if (r == 0 && (p->avail || got))
				continue;
			/* the window counts only once the card has been heard at all */
			if (heard && now - start >= tm->reset_drain_ms)
				break;
			if (r == 0)
				sleep_ms(t, tm->poll_ms);
		}
		if (r == -ENODEV)
			return r;
		if (heard && clean && echoed)
			p->echo_seen = true;
		if (heard && clean && (echoed || !p->echo_seen)) {
			p->avail = 0;
			return 0;
		}
		r = -EIO;
	}
	return r;
}

static void i2c_free(struct card_transport *t)
{
	struct i2c_priv *p = t->priv;
	if (p) {
		rxbuf_free(&p->rx);
		free(p->device);
		free(p);
	}
	free(t);
}

static const struct card_transport_ops i2c_ops = {
    .name = "i2c",
    .open = i2c_open,
    .close = i2c_close,
    .reset = i2c_reset,
    .send = i2c_send,
    .recv_line = i2c_recv_line,
    .free = i2c_free,
};

int card_transport_i2c_new_bus(const char *device, unsigned address, const struct card_timing *tm,
                               const struct card_clock *clk, const struct card_i2c_bus *bus,
                               struct card_transport **out)
{
	if (!device || !tm || !clk || !bus || address > 0x7f)
		return -EINVAL;
	struct card_transport *t = calloc(1, sizeof(*t));
	struct i2c_priv *p = calloc(1, sizeof(*p));
	if (!t || !p)
		goto nomem;
	p->device = strdup(device);
	if (!p->device)
		goto nomem;
	p->address = address;
	p->bus = *bus;
	p->h = -1;
	t->ops = &i2c_ops;
	t->timing = tm;
	t->clock = clk;
	t->priv = p;
	*out = t;
	return 0;
nomem:
	if (p)
		free(p->device);
	free(p);
	free(t);
	return -ENOMEM;
}

int card_transport_i2c_new(const char *device, unsigned address, const struct card_timing *tm,
                           const struct card_clock *clk, struct card_transport **out)
{
	return card_transport_i2c_new_bus(device, address, tm, clk, &card_i2c_bus_linux, out);
}
