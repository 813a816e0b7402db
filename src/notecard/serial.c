/* The Notecard over a tty (UART at 9600 8N1, or USB CDC where the baud rate is
 * ignored): raw termios, requests written in 250-byte segments with a pause after
 * each one that is followed by another, responses read up to '\n'. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "notecard/rxbuf.h"
#include "notecard/transport.h"

#define RX_LIMIT (1u << 20)

struct serial_priv {
	char *device;
	unsigned baud;
	int fd;
	struct rxbuf rx;
	/* A Notecard answers a bare "\n" with "\r\n" (note-c n_serial.c). Once this
	 * one has, silence after a newline means it is not there; a card (or a
	 * simulator) that never echoes is taken as in sync when quiet. */
	bool echo_seen;
};

static speed_t baud_const(unsigned baud)
{
	switch (baud) {
	case 1200: return B1200;
	case 2400: return B2400;
	case 4800: return B4800;
	case 9600: return B9600;
	case 19200: return B19200;
	case 38400: return B38400;
	case 57600: return B57600;
	case 115200: return B115200;
	case 230400: return B230400;
	case 460800: return B460800;
	case 921600: return B921600;
	default: return 0;
	}
}

static uint64_t now(struct card_transport *t)
{
	return t->clock->now_ms(t->clock->ctx);
}

static void sleep_ms(struct card_transport *t, unsigned ms)
{
	if (ms)
		t->clock->sleep_us(t->clock->ctx, (uint64_t)ms * 1000u);
}

/* A tty that fails this way has gone (USB unplugged, pty closed). */
static int gone(int e)
{
	return e == EIO || e == ENXIO || e == ENODEV || e == EBADF || e == ENOENT;
}

static int serial_open(struct card_transport *t)
{
	struct serial_priv *p = t->priv;
	if (p->fd >= 0)
		return 0;
	int fd = open(p->device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return gone(errno) ? -ENODEV : -errno;
	struct termios tio;
	int r = 0;
	if (tcgetattr(fd, &tio) < 0) {
		r = errno == ENOTTY ? -ENOTTY : -ENODEV;
		goto fail;
	}
	cfmakeraw(&tio);
	tio.c_cflag &= ~(CSIZE | PARENB | CSTOPB | CRTSCTS);
	tio.c_cflag |= CS8 | CLOCAL | CREAD;
	tio.c_iflag &= ~(IXON | IXOFF | IXANY);
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	speed_t sp = baud_const(p->baud);
	if (!sp) {
		r = -EINVAL;
		goto fail;
	}
	cfsetispeed(&tio, sp);
	cfsetospeed(&tio, sp);
	if (tcsetattr(fd, TCSANOW, &tio) < 0) {
		r = -errno;
		goto fail;
	}
	tcflush(fd, TCIOFLUSH);
	p->fd = fd;
	rxbuf_clear(&p->rx);
	return 0;
fail:
	close(fd);
	return r;
}

static void serial_close(struct card_transport *t)
{
	struct serial_priv *p = t->priv;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	rxbuf_clear(&p->rx);
}

static int write_all_nb(struct card_transport *t, const char *buf, size_t len)
{
	struct serial_priv *p = t->priv;
	/* a generous bound: the bytes' wire time at the configured rate plus 2 s */
	uint64_t deadline = now(t) + 2000 + (uint64_t)len * 10000u / (p->baud ? p->baud : 9600);
	while (len > 0) {
		ssize_t k = write(p->fd, buf, len);
		if (k > 0) {
			buf += k;
			len -= (size_t)k;
			t->bytes_out += (uint64_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno != EAGAIN)
			return gone(errno) ? -ENODEV : -EIO;
		uint64_t n = now(t);
		if (n >= deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
		int pr = poll(&pfd, 1, (int)(deadline - n));
		if (pr < 0 && errno != EINTR)
			return -EIO;
		if (pr > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
			return -ENODEV;
	}
	return 0;
}

/* Wait (bounded) until the UART has shifted the segment out, so that the pause
 * that follows is a pause on the wire and not in the kernel's buffer. Polls the
 * output queue instead of tcdrain(), which can hang on a stalled USB device. */
static void wait_sent(struct card_transport *t, size_t bytes)
{
	struct serial_priv *p = t->priv;
	uint64_t deadline = now(t) + 1000 + (uint64_t)bytes * 20000u / (p->baud ? p->baud : 9600);
	for (;;) {
		int q = 0;
		if (ioctl(p->fd, TIOCOUTQ, &q) < 0 || q <= 0 || now(t) >= deadline)
			return;
		t->clock->sleep_us(t->clock->ctx, 2000);
	}
}

static int serial_send(struct card_transport *t, const char *buf, size_t len)
{
	const struct card_timing *tm = t->timing;
	size_t seg = tm->segment_bytes ? tm->segment_bytes : 250;
	while (len > 0) {
		size_t n = len < seg ? len : seg;
		int r = write_all_nb(t, buf, n);
		if (r < 0) {
			t->errors++;
			return r;
		}
		buf += n;
		len -= n;
		if (len > 0) {
			wait_sent(t, n);
			sleep_ms(t, tm->segment_delay_ms);
		}
	}
	return 0;
}

/* Read what is there within ms milliseconds into rx. 0 (maybe nothing), -ENODEV. */
static int read_some(struct card_transport *t, unsigned ms, size_t limit)
{
	struct serial_priv *p = t->priv;
	struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
	int pr = poll(&pfd, 1, (int)ms);
	if (pr < 0)
		return errno == EINTR ? 0 : -EIO;
	if (pr == 0)
		return 0;
	if (pfd.revents & POLLNVAL)
		return -ENODEV;
	char buf[512];
	ssize_t k = read(p->fd, buf, sizeof(buf));
	if (k < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return gone(errno) ? -ENODEV : -EIO;
	}
	if (k == 0)
		return (pfd.revents & POLLHUP) ? -ENODEV : 0;
	t->bytes_in += (uint64_t)k;
	return rxbuf_append(&p->rx, buf, (size_t)k, limit) < 0 ? -EMSGSIZE : (int)k;
}

static int serial_recv_line(struct card_transport *t, char *buf, size_t cap, size_t *len,
                            unsigned first_ms)
{
	struct serial_priv *p = t->priv;
	const struct card_timing *tm = t->timing;
	size_t limit = cap + 2 > RX_LIMIT ? cap + 2 : RX_LIMIT;
	bool started = p->rx.len > 0;
	uint64_t last = now(t);
	int r;
	if (p->fd < 0)
		return -ENODEV;
	for (;;) {
		r = rxbuf_take_line(&p->rx, buf, cap, len);
		if (r > 0)
			return 0;
		if (r < 0)
			goto fail;
		if (p->rx.len > cap + 1) {
			r = -EMSGSIZE;
			goto fail;
		}
		unsigned limit_ms = started ? tm->byte_timeout_ms : first_ms;
		uint64_t n = now(t);
		if (n - last >= limit_ms) {
			r = -ETIMEDOUT;
			goto fail;
		}
		r = read_some(t, (unsigned)(limit_ms - (n - last)), limit);
		if (r < 0)
			goto fail;
		if (r > 0) {
			started = true;
			last = now(t);
		}
	}
fail:
	rxbuf_clear(&p->rx);
	t->errors++;
	return r;
}

/* Write "\n", drain for the window; in sync when only line ends came back. */
static int serial_reset(struct card_transport *t)
{
	struct serial_priv *p = t->priv;
	const struct card_timing *tm = t->timing;
	int r = -EIO;
	if (p->fd < 0)
		return -ENODEV;
	t->resets++;
	for (unsigned try = 0; try < (tm->reset_tries ? tm->reset_tries : 1); try++) {
		if (try)
			sleep_ms(t, tm->reset_drain_ms);
		rxbuf_clear(&p->rx);
		r = write_all_nb(t, "\n", 1);
		if (r == -ENODEV)
			return r;
		if (r < 0)
			continue;
		bool clean = true, heard = false;
		uint64_t start = now(t);
		for (;;) {
			uint64_t n = now(t);
			if (n - start >= tm->reset_drain_ms)
				break;
			size_t before = p->rx.len;
			r = read_some(t, (unsigned)(tm->reset_drain_ms - (n - start)), RX_LIMIT);
			if (r == -ENODEV)
				return r;
			if (r < 0) {
				clean = false;
				rxbuf_clear(&p->rx);
				continue;
			}
			if (!rxbuf_only_control(p->rx.buf + before, p->rx.len - before))
				clean = false;
			if (p->rx.len > before)
				heard = true;
			rxbuf_clear(&p->rx);
		}
		if (clean && heard)
			p->echo_seen = true;
		if (clean && (heard || !p->echo_seen))
			return 0;
		r = -EIO;
	}
	return r;
}

static void serial_free(struct card_transport *t)
{
	struct serial_priv *p = t->priv;
	if (p) {
		rxbuf_free(&p->rx);
		free(p->device);
		free(p);
	}
	free(t);
}

static const struct card_transport_ops serial_ops = {
	.name = "serial",
	.open = serial_open,
	.close = serial_close,
	.reset = serial_reset,
	.send = serial_send,
	.recv_line = serial_recv_line,
	.free = serial_free,
};

int card_transport_serial_new(const char *device, unsigned baud, const struct card_timing *tm,
                              const struct card_clock *clk, struct card_transport **out)
{
	if (!device || !tm || !clk)
		return -EINVAL;
	if (!baud)
		baud = 9600;
	if (!baud_const(baud))
		return -EINVAL;
	struct card_transport *t = calloc(1, sizeof(*t));
	struct serial_priv *p = calloc(1, sizeof(*p));
	if (!t || !p || !(p->device = strdup(device))) {
		if (p)
			free(p->device);
		free(p);
		free(t);
		return -ENOMEM;
	}
	p->baud = baud;
	p->fd = -1;
	t->ops = &serial_ops;
	t->timing = tm;
	t->clock = clk;
	t->priv = p;
	*out = t;
	return 0;
}
