/* Unit tests for plugins/mqtt/validate.c: the topic and payload contract both
 * MQTT paths (client plugin, broker plugin) enforce. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "validate.h"

static void test_classify(void **state)
{
	const char *rest = NULL;

	assert_int_equal(mqtt_topic_classify("notecard", "notecard/out/data.qo", &rest),
	                 MQTT_TOPIC_OUT);
	assert_string_equal(rest, "data.qo");
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/out/a/b.qo", &rest),
	                 MQTT_TOPIC_OUT);
	assert_string_equal(rest, "a/b.qo");
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/out/", &rest), MQTT_TOPIC_OUT);
	assert_string_equal(rest, "");
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/req", NULL), MQTT_TOPIC_REQ);
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/broker/ping", NULL),
	                 MQTT_TOPIC_PING);
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/broker/pong", NULL),
	                 MQTT_TOPIC_PONG);
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/broker/pings", NULL),
	                 MQTT_TOPIC_OTHER);
	/* Not ours: other prefixes, a prefix that only starts the same, other suffixes. */
	assert_int_equal(mqtt_topic_classify("notecard", "notecards/out/x.qo", NULL),
	                 MQTT_TOPIC_OTHER);
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/outx.qo", NULL),
	                 MQTT_TOPIC_OTHER);
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/in/x.qi", NULL),
	                 MQTT_TOPIC_OTHER);
	assert_int_equal(mqtt_topic_classify("notecard", "notecard/req/x", NULL), MQTT_TOPIC_OTHER);
	assert_int_equal(mqtt_topic_classify("site/gw1", "site/gw1/out/x.qo", &rest),
	                 MQTT_TOPIC_OUT);
	assert_string_equal(rest, "x.qo");
}

static void test_notefile(void **state)
{
	const char *why = NULL;
	char longname[80];

	assert_int_equal(mqtt_notefile_check("data.qo", &why), 0);
	assert_int_equal(mqtt_notefile_check("data.qos", &why), 0);
	assert_int_equal(mqtt_notefile_check("cfg.db", &why), 0);
	assert_int_equal(mqtt_notefile_check("cfg.dbs", &why), 0);
	assert_int_equal(mqtt_notefile_check("my_sensor-1.qo", &why), 0);

	assert_int_equal(mqtt_notefile_check("data.qi", &why), -EINVAL);
	assert_non_null(strstr(why, ".qo"));
	assert_int_equal(mqtt_notefile_check("data.qis", &why), -EINVAL);
	assert_int_equal(mqtt_notefile_check("data.txt", &why), -EINVAL);
	assert_int_equal(mqtt_notefile_check(".qo", &why), -EINVAL); /* nothing before */
	assert_int_equal(mqtt_notefile_check("", &why), -EINVAL);
	assert_int_equal(mqtt_notefile_check("a/b.qo", &why), -EINVAL);
	assert_int_equal(mqtt_notefile_check("a b.qo", &why), -EINVAL);
	assert_int_equal(mqtt_notefile_check("dätä.qo", &why), -EINVAL);
	/* the Notecard's own (system) notefiles are not for producers */
	assert_int_equal(mqtt_notefile_check("_env.dbs", &why), -EINVAL);
	assert_non_null(strstr(why, "system notefiles"));

	memset(longname, 'a', sizeof(longname));
	strcpy(longname + MQTT_NOTEFILE_MAX - 3, ".qo"); /* exactly 64 */
	assert_int_equal(mqtt_notefile_check(longname, &why), 0);
	memset(longname, 'a', sizeof(longname));
	strcpy(longname + MQTT_NOTEFILE_MAX - 2, ".qo"); /* 65 */
	assert_int_equal(mqtt_notefile_check(longname, &why), -EINVAL);
}

static int out(const char *file, const char *payload, size_t max, char **body, const char **why)
{
	return mqtt_out_check(file, payload, strlen(payload), max, body, why);
}

static void test_out_payload(void **state)
{
	const char *why = NULL;
	char *body = NULL;

	assert_int_equal(out("d.qo", "{ \"temp\" : 21.5,\n \"ok\": true }", 8192, &body, &why), 0);
	assert_string_equal(body, "{\"temp\":21.5,\"ok\":true}"); /* compacted */
	free(body);
	body = NULL;

	assert_int_equal(out("d.qo", "{}", 8192, &body, &why), 0);
	assert_string_equal(body, "{}");
	free(body);
	body = NULL;

	assert_int_equal(out("d.qo", "not json", 8192, &body, &why), -EINVAL);
	assert_string_equal(why, "payload is not valid JSON");
	assert_null(body);
	assert_int_equal(out("d.qo", "[1,2]", 8192, &body, &why), -EINVAL);
	assert_string_equal(why, "payload is not a JSON object");
	assert_int_equal(out("d.qo", "42", 8192, &body, &why), -EINVAL);
	assert_int_equal(out("d.qo", "\"s\"", 8192, &body, &why), -EINVAL);
	assert_int_equal(out("d.qo", "", 8192, &body, &why), -EINVAL);
	assert_int_equal(out("d.qo", "{} {}", 8192, &body, &why), -EINVAL); /* trailing */
	assert_int_equal(out("d.qo", "{\"a\":1,\"a\":2}", 8192, &body, &why), -EINVAL);
	assert_int_equal(out("d.qi", "{}", 8192, &body, &why), -EINVAL); /* notefile */
	assert_null(body);

	/* Binary junk with a NUL inside must not pass as JSON. */
	assert_int_equal(mqtt_out_check("d.qo", "{}\0xx", 5, 8192, &body, &why), -EINVAL);
}

static void test_out_size(void **state)
{
	const char *why = NULL;
	char *body = NULL;
	char *big;
	size_t n = 8192;

	/* {"x":"aaa..."} of exactly n bytes passes; n + 1 does not. */
	big = malloc(n + 2);
	assert_non_null(big);
	memset(big, 'a', n + 1);
	memcpy(big, "{\"x\":\"", 6);
	memcpy(big + n - 2, "\"}", 2);
	big[n] = '\0';
	assert_int_equal(mqtt_out_check("d.qo", big, n, n, &body, &why), 0);
	free(body);
	body = NULL;
	memset(big, 'a', n + 1);
	memcpy(big, "{\"x\":\"", 6);
	memcpy(big + n - 1, "\"}", 2);
	big[n + 1] = '\0';
	assert_int_equal(mqtt_out_check("d.qo", big, n + 1, n, &body, &why), -EMSGSIZE);
	assert_string_equal(why, "payload larger than max_payload");
	assert_null(body);
	free(big);
}

static void nest(char *buf, int arrays)
{
	size_t k = 0;

	memcpy(buf, "{\"a\":", 5);
	k = 5;
	for (int d = 0; d < arrays; d++)
		buf[k++] = '[';
	for (int d = 0; d < arrays; d++)
		buf[k++] = ']';
	buf[k++] = '}';
	buf[k] = '\0';
}

static void test_out_depth(void **state)
{
	const char *why = NULL;
	char *body = NULL;
	char buf[512];

	/* the object is level 1: 31 arrays inside make depth 32, which passes */
	nest(buf, MQTT_JSON_DEPTH_MAX - 1);
	assert_int_equal(out("d.qo", buf, sizeof(buf), &body, &why), 0);
	free(body);
	body = NULL;
	nest(buf, MQTT_JSON_DEPTH_MAX);
	assert_int_equal(out("d.qo", buf, sizeof(buf), &body, &why), -EINVAL);
	assert_string_equal(why, "JSON nested too deeply");
}

static void test_req(void **state)
{
	const char *why = NULL;
	char *req = NULL;
	const char *r1 = "{\"req\":\"card.version\"}";
	const char *r2 = "{\"cmd\":\"hub.sync\"}";
	const char *r3 = "{\"foo\":1}";

	assert_int_equal(mqtt_req_check(r1, strlen(r1), 8192, &req, &why), 0);
	assert_string_equal(req, r1);
	free(req);
	req = NULL;
	assert_int_equal(mqtt_req_check(r2, strlen(r2), 8192, &req, &why), 0);
	free(req);
	req = NULL;
	assert_int_equal(mqtt_req_check(r3, strlen(r3), 8192, &req, &why), -EINVAL);
	assert_null(req);
	assert_int_equal(mqtt_req_check(r1, strlen(r1), 5, &req, &why), -EMSGSIZE);
}

static void test_error_json(void **state)
{
	char *s = mqtt_error_json("notecard/out/x.qi", "notefile must end in .qo");
	json_t *j;

	assert_non_null(s);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "topic")), "notecard/out/x.qi");
	assert_string_equal(json_string_value(json_object_get(j, "error")),
	                    "notefile must end in .qo");
	json_decref(j);
	free(s);

	/* invalid UTF-8 in a topic still yields valid JSON */
	s = mqtt_error_json("notecard/out/\xff\xfe", "x");
	assert_non_null(s);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	json_decref(j);
	free(s);
}

static void test_inbound_json(void **state)
{
	struct ngw_note n = {.id = 7,
	                     .file = "cmd.qi",
	                     .note = NULL,
	                     .body = "{\"on\":true}",
	                     .payload = "AQID",
	                     .time = 1700000000};
	char *s = mqtt_inbound_json(&n);
	json_t *j;

	assert_non_null(s);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "file")), "cmd.qi");
	assert_null(json_object_get(j, "note"));
	assert_true(json_is_true(json_object_get(json_object_get(j, "body"), "on")));
	assert_string_equal(json_string_value(json_object_get(j, "payload")), "AQID");
	assert_int_equal(json_integer_value(json_object_get(j, "time")), 1700000000);
	json_decref(j);
	free(s);

	n.note = "settings";
	n.body = NULL;
	n.payload = NULL;
	s = mqtt_inbound_json(&n);
	j = json_loads(s, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "note")), "settings");
	assert_null(json_object_get(j, "body"));
	assert_null(json_object_get(j, "payload"));
	json_decref(j);
	free(s);
}

static void test_topic_build(void **state)
{
	char buf[32];

	assert_int_equal(mqtt_topic_build(buf, sizeof(buf), "notecard", "in", "a.qi"), 0);
	assert_string_equal(buf, "notecard/in/a.qi");
	assert_int_equal(mqtt_topic_build(buf, sizeof(buf), "notecard", "status", NULL), 0);
	assert_string_equal(buf, "notecard/status");
	assert_int_equal(mqtt_topic_build(buf, 15, "notecard", "status", NULL), -ENAMETOOLONG);
	assert_int_equal(
	    mqtt_topic_build(buf, sizeof(buf), "notecard", "in", "a-very-long-notefile-name.qi"),
	    -ENAMETOOLONG);
}

static void test_prefix(void **state)
{
	const char *why;

	assert_int_equal(mqtt_prefix_check("notecard", &why), 0);
	assert_int_equal(mqtt_prefix_check("site/gw1", &why), 0);
	assert_int_equal(mqtt_prefix_check("", &why), -EINVAL);
	assert_int_equal(mqtt_prefix_check("/notecard", &why), -EINVAL);
	assert_int_equal(mqtt_prefix_check("notecard/", &why), -EINVAL);
	assert_int_equal(mqtt_prefix_check("note+card", &why), -EINVAL);
	assert_int_equal(mqtt_prefix_check("notecard/#", &why), -EINVAL);
}

static void test_backoff(void **state)
{
	/* within [d/2, d], d doubling from min and capped at max */
	for (uint32_t rnd = 0; rnd < 2000; rnd += 37) {
		uint64_t d0 = mqtt_backoff_ms(1000, 60000, 0, rnd);
		uint64_t d3 = mqtt_backoff_ms(1000, 60000, 3, rnd);
		uint64_t d20 = mqtt_backoff_ms(1000, 60000, 20, rnd);
		assert_in_range(d0, 500, 1000);
		assert_in_range(d3, 4000, 8000);
		assert_in_range(d20, 30000, 60000);
	}
	/* jitter really varies */
	assert_int_not_equal(mqtt_backoff_ms(1000, 60000, 5, 1),
	                     mqtt_backoff_ms(1000, 60000, 5, 9999));
	/* silly inputs stay sane */
	assert_in_range(mqtt_backoff_ms(0, 0, 100, 12345), 0, 1);
	assert_in_range(mqtt_backoff_ms(5000, 100, 0, 3), 2500, 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify),    cmocka_unit_test(test_notefile),
	    cmocka_unit_test(test_out_payload), cmocka_unit_test(test_out_size),
	    cmocka_unit_test(test_out_depth),   cmocka_unit_test(test_req),
	    cmocka_unit_test(test_error_json),  cmocka_unit_test(test_inbound_json),
	    cmocka_unit_test(test_topic_build), cmocka_unit_test(test_prefix),
	    cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
