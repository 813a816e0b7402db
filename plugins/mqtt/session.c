/* The mqtt plugin's broker connection, driven by the daemon's sd-event loop: the
 * socket as an io source, one timer for keepalives and reconnects (exponential
 * backoff with jitter), writes held back while a note waits for its commit, and
 * messages kept in memory while the broker is away. */
#include <errno.h>
#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mqtt-private.h"
#include "validate.h"

uint64_t mqtt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Store a copy to publish after the next connect. Bounded: past the bound the
 * message is dropped and logged (an inbound note then stays pending in the store
 * and is offered again at the next start). */
static int hold(struct mqtt *m, int64_t id, const char *topic, const char *payload, size_t len,
                bool retain)
{
	struct held *h;

	if (m->n_held >= HELD_MAX) {
		LOG(m, LOG_WARNING, "%u messages wait for the broker: dropped one for %s", HELD_MAX,
		    topic);
		return -ENOBUFS;
	}
	h = calloc(1, sizeof(*h) + len + 1);
	if (!h || !(h->topic = strdup(topic))) {
		free(h);
		return -ENOMEM;
	}
	h->id = id;
	h->len = len;
	h->retain = retain;
	memcpy(h->payload, payload, len);
	*m->held_tail = h;
	m->held_tail = &h->next;
	m->n_held++;
	return 0;
}

/* Publish with the configured QoS. id > 0: an inbound note, marked done in the store
 * when its PUBACK arrives (on_publish). While disconnected (libmosquitto 2.0 refuses
 * to publish then) the message is held and sent after the next connect. */
int mqtt_publish_id(struct mqtt *m, int64_t id, const char *topic, const char *payload, size_t len,
                    bool retain)
{
	int mid = 0, rc;

	if (len > INT32_MAX)
		return MOSQ_ERR_PAYLOAD_SIZE;
	if (!m->connected)
		return hold(m, id, topic, payload, len, retain) == 0 ? MOSQ_ERR_SUCCESS
		                                                     : MOSQ_ERR_NOMEM;
	rc = mosquitto_publish(m->mosq, &mid, topic, (int)len, payload, (int)m->conf.qos, retain);
	if (rc == MOSQ_ERR_NO_CONN)
		return hold(m, id, topic, payload, len, retain) == 0 ? MOSQ_ERR_SUCCESS
		                                                     : MOSQ_ERR_NOMEM;
	if (rc == MOSQ_ERR_SUCCESS) {
		m->n.published++;
		if (id > 0 && mid > 0 && mid <= 65535)
			m->mid_ids[mid] = id;
	} else {
		LOG(m, LOG_WARNING, "cannot publish on %s: %s", topic, mosquitto_strerror(rc));
	}
	mqtt_update_io(m);
	return rc;
}

int mqtt_publish(struct mqtt *m, const char *topic, const char *payload, size_t len, bool retain)
{
	return mqtt_publish_id(m, 0, topic, payload, len, retain);
}

/* After a connect: send what waited, oldest first. */
void mqtt_flush_held(struct mqtt *m)
{
	struct held *h;

	while (m->connected && (h = m->held)) {
		m->held = h->next;
		if (!m->held)
			m->held_tail = &m->held;
		m->n_held--;
		mqtt_publish_id(m, h->id, h->topic, h->payload, h->len, h->retain);
		free(h->topic);
		free(h);
	}
}

void mqtt_free_held(struct mqtt *m)
{
	struct held *h;

	while ((h = m->held)) {
		m->held = h->next;
		free(h->topic);
		free(h);
	}
	m->held_tail = &m->held;
	m->n_held = 0;
}

/* No note pending any more: what libmosquitto queued (PUBACKs included) may go. */
void mqtt_release_writes(struct mqtt *m)
{
	int rc;

	if (m->n_puts || !m->mosq || mosquitto_socket(m->mosq) < 0)
		return;
	if (mosquitto_want_write(m->mosq)) {
		rc = mosquitto_loop_write(m->mosq, 1);
		if (rc != MOSQ_ERR_SUCCESS) {
			mqtt_conn_lost(m, rc, "connection lost");
			return;
		}
	}
	mqtt_update_io(m);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct mqtt *m = ud;
	int rc = MOSQ_ERR_SUCCESS;

	if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = mosquitto_loop_read(m->mosq, 1);
	/* Every on_message of that read has returned (committed): what was queued,
	 * PUBACKs included, may go now. */
	if (rc == MOSQ_ERR_SUCCESS && m->n_puts == 0 &&
	    ((revents & EPOLLOUT) || mosquitto_want_write(m->mosq)))
		rc = mosquitto_loop_write(m->mosq, 1);
	if (rc != MOSQ_ERR_SUCCESS) {
		mqtt_conn_lost(m, rc, "connection lost");
		return 0;
	}
	mqtt_update_io(m);
	return 0;
}

/* Keep the io source on libmosquitto's current socket, asking for EPOLLOUT only
 * while it has something to write. */
void mqtt_update_io(struct mqtt *m)
{
	int fd = m->mosq ? mosquitto_socket(m->mosq) : -1;
	uint32_t ev;
	int r;

	if (fd != m->io_fd && m->io) {
		m->io = sd_event_source_disable_unref(m->io);
		m->io_fd = -1;
	}
	if (fd < 0)
		return;
	ev = EPOLLIN | (m->n_puts == 0 && mosquitto_want_write(m->mosq) ? EPOLLOUT : 0);
	if (!m->io) {
		r = sd_event_add_io(m->self->host->event(m->self), &m->io, fd, ev, on_io, m);
		if (r < 0) {
			LOG(m, LOG_ERR, "cannot watch the broker socket: %s", strerror(-r));
			return;
		}
		m->io_fd = fd;
		return;
	}
	sd_event_source_set_io_events(m->io, ev);
}

void mqtt_connect(struct mqtt *m)
{
	mosquitto_property *props = NULL;
	int keepalive = (int)(m->conf.keepalive / 1000);
	int rc;

	m->down = false;
	m->connect_start_ms = mqtt_now_ms();
	if (m->conf.protocol == PROTO_5) {
		/* MQTT 5 needs a session expiry for the broker to keep the session at
		 * all; libmosquitto 2.0 only sends CONNECT properties from its blocking
		 * connect (the async one drops them), so the TCP connect blocks here. */
		uint32_t exp =
		    m->conf.session_expiry ? (uint32_t)(m->conf.session_expiry / 1000) : UINT32_MAX;
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, exp);
		rc = mosquitto_connect_bind_v5(m->mosq, m->conf.host, (int)m->conf.port, keepalive,
		                               NULL, props);
		mosquitto_property_free_all(&props);
	} else {
		rc = mosquitto_connect_async(m->mosq, m->conf.host, (int)m->conf.port, keepalive);
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		mqtt_conn_lost(m, rc, "cannot connect");
		return;
	}
	mqtt_update_io(m);
	mqtt_arm_timer(m, mqtt_now_ms() + TICK_MS);
}

void mqtt_conn_lost(struct mqtt *m, int rc, const char *what)
{
	uint32_t rnd = 0;
	uint64_t delay;

	if (m->down || m->stopping)
		return;
	m->down = true;
	if (m->connected || m->attempt == 0)
		LOG(m, LOG_WARNING, "%s (%s:%lld): %s", what, m->conf.host, m->conf.port,
		    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	m->connected = false;
	if (m->io)
		m->io = sd_event_source_disable_unref(m->io);
	m->io_fd = -1;
	/* No mosquitto_disconnect() here: a DISCONNECT would tell the broker to
	 * suppress our will. The next connect closes whatever socket is left. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)mqtt_now_ms();
	delay = mqtt_backoff_ms(m->conf.reconnect_min, m->conf.reconnect_max, m->attempt, rnd);
	if (m->attempt < 32)
		m->attempt++;
	m->connect_at_ms = mqtt_now_ms() + delay;
	mqtt_arm_timer(m, m->connect_at_ms);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct mqtt *m = ud;
	uint64_t now = mqtt_now_ms();
	int rc;

	if (m->stopping)
		return 0;
	if (m->down) {
		if (now >= m->connect_at_ms)
			mqtt_connect(m);
		else
			mqtt_arm_timer(m, m->connect_at_ms);
		return 0;
	}
	/* A connect that never completes (silent firewall) counts as a failure. */
	if (!m->connected && now - m->connect_start_ms > m->conf.keepalive) {
		mqtt_conn_lost(m, MOSQ_ERR_CONN_LOST, "connect timed out");
		return 0;
	}
	if (m->connected)
		mqtt_check_probe(m, now);
	rc = mosquitto_loop_misc(m->mosq);
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
		mqtt_conn_lost(m, rc, "keepalive failed");
		return 0;
	}
	mqtt_update_io(m);
	mqtt_arm_timer(m, now + TICK_MS);
	return 0;
}

void mqtt_arm_timer(struct mqtt *m, uint64_t at_ms)
{
	sd_event *e = m->self->host->event(m->self);
	uint64_t usec = at_ms * 1000u;

	if (!m->timer) {
		if (sd_event_add_time(e, &m->timer, CLOCK_MONOTONIC, usec, 10000, on_timer, m) < 0)
			LOG(m, LOG_ERR, "cannot add a timer");
		return;
	}
	sd_event_source_set_time(m->timer, usec);
	sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
}
