/* metrics: the Prometheus text rendered from a status object (rows present only when
 * the status has them, errors by kind, plugins up and their counters under safe names),
 * and the textfile written whole from the status callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "metrics.h"

static json_t *sample_status(void)
{
	return json_pack("{s:{s:i, s:i}, s:{s:{s:i, s:i, s:i}}, s:{s:{s:s, s:i, s:i}, s:{s:s}}}",
	                 "store", "queued", 3, "damage_count", 1, /* */
	                 "link", "counters", "timeouts", 2, "inbound_quarantined", 1, "requests",
	                 40, /* */
	                 "plugins", "mqtt", "state", "running", "published", 5, "bad-key.x", 7,
	                 "modbus", "state", "failed");
}

static void renders_rows_and_families(void **state)
{
	json_t *st = sample_status();
	char *text = metrics_render(st);
	json_decref(st);
	assert_non_null(text);
	assert_non_null(strstr(text, "# TYPE notegw_queue_notes gauge\nnotegw_queue_notes 3\n"));
	assert_non_null(strstr(text, "notegw_store_damage_total 1\n"));
	assert_non_null(strstr(text, "notegw_card_requests_total 40\n"));
	assert_non_null(strstr(text, "notegw_errors_total{kind=\"timeouts\"} 2\n"));
	assert_non_null(strstr(text, "notegw_errors_total{kind=\"inbound_quarantined\"} 1\n"));
	/* a row the status does not have is left out, not shown as 0 */
	assert_null(strstr(text, "notegw_queue_bytes"));
	assert_null(strstr(text, "kind=\"crc_errors\""));
	assert_non_null(strstr(text, "notegw_plugin_up{plugin=\"mqtt\"} 1\n"));
	assert_non_null(strstr(text, "notegw_plugin_up{plugin=\"modbus\"} 0\n"));
	assert_non_null(strstr(text, "notegw_plugin_published{plugin=\"mqtt\"} 5\n"));
	/* a counter's name is made safe for Prometheus */
	assert_null(strstr(text, "bad-key.x"));
	assert_non_null(strstr(text, "notegw_plugin_bad_key_x{plugin=\"mqtt\"} 7\n"));
	free(text);
}

static int calls;
static json_t *status_cb(void *ud)
{
	calls++;
	return json_pack("{s:{s:i}}", "store", "queued", *(int *)ud);
}

static void writes_textfile(void **state)
{
	char dir[] = "/tmp/test_metrics.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/notegw.prom", dir);
	sd_event *loop = NULL;
	assert_int_equal(sd_event_new(&loop), 0);
	int queued = 17;
	struct metrics *m = NULL;
	assert_int_equal(metrics_new(loop, status_cb, &queued, path, &m), 0);
	metrics_update(m);
	assert_int_equal(calls, 1);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char buf[4096] = {0};
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	assert_true(n > 0);
	assert_non_null(strstr(buf, "notegw_queue_notes 17\n"));
	/* written whole and renamed: no temporary file is left beside it */
	char tmp[300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);
	metrics_update(NULL); /* a no-op without a textfile */
	metrics_free(m);
	sd_event_unref(loop);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(renders_rows_and_families),
	    cmocka_unit_test(writes_textfile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
