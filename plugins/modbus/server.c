/* Modbus TCP server in the loop. Every frame is length- and range-checked here
 * before libmodbus 3.1.6's modbus_reply() sees it (that version trusts the request
 * more than it should), and only reads are served: the map is the gateway's
 * report, not a way around writable = true. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define MAX_CLIENTS 16
#define MBAP_LEN    7
#define FRAME_MAX   (MBAP_LEN + MODBUS_MAX_PDU_LENGTH)

struct client {
	struct mb_server *srv;
	int fd;
	sd_event_source *src;
	uint8_t buf[FRAME_MAX];
	size_t len;
};

struct mb_server {
	sd_event *ev;
	modbus_t *ctx;
	modbus_mapping_t *map;
	int lfd;
	int port;
	int unit;
	unsigned nregs;
	sd_event_source *lsrc;
	struct client *clients[MAX_CLIENTS];
	uint64_t requests, exceptions, dropped, accepted;
};

static void put_u32(struct mb_server *s, unsigned addr, uint32_t v)
{
	uint16_t hi = (uint16_t)(v >> 16), lo = (uint16_t)v;
	s->map->tab_registers[addr] = s->map->tab_input_registers[addr] = hi;
	s->map->tab_registers[addr + 1] = s->map->tab_input_registers[addr + 1] = lo;
}

static void put_u16(struct mb_server *s, unsigned addr, uint16_t v)
{
	s->map->tab_registers[addr] = s->map->tab_input_registers[addr] = v;
}

void mb_server_set_point(struct mb_server *s, unsigned index, double value)
{
	unsigned addr = MB_MAP_POINTS_BASE + 2 * index;
	float f = (float)value;
	uint32_t u;

	if (!s || addr + 2 > s->nregs)
		return;
	memcpy(&u, &f, sizeof(u));
	put_u32(s, addr, u);
}

void mb_server_set_device(struct mb_server *s, unsigned index, int state)
{
	if (!s || index >= MB_MAP_MAX_DEVICES)
		return;
	put_u16(s, MB_MAP_DEVICES_BASE + index, (uint16_t)state);
}

static json_t *path_get(json_t *o, const char *path)
{
	char key[64];
	while (o && *path) {
		const char *dot = strchr(path, '.');
		size_t l = dot ? (size_t)(dot - path) : strlen(path);
		if (l >= sizeof(key))
			return NULL;
		memcpy(key, path, l);
		key[l] = '\0';
		o = json_is_object(o) ? json_object_get(o, key) : NULL;
		path = dot ? dot + 1 : path + l;
	}
	return o;
}

static long long first_of(json_t *st, const char *const *paths)
{
	for (; *paths; paths++) {
		json_t *v = path_get(st, *paths);
		if (json_is_integer(v))
			return json_integer_value(v);
		if (json_is_real(v))
			return (long long)json_real_value(v);
		if (json_is_boolean(v))
			return json_is_true(v);
	}
	return -1;
}

/* The daemon's status shape is the foundation's; these are the names it uses
 * (interface.md: store queued, Notecard connection and signal, hub last sync). */
static const char *const p_queued[] = {"store.queued", "queued", NULL};
static const char *const p_conn[] = {"notecard.connected", "card.connected", "connected", NULL};
static const char *const p_bars[] = {"notecard.bars", "notecard.signal.bars", "signal.bars",
                                     "card.bars", NULL};
static const char *const p_sync[] = {"hub.last_sync", "hub.last_sync_time", "hub.sync.last",
                                     "last_sync", NULL};

void mb_gw_state_from_json(json_t *status, struct mb_gw_state *g)
{
	g->queued = first_of(status, p_queued);
	g->connected = first_of(status, p_conn);
	g->bars = first_of(status, p_bars);
	g->last_sync = first_of(status, p_sync);
}

static uint16_t u16_or_unknown(long long v)
{
	return v < 0 || v > 65534 ? 0xFFFF : (uint16_t)v;
}

void mb_server_set_status(struct mb_server *s, const char *status_json)
{
	struct mb_gw_state g;
	json_t *st;

	if (!s || !status_json)
		return;
	st = json_loads(status_json, 0, NULL);
	if (!st)
		return;
	mb_gw_state_from_json(st, &g);
	json_decref(st);
	put_u16(s, 3, u16_or_unknown(g.connected));
	put_u16(s, 4, u16_or_unknown(g.bars));
	put_u32(s, 5, g.queued < 0 ? 0xFFFFFFFFu : (uint32_t)g.queued);
	put_u32(s, 7, g.last_sync < 0 ? 0 : (uint32_t)g.last_sync);
}

int mb_server_peek(struct mb_server *s, unsigned addr, unsigned count, uint16_t *out)
{
	if (addr + count > s->nregs)
		return -ERANGE;
	memcpy(out, s->map->tab_input_registers + addr, count * sizeof(*out));
	return 0;
}

int mb_server_port(struct mb_server *s)
{
	return s->port;
}

json_t *mb_server_stats(struct mb_server *s)
{
	int n = 0;
	for (int i = 0; i < MAX_CLIENTS; i++)
		n += s->clients[i] != NULL;
	return json_pack("{s:i,s:I,s:I,s:I,s:I,s:I}", "clients", n, "accepted",
	                 (json_int_t)s->accepted, "requests", (json_int_t)s->requests, "exceptions",
	                 (json_int_t)s->exceptions, "dropped", (json_int_t)s->dropped, "port",
	                 (json_int_t)s->port);
}

/* ---- connections --------------------------------------------------------------------- */
static void client_free(struct client *c)
{
	struct mb_server *s = c->srv;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i] == c)
			s->clients[i] = NULL;
	sd_event_source_disable_unref(c->src);
	close(c->fd);
	free(c);
}

long mb_server_frame_len(const uint8_t *buf, size_t len)
{
	unsigned proto, l;

	if (len < MBAP_LEN)
		return 0;
	proto = (unsigned)buf[2] << 8 | buf[3];
	l = (unsigned)buf[4] << 8 | buf[5]; /* unit + PDU */
	if (proto != 0 || l < 2 || l > MODBUS_MAX_PDU_LENGTH + 1)
		return -1; /* not Modbus TCP: nothing to resynchronise on */
	return len < 6 + (size_t)l ? 0 : (long)(6 + l);
}

int mb_server_check(const uint8_t *req, size_t len, int unit, unsigned nregs)
{
	unsigned addr, nb;

	if (req[6] != unit && req[6] != 0xFF)
		return MODBUS_EXCEPTION_GATEWAY_PATH;
	if (req[7] != MODBUS_FC_READ_HOLDING_REGISTERS && req[7] != MODBUS_FC_READ_INPUT_REGISTERS)
		return MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
	if (len != MBAP_LEN + 5)
		return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
	addr = (unsigned)req[8] << 8 | req[9];
	nb = (unsigned)req[10] << 8 | req[11];
	if (nb < 1 || nb > MODBUS_MAX_READ_REGISTERS)
		return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
	if (addr + nb > nregs)
		return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
	return 0;
}

/* One complete frame. <0 drops the client. */
static int serve(struct mb_server *s, struct client *c, const uint8_t *req, size_t len)
{
	int exc;

	s->requests++;
	modbus_set_socket(s->ctx, c->fd);
	exc = mb_server_check(req, len, s->unit, s->nregs);
	if (exc) {
		s->exceptions++;
		return modbus_reply_exception(s->ctx, req, (unsigned)exc);
	}
	return modbus_reply(s->ctx, req, (int)len, s->map);
}

static int on_client(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
	struct client *c = ud;
	struct mb_server *s = c->srv;
	ssize_t n;

	n = recv(fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		goto drop;
	c->len += (size_t)n;
	for (;;) {
		long frame = mb_server_frame_len(c->buf, c->len);
		if (frame < 0)
			goto drop;
		if (frame == 0)
			break;
		if (serve(s, c, c->buf, (size_t)frame) < 0)
			goto drop;
		memmove(c->buf, c->buf + frame, c->len - (size_t)frame);
		c->len -= (size_t)frame;
	}
	return 0;
drop:
	s->dropped += n != 0;
	client_free(c);
	return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
	struct mb_server *s = ud;
	struct client *c;
	int cfd, slot = -1;

	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return 0;
	for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
		if (!s->clients[i])
			slot = i;
	c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		s->dropped++;
		close(cfd);
		return 0;
	}
	c->srv = s;
	c->fd = cfd;
	if (sd_event_add_io(s->ev, &c->src, cfd, EPOLLIN, on_client, c) < 0) {
		close(cfd);
		free(c);
		return 0;
	}
	s->clients[slot] = c;
	s->accepted++;
	return 0;
}

int mb_server_new(sd_event *ev, const struct mb_conf *c, struct mb_server **out, char *err,
                  size_t errlen)
{
	struct mb_server *s = calloc(1, sizeof(*s));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int rc;

	if (!s)
		return -ENOMEM;
	s->ev = ev;
	s->lfd = -1;
	s->unit = c->server_unit;
	s->nregs = MB_MAP_POINTS_BASE + 2 * (unsigned)c->n_points;
	if (s->nregs > 65536) {
		snprintf(err, errlen, "too many points for the register map");
		rc = -E2BIG;
		goto fail;
	}
	s->ctx = modbus_new_tcp_pi(c->server_host, c->server_port);
	s->map = modbus_mapping_new(0, 0, (int)s->nregs, (int)s->nregs);
	if (!s->ctx || !s->map) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	s->lfd = modbus_tcp_pi_listen(s->ctx, MAX_CLIENTS);
	if (s->lfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen on %s:%s: %s", c->server_host, c->server_port,
		         strerror(errno));
		goto fail;
	}
	fcntl(s->lfd, F_SETFD, FD_CLOEXEC);
	fcntl(s->lfd, F_SETFL, fcntl(s->lfd, F_GETFL) | O_NONBLOCK);
	if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                         : ((struct sockaddr_in *)&ss)->sin_port);
	rc = sd_event_add_io(ev, &s->lsrc, s->lfd, EPOLLIN, on_accept, s);
	if (rc < 0) {
		snprintf(err, errlen, "event loop: %s", strerror(-rc));
		goto fail;
	}
	put_u16(s, 0, MB_MAP_VERSION);
	put_u16(s, 1,
	        (uint16_t)(c->n_devices > MB_MAP_MAX_DEVICES ? MB_MAP_MAX_DEVICES : c->n_devices));
	put_u16(s, 2, (uint16_t)c->n_points);
	put_u16(s, 3, 0xFFFF);
	put_u16(s, 4, 0xFFFF);
	put_u32(s, 5, 0xFFFFFFFFu);
	for (unsigned i = 0; i < c->n_points; i++)
		mb_server_set_point(s, i, NAN);
	*out = s;
	return 0;
fail:
	mb_server_free(s);
	return rc;
}

void mb_server_free(struct mb_server *s)
{
	if (!s)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i])
			client_free(s->clients[i]);
	sd_event_source_disable_unref(s->lsrc);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->ctx) {
		/* the context's socket is the last client's, already closed */
		modbus_set_socket(s->ctx, -1);
		modbus_free(s->ctx);
	}
	if (s->map)
		modbus_mapping_free(s->map);
	free(s);
}
