/* Topic and payload rules shared by the client plugin (mqtt.c) and the broker
 * plugin (broker.c), kept free of I/O so both enforce exactly the same contract
 * and the unit tests can pin it down (tests/unit/test_mqtt_validate.c). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "validate.h"

enum mqtt_topic_kind mqtt_topic_classify(const char *prefix, const char *topic, const char **rest)
{
	size_t pn = strlen(prefix);

	if (strncmp(topic, prefix, pn) != 0 || topic[pn] != '/')
		return MQTT_TOPIC_OTHER;
	topic += pn + 1;
	if (strncmp(topic, "out/", 4) == 0) {
		if (rest)
			*rest = topic + 4;
		return MQTT_TOPIC_OUT;
	}
	if (strcmp(topic, "req") == 0)
		return MQTT_TOPIC_REQ;
	if (strcmp(topic, "broker/ping") == 0)
		return MQTT_TOPIC_PING;
	if (strcmp(topic, "broker/pong") == 0)
		return MQTT_TOPIC_PONG;
	return MQTT_TOPIC_OTHER;
}

int mqtt_notefile_check(const char *name, const char **why)
{
	if (!*name) {
		*why = "missing notefile name after out/";
		return -EINVAL;
	}
	return ngw_notefile_check_out(name, why);
}

static int too_deep(const json_t *j, int depth)
{
	const char *k;
	json_t *v;
	size_t i;

	if (depth > MQTT_JSON_DEPTH_MAX)
		return 1;
	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, k, v) if (too_deep(v, depth + 1)) return 1;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) if (too_deep(v, depth + 1)) return 1;
	}
	return 0;
}

/* Parse payload as one JSON object within the limits; *out compact text. */
static int object_check(const void *payload, size_t len, size_t max_payload, json_t **obj,
                        const char **why)
{
	json_error_t jerr;
	json_t *j;

	if (len > max_payload) {
		*why = "payload larger than max_payload";
		return -EMSGSIZE;
	}
	if (len == 0) {
		*why = "empty payload: expected a JSON object";
		return -EINVAL;
	}
	/* JSON_REJECT_DUPLICATES: {"a":1,"a":2} has no one meaning; refuse it rather
	 * than pick one silently. JSON_DECODE_ANY only so that a bare "text" or 42 is
	 * reported as "not a JSON object". No JSON_DISABLE_EOF_CHECK: no trailing junk. */
	j = json_loadb(payload, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j) {
		*why = "payload is not valid JSON";
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*why = "payload is not a JSON object";
		return -EINVAL;
	}
	if (too_deep(j, 1)) {
		json_decref(j);
		*why = "JSON nested too deeply";
		return -EINVAL;
	}
	*obj = j;
	return 0;
}

int mqtt_out_check_obj(const char *notefile, const void *payload, size_t len, size_t max_payload,
                       json_t **body, const char **why)
{
	int r = mqtt_notefile_check(notefile, why);
	if (r < 0)
		return r;
	return object_check(payload, len, max_payload, body, why);
}

int mqtt_out_check(const char *notefile, const void *payload, size_t len, size_t max_payload,
                   char **body, const char **why)
{
	json_t *j = NULL;
	int r = mqtt_out_check_obj(notefile, payload, len, max_payload, &j, why);
	if (r < 0)
		return r;
	*body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!*body) {
		*why = "out of memory";
		return -ENOMEM;
	}
	return 0;
}

int mqtt_req_check(const void *payload, size_t len, size_t max_payload, char **req,
                   const char **why)
{
	json_t *j = NULL;
	int r;

	r = object_check(payload, len, max_payload, &j, why);
	if (r < 0)
		return r;
	if (!json_is_string(json_object_get(j, "req")) &&
	    !json_is_string(json_object_get(j, "cmd"))) {
		json_decref(j);
		*why = "request needs a \"req\" or \"cmd\" string";
		return -EINVAL;
	}
	*req = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!*req) {
		*why = "out of memory";
		return -ENOMEM;
	}
	return 0;
}

char *mqtt_error_json(const char *topic, const char *error)
{
	json_t *j = json_object();
	char *s = NULL;
	json_t *t;

	if (!j)
		return NULL;
	/* A topic is UTF-8 by the MQTT spec, but never trust it to be. */
	t = json_string(topic ? topic : "");
	if (!t)
		t = json_string("(topic is not valid UTF-8)");
	if (json_object_set_new(j, "topic", t) < 0 ||
	    json_object_set_new(j, "error", json_string(error ? error : "refused")) < 0)
		goto out;
	s = json_dumps(j, JSON_COMPACT);
out:
	json_decref(j);
	return s;
}

char *mqtt_inbound_json(const struct ngw_note *note)
{
	json_t *j = json_object();
	char *s = NULL;

	if (!j)
		return NULL;
	if (json_object_set_new(j, "file", json_string(note->file ? note->file : "")) < 0)
		goto out;
	if (note->note && json_object_set_new(j, "note", json_string(note->note)) < 0)
		goto out;
	if (note->body) {
		/* The store keeps the body as JSON text; embed it as an object, not a
		 * string, so subscribers get {"body":{...}} as the interface says. */
		json_t *b = json_loads(note->body, 0, NULL);
		if (!b)
			b = json_string(note->body); /* never drop what the store holds */
		if (json_object_set_new(j, "body", b) < 0)
			goto out;
	}
	if (note->payload && json_object_set_new(j, "payload", json_string(note->payload)) < 0)
		goto out;
	if (json_object_set_new(j, "time", json_integer(note->time)) < 0)
		goto out;
	s = json_dumps(j, JSON_COMPACT);
out:
	json_decref(j);
	return s;
}

int mqtt_topic_build(char *buf, size_t cap, const char *prefix, const char *suffix,
                     const char *name)
{
	int n;

	if (name)
		n = snprintf(buf, cap, "%s/%s/%s", prefix, suffix, name);
	else
		n = snprintf(buf, cap, "%s/%s", prefix, suffix);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

uint64_t mqtt_backoff_ms(uint64_t min_ms, uint64_t max_ms, unsigned attempt, uint32_t rnd)
{
	uint64_t d = min_ms ? min_ms : 1;

	if (max_ms < d)
		max_ms = d;
	for (unsigned i = 0; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	return d / 2 + (d - d / 2 ? rnd % (d - d / 2 + 1) : 0);
}

int mqtt_prefix_check(const char *prefix, const char **why)
{
	size_t n = prefix ? strlen(prefix) : 0;

	if (n == 0) {
		*why = "prefix must not be empty";
		return -EINVAL;
	}
	if (n > MQTT_PREFIX_MAX) {
		*why = "prefix longer than 128 bytes";
		return -EINVAL;
	}
	if (prefix[0] == '/' || prefix[n - 1] == '/') {
		*why = "prefix must not start or end with '/'";
		return -EINVAL;
	}
	if (strpbrk(prefix, "+#")) {
		*why = "prefix must not hold MQTT wildcards '+' or '#'";
		return -EINVAL;
	}
	return 0;
}
