/* Fuzz what an MQTT publisher controls: the topic and the payload of a message,
 * through the same checks both MQTT paths (client and broker plugin) apply.
 * Input: one byte n, then n bytes of topic, then the payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/mqtt/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = data[0];
	if (n > size - 1)
		n = size - 1;
	char topic[256];
	memcpy(topic, data + 1, n);
	topic[n] = '\0';
	const uint8_t *payload = data + 1 + n;
	size_t plen = size - 1 - n;
	const char *rest = NULL, *why = NULL;
	char *out = NULL;
	switch (mqtt_topic_classify("notecard", topic, &rest)) {
	case MQTT_TOPIC_OUT:
		if (mqtt_out_check(rest, payload, plen, 8192, &out, &why) == 0)
			free(out);
		break;
	case MQTT_TOPIC_REQ:
		if (mqtt_req_check(payload, plen, 8192, &out, &why) == 0)
			free(out);
		break;
	default:
		break;
	}
	free(mqtt_error_json(topic, why ? why : "x"));
	return 0;
}
