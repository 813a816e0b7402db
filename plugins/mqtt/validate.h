/* What both MQTT paths (the client plugin in notegwd and the broker plugin inside
 * mosquitto) must agree on: which topics mean what, which payloads may become a
 * note, and the shape of the messages the gateway publishes. Pure functions, no I/O. */
#ifndef NOTEGW_MQTT_VALIDATE_H
#define NOTEGW_MQTT_VALIDATE_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "notegw/notefile.h"
#include "notegw/plugin.h"

/* Longest notefile name accepted (the daemon's own limit). */
#define MQTT_NOTEFILE_MAX NGW_NOTEFILE_MAX
/* Deepest JSON nesting accepted in a body: enough for any real reading, and a bound
 * on what a hostile publisher can make the store and the Notecard chew on. */
#define MQTT_JSON_DEPTH_MAX 32
/* Longest prefix accepted; topics we build are prefix + a short suffix + a notefile. */
#define MQTT_PREFIX_MAX 128
/* Longest share group name accepted ($share/<name>/<prefix>/out/#). */
#define MQTT_SHARE_GROUP_MAX 64

enum mqtt_topic_kind {
	MQTT_TOPIC_OTHER, /* not ours: ignore                                   */
	MQTT_TOPIC_OUT,   /* <prefix>/out/<rest>: a note for Notehub             */
	MQTT_TOPIC_REQ,   /* <prefix>/req: a raw Notecard request                 */
	MQTT_TOPIC_PING,  /* <prefix>/broker/ping: is the broker plugin there?    */
	MQTT_TOPIC_PONG,  /* <prefix>/broker/pong: the broker plugin's answer     */
};

/* Classify topic under prefix. For MQTT_TOPIC_OUT, *rest points at what follows
 * "out/" inside topic (borrowed from topic; may be empty or contain '/'). */
enum mqtt_topic_kind mqtt_topic_classify(const char *prefix, const char *topic, const char **rest);

/* 0 if name is a notefile a producer may queue notes for (the rule of
 * notegw/notefile.h). Else -EINVAL, *why a static reason. */
int mqtt_notefile_check(const char *name, const char **why);

/* Check an out/<notefile> message: notefile, size (<= max_payload bytes), payload a
 * JSON object within MQTT_JSON_DEPTH_MAX. On 0, *body is the compact JSON text
 * (caller frees). Otherwise -EINVAL or -EMSGSIZE and *why a static reason. */
int mqtt_out_check(const char *notefile, const void *payload, size_t len, size_t max_payload,
                   char **body, const char **why);
/* The same, *body the parsed object (caller decrefs), for a caller that hands it on
 * to the intake (src/intake.h) without parsing it again. */
int mqtt_out_check_obj(const char *notefile, const void *payload, size_t len, size_t max_payload,
                       json_t **body, const char **why);

/* Check a raw request for <prefix>/req: a JSON object naming "req" or "cmd".
 * On 0, *req is compact JSON text (caller frees); else -EINVAL/-EMSGSIZE, *why. */
int mqtt_req_check(const void *payload, size_t len, size_t max_payload, char **req,
                   const char **why);

/* {"topic":topic,"error":error} as compact JSON text. Caller frees; NULL on ENOMEM.
 * topic is copied through as text, whatever bytes it holds (jansson checks UTF-8;
 * an invalid one is replaced by a placeholder). */
char *mqtt_error_json(const char *topic, const char *error);

/* The in/<file> payload for an inbound note: {"file","note","body","payload","time"}
 * with note/body/payload present only when the note has them. Caller frees. */
char *mqtt_inbound_json(const struct ngw_note *note);

/* Build "<prefix>/<suffix>" or "<prefix>/<suffix>/<name>" (name may be NULL).
 * Returns 0 or -ENAMETOOLONG. */
int mqtt_topic_build(char *buf, size_t cap, const char *prefix, const char *suffix,
                     const char *name);

/* Delay before reconnect attempt number `attempt` (0 for the first retry):
 * exponential from min_ms doubling up to max_ms, with "equal jitter" (half fixed,
 * half random from rnd) so a fleet restarted together does not reconnect in step. */
uint64_t mqtt_backoff_ms(uint64_t min_ms, uint64_t max_ms, unsigned attempt, uint32_t rnd);

/* A prefix must be a non-empty topic without wildcards, without a leading or
 * trailing '/', at most MQTT_PREFIX_MAX bytes. 0 or -EINVAL with *why. */
int mqtt_prefix_check(const char *prefix, const char **why);
#endif
