/* The mqtt plugin's broker connection, driven by the daemon's sd-event loop: the
 * socket as an io source, one timer for keepalives and reconnects (exponential
 * backoff with jitter), writes held back while a note waits for its commit, and
 * messages kept in memory while the broker is away; and the session's events
 * (connect, disconnect, PUBACK, libmosquitto's log) with what they publish. */
#include <errno.h>
#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netdb.h>
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

/* Read every packet the socket holds (up to READ_BURST): libmosquitto's
 * loop_read takes one packet per call, and it leaves errno at EAGAIN once the
 * socket is empty (a callback that happened to leave EAGAIN behind only ends the
 * burst early; the level-triggered io source comes back for the rest). */
static int read_burst(struct mqtt *m)
{
	int rc = MOSQ_ERR_SUCCESS;

	for (unsigned i = 0; i < READ_BURST && rc == MOSQ_ERR_SUCCESS; i++) {
		errno = 0;
		rc = mosquitto_loop_read(m->mosq, 1);
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
	}
	return rc;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct mqtt *m = ud;
	const struct ngw_host_api *h = m->self->host;
	int rc = MOSQ_ERR_SUCCESS;

	if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = read_burst(m);
	/* The broker sends no more than its in-flight window until it hears PUBACKs,
	 * so waiting for the group commit's delay would only idle: commit what this
	 * burst brought now, in one transaction (the callbacks release the writes). */
	if (m->n_puts && (h->abi & 0xffff) >= 2 && h->note_flush)
		h->note_flush(m->self);
	if (m->stopping || m->down)
		return 0; /* a callback stopped the plugin or lost the connection */
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

/* The broker's addresses for this round of connects, in getaddrinfo's order (e.g.
 * ::1 before 127.0.0.1 for "localhost"). libmosquitto's own connect stops at the
 * first address whose non-blocking connect is merely under way, so a broker that
 * listens on only one of them would never be reached. 0 or -errno. */
static int resolve(struct mqtt *m)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL, *a;
	char port[8];
	unsigned i;
	int r;

	m->n_addrs = m->addr_i = 0;
	snprintf(port, sizeof(port), "%lld", m->conf.port);
	r = getaddrinfo(m->conf.host, port, &hints, &res);
	if (r != 0) {
		LOG(m, m->attempt == 0 ? LOG_WARNING : LOG_DEBUG, "cannot resolve %s: %s",
		    m->conf.host, r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (a = res; a && m->n_addrs < ADDRS_MAX; a = a->ai_next) {
		char *dst = m->addrs[m->n_addrs];
		if (getnameinfo(a->ai_addr, a->ai_addrlen, dst, ADDR_LEN, NULL, 0, NI_NUMERICHOST))
			continue;
		bool seen = false;
		for (i = 0; i < m->n_addrs; i++)
			seen = seen || strcmp(m->addrs[i], dst) == 0;
		if (!seen) /* getaddrinfo lists an address once per socket type asked */
			m->n_addrs++;
	}
	freeaddrinfo(res);
	return m->n_addrs ? 0 : -EHOSTUNREACH;
}

/* Where this connect goes: the next resolved address, or with TLS the name itself
 * (libmosquitto checks the server's certificate against the name it connects to,
 * so it resolves and walks the addresses itself). NULL when the name resolves to
 * nothing. */
static const char *next_target(struct mqtt *m)
{
	if (m->conf.tls)
		return m->conf.host;
	if (m->addr_i >= m->n_addrs && resolve(m) < 0)
		return NULL;
	return m->addrs[m->addr_i];
}

void mqtt_connect(struct mqtt *m)
{
	mosquitto_property *props = NULL;
	int keepalive = (int)(m->conf.keepalive / 1000);
	int rc;

	m->down = false;
	m->connect_start_ms = mqtt_now_ms();
	m->target = next_target(m);
	if (!m->target) {
		m->target = m->conf.host;
		mqtt_conn_lost(m, MOSQ_ERR_EAI, "cannot connect");
		return;
	}
	if (m->conf.protocol == PROTO_5) {
		/* MQTT 5 needs a session expiry for the broker to keep the session at
		 * all; libmosquitto 2.0 only sends CONNECT properties from its blocking
		 * connect (the async one drops them), so the TCP connect blocks here. */
		uint32_t exp =
		    m->conf.session_expiry ? (uint32_t)(m->conf.session_expiry / 1000) : UINT32_MAX;
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, exp);
		rc = mosquitto_connect_bind_v5(m->mosq, m->target, (int)m->conf.port, keepalive,
		                               NULL, props);
		mosquitto_property_free_all(&props);
	} else {
		rc = mosquitto_connect_async(m->mosq, m->target, (int)m->conf.port, keepalive);
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
	m->share_live = false;
	if (m->connected || m->attempt == 0)
		LOG(m, LOG_WARNING, "%s (%s:%lld): %s", what, m->target ? m->target : m->conf.host,
		    m->conf.port, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	/* A connect that failed moves on to the broker's next address at once; a lost
	 * connection, or the last address, starts a new round after the backoff. */
	bool next = !m->connected && !m->conf.tls && m->addr_i + 1 < m->n_addrs;
	m->addr_i = next ? m->addr_i + 1 : m->n_addrs;
	m->connected = false;
	if (m->io)
		m->io = sd_event_source_disable_unref(m->io);
	m->io_fd = -1;
	/* No mosquitto_disconnect() here: a DISCONNECT would tell the broker to
	 * suppress our will. The next connect closes whatever socket is left. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)mqtt_now_ms();
	delay =
	    next ? 0
	         : mqtt_backoff_ms(m->conf.reconnect_min, m->conf.reconnect_max, m->attempt, rnd);
	if (!next && m->attempt < 32)
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
	if (m->connected) {
		mqtt_check_probe(m, now);
		mqtt_share_check(m, now);
	}
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

/* ---- publishing ------------------------------------------------------------------ */

void mqtt_publish_error(struct mqtt *m, const char *about, const char *why)
{
	char topic[TOPIC_MAX];
	char *js = mqtt_error_json(about, why);

	if (!js || mqtt_topic_build(topic, sizeof(topic), m->own, "error", NULL) < 0) {
		LOG(m, LOG_ERR, "cannot report refusal of %s: %s", about, why);
		free(js);
		return;
	}
	mqtt_publish(m, topic, js, strlen(js), false);
	free(js);
}

/* Retained status: the host's status object plus "online". */
void mqtt_publish_status(struct mqtt *m, bool online)
{
	char topic[TOPIC_MAX];
	json_t *j = NULL;
	char *s;

	if (!m->connected)
		return; /* sent on every connect anyway */
	if (!online) {
		j = json_object();
	} else {
		if (!m->status)
			m->status = m->self->host->status_json(m->self);
		if (m->status)
			j = json_loads(m->status, 0, NULL);
		if (!json_is_object(j)) {
			json_decref(j);
			j = json_object();
		}
	}
	if (!j)
		return;
	json_object_set_new(j, "online", json_boolean(online));
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s && mqtt_topic_build(topic, sizeof(topic), m->own, "status", NULL) == 0)
		mqtt_publish(m, topic, s, strlen(s), true);
	free(s);
}

/* ---- connection ------------------------------------------------------------------ */

static void subscribe(struct mqtt *m)
{
	char topic[TOPIC_MAX];
	int rc;

	if (m->conf.ingest == INGEST_CLIENT)
		mqtt_subscribe_out(m);
	if (m->conf.ingest == INGEST_BROKER &&
	    mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "broker", "pong") == 0) {
		rc = mosquitto_subscribe(m->mosq, NULL, topic, (int)m->conf.qos);
		if (rc)
			LOG(m, LOG_ERR, "cannot subscribe to %s: %s", topic,
			    mosquitto_strerror(rc));
	}
	if (m->conf.raw_requests &&
	    mqtt_topic_build(topic, sizeof(topic), m->own, "req", NULL) == 0) {
		rc = mosquitto_subscribe(m->mosq, NULL, topic, (int)m->conf.qos);
		if (rc)
			LOG(m, LOG_ERR, "cannot subscribe to %s: %s", topic,
			    mosquitto_strerror(rc));
	}
}

/* With ingest = broker this plugin leaves out/ to notegw_broker.so. If the broker
 * does not run it, nobody queues those messages: ask it after every connect (the
 * broker may have been restarted with another configuration) and say so loudly
 * when it does not answer, rather than let out/ messages vanish unnoticed. */
static void probe_broker(struct mqtt *m)
{
	char topic[TOPIC_MAX];

	if (m->conf.ingest != INGEST_BROKER)
		return;
	snprintf(m->probe, sizeof(m->probe), "%s/%llu", m->client_id,
	         (unsigned long long)m->n.connects);
	m->broker_plugin = -1;
	m->probe_deadline_ms = mqtt_now_ms() + PROBE_MS;
	if (mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "broker", "ping") == 0)
		mqtt_publish(m, topic, m->probe, strlen(m->probe), false);
}

void mqtt_check_probe(struct mqtt *m, uint64_t now)
{
	char topic[TOPIC_MAX];

	if (m->conf.ingest != INGEST_BROKER || m->broker_plugin != -1 || now < m->probe_deadline_ms)
		return;
	m->broker_plugin = 0;
	LOG(m, LOG_ERR,
	    "ingest = broker, but the broker did not answer as notegw_broker.so would: "
	    "nothing queues %s/out/ messages",
	    m->conf.prefix);
	if (mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "out", "#") == 0)
		mqtt_publish_error(m, topic,
		                   "ingest = broker but the broker does not run notegw_broker.so: "
		                   "out/ messages are not queued");
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
	struct mqtt *m = ud;
	bool at;

	if (rc != 0) {
		LOG(m, LOG_ERR, "broker %s:%lld refused the connection: %s", m->conf.host,
		    m->conf.port,
		    m->conf.protocol == PROTO_5 ? mosquitto_reason_string(rc)
		                                : mosquitto_connack_string(rc));
		/* The broker closes the socket; libmosquitto reports it as a disconnect. */
		return;
	}
	m->connected = true;
	m->attempt = 0;
	if (m->n.connects++ > 0)
		m->n.reconnects++;
	at = m->target && strcmp(m->target, m->conf.host) != 0;
	LOG(m, LOG_INFO, "connected to %s:%lld%s%s as %s (%s session)", m->conf.host, m->conf.port,
	    at ? " at " : "", at ? m->target : "", m->client_id, (flags & 1) ? "resumed" : "new");
	/* Subscribing again on a resumed session is harmless and covers a broker that
	 * lost its persistence file. */
	subscribe(m);
	mqtt_publish_status(m, true);
	mqtt_flush_held(m);
	probe_broker(m);
	mqtt_arm_timer(m, mqtt_now_ms() + TICK_MS);
}

static void on_subscribe(struct mosquitto *mosq, void *ud, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
	/* one filter per SUBSCRIBE: a granted QoS of 0x80 or more is a refusal */
	mqtt_share_acked(ud, mid, true, count == 1 && granted[0] < 0x80);
}

static void on_unsubscribe(struct mosquitto *mosq, void *ud, int mid,
                           const mosquitto_property *props)
{
	mqtt_share_acked(ud, mid, false, true);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc, const mosquitto_property *props)
{
	struct mqtt *m = ud;

	if (!m->stopping)
		mqtt_conn_lost(m, rc, "disconnected");
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid, int reason,
                       const mosquitto_property *props)
{
	struct mqtt *m = ud;
	int64_t id;

	if (mid < 0 || mid > 65535)
		return;
	id = m->mid_ids[mid];
	if (!id)
		return;
	m->mid_ids[mid] = 0;
	/* MQTT 5 reason codes >= 0x80 are refusals (e.g. not authorized): the note
	 * stays pending and is offered again when the daemon starts. */
	if (reason >= 0x80) {
		LOG(m, LOG_WARNING, "broker refused inbound note %lld: %s", (long long)id,
		    mosquitto_reason_string(reason));
		return;
	}
	if (m->self->host->inbound_done(m->self, id) == 0)
		m->n.delivered++;
}

static void on_log(struct mosquitto *mosq, void *ud, int level, const char *str)
{
	struct mqtt *m = ud;

	/* libmosquitto's errors say why (e.g. "certificate verify failed"): worth a
	 * warning the first time, debug while the same failure repeats. */
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
		LOG(m, m->attempt == 0 ? LOG_WARNING : LOG_DEBUG, "libmosquitto: %s", str);
}

void mqtt_session_callbacks(struct mosquitto *mosq)
{
	mosquitto_connect_v5_callback_set(mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);
	mosquitto_message_v5_callback_set(mosq, mqtt_on_message);
	mosquitto_publish_v5_callback_set(mosq, on_publish);
	mosquitto_subscribe_v5_callback_set(mosq, on_subscribe);
	mosquitto_unsubscribe_v5_callback_set(mosq, on_unsubscribe);
	mosquitto_log_callback_set(mosq, on_log);
}
