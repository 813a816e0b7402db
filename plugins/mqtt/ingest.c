/* What the mqtt plugin takes from the broker: out/<notefile> messages into the
 * host's group commit (PUBACK only after the commit), raw Notecard requests and their
 * answers, and the broker plugin's answer to our ping. */
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

void mqtt_req_free(struct req_ctx *c)
{
	free(c->response_topic);
	free(c->corr);
	free(c);
}

/* A store answer that means "never": the note is refused, the message acknowledged
 * and the reason reported. Anything else may pass and must not be acknowledged: a
 * full disk (-EAGAIN; -ENOSPC is only max_size with refuse-new), I/O, a busy lock. */
static bool is_refusal(int err)
{
	return err == -ENOSPC || err == -EINVAL || err == -EMSGSIZE;
}

/* A note that was not committed for a reason that may pass: the broker must not get
 * its PUBACK. Shut the connection down before anything queued is written; the broker
 * sends the message again on the resumed session (committed notes whose PUBACK dies
 * with the connection come again too: duplicates, never losses). A full disk fails
 * every message the broker sends until space returns: the log says so once when
 * commits start failing and once when they succeed again, not once per message. */
static void not_acked(struct mqtt *m, const char *topic, const char *why)
{
	m->n.failed++;
	if (m->unacked++ == 0)
		LOG(m, LOG_ERR,
		    "note from %s not committed (%s): not acknowledged, dropping the connection "
		    "so the broker sends it again (said once until a commit succeeds)",
		    topic, why);
	mqtt_publish_error(m, topic, "store could not commit the note; not acknowledged");
	if (m->mosq && mosquitto_socket(m->mosq) >= 0)
		shutdown(mosquitto_socket(m->mosq), SHUT_RDWR);
}

/* A commit succeeded: if commits failed before, say once that they work again. */
static void committed(struct mqtt *m)
{
	m->n.queued++;
	if (!m->unacked)
		return;
	LOG(m, LOG_NOTICE, "notes commit again; %llu message(s) were not acknowledged meanwhile",
	    (unsigned long long)m->unacked);
	m->unacked = 0;
}

static void on_put(void *ud, int err, const char *why)
{
	struct put_ctx *c = ud;
	struct mqtt *m = c->m;

	if (m) {
		/* A read burst puts hundreds at once: no walk of the list per commit. */
		*c->pprev = c->next;
		if (c->next)
			c->next->pprev = c->pprev;
		m->n_puts--;
		if (err == 0) {
			committed(m);
		} else if (is_refusal(err)) {
			m->n.refused++;
			LOG(m, LOG_NOTICE, "refused message on %s: %s", c->topic,
			    why ? why : strerror(-err));
			mqtt_publish_error(m, c->topic, why ? why : strerror(-err));
		} else {
			not_acked(m, c->topic, why ? why : strerror(-err));
		}
		mqtt_release_writes(m);
	}
	free(c);
}

/* What names one delivery of an out/ message, for note_put_once: the broker resends
 * a QoS 1 or 2 message whose PUBACK it did not get, on the same session, with the
 * same message id and the same topic and payload. The key is our client id, that
 * id and an FNV-1a hash of topic and payload (a different message that reuses the
 * id after the broker's 65535 wrapped differs in the hash, unless it is byte for
 * byte the same: docs/mqtt.md). Returns the key's length. */
static size_t delivery_key(const struct mqtt *m, const struct mosquitto_message *msg,
                           unsigned char *key, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *p = (const unsigned char *)msg->topic;
	size_t idl = strlen(m->client_id), i;

	for (i = 0; p[i]; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	h = (h ^ 0) * 0x100000001b3ULL; /* topic and payload apart */
	p = msg->payload;
	for (i = 0; i < (size_t)msg->payloadlen; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	if (idl + 10 > size)
		idl = size - 10; /* a longer client id is cut: it only tells our sessions apart */
	/* NOLINT(bugprone-not-null-terminated-result): a binary key of known length, never
	 * read as a string */
	memcpy(key, m->client_id, idl); // NOLINT(bugprone-not-null-terminated-result)
	key[idl] = (unsigned char)(msg->mid >> 8);
	key[idl + 1] = (unsigned char)msg->mid;
	for (i = 0; i < 8; i++)
		key[idl + 2 + i] = (unsigned char)(h >> (56 - 8 * i));
	return idl + 10;
}

/* Into the host's group commit: once per delivery where the host can tell (QoS 1
 * and 2 carry a message id), plainly otherwise. body is the parsed object (borrowed):
 * a host of ABI minor >= 2 takes it as it is; an older one gets its text. */
static int put_note(struct mqtt *m, const struct mosquitto_message *msg, const char *notefile,
                    json_t *body, struct put_ctx *c, const char **why)
{
	const struct ngw_host_api *h = m->self->host;
	unsigned char key[MQTT_KEY_MAX];
	bool once = msg->qos > 0 && (h->abi & 0xffff) >= 1 && h->note_put_once;
	size_t n = once ? delivery_key(m, msg, key, sizeof(key)) : 0;
	char *text;
	int r;

	if ((h->abi & 0xffff) >= 2 && h->note_put_json)
		return h->note_put_json(m->self, once ? key : NULL, n, notefile, body, NULL, 0,
		                        on_put, c, why);
	text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text) {
		*why = "out of memory";
		return -ENOMEM;
	}
	if (once)
		r = h->note_put_once(m->self, key, n, notefile, text, NULL, 0, on_put, c, why);
	else
		r = h->note_put(m->self, notefile, text, NULL, 0, on_put, c, why);
	free(text);
	return r;
}

static void ingest_out(struct mqtt *m, const struct mosquitto_message *msg, const char *notefile)
{
	const char *why = NULL;
	struct put_ctx *c;
	json_t *body = NULL;
	size_t tlen;
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
	/* The one parse of this body: the host takes the object as it is. */
	r = mqtt_out_check_obj(notefile, msg->payload, (size_t)msg->payloadlen,
	                       (size_t)m->conf.max_payload, &body, &why);
	if (r < 0)
		goto refused;
	/* Into the host's group commit. The PUBACK libmosquitto has queued for this
	 * message is not written before the commit: writes to the broker wait while
	 * any note is pending (see setup_client and release_writes). */
	tlen = strlen(msg->topic);
	c = malloc(sizeof(*c) + tlen + 1);
	if (!c) {
		json_decref(body);
		not_acked(m, msg->topic, "out of memory");
		return;
	}
	c->m = m;
	memcpy(c->topic, msg->topic, tlen + 1);
	r = put_note(m, msg, notefile, body, c, &why);
	json_decref(body);
	if (r == 0) {
		c->next = m->puts;
		c->pprev = &m->puts;
		if (m->puts)
			m->puts->pprev = &c->next;
		m->puts = c;
		m->n_puts++;
		return;
	}
	free(c);
	if (!is_refusal(r)) {
		not_acked(m, msg->topic, why ? why : strerror(-r));
		return;
	}
refused:
	m->n.refused++;
	if (!why)
		why = strerror(-r);
	LOG(m, LOG_NOTICE, "refused message on %s: %s", msg->topic, why);
	mqtt_publish_error(m, msg->topic, why);
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
		if (mqtt_topic_build(topic, sizeof(topic), m->own, "rsp", NULL) < 0)
			return;
		t = topic;
	}
	if (!c->corr || !m->connected) {
		mqtt_publish(m, t, response, strlen(response), false);
		return;
	}
	if (mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, c->corr,
	                                  c->corr_len) != MOSQ_ERR_SUCCESS) {
		mqtt_publish(m, t, response, strlen(response), false);
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
	mqtt_update_io(m);
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
			mqtt_topic_build(topic, sizeof(topic), m->own, "req", NULL);
			mqtt_publish_error(m, topic, "no answer from the notecard");
		} else {
			publish_answer(m, c, response);
		}
	}
	mqtt_req_free(c);
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
		    mqtt_topic_classify(m->conf.prefix, rt, NULL) == MQTT_TOPIC_OTHER &&
		    mqtt_classify(m, rt, NULL) == MQTT_TOPIC_OTHER)
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
		mqtt_req_free(c);
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
	mqtt_publish_error(m, msg->topic, why ? why : strerror(-r));
}

void mqtt_on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg,
                     const mosquitto_property *props)
{
	struct mqtt *m = ud;
	const char *rest = NULL;

	switch (mqtt_classify(m, msg->topic, &rest)) {
	case MQTT_TOPIC_OUT:
		if (m->conf.ingest == INGEST_CLIENT)
			ingest_out(m, msg, rest);
		break;
	case MQTT_TOPIC_REQ:
		if (m->conf.raw_requests)
			raw_request(m, msg, props);
		break;
	case MQTT_TOPIC_PONG:
		if (m->conf.ingest == INGEST_BROKER && m->broker_plugin != 1 &&
		    (size_t)msg->payloadlen == strlen(m->probe) &&
		    memcmp(msg->payload, m->probe, (size_t)msg->payloadlen) == 0) {
			LOG(m, m->broker_plugin == 0 ? LOG_NOTICE : LOG_INFO,
			    "the broker's notegw plugin answered: it queues %s/out/ messages",
			    m->conf.prefix);
			m->broker_plugin = 1;
		}
		break;
	default:
		break;
	}
}
