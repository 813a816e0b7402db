/* mqtt plugin: the gateway as an MQTT client of a local broker (libmosquitto).
 * Its socket and timers live in the daemon's sd-event loop (no libmosquitto thread):
 * <prefix>/out/<notefile> becomes a note committed before on_message returns,
 * inbound notes go out on <prefix>/in/<file> and are marked delivered on PUBACK. */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "notegw/plugin.h"
#include "validate.h"

#define TOPIC_MAX    512
#define PASSWORD_MAX 4096
#define TICK_MS      1000

enum { PROTO_311, PROTO_5 };
enum { INGEST_CLIENT, INGEST_BROKER };

static const char *const protocol_names[] = {"3.1.1", "5", NULL};
static const char *const ingest_names[] = {"client", "broker", NULL};

/* [mqtt] as parsed by the host through keys[] below. */
struct mqtt_conf {
	bool enabled;
	char *host;
	long long port;
	char *prefix;
	char *client_id;
	int protocol;
	uint64_t keepalive; /* ms */
	bool tls;
	char *ca_file;
	char *cert_file;
	char *key_file;
	bool insecure;
	char *username;
	char *password_file;
	long long qos;
	uint64_t max_payload; /* bytes */
	bool raw_requests;
	uint64_t reconnect_min;  /* ms */
	uint64_t reconnect_max;  /* ms */
	uint64_t session_expiry; /* ms; 0 = never (MQTT 5 only) */
	int ingest;
};

#define K(n, t, d) .name = #n, .type = t, .def = d, .offset = offsetof(struct mqtt_conf, n)
static const struct ngw_cfg_key keys[] = {
    {K(enabled, NGW_CFG_BOOL, "true")},
    {K(host, NGW_CFG_STR, "localhost")},
    {K(port, NGW_CFG_INT, "1883"), .min = 1, .max = 65535},
    {K(prefix, NGW_CFG_STR, "notecard")},
    {K(client_id, NGW_CFG_STR, NULL)},
    {K(protocol, NGW_CFG_ENUM, "3.1.1"), .choices = protocol_names},
    {K(keepalive, NGW_CFG_DURATION, "60s"), .min = 5000, .max = 65535000},
    {K(tls, NGW_CFG_BOOL, "false")},
    {K(ca_file, NGW_CFG_STR, NULL)},
    {K(cert_file, NGW_CFG_STR, NULL)},
    {K(key_file, NGW_CFG_STR, NULL)},
    {K(insecure, NGW_CFG_BOOL, "false")},
    {K(username, NGW_CFG_STR, NULL)},
    {K(password_file, NGW_CFG_STR, NULL)},
    /* QoS 0 would let the broker drop what we promise to keep: 1 or 2 only. */
    {K(qos, NGW_CFG_INT, "1"), .min = 1, .max = 2},
    /* 8 KiB: a note body must travel in one note.add request; at the Notecard's
     * I2C pacing (250 bytes per 250 ms) 8 KiB already holds the bus ~8 s, and
     * the card's own transfer unit (dfu.get chunks) is 8192 bytes. */
    {K(max_payload, NGW_CFG_SIZE, "8K"), .min = 2, .max = 1 << 20},
    {K(raw_requests, NGW_CFG_BOOL, "false")},
    {K(reconnect_min, NGW_CFG_DURATION, "1s"), .min = 10, .max = 3600000},
    {K(reconnect_max, NGW_CFG_DURATION, "60s"), .min = 10, .max = 3600000},
    {K(session_expiry, NGW_CFG_DURATION, "0"), .min = 0, .max = 4294967000LL},
    {K(ingest, NGW_CFG_ENUM, "client"), .choices = ingest_names},
};
#undef K
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* A message waiting for the broker to come back. */
struct held {
	struct held *next;
	int64_t id; /* inbound note id or 0 */
	char *topic;
	size_t len;
	bool retain;
	char payload[]; /* len bytes + NUL */
};

#define HELD_MAX 4096u

/* A raw request waiting for the Notecard's answer. */
struct req_ctx {
	struct mqtt *m; /* NULL once the plugin stopped: drop the answer */
	struct req_ctx *next;
	char *response_topic; /* MQTT 5 request/response, or NULL: <prefix>/rsp */
	void *corr;           /* MQTT 5 correlation data, copied to the answer */
	uint16_t corr_len;
};

static void req_free(struct req_ctx *c)
{
	free(c->response_topic);
	free(c->corr);
	free(c);
}

struct mqtt {
	struct ngw_plugin *self;
	struct mqtt_conf conf;
	bool conf_bound;
	char *client_id; /* conf.client_id or notegw-<hostname> */
	char *password;  /* from password_file, wiped on free */
	struct mosquitto *mosq;
	sd_event_source *io; /* broker socket, while there is one */
	int io_fd;
	sd_event_source *timer; /* loop_misc while up, reconnect while down */
	bool lib_init, started, stopping, connected, down;
	unsigned attempt;       /* failed connects since the last success */
	uint64_t connect_at_ms; /* when down: next attempt (monotonic) */
	uint64_t connect_start_ms;
	char *status;     /* last status JSON from the host */
	int64_t *mid_ids; /* [65536]: mid -> inbound note id awaiting PUBACK */
	struct req_ctx *reqs;
	struct held *held, **held_tail;
	unsigned n_held;
	struct {
		uint64_t received, queued, refused, published, delivered, reconnects, connects;
	} n;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The host prefixes every line with the plugin's name ("mqtt: "). */
#define LOG(m, lvl, ...) (m)->self->host->log((m)->self, lvl, __VA_ARGS__)

static void update_io(struct mqtt *m);
static void conn_lost(struct mqtt *m, int rc, const char *what);
static void arm_timer(struct mqtt *m, uint64_t at_ms);

/* ---- publishing ------------------------------------------------------------------ */

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
static int publish_id(struct mqtt *m, int64_t id, const char *topic, const char *payload,
                      size_t len, bool retain)
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
	update_io(m);
	return rc;
}

static int publish(struct mqtt *m, const char *topic, const char *payload, size_t len, bool retain)
{
	return publish_id(m, 0, topic, payload, len, retain);
}

/* After a connect: send what waited, oldest first. */
static void flush_held(struct mqtt *m)
{
	struct held *h;

	while (m->connected && (h = m->held)) {
		m->held = h->next;
		if (!m->held)
			m->held_tail = &m->held;
		m->n_held--;
		publish_id(m, h->id, h->topic, h->payload, h->len, h->retain);
		free(h->topic);
		free(h);
	}
}

static void free_held(struct mqtt *m)
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

static void publish_error(struct mqtt *m, const char *about, const char *why)
{
	char topic[TOPIC_MAX];
	char *js = mqtt_error_json(about, why);

	if (!js || mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "error", NULL) < 0) {
		LOG(m, LOG_ERR, "cannot report refusal of %s: %s", about, why);
		free(js);
		return;
	}
	publish(m, topic, js, strlen(js), false);
	free(js);
}

/* Retained status: the host's status object plus "online". */
static void publish_status(struct mqtt *m, bool online)
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
	if (s && mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "status", NULL) == 0)
		publish(m, topic, s, strlen(s), true);
	free(s);
}

/* ---- inbound from the broker ----------------------------------------------------- */

static void ingest_out(struct mqtt *m, const struct mosquitto_message *msg, const char *notefile)
{
	const struct ngw_host_api *h = m->self->host;
	const char *why = NULL;
	char *body = NULL;
	int r;

	m->n.received++;
	/* A retained message reaches a subscriber "live" with retain=0 (and was queued
	 * then); with retain=1 it is the broker replaying it on (re)subscription.
	 * Queueing every replay would repeat the note after each reconnect. */
	if (msg->retain) {
		why = "retained message replayed by the broker: not queued again (publish "
		      "without retain)";
		r = -EINVAL;
		goto refused;
	}
	r = mqtt_out_check(notefile, msg->payload, (size_t)msg->payloadlen,
	                   (size_t)m->conf.max_payload, &body, &why);
	if (r < 0)
		goto refused;
	/* Committed before we return: libmosquitto has already sent PUBACK, so the
	 * only loss window left is this call (see docs/mqtt.md). */
	r = h->note_put_sync(m->self, notefile, body, NULL, 0, &why);
	free(body);
	if (r < 0)
		goto refused;
	m->n.queued++;
	return;
refused:
	m->n.refused++;
	if (!why)
		why = strerror(-r);
	LOG(m, LOG_NOTICE, "refused message on %s: %s", msg->topic, why);
	publish_error(m, msg->topic, why);
}

/* The answer on the requester's MQTT 5 response topic with its correlation data,
 * or on <prefix>/rsp. */
static void publish_answer(struct mqtt *m, struct req_ctx *c, const char *response)
{
	mosquitto_property *props = NULL;
	char topic[TOPIC_MAX];
	const char *t = c->response_topic;
	int rc;

	if (!t) {
		if (mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "rsp", NULL) < 0)
			return;
		t = topic;
	}
	if (!c->corr || !m->connected) {
		publish(m, t, response, strlen(response), false);
		return;
	}
	if (mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, c->corr,
	                                  c->corr_len) != MOSQ_ERR_SUCCESS) {
		publish(m, t, response, strlen(response), false);
		return;
	}
	rc = mosquitto_publish_v5(m->mosq, NULL, t, (int)strlen(response), response,
	                          (int)m->conf.qos, false, props);
	mosquitto_property_free_all(&props);
	if (rc == MOSQ_ERR_SUCCESS)
		m->n.published++;
	else
		LOG(m, LOG_WARNING, "cannot publish the answer on %s: %s", t,
		    mosquitto_strerror(rc));
	update_io(m);
}

static void on_reply(void *ud, int err, const char *response)
{
	struct req_ctx *c = ud, **pp;
	struct mqtt *m = c->m;
	char topic[TOPIC_MAX];

	if (m) {
		for (pp = &m->reqs; *pp; pp = &(*pp)->next) {
			if (*pp == c) {
				*pp = c->next;
				break;
			}
		}
		if (err < 0) {
			mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "req", NULL);
			publish_error(m, topic, "no answer from the notecard");
		} else {
			publish_answer(m, c, response);
		}
	}
	req_free(c);
}

/* MQTT 5 request/response: keep where the requester wants the answer, unless that
 * is one of our input topics (which would loop) or not a valid topic to publish. */
static void take_response_props(struct mqtt *m, struct req_ctx *c, const mosquitto_property *props)
{
	char *rt = NULL;
	void *corr = NULL;
	uint16_t len = 0;

	if (!props)
		return;
	if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false) && rt) {
		if (mosquitto_pub_topic_check(rt) == MOSQ_ERR_SUCCESS &&
		    mqtt_topic_classify(m->conf.prefix, rt, NULL) == MQTT_TOPIC_OTHER)
			c->response_topic = strdup(rt);
		free(rt);
	}
	if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &len, false) &&
	    corr) {
		c->corr = corr;
		c->corr_len = len;
	}
}

static void raw_request(struct mqtt *m, const struct mosquitto_message *msg,
                        const mosquitto_property *props)
{
	const char *why = NULL;
	struct req_ctx *c;
	char *req = NULL;
	int r;

	m->n.received++;
	r = mqtt_req_check(msg->payload, (size_t)msg->payloadlen, (size_t)m->conf.max_payload, &req,
	                   &why);
	if (r < 0)
		goto refused;
	c = calloc(1, sizeof(*c));
	if (!c) {
		r = -ENOMEM;
		goto refused;
	}
	c->m = m;
	take_response_props(m, c, props);
	r = m->self->host->card_request(m->self, req, on_reply, c);
	if (r < 0) {
		req_free(c);
		why = "request not accepted by the gateway";
		goto refused;
	}
	c->next = m->reqs;
	m->reqs = c;
	free(req);
	return;
refused:
	free(req);
	m->n.refused++;
	publish_error(m, msg->topic, why ? why : strerror(-r));
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct mqtt *m = ud;
	const char *rest = NULL;

	switch (mqtt_topic_classify(m->conf.prefix, msg->topic, &rest)) {
	case MQTT_TOPIC_OUT:
		if (m->conf.ingest == INGEST_CLIENT)
			ingest_out(m, msg, rest);
		break;
	case MQTT_TOPIC_REQ:
		if (m->conf.raw_requests)
			raw_request(m, msg, props);
		break;
	default:
		break;
	}
}

/* ---- connection ------------------------------------------------------------------ */

static void subscribe(struct mqtt *m)
{
	char topic[TOPIC_MAX];
	int rc;

	if (m->conf.ingest == INGEST_CLIENT &&
	    mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "out", "#") == 0) {
		rc = mosquitto_subscribe(m->mosq, NULL, topic, (int)m->conf.qos);
		if (rc)
			LOG(m, LOG_ERR, "cannot subscribe to %s: %s", topic,
			    mosquitto_strerror(rc));
	}
	if (m->conf.raw_requests &&
	    mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "req", NULL) == 0) {
		rc = mosquitto_subscribe(m->mosq, NULL, topic, (int)m->conf.qos);
		if (rc)
			LOG(m, LOG_ERR, "cannot subscribe to %s: %s", topic,
			    mosquitto_strerror(rc));
	}
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
	struct mqtt *m = ud;

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
	LOG(m, LOG_INFO, "connected to %s:%lld as %s (%s session)", m->conf.host, m->conf.port,
	    m->client_id, (flags & 1) ? "resumed" : "new");
	/* Subscribing again on a resumed session is harmless and covers a broker that
	 * lost its persistence file. */
	subscribe(m);
	publish_status(m, true);
	flush_held(m);
	arm_timer(m, mono_ms() + TICK_MS);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc, const mosquitto_property *props)
{
	struct mqtt *m = ud;

	if (!m->stopping)
		conn_lost(m, rc, "disconnected");
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

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct mqtt *m = ud;
	int rc = MOSQ_ERR_SUCCESS;

	if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = mosquitto_loop_read(m->mosq, 1);
	if (rc == MOSQ_ERR_SUCCESS && (revents & EPOLLOUT))
		rc = mosquitto_loop_write(m->mosq, 1);
	if (rc != MOSQ_ERR_SUCCESS) {
		conn_lost(m, rc, "connection lost");
		return 0;
	}
	update_io(m);
	return 0;
}

/* Keep the io source on libmosquitto's current socket, asking for EPOLLOUT only
 * while it has something to write. */
static void update_io(struct mqtt *m)
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
	ev = EPOLLIN | (mosquitto_want_write(m->mosq) ? EPOLLOUT : 0);
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

static void try_connect(struct mqtt *m)
{
	mosquitto_property *props = NULL;
	int keepalive = (int)(m->conf.keepalive / 1000);
	int rc;

	m->down = false;
	m->connect_start_ms = mono_ms();
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
		conn_lost(m, rc, "cannot connect");
		return;
	}
	update_io(m);
	arm_timer(m, mono_ms() + TICK_MS);
}

static void conn_lost(struct mqtt *m, int rc, const char *what)
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
		rnd = (uint32_t)mono_ms();
	delay = mqtt_backoff_ms(m->conf.reconnect_min, m->conf.reconnect_max, m->attempt, rnd);
	if (m->attempt < 32)
		m->attempt++;
	m->connect_at_ms = mono_ms() + delay;
	arm_timer(m, m->connect_at_ms);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct mqtt *m = ud;
	uint64_t now = mono_ms();
	int rc;

	if (m->stopping)
		return 0;
	if (m->down) {
		if (now >= m->connect_at_ms)
			try_connect(m);
		else
			arm_timer(m, m->connect_at_ms);
		return 0;
	}
	/* A connect that never completes (silent firewall) counts as a failure. */
	if (!m->connected && now - m->connect_start_ms > m->conf.keepalive) {
		conn_lost(m, MOSQ_ERR_CONN_LOST, "connect timed out");
		return 0;
	}
	rc = mosquitto_loop_misc(m->mosq);
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
		conn_lost(m, rc, "keepalive failed");
		return 0;
	}
	update_io(m);
	arm_timer(m, now + TICK_MS);
	return 0;
}

static void arm_timer(struct mqtt *m, uint64_t at_ms)
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

/* ---- configuration --------------------------------------------------------------- */

static void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	if (m->conf_bound)
		m->self->host->cfg_free(keys, N_KEYS, &m->conf);
	free(m->client_id);
	if (m->password) {
		explicit_bzero(m->password, strlen(m->password));
		free(m->password);
	}
	free(m->status);
	free(m->mid_ids);
	free_held(m);
	free(m);
}

static int mqtt_configure(struct ngw_plugin *self)
{
	const struct ngw_host_api *h = self->host;
	struct mqtt *m = calloc(1, sizeof(*m));
	const char *why;
	char host[256];
	int bad = 0, r;

	if (!m)
		return -ENOMEM;
	m->self = self;
	m->io_fd = -1;
	m->held_tail = &m->held;
	/* Bound strings are ours to free even when binding fails: destroy() does. */
	r = h->cfg_bind(self, "mqtt", keys, N_KEYS, &m->conf);
	m->conf_bound = true;
	self->priv = m;
	if (r < 0)
		return -EINVAL;
	if (mqtt_prefix_check(m->conf.prefix, &why) < 0) {
		h->cfg_error(self, "mqtt", "prefix", "%s", why);
		bad = 1;
	}
	if (m->conf.reconnect_min > m->conf.reconnect_max) {
		h->cfg_error(self, "mqtt", "reconnect_min", "reconnect_min is above reconnect_max");
		bad = 1;
	}
	if (!m->conf.cert_file != !m->conf.key_file) {
		h->cfg_error(self, "mqtt", m->conf.cert_file ? "cert_file" : "key_file",
		             "cert_file and key_file go together");
		bad = 1;
	}
	if (!m->conf.tls && (m->conf.ca_file || m->conf.cert_file || m->conf.insecure)) {
		h->cfg_error(self, "mqtt", "tls", "TLS settings given but tls = false");
		bad = 1;
	}
	if (m->conf.password_file && !m->conf.username) {
		h->cfg_error(self, "mqtt", "password_file", "password_file needs a username");
		bad = 1;
	}
	if (!m->conf.host || !*m->conf.host) {
		h->cfg_error(self, "mqtt", "host", "host must not be empty");
		bad = 1;
	}
	if (m->conf.client_id) {
		m->client_id = strdup(m->conf.client_id);
	} else {
		/* Stable across restarts, so the broker finds our persistent session. */
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "gateway");
		host[sizeof(host) - 1] = '\0';
		if (asprintf(&m->client_id, "notegw-%s", host) < 0)
			m->client_id = NULL;
	}
	if (!m->client_id || !*m->client_id || strlen(m->client_id) > 65535) {
		h->cfg_error(self, "mqtt", "client_id", "client_id is empty or too long");
		bad = 1;
	}
	self->priv = m;
	return bad ? -EINVAL : 0;
}

static int mqtt_disabled(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;
	return !m->conf.enabled;
}

/* The password file must be readable by the service only: refuse one that others
 * can read or write, so a packaging mistake is caught instead of leaking. */
static int read_password(struct mqtt *m)
{
	const char *path = m->conf.password_file;
	char buf[PASSWORD_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		LOG(m, LOG_ERR, "cannot open password_file %s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IROTH | S_IWOTH))) {
		LOG(m, LOG_ERR,
		    "password_file %s is readable or writable by others "
		    "(chmod o-rw): refused",
		    path);
		r = -EPERM;
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		r = -errno;
		goto out;
	}
	if (n > PASSWORD_MAX) {
		LOG(m, LOG_ERR, "password_file %s is larger than 4 KiB", path);
		r = -EFBIG;
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	m->password = strdup(buf);
	if (!m->password)
		r = -ENOMEM;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	if (r < 0 && r != -EPERM && r != -EFBIG)
		LOG(m, LOG_ERR, "cannot read password_file %s: %s", path, strerror(-r));
	return r;
}

static int setup_client(struct mqtt *m)
{
	const struct mqtt_conf *c = &m->conf;
	char topic[TOPIC_MAX];
	static const char will[] = "{\"online\":false}";
	int rc;

	m->mosq = mosquitto_new(m->client_id, false, m);
	if (!m->mosq)
		return -errno ? -errno : -ENOMEM;
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION,
	                     c->protocol == PROTO_5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	mosquitto_connect_v5_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(m->mosq, on_disconnect);
	mosquitto_message_v5_callback_set(m->mosq, on_message);
	mosquitto_publish_v5_callback_set(m->mosq, on_publish);
	mosquitto_log_callback_set(m->mosq, on_log);
	if (mqtt_topic_build(topic, sizeof(topic), c->prefix, "status", NULL) < 0)
		return -ENAMETOOLONG;
	rc = mosquitto_will_set(m->mosq, topic, (int)strlen(will), will, (int)c->qos, true);
	if (rc)
		goto fail;
	if (c->username) {
		rc = mosquitto_username_pw_set(m->mosq, c->username, m->password);
		if (rc)
			goto fail;
	}
	if (c->tls) {
		/* Without ca_file, trust the system's CAs. */
		rc = mosquitto_tls_set(m->mosq, c->ca_file, c->ca_file ? NULL : "/etc/ssl/certs",
		                       c->cert_file, c->key_file, NULL);
		if (rc)
			goto fail;
		/* insecure = true turns off both chain and hostname checks; the default
		 * verifies the server's certificate and its name. */
		rc = mosquitto_tls_opts_set(m->mosq, c->insecure ? 0 : 1, NULL, NULL);
		if (rc)
			goto fail;
		rc = mosquitto_tls_insecure_set(m->mosq, c->insecure);
		if (rc)
			goto fail;
	}
	return 0;
fail:
	LOG(m, LOG_ERR, "cannot set up the client: %s",
	    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	return -EINVAL;
}

static int mqtt_start(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;
	int r;

	if (!m->lib_init) {
		mosquitto_lib_init();
		m->lib_init = true;
	}
	if (!m->mid_ids)
		m->mid_ids = calloc(65536, sizeof(*m->mid_ids));
	if (!m->mid_ids)
		return -ENOMEM;
	if (m->conf.password_file && !m->password) {
		r = read_password(m);
		if (r < 0)
			return r;
	}
	if (m->mosq) {
		mosquitto_destroy(m->mosq);
		m->mosq = NULL;
	}
	m->stopping = m->connected = m->down = false;
	m->attempt = 0;
	r = setup_client(m);
	if (r < 0)
		return r;
	m->started = true;
	LOG(m, LOG_INFO, "broker %s:%lld, prefix %s, ingest by %s%s", m->conf.host, m->conf.port,
	    m->conf.prefix, ingest_names[m->conf.ingest],
	    m->conf.raw_requests ? ", raw requests on" : "");
	try_connect(m);
	return 0;
}

static void mqtt_stop(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;
	struct req_ctx *c;

	if (!m || !m->started)
		return;
	/* A clean DISCONNECT suppresses the will: say "offline" ourselves first. */
	if (m->connected) {
		publish_status(m, false);
		for (int i = 0; i < 10 && mosquitto_want_write(m->mosq); i++)
			if (mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
				break;
	}
	m->stopping = true;
	mosquitto_disconnect(m->mosq);
	for (c = m->reqs; c; c = c->next)
		c->m = NULL; /* answers arriving later are dropped by on_reply */
	m->reqs = NULL;
	m->io = sd_event_source_disable_unref(m->io);
	m->timer = sd_event_source_disable_unref(m->timer);
	m->connected = false;
	m->started = false;
}

static void mqtt_destroy(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;

	if (!m)
		return;
	mqtt_stop(self);
	if (m->mosq)
		mosquitto_destroy(m->mosq);
	if (m->lib_init)
		mosquitto_lib_cleanup();
	mqtt_free(m);
	self->priv = NULL;
}

/* New [mqtt] settings: say goodbye with the old ones, connect with the new; if
 * that cannot start, go back to the old. Inbound notes whose PUBACK was still
 * outstanding stay pending in the store and are offered again at the next start. */
static int mqtt_reload(struct ngw_plugin *self, void *new_priv)
{
	struct mqtt *old = self->priv, *nw = new_priv;
	bool was_started = old->started;
	int r;

	nw->self = self;
	if (old->status && !nw->status)
		nw->status = strdup(old->status);
	if (!was_started) {
		mqtt_destroy(self);
		self->priv = nw;
		return 0;
	}
	mqtt_stop(self);
	self->priv = nw;
	r = mqtt_start(self);
	if (r < 0) {
		mqtt_destroy(self);
		self->priv = old;
		if (mqtt_start(self) < 0)
			LOG(old, LOG_ERR, "cannot restart with the old settings either");
		return r;
	}
	self->priv = old;
	mqtt_destroy(self);
	self->priv = nw;
	return 0;
}

/* ---- what the host tells us ------------------------------------------------------ */

/* A name that is one topic level: no '/', no wildcards, not empty. */
static bool level_ok(const char *s)
{
	return s && *s && !strpbrk(s, "/+#") && strlen(s) <= 128;
}

static void mqtt_on_inbound(struct ngw_plugin *self, const struct ngw_note *note)
{
	struct mqtt *m = self->priv;
	char topic[TOPIC_MAX];
	char *js;

	if (!m->started)
		return;
	if (!level_ok(note->file)) {
		LOG(m, LOG_WARNING, "inbound note %lld has an unusable file name",
		    (long long)note->id);
		return;
	}
	if (mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "in", note->file) < 0)
		return;
	js = mqtt_inbound_json(note);
	if (!js)
		return;
	publish_id(m, note->id, topic, js, strlen(js), false);
	free(js);
}

static void mqtt_on_status(struct ngw_plugin *self, const char *status_json)
{
	struct mqtt *m = self->priv;
	char *s = strdup(status_json ? status_json : "{}");

	if (!s)
		return;
	free(m->status);
	m->status = s;
	if (m->started && m->connected)
		publish_status(m, true);
}

static void mqtt_on_env(struct ngw_plugin *self, const char *name, const char *value)
{
	struct mqtt *m = self->priv;
	char topic[TOPIC_MAX];

	if (!m->started)
		return;
	if (!level_ok(name)) {
		LOG(m, LOG_WARNING, "environment variable name unusable as a topic level");
		return;
	}
	if (mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "env", name) < 0)
		return;
	/* A deleted variable clears the retained message (empty retained payload). */
	publish(m, topic, value ? value : "", value ? strlen(value) : 0, true);
}

static void mqtt_on_error(struct ngw_plugin *self, const char *source, const char *error)
{
	struct mqtt *m = self->priv;

	if (m->started)
		publish_error(m, source ? source : "", error);
}

static void mqtt_on_emit(struct ngw_plugin *self, const char *from, const char *topic,
                         const char *json)
{
	struct mqtt *m = self->priv;
	char full[TOPIC_MAX];

	if (!m->started || !topic || !json)
		return;
	/* Never publish where we (or the broker plugin) take input: that would loop. */
	if (!*topic || topic[0] == '/' || strpbrk(topic, "+#") || strncmp(topic, "out/", 4) == 0 ||
	    strcmp(topic, "req") == 0) {
		LOG(m, LOG_WARNING, "%s emitted on unusable topic '%s'", from ? from : "?", topic);
		return;
	}
	if (mqtt_topic_build(full, sizeof(full), m->conf.prefix, topic, NULL) < 0)
		return;
	publish(m, full, json, strlen(json), false);
}

static char *mqtt_stats_json(struct ngw_plugin *self)
{
	struct mqtt *m = self->priv;
	json_t *j = json_pack("{sIsIsIsIsIsIsbss}", "received", (json_int_t)m->n.received, "queued",
	                      (json_int_t)m->n.queued, "refused", (json_int_t)m->n.refused,
	                      "published", (json_int_t)m->n.published, "delivered",
	                      (json_int_t)m->n.delivered, "reconnects", (json_int_t)m->n.reconnects,
	                      "connected", m->connected, "ingest", ingest_names[m->conf.ingest]);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

static const char *const sections[] = {"mqtt", NULL};

static const struct ngw_plugin_desc desc = {
    .abi = NGW_PLUGIN_ABI,
    .name = "mqtt",
    .description = "local MQTT publishers and subscribers (libmosquitto client)",
    .version = PACKAGE_VERSION,
    .sections = sections,
    .configure = mqtt_configure,
    .disabled = mqtt_disabled,
    .start = mqtt_start,
    .reload = mqtt_reload,
    .stop = mqtt_stop,
    .destroy = mqtt_destroy,
    .on_inbound = mqtt_on_inbound,
    .on_status = mqtt_on_status,
    .on_env = mqtt_on_env,
    .on_error = mqtt_on_error,
    .on_emit = mqtt_on_emit,
    .stats_json = mqtt_stats_json,
};

const struct ngw_plugin_desc *notegw_plugin_describe(void)
{
	return &desc;
}
