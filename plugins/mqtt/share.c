/* The mqtt plugin in a share group: several gateways, each with its own Notecard and
 * store, take one site's <prefix>/out/# through one MQTT shared subscription
 * ($share/<group>/..., MQTT 5 and mosquitto's 3.1.1 extension), so the broker hands
 * each message to one of them. What would collide between them (status and its will,
 * env, in, req, rsp, error, emits) moves to <prefix>/gw/<gateway id>/. A gateway
 * whose Notecard has been gone share_leave_after leaves the group (unsubscribes), so
 * the others carry the site, and joins again when its card is back. docs/fleet.md. */
#include <errno.h>
#include <jansson.h>
#include <mosquitto.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "mqtt-private.h"
#include "validate.h"

int mqtt_own_topics(struct mqtt *m, const char *gateway_id)
{
	int n;

	if (!m->conf.share_group)
		n = snprintf(m->own, sizeof(m->own), "%s", m->conf.prefix);
	else if (!gateway_id || !*gateway_id || strpbrk(gateway_id, "/+#")) {
		LOG(m, LOG_ERR, "share_group %s needs the gateway id from the store: none",
		    m->conf.share_group);
		return -ENOENT;
	} else
		n = snprintf(m->own, sizeof(m->own), "%s/gw/%s", m->conf.prefix, gateway_id);
	if (n < 0 || (size_t)n >= sizeof(m->own))
		return -ENAMETOOLONG;
	return 0;
}

enum mqtt_topic_kind mqtt_classify(const struct mqtt *m, const char *topic, const char **rest)
{
	enum mqtt_topic_kind k = mqtt_topic_classify(m->conf.prefix, topic, rest);

	if (k == MQTT_TOPIC_OUT || !m->conf.share_group)
		return k;
	/* In a share group <prefix>/req is nobody's: each card is asked on its own. */
	return mqtt_topic_classify(m->own, topic, rest) == MQTT_TOPIC_REQ ? MQTT_TOPIC_REQ
	                                                                  : MQTT_TOPIC_OTHER;
}

void mqtt_card_seen(struct mqtt *m, const char *status_json)
{
	json_t *j = json_loads(status_json, 0, NULL);
	const char *state =
	    json_string_value(json_object_get(json_object_get(j, "notecard"), "state"));
	bool ok;

	/* A status without a card part (no link yet) says nothing about the card. */
	if (state) {
		ok = strcmp(state, "ready") == 0;
		if (ok)
			m->card_lost_ms = 0;
		else if (m->card_ok || !m->card_lost_ms)
			m->card_lost_ms = mqtt_now_ms();
		m->card_ok = ok;
	}
	json_decref(j);
}

static int shared_filter(const struct mqtt *m, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "$share/%s/%s/out/#", m->conf.share_group, m->conf.prefix);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static bool card_gone(const struct mqtt *m, uint64_t now)
{
	return !m->card_ok && m->card_lost_ms && now - m->card_lost_ms >= m->conf.share_leave_after;
}

/* Subscribe to the shared out/ (in) or unsubscribe (out); m->shared follows. */
static int join(struct mqtt *m, bool in)
{
	char topic[TOPIC_MAX];
	int rc;

	if (shared_filter(m, topic, sizeof(topic)) < 0)
		return -ENAMETOOLONG;
	rc = in ? mosquitto_subscribe(m->mosq, &m->share_mid, topic, (int)m->conf.qos)
	        : mosquitto_unsubscribe(m->mosq, &m->share_mid, topic);
	if (rc) {
		LOG(m, LOG_ERR, "cannot %s share group %s: %s", in ? "join" : "leave",
		    m->conf.share_group, mosquitto_strerror(rc));
		return -EIO;
	}
	m->shared = in;
	mqtt_update_io(m);
	return 0;
}

void mqtt_share_acked(struct mqtt *m, int mid, bool joined, bool granted)
{
	if (!m->conf.share_group || mid != m->share_mid)
		return;
	/* "sharing" in status says what the broker holds, not what was asked: a
	 * message published before the SUBACK may still find no one in the group. */
	if (joined && !granted)
		LOG(m, LOG_ERR, "the broker refused share group %s", m->conf.share_group);
	m->share_live = joined && granted;
}

void mqtt_subscribe_out(struct mqtt *m)
{
	char topic[TOPIC_MAX];
	int rc;

	if (m->conf.share_group) {
		/* Leaving is said again too: a resumed session still holds what we
		 * subscribed to before the card went. */
		join(m, !card_gone(m, mqtt_now_ms()));
		return;
	}
	if (mqtt_topic_build(topic, sizeof(topic), m->conf.prefix, "out", "#") < 0)
		return;
	rc = mosquitto_subscribe(m->mosq, NULL, topic, (int)m->conf.qos);
	if (rc)
		LOG(m, LOG_ERR, "cannot subscribe to %s: %s", topic, mosquitto_strerror(rc));
}

void mqtt_share_check(struct mqtt *m, uint64_t now)
{
	bool want;

	if (!m->conf.share_group || !m->connected)
		return;
	want = !card_gone(m, now);
	if (want == m->shared || join(m, want) < 0)
		return;
	if (want)
		LOG(m, LOG_NOTICE, "the Notecard is back: joined share group %s again",
		    m->conf.share_group);
	else
		/* Messages the broker already handed us stay ours (our session) and are
		 * committed as ever; only new ones go to the others. */
		LOG(m, LOG_WARNING,
		    "the Notecard has been gone %llu s: left share group %s, the other gateways "
		    "take %s/out/ until it is back",
		    (unsigned long long)((now - m->card_lost_ms) / 1000), m->conf.share_group,
		    m->conf.prefix);
}
