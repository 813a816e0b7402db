/* Note templates: hints learned from sample bodies (types, ranges with headroom,
 * string sizes, the link's _id), fitting bodies to hints, the per-notefile policy
 * (learn, misfit, refit, re-learn), templates from a file, byte accounting, and the
 * exact compact text of note.template and of a note.add carrying a payload. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "notecard/link_int.h"
#include "notecard/template.h"
#include "store.h"

static json_t *J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j)
		fail_msg("bad test json %s: %s", text, e.text);
	return j;
}

static void assert_json_text(const json_t *j, const char *want)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

static struct tmpl_learner *learn_all(const char *const *bodies)
{
	struct tmpl_learner *lr = tmpl_learner_new();
	assert_non_null(lr);
	for (size_t i = 0; bodies[i]; i++) {
		json_t *b = J(bodies[i]);
		assert_int_equal(tmpl_learner_add(lr, b), 0);
		json_decref(b);
	}
	return lr;
}

static void test_learn_types(void **state)
{
	(void)state;
	static const char *const bodies[] = {
	    "{\"on\":true,\"count\":12,\"level\":-3,\"t\":21.5,\"lat\":40.7127753,"
	    "\"st\":\"ok\",\"big\":70000,\"_id\":\"gw7:1\"}",
	    "{\"on\":false,\"count\":50,\"level\":-30,\"t\":22,\"lat\":40.7127001,"
	    "\"st\":\"alarm\",\"big\":90000,\"_id\":\"gw7:12\"}",
	    NULL,
	};
	struct tmpl_learner *lr = learn_all(bodies);
	assert_int_equal(tmpl_learner_count(lr), 2);
	json_t *h = tmpl_learner_hints(lr);
	assert_non_null(h);
	/* count: 0..50, x4 = 200 -> uint8 (21); level: -30, x4 = 120 -> int8 (11);
	 * big: 90000 x4 -> uint24 (23); t: an int and a float make a float, 7 digits do
	 * (14.1); lat needs 9 digits (18.1); st: 5 bytes x1.5 -> "8"; _id: "gw7:" + 12 */
	assert_int_equal(json_integer_value(json_object_get(h, "count")), 21);
	assert_int_equal(json_integer_value(json_object_get(h, "level")), 11);
	assert_int_equal(json_integer_value(json_object_get(h, "big")), 23);
	assert_true(json_is_true(json_object_get(h, "on")));
	assert_true(json_is_real(json_object_get(h, "t")));
	assert_float_equal(json_real_value(json_object_get(h, "t")), 14.1, 1e-9);
	assert_float_equal(json_real_value(json_object_get(h, "lat")), 18.1, 1e-9);
	assert_string_equal(json_string_value(json_object_get(h, "st")), "8");
	assert_string_equal(json_string_value(json_object_get(h, "_id")), "16");
	char err[256];
	assert_int_equal(tmpl_hints_check(h, err, sizeof(err)), 0);
	/* every sample fits what was learned from it */
	for (size_t i = 0; bodies[i]; i++) {
		json_t *b = J(bodies[i]);
		assert_true(tmpl_fits(h, b, err, sizeof(err)));
		json_decref(b);
	}
	/* the _id hint holds any seq */
	json_t *b = J("{\"on\":true,\"count\":1,\"level\":0,\"t\":1.5,\"lat\":1.25,\"st\":\"x\","
	              "\"big\":1,\"_id\":\"gw7:999999999999\"}");
	assert_true(tmpl_fits(h, b, err, sizeof(err)));
	json_decref(b);
	json_decref(h);
	tmpl_learner_free(lr);
}

static void test_learn_restart_and_refuse(void **state)
{
	(void)state;
	struct tmpl_learner *lr = tmpl_learner_new();
	json_t *a = J("{\"a\":1}"), *b = J("{\"b\":1}"), *c = J("{\"a\":\"text\"}");
	json_t *nested = J("{\"a\":{\"x\":1}}"), *arr = J("{\"a\":[1]}"), *nul = J("{\"a\":null}");
	assert_int_equal(tmpl_learner_add(lr, a), 0);
	assert_int_equal(tmpl_learner_add(lr, a), 0);
	assert_int_equal(tmpl_learner_count(lr), 2);
	/* other fields: start again from this body */
	assert_int_equal(tmpl_learner_add(lr, b), 1);
	assert_int_equal(tmpl_learner_count(lr), 1);
	/* same field, a type that does not merge with an integer */
	assert_int_equal(tmpl_learner_add(lr, a), 1);
	assert_int_equal(tmpl_learner_add(lr, c), 1);
	/* not templatable: not learned, learner untouched */
	assert_int_equal(tmpl_learner_add(lr, nested), -EINVAL);
	assert_int_equal(tmpl_learner_add(lr, arr), -EINVAL);
	assert_int_equal(tmpl_learner_add(lr, nul), -EINVAL);
	assert_int_equal(tmpl_learner_count(lr), 1);
	assert_int_equal(tmpl_min_size(nested, 0), SIZE_MAX);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(nested);
	json_decref(arr);
	json_decref(nul);
	tmpl_learner_free(lr);
}

static void test_fits(void **state)
{
	(void)state;
	json_t *h = J("{\"n\":21,\"s\":12,\"f\":14.1,\"b\":true,\"name\":\"4\",\"_time\":14}");
	char why[128];
	struct {
		const char *body;
		bool fits;
		const char *why;
	} cases[] = {
	    {"{\"n\":255,\"s\":-32768,\"f\":2.5,\"b\":false,\"name\":\"abcd\"}", true, NULL},
	    {"{\"n\":1,\"s\":1,\"f\":3,\"b\":true,\"name\":\"\"}", true, NULL}, /* int as float */
	    {"{\"n\":256,\"s\":1,\"f\":1.5,\"b\":true,\"name\":\"a\"}", false, "'n'"},
	    {"{\"n\":-1,\"s\":1,\"f\":1.5,\"b\":true,\"name\":\"a\"}", false, "'n'"},
	    {"{\"n\":1,\"s\":32768,\"f\":1.5,\"b\":true,\"name\":\"a\"}", false, "'s'"},
	    {"{\"n\":1.5,\"s\":1,\"f\":1.5,\"b\":true,\"name\":\"a\"}", false, "'n'"},
	    {"{\"n\":1,\"s\":1,\"f\":1.5,\"b\":1,\"name\":\"a\"}", false, "'b'"},
	    {"{\"n\":1,\"s\":1,\"f\":1.5,\"b\":true,\"name\":\"abcde\"}", false, "'name'"},
	    /* precision a 4-byte float would lose is not silently cut */
	    {"{\"n\":1,\"s\":1,\"f\":40.7127753,\"b\":true,\"name\":\"a\"}", false, "'f'"},
	    {"{\"n\":1,\"s\":1,\"f\":1.5,\"b\":true,\"name\":\"a\",\"x\":1}", false, "'x'"},
	    {"{\"n\":1,\"s\":1,\"f\":1.5,\"b\":true}", false, "'name' of the template is missing"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *b = J(cases[i].body);
		why[0] = 0;
		bool f = tmpl_fits(h, b, why, sizeof(why));
		if (f != cases[i].fits)
			fail_msg("case %zu %s: fits=%d (%s)", i, cases[i].body, f, why);
		if (cases[i].why)
			assert_non_null(strstr(why, cases[i].why));
		json_decref(b);
	}
	json_decref(h);
}

static void test_policy_learn_misfit_relearn(void **state)
{
	(void)state;
	struct tmpl_nf t;
	assert_int_equal(tmpl_nf_init(&t, TMPL_AUTO, 3, NULL), 0);
	json_t *a = J("{\"v\":10,\"_id\":\"g:1\"}"), *odd = J("{\"v\":10,\"extra\":\"x\"}");
	json_t *b = J("{\"w\":1.5,\"_id\":\"g:2\"}");
	bool changed;
	/* learning: the first two go plain, the third completes the template */
	assert_false(tmpl_nf_decide(&t, a, &changed));
	assert_false(changed);
	assert_false(tmpl_nf_decide(&t, a, &changed));
	assert_true(tmpl_nf_decide(&t, a, &changed));
	assert_true(changed);
	assert_non_null(t.hints);
	assert_true(tmpl_nf_decide(&t, a, &changed));
	assert_false(changed);
	/* one out-of-shape body: plain, never dropped; then TMPL_REFIT fitting ones go
	 * plain before the template is used again */
	assert_false(tmpl_nf_decide(&t, odd, &changed));
	assert_false(changed);
	for (int i = 0; i < TMPL_REFIT; i++)
		assert_false(tmpl_nf_decide(&t, a, &changed));
	assert_true(tmpl_nf_decide(&t, a, &changed));
	/* two shapes interleaved: the template stays */
	for (int i = 0; i < 10; i++) {
		tmpl_nf_decide(&t, b, &changed);
		assert_false(changed);
		tmpl_nf_decide(&t, a, &changed);
		assert_false(changed);
	}
	assert_int_equal(t.learned, 1);
	/* the shape changed for good: after `learn` misfits in a row it is re-learned */
	assert_false(tmpl_nf_decide(&t, b, &changed));
	assert_false(tmpl_nf_decide(&t, b, &changed));
	assert_true(tmpl_nf_decide(&t, b, &changed));
	assert_true(changed);
	assert_int_equal(t.learned, 2);
	assert_non_null(json_object_get(t.hints, "w"));
	assert_null(json_object_get(t.hints, "v"));
	assert_true(tmpl_nf_decide(&t, b, &changed));
	json_decref(a);
	json_decref(b);
	json_decref(odd);
	tmpl_nf_clear(&t);

	/* a value past the learned range, or a longer string, with the same fields:
	 * the template widens (no plain note, no refit) */
	assert_int_equal(tmpl_nf_init(&t, TMPL_AUTO, 2, NULL), 0);
	json_t *s1 = J("{\"v\":10,\"s\":\"ok\"}"), *big = J("{\"v\":1000,\"s\":\"ok\"}");
	json_t *longer = J("{\"v\":1,\"s\":\"a much longer status\"}");
	tmpl_nf_decide(&t, s1, &changed);
	assert_true(tmpl_nf_decide(&t, s1, &changed));
	assert_int_equal(json_integer_value(json_object_get(t.hints, "v")), 21);
	assert_string_equal(json_string_value(json_object_get(t.hints, "s")), "8");
	assert_true(tmpl_nf_decide(&t, big, &changed));
	assert_true(changed);
	assert_int_equal(json_integer_value(json_object_get(t.hints, "v")), 22);
	assert_true(tmpl_nf_decide(&t, longer, &changed));
	assert_true(changed);
	assert_string_equal(json_string_value(json_object_get(t.hints, "s")), "32");
	assert_int_equal(t.widened, 2);
	assert_int_equal(t.learned, 1);
	assert_true(tmpl_nf_decide(&t, s1, &changed));
	assert_false(changed);
	tmpl_nf_clear(&t);
	json_decref(s1);
	json_decref(big);
	json_decref(longer);

	/* off: always plain, nothing learned */
	assert_int_equal(tmpl_nf_init(&t, TMPL_OFF, 1, NULL), 0);
	json_t *x = J("{\"v\":1}");
	assert_false(tmpl_nf_decide(&t, x, &changed));
	assert_false(tmpl_nf_decide(&t, x, &changed));
	assert_null(t.hints);
	tmpl_nf_clear(&t);
	json_decref(x);
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/notegw-tmpl-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_file_template(void **state)
{
	(void)state;
	char err[512];
	json_t *h = NULL;
	char *ok =
	    write_tmp("{\"temp\":14.1,\"hum\":21,\"state\":\"10\",\"alarm\":true,\"_time\":14}");
	assert_int_equal(tmpl_load_file(ok, &h, err, sizeof(err)), 0);
	assert_int_equal(tmpl_record_size(h, true), 4 + 1 + 10 + 1 + 4);
	assert_int_equal(tmpl_record_size(h, false), 4 + 1 + 10 + 1 + 4 + TMPL_META_BYTES);
	/* FILE mode never re-learns: misfits go plain, the template stays */
	struct tmpl_nf t;
	bool changed;
	assert_int_equal(tmpl_nf_init(&t, TMPL_FILE, 1, h), 0);
	json_t *fit = J("{\"temp\":20.5,\"hum\":40,\"state\":\"ok\",\"alarm\":false}");
	json_t *odd = J("{\"other\":1}");
	assert_true(tmpl_nf_decide(&t, fit, &changed));
	for (int i = 0; i < 5; i++) {
		assert_false(tmpl_nf_decide(&t, odd, &changed));
		assert_false(changed);
	}
	assert_ptr_equal(t.hints, h);
	tmpl_nf_clear(&t);
	json_decref(fit);
	json_decref(odd);
	json_decref(h);
	unlink(ok);
	free(ok);

	struct {
		const char *text, *why;
	} bad[] = {
	    {"{\"a\":15}", "field 'a': not a template type hint"},
	    {"{\"a\":14.2}", "field 'a'"},
	    {"{\"a\":{\"b\":14}}", "field 'a'"},
	    {"{\"a\":\"abc\"}", "field 'a'"},
	    {"{\"a\":\"0\"}", "field 'a'"},
	    {"{\"_time\":\"4\"}", "the card fills it"},
	    {"[14]", "a template is a JSON object"},
	    {"{}", "1 to 64 fields"},
	    {"{\"a\":14", "notegw-tmpl-"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *p = write_tmp(bad[i].text);
		h = NULL;
		assert_int_equal(tmpl_load_file(p, &h, err, sizeof(err)), -EINVAL);
		assert_null(h);
		if (!strstr(err, bad[i].why) || !strstr(err, p))
			fail_msg("%s: error '%s' lacks '%s'", bad[i].text, err, bad[i].why);
		unlink(p);
		free(p);
	}
	assert_int_equal(tmpl_load_file("/nonexistent/t.json", &h, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/t.json"));
}

static void test_sizes(void **state)
{
	(void)state;
	/* the bench's sensor body: eight readings and a status string */
	json_t *b = J("{\"t1\":21.5,\"t2\":22.25,\"h\":45,\"p\":1013,\"v\":12.5,\"i\":350,"
	              "\"co2\":612,\"lux\":1200,\"status\":\"ok\"}");
	char *text = json_dumps(b, JSON_COMPACT);
	assert_int_equal(tmpl_json_size(b, 0), strlen(text));
	assert_int_equal(tmpl_json_size(b, 5), strlen(text) + 5);
	free(text);
	/* smallest: floats 4+4, h uint8 1, p uint16 2, v float 4, i co2 lux uint16 2+2+2, "ok" 2 */
	assert_int_equal(tmpl_min_size(b, 0), 4 + 4 + 1 + 2 + 4 + 2 + 2 + 2 + 2);
	assert_int_equal(tmpl_min_size(b, 10), 23 + 10);
	json_t *h = J("{\"a\":true,\"b\":12,\"c\":18.1,\"d\":\"7\"}");
	assert_int_equal(tmpl_air_size(h, true, 0), 1 + 2 + 8 + 7);
	assert_int_equal(tmpl_air_size(h, false, 3), 1 + 2 + 8 + 7 + TMPL_META_BYTES + 3);
	json_decref(h);
	json_decref(b);
}

static void test_request_text(void **state)
{
	(void)state;
	json_t *h = J("{\"temp\":14.1,\"n\":21,\"_id\":\"23\"}");
	json_t *rq = tmpl_request("sensors.qo", h, false, 0);
	char *s = json_dumps(rq, JSON_COMPACT);
	/* compact: no blank anywhere, and no format/port where not asked for */
	assert_string_equal(s, "{\"req\":\"note.template\",\"file\":\"sensors.qo\","
	                       "\"body\":{\"temp\":14.1,\"n\":21,\"_id\":\"23\"}}");
	free(s);
	json_decref(rq);
	rq = tmpl_request("sat.qo", h, true, 42);
	assert_json_text(rq,
	                 "{\"body\":{\"_id\":\"23\",\"n\":21,\"temp\":14.1},\"file\":\"sat.qo\","
	                 "\"format\":\"compact\",\"port\":42,\"req\":\"note.template\"}");
	json_decref(rq);
	/* clearing: file only */
	rq = tmpl_request("sat.qo", NULL, true, 42);
	assert_json_text(rq, "{\"file\":\"sat.qo\",\"req\":\"note.template\"}");
	json_decref(rq);
	json_decref(h);
}

/* A plugin's binary payload reaches the card as base64, in compact JSON. */
static void test_note_add_payload_compact(void **state)
{
	(void)state;
	struct link_opts o = {0};
	o.uplink = CFG_UPLINK_OFF;
	unsigned char raw[] = {0x00, 0x01, 0x02, 0xff};
	struct store_out n = {0};
	n.seq = 5;
	n.file = (char *)"bin.qo";
	n.body = (char *)"{\"k\": 1}";
	n.payload = raw;
	n.payload_len = sizeof(raw);
	json_t *req = NULL;
	assert_int_equal(link_note_request(&o, NULL, "gw7", &n, &req), 0);
	char *s = json_dumps(req, JSON_COMPACT);
	assert_string_equal(s, "{\"req\":\"note.add\",\"file\":\"bin.qo\",\"body\":{\"k\":1,"
	                       "\"_id\":\"gw7:5\"},\"payload\":\"AAEC/w==\"}");
	assert_null(strchr(s, ' '));
	free(s);
	json_decref(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_learn_types),
	    cmocka_unit_test(test_learn_restart_and_refuse),
	    cmocka_unit_test(test_fits),
	    cmocka_unit_test(test_policy_learn_misfit_relearn),
	    cmocka_unit_test(test_file_template),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_request_text),
	    cmocka_unit_test(test_note_add_payload_compact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
