/* Unit tests for src/intake.c: the one rule every producer's note passes (the
 * daemon's plugins and CLI through submit.c, the broker plugin compiled in): the
 * notefile, the body's size and shape, a satellite (ntn) notefile's limit, the
 * compacted text the store keeps and the urgent priority. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "intake.h"

static const char conf_text[] = "[notefile.alarm.qo]\n"
                                "urgent = true\n"
                                "[notefile.sat.qo]\n"
                                "template = auto\n"
                                "ntn = true\n";

static struct cfg *load_cfg(void)
{
	struct cfg_diag diag = {0};
	struct cfg_doc *doc = cfg_doc_parse_string(conf_text, "test.conf", &diag);
	assert_non_null(doc);
	struct cfg *cfg = cfg_from_doc(doc, "test.conf", &diag);
	for (size_t i = 0; i < diag.n; i++)
		print_error("%s\n", diag.msgs[i]);
	assert_int_equal(diag.n, 0);
	assert_non_null(cfg);
	return cfg;
}

static int setup(void **state)
{
	*state = load_cfg();
	return 0;
}

static int teardown(void **state)
{
	cfg_free(*state);
	return 0;
}

static void test_compacts_and_keeps_order(void **state)
{
	struct intake_rules rules = {.cfg = *state, .gateway_id = "dev:864475040000000"};
	struct intake_note n;
	const char *why = NULL;
	assert_int_equal(
	    intake_prepare(&rules, "data.qo", "{ \"b\" : 2,\n \"a\" : [1, 2] }", 0, &n, &why), 0);
	assert_string_equal(n.body, "{\"b\":2,\"a\":[1,2]}");
	assert_int_equal(n.prio, 0);
	intake_note_clear(&n);
	assert_null(n.body);

	/* a payload alone is a note */
	assert_int_equal(intake_prepare(&rules, "bin.qo", NULL, 10, &n, &why), 0);
	assert_null(n.body);
	intake_note_clear(&n);
}

static void test_urgent(void **state)
{
	struct intake_rules rules = {.cfg = *state};
	struct intake_note n;
	const char *why = NULL;
	assert_int_equal(intake_prepare(&rules, "alarm.qo", "{\"fire\":1}", 0, &n, &why), 0);
	assert_int_equal(n.prio, 1);
	intake_note_clear(&n);
	/* without the configuration nothing is urgent */
	struct intake_rules none = {0};
	assert_int_equal(intake_prepare(&none, "alarm.qo", "{\"fire\":1}", 0, &n, &why), 0);
	assert_int_equal(n.prio, 0);
	intake_note_clear(&n);
}

static void refused(const struct intake_rules *rules, const char *file, const char *body,
                    size_t payload_len, int err, const char *words)
{
	struct intake_note n = {.body = (char *)"untouched"};
	const char *why = NULL;
	assert_int_equal(intake_prepare(rules, file, body, payload_len, &n, &why), err);
	assert_null(n.body);
	assert_non_null(why);
	if (!strstr(why, words))
		fail_msg("%s: reason '%s' lacks '%s'", file, why, words);
}

static void test_refusals(void **state)
{
	struct intake_rules rules = {.cfg = *state};
	char big[INTAKE_BODY_MAX + 16];

	refused(&rules, "data.qi", "{}", 0, -EINVAL, ".qo, .qos, .db or .dbs");
	refused(&rules, "a b.qo", "{}", 0, -EINVAL, "letters, digits");
	refused(&rules, "_env.dbs", "{}", 0, -EINVAL, "system notefiles");
	refused(&rules, NULL, "{}", 0, -EINVAL, "missing");
	refused(&rules, "data.qo", NULL, 0, -EINVAL, "a body or a payload");
	refused(&rules, "data.qo", NULL, INTAKE_PAYLOAD_MAX + 1, -EMSGSIZE, "payload larger");
	refused(&rules, "data.qo", "not json", 0, -EINVAL, "not valid JSON");
	refused(&rules, "data.qo", "[1,2]", 0, -EINVAL, "not a JSON object");
	refused(&rules, "data.qo", "{\"a\":1,\"a\":2}", 0, -EINVAL, "not valid JSON");
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"a\":1}", 7);
	big[sizeof(big) - 1] = '\0';
	refused(&rules, "data.qo", big, 0, -EMSGSIZE, "body larger than 8 KiB");
}

/* A satellite notefile's note must fit 256 bytes on the air templated, flat. */
static void test_ntn(void **state)
{
	struct intake_rules rules = {.cfg = *state, .gateway_id = "dev:864475040000000"};
	struct intake_note n;
	const char *why = NULL;
	char body[400];

	assert_int_equal(intake_prepare(&rules, "sat.qo", "{\"t\":21.5,\"ok\":true}", 0, &n, &why),
	                 0);
	intake_note_clear(&n);
	refused(&rules, "sat.qo", "{\"nested\":{\"a\":1}}", 0, -EINVAL, "flat");
	snprintf(body, sizeof(body), "{\"x\":\"%0300d\"}", 0);
	refused(&rules, "sat.qo", body, 0, -EMSGSIZE, "256 bytes");
	/* the same body is fine for an ordinary notefile */
	assert_int_equal(intake_prepare(&rules, "data.qo", body, 0, &n, &why), 0);
	intake_note_clear(&n);
}

/* A producer that parsed the body already hands the object over: same rules, and
 * the compact text (not the producer's) is held to the limit. */
static void test_prepare_obj(void **state)
{
	struct intake_rules rules = {.cfg = *state};
	struct intake_note n;
	const char *why = NULL;

	json_t *o = json_pack("{s:i}", "fire", 1);
	assert_int_equal(intake_prepare_obj(&rules, "alarm.qo", o, 0, &n, &why), 0);
	assert_string_equal(n.body, "{\"fire\":1}");
	assert_int_equal(n.prio, 1);
	intake_note_clear(&n);
	json_decref(o);

	o = json_array();
	assert_int_equal(intake_prepare_obj(&rules, "data.qo", o, 0, &n, &why), -EINVAL);
	json_decref(o);

	char *s = malloc(INTAKE_BODY_MAX + 1);
	assert_non_null(s);
	memset(s, 'a', INTAKE_BODY_MAX);
	s[INTAKE_BODY_MAX] = '\0';
	o = json_pack("{s:s}", "x", s);
	free(s);
	assert_int_equal(intake_prepare_obj(&rules, "data.qo", o, 0, &n, &why), -EMSGSIZE);
	assert_null(n.body);
	json_decref(o);

	o = json_pack("{s:{s:i}}", "nested", "a", 1);
	assert_int_equal(intake_prepare_obj(&rules, "sat.qo", o, 0, &n, &why), -EINVAL);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compacts_and_keeps_order),
	    cmocka_unit_test(test_urgent),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_ntn),
	    cmocka_unit_test(test_prepare_obj),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
