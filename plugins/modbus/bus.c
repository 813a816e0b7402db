/* Bus workers: the only code that calls libmodbus as a client. One thread per
 * connection, because libmodbus 3.1.6 blocks in select(); a silent device then
 * stalls only its own line, never the loop or another connection. Every answer
 * is checked here (counts, fd range; for TCP reads, framed here, the unit id and
 * the MBAP header too) before anything trusts it. */
#include <errno.h>
#include <modbus/modbus.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"

static const char *const fault_names[MB_FAULT_COUNT] = {
    "ok", "timeout", "exception", "bad_response", "connect", "io",
};

const char *mb_fault_name(enum mb_fault f)
{
	return (unsigned)f < MB_FAULT_COUNT ? fault_names[f] : "?";
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t mb_block_offset(const struct mb_device *dev, size_t b)
{
	size_t off = 0;
	for (size_t i = 0; i < b; i++)
		off += dev->blocks[i].count;
	return off;
}

struct mb_job *mb_job_new(enum mb_job_type type, const struct mb_device *dev)
{
	struct mb_job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->type = type;
	j->dev = dev;
	if (type == MB_JOB_POLL) {
		j->n_data = mb_block_offset(dev, dev->n_blocks);
		j->data = calloc(j->n_data ? j->n_data : 1, sizeof(*j->data));
		if (!j->data) {
			free(j);
			return NULL;
		}
	}
	return j;
}

void mb_job_free(struct mb_job *j)
{
	if (!j)
		return;
	free(j->data);
	free(j);
}

int mb_doneq_init(struct mb_doneq *q)
{
	memset(q, 0, sizeof(*q));
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0)
		return -errno;
	pthread_mutex_init(&q->mu, NULL);
	return 0;
}

void mb_doneq_destroy(struct mb_doneq *q)
{
	struct mb_job *j = mb_doneq_take(q);
	while (j) {
		struct mb_job *n = j->next;
		mb_job_free(j);
		j = n;
	}
	if (q->efd >= 0)
		close(q->efd);
	q->efd = -1;
	pthread_mutex_destroy(&q->mu);
}

struct mb_job *mb_doneq_take(struct mb_doneq *q)
{
	uint64_t v;
	struct mb_job *j;

	pthread_mutex_lock(&q->mu);
	j = q->head;
	q->head = q->tail = NULL;
	/* drain under the lock so a post racing with us leaves the fd readable */
	if (read(q->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing counted yet, fine */
	}
	pthread_mutex_unlock(&q->mu);
	return j;
}

static void doneq_post(struct mb_doneq *q, struct mb_job *j)
{
	uint64_t one = 1;

	j->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	if (write(q->efd, &one, sizeof(one)) < 0) {
		/* only fails when the counter would overflow: it is readable anyway */
	}
	pthread_mutex_unlock(&q->mu);
}

/* ---- one job ----------------------------------------------------------------------- */
static const char *const exc_names[] = {
    NULL,
    "illegal function",
    "illegal data address",
    "illegal data value",
    "server device failure",
    "acknowledge",
    "server device busy",
    "negative acknowledge",
    "memory parity error",
    NULL,
    "gateway path unavailable",
    "gateway target failed to respond",
};

static void fail(struct mb_job *j, int e, const char *what)
{
	if (e == ETIMEDOUT) {
		j->fault = MB_TIMEOUT;
		snprintf(j->msg, sizeof(j->msg), "timeout %s", what);
	} else if (e >= EMBXILFUN && e <= EMBXGTAR) {
		int code = e - MODBUS_ENOBASE;
		const char *n =
		    code < (int)(sizeof(exc_names) / sizeof(exc_names[0])) ? exc_names[code] : NULL;
		j->fault = MB_EXCEPTION;
		j->exception = code;
		snprintf(j->msg, sizeof(j->msg), "modbus exception %d (%s) %s", code,
		         n ? n : "unknown", what);
	} else if (e == EMBBADCRC || e == EMBBADDATA || e == EMBBADEXC || e == EMBUNKEXC ||
	           e == EMBMDATA || e == EMBBADSLAVE) {
		j->fault = MB_BAD_RESPONSE;
		snprintf(j->msg, sizeof(j->msg), "bad response %s: %s", what, modbus_strerror(e));
	} else {
		j->fault = MB_IO;
		snprintf(j->msg, sizeof(j->msg), "%s: %s", what, modbus_strerror(e));
	}
}

/* libmodbus 3.1.6 FD_SETs its socket without a bound check (in connect and in every
 * receive): an fd past FD_SETSIZE would write past the fd_set on the stack. So TCP
 * connections are made here, with poll(), and handed over only when the fd is low;
 * a serial line is opened by libmodbus (no select there) and checked the same way. */
static int tcp_connect(const struct mb_device *d, struct mb_job *j)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL, *ai;
	int fd = -1, e = 0, rc, one = 1;

	rc = getaddrinfo(d->url.host, d->url.port, &hints, &res);
	if (rc != 0) {
		snprintf(j->msg, sizeof(j->msg), "connect: %.100s: %s", d->url.host,
		         gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t el = sizeof(e);
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		            ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		if (e == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			rc = poll(&pfd, 1, (int)d->timeout_ms);
			if (rc == 0)
				e = ETIMEDOUT;
			else if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
				e = errno;
			if (rc > 0 && e == 0)
				break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(j->msg, sizeof(j->msg), "connect: %s", strerror(e));
		return -1;
	}
	/* Modbus is request/response with small frames: Nagle would only add delay */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int connect_ctx(modbus_t *ctx, struct mb_job *j)
{
	const struct mb_device *d = j->dev;
	int fd;

	j->fault = MB_CONNECT;
	if (d->url.scheme == MB_URL_TCP) {
		fd = tcp_connect(d, j);
		if (fd < 0)
			return -1;
		if (fd >= FD_SETSIZE) {
			close(fd);
			snprintf(j->msg, sizeof(j->msg),
			         "connect: fd above %d, unsafe for libmodbus", FD_SETSIZE);
			return -1;
		}
		modbus_set_socket(ctx, fd);
	} else {
		if (modbus_connect(ctx) < 0) {
			snprintf(j->msg, sizeof(j->msg), "open %.100s: %s", d->url.path,
			         modbus_strerror(errno));
			return -1;
		}
		if (modbus_get_socket(ctx) >= FD_SETSIZE) {
			modbus_close(ctx);
			snprintf(j->msg, sizeof(j->msg),
			         "open %.100s: fd above %d, unsafe for libmodbus", d->url.path,
			         FD_SETSIZE);
			return -1;
		}
		/* not every UART driver has TIOCSRS485 (USB adapters with automatic
		 * direction control need none): carry on, and let the loop say so */
		if (d->url.rs485 && modbus_rtu_set_serial_mode(ctx, MODBUS_RTU_RS485) < 0)
			j->rs485_unsupported = true;
	}
	j->fault = MB_OK;
	return 0;
}

/* ---- TCP reads, framed here ------------------------------------------------------- */

/* Receive up to n bytes by deadline (mono ms). Returns the count (short on a
 * timeout, with errno ETIMEDOUT) or -1 with errno (ECONNRESET when the peer closed). */
static ssize_t recv_by(int fd, uint8_t *p, size_t n, uint64_t deadline)
{
	size_t got = 0;
	while (got < n) {
		uint64_t now = mono_ms();
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int rc = now >= deadline ? 0 : poll(&pfd, 1, (int)(deadline - now));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -1;
		if (rc == 0) {
			errno = ETIMEDOUT;
			return (ssize_t)got;
		}
		ssize_t r = recv(fd, p + got, n - got, 0);
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
		if (r > 0)
			got += (size_t)r;
	}
	return (ssize_t)got;
}

/* libmodbus 3.1.6 sizes a TCP answer by its function code: it checks neither the
 * unit id nor the MBAP length, so an answer from another unit behind a gateway, or
 * one whose header lies about its length, would be taken. A TCP read is therefore
 * one transaction here, on libmodbus's socket: every field of the answer checked
 * against the request (transaction id, protocol, length, unit, function, count)
 * before a value is trusted. Returns the number of values or -1 with errno (a
 * MODBUS_ENOBASE code, ETIMEDOUT, or a socket error); *why says what was wrong. */
static int tcp_read(modbus_t *ctx, const struct mb_device *d, const struct mb_block *b,
                    uint16_t *out, const char **why)
{
	static const uint8_t fcs[MB_KIND_COUNT] = {
	    [MB_HOLDING] = 3, [MB_INPUT] = 4, [MB_COIL] = 1, [MB_DISCRETE] = 2};
	static _Thread_local uint16_t tid; /* one worker thread per TCP connection */
	int fd = modbus_get_socket(ctx);
	uint8_t fc = fcs[b->kind], h[7], pdu[256] = {0};
	bool bits = mb_kind_is_bits(b->kind);
	unsigned want = bits ? (b->count + 7u) / 8u : 2u * b->count;

	*why = NULL;
	tid++;
	uint8_t req[12] = {0, 0, 0, 0, 0, 6, (uint8_t)d->unit, fc}; /* MBAP, unit, function */
	req[0] = tid >> 8;
	req[1] = tid & 0xff;
	req[8] = b->addr >> 8;
	req[9] = b->addr & 0xff;
	req[10] = b->count >> 8;
	req[11] = b->count & 0xff;
	if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		return -1;
	uint64_t deadline = mono_ms() + d->timeout_ms;
	ssize_t r = recv_by(fd, h, sizeof(h), deadline);
	if (r != (ssize_t)sizeof(h))
		return -1;
	unsigned len = (unsigned)h[4] << 8 | h[5];
	if ((h[0] << 8 | h[1]) != tid || h[2] || h[3]) {
		*why = "not the answer to this request (transaction or protocol id)";
		goto bad;
	}
	if (len < 3 || len > 254) {
		*why = "impossible MBAP length";
		goto bad;
	}
	if (h[6] != (uint8_t)d->unit) {
		*why = "answer from another unit id";
		errno = EMBBADSLAVE;
		return -1;
	}
	/* the rest comes at once; a length that claims more than is sent shows up
	 * as a short read within the byte timeout */
	uint64_t rest = mono_ms() + (d->timeout_ms < 500 ? d->timeout_ms : 500);
	r = recv_by(fd, pdu, len - 1, rest < deadline ? rest : deadline);
	if (r < 0)
		return -1;
	if (r >= 1 && pdu[0] == (fc | 0x80) && r == 2 && len == 3) {
		errno = pdu[1] >= 1 && pdu[1] <= 11 ? (int)(MODBUS_ENOBASE + pdu[1]) : EMBBADEXC;
		return -1;
	}
	bool whole = r >= (ssize_t)want + 2 && pdu[1] == want; /* by its byte count */
	if (r != (ssize_t)(len - 1) && !whole) {
		errno = ETIMEDOUT; /* cut short: a timeout, as libmodbus says it */
		return -1;
	}
	if (r != (ssize_t)(len - 1) || len - 1 != 2 + want) {
		*why = "MBAP length does not match the answer";
		goto bad;
	}
	if (pdu[0] != fc || pdu[1] != want) {
		*why = "wrong function code or byte count";
		goto bad;
	}
	for (unsigned i = 0; i < b->count; i++)
		out[i] = bits ? (pdu[2 + i / 8] >> (i % 8)) & 1
		              : (uint16_t)(pdu[2 + 2 * i] << 8 | pdu[3 + 2 * i]);
	return b->count;
bad:
	errno = EMBBADDATA;
	return -1;
}

static int read_block(modbus_t *ctx, const struct mb_block *b, uint16_t *out, struct mb_job *j)
{
	uint8_t bits[MB_MAX_BITS];
	char what[48];
	int rc;

	snprintf(what, sizeof(what), "reading %s:%u+%u", mb_kind_name(b->kind), b->addr, b->count);
	j->requests++;
	if (j->dev->url.scheme == MB_URL_TCP) {
		const char *why = NULL;
		rc = tcp_read(ctx, j->dev, b, out, &why);
		if (rc < 0 && why) {
			j->fault = MB_BAD_RESPONSE;
			snprintf(j->msg, sizeof(j->msg), "bad response %s: %s", what, why);
			return -1;
		}
		if (rc < 0) {
			fail(j, errno, what);
			return -1;
		}
		return 0;
	}
	switch (b->kind) {
	case MB_HOLDING:
		rc = modbus_read_registers(ctx, b->addr, b->count, out);
		break;
	case MB_INPUT:
		rc = modbus_read_input_registers(ctx, b->addr, b->count, out);
		break;
	case MB_COIL:
		rc = modbus_read_bits(ctx, b->addr, b->count, bits);
		break;
	default:
		rc = modbus_read_input_bits(ctx, b->addr, b->count, bits);
		break;
	}
	if (rc < 0) {
		fail(j, errno, what);
		return -1;
	}
	/* never trust a count we did not ask for */
	if (rc != b->count) {
		j->fault = MB_BAD_RESPONSE;
		snprintf(j->msg, sizeof(j->msg), "bad response %s: %d values", what, rc);
		return -1;
	}
	if (mb_kind_is_bits(b->kind))
		for (unsigned i = 0; i < b->count; i++)
			out[i] = bits[i] ? 1 : 0;
	return 0;
}

static int write_point(modbus_t *ctx, struct mb_job *j)
{
	const struct mb_point *p = j->point;
	char what[48];
	int rc, want = 1;

	snprintf(what, sizeof(what), "writing %s:%u", mb_kind_name(p->kind), p->addr);
	j->requests++;
	if (p->kind == MB_COIL) {
		rc = modbus_write_bit(ctx, p->addr, j->words[0] ? 1 : 0);
	} else if (mb_type_width(p->type) == 1) {
		rc = modbus_write_register(ctx, p->addr, j->words[0]);
	} else {
		want = 2;
		rc = modbus_write_registers(ctx, p->addr, 2, j->words);
	}
	if (rc < 0) {
		fail(j, errno, what);
		return -1;
	}
	if (rc != want) {
		j->fault = MB_BAD_RESPONSE;
		snprintf(j->msg, sizeof(j->msg), "bad response %s: %d written", what, rc);
		return -1;
	}
	return 0;
}

void mb_run_job(modbus_t *ctx, int *connected, struct mb_job *j)
{
	const struct mb_device *d = j->dev;
	uint32_t s = (uint32_t)(d->timeout_ms / 1000), us = (uint32_t)(d->timeout_ms % 1000) * 1000;

	j->started_ms = mono_ms();
	j->fault = MB_OK;
	j->msg[0] = '\0';
	if (!*connected) {
		if (connect_ctx(ctx, j) < 0)
			goto out;
		*connected = 1;
	}
	modbus_set_slave(ctx, d->unit);
	modbus_set_response_timeout(ctx, s, us);
	/* a frame that stops half way must not take longer than a silent device */
	modbus_set_byte_timeout(ctx, 0,
	                        d->timeout_ms < 500 ? (uint32_t)d->timeout_ms * 1000 : 500000);
	if (j->type == MB_JOB_POLL) {
		size_t off = 0;
		for (size_t b = 0; b < d->n_blocks; b++) {
			if (read_block(ctx, &d->blocks[b], j->data + off, j) < 0)
				break;
			off += d->blocks[b].count;
		}
	} else {
		write_point(ctx, j);
	}
	if (j->fault == MB_TIMEOUT || j->fault == MB_BAD_RESPONSE || j->fault == MB_IO) {
		/* a late or half-read answer would be taken for the next one: start clean */
		if (d->url.scheme == MB_URL_TCP) {
			modbus_close(ctx);
			*connected = 0;
		} else {
			modbus_flush(ctx);
		}
	}
out:
	j->done_ms = mono_ms();
}

/* ---- the worker -------------------------------------------------------------------- */
struct mb_bus {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct mb_job *head, *tail;
	int stopping;
	modbus_t *ctx;
	int connected;
	struct mb_url url; /* copy: decides which devices share this bus */
	bool rs485_unsupported;
	struct mb_doneq *done;
};

bool mb_bus_rs485_unsupported(const struct mb_bus *b)
{
	return b->rs485_unsupported;
}

int mb_bus_matches(const struct mb_bus *b, const struct mb_device *dev)
{
	return b->url.scheme == MB_URL_RTU && dev->url.scheme == MB_URL_RTU &&
	       strcmp(b->url.path, dev->url.path) == 0;
}

static void *worker(void *arg)
{
	struct mb_bus *b = arg;

	for (;;) {
		struct mb_job *j;
		pthread_mutex_lock(&b->mu);
		while (!b->head && !b->stopping)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->stopping) {
			pthread_mutex_unlock(&b->mu);
			break;
		}
		j = b->head;
		b->head = j->next;
		if (!b->head)
			b->tail = NULL;
		pthread_mutex_unlock(&b->mu);
		mb_run_job(b->ctx, &b->connected, j);
		doneq_post(b->done, j);
	}
	return NULL;
}

int mb_bus_new(const struct mb_device *first, struct mb_doneq *done, struct mb_bus **out)
{
	struct mb_bus *b = calloc(1, sizeof(*b));
	const struct mb_url *u = &first->url;
	int rc;

	if (!b)
		return -ENOMEM;
	b->url = *u;
	b->done = done;
	if (u->scheme == MB_URL_TCP)
		b->ctx = modbus_new_tcp_pi(u->host, u->port);
	else
		b->ctx = modbus_new_rtu(u->path, u->baud, u->parity, u->data, u->stop);
	if (!b->ctx) {
		rc = errno ? -errno : -ENOMEM;
		free(b);
		return rc;
	}
	/* recovery is ours (reconnect/flush after a failed job), never libmodbus's
	 * sleep-and-retry, which would hold the line longer than the timeout */
	modbus_set_error_recovery(b->ctx, MODBUS_ERROR_RECOVERY_NONE);
	if (u->scheme == MB_URL_RTU) {
		struct mb_job probe = {.dev = first};
		/* open now, while the daemon's fds are few; a failure is retried per job */
		if (connect_ctx(b->ctx, &probe) == 0)
			b->connected = 1;
		b->rs485_unsupported = probe.rs485_unsupported;
	}
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	rc = pthread_create(&b->thread, NULL, worker, b);
	if (rc != 0) {
		pthread_mutex_destroy(&b->mu);
		pthread_cond_destroy(&b->cv);
		modbus_free(b->ctx);
		free(b);
		return -rc;
	}
	*out = b;
	return 0;
}

int mb_bus_submit(struct mb_bus *b, struct mb_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&b->mu);
	if (b->tail)
		b->tail->next = j;
	else
		b->head = j;
	b->tail = j;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

struct mb_job *mb_bus_free(struct mb_bus *b)
{
	struct mb_job *j;

	if (!b)
		return NULL;
	pthread_mutex_lock(&b->mu);
	b->stopping = 1;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->thread, NULL);
	j = b->head;
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	modbus_close(b->ctx);
	modbus_free(b->ctx);
	free(b);
	return j;
}
