/* Unit tests of the health note's body (src/health_note.c): every field from a status
 * snapshot, capped to its template slot, versions as codes, plugin letters in name
 * order, the last error cut and kept ASCII, what a state change is made of, and the
 * body fitting the shipped template. */
/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_note.h"
#include "notecard/template.h"

static json_t *status(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j)
		print_message("bad test JSON: %s\n", e.text);
	assert_non_null(j);
	return j;
}

static long long num(json_t *b, const char *k)
{
	assert_non_null(json_object_get(b, k));
	return (long long)json_integer_value(json_object_get(b, k));
}

static void t_fields(void **s)
{
	json_t *st = status(
	    "{\"daemon\":{\"version\":\"1.2.3\",\"uptime_s\":99},"
	    "\"notecard\":{\"state\":\"ready\",\"firmware\":\"notecard-8.1.3.17184\","
	    "\"signal\":{\"bars\":2,\"rssi\":-90}},"
	    "\"store\":{\"queued\":5,\"oldest_age_s\":7,\"dropped\":1,\"refused\":2},"
	    "\"plugins\":{\"mqtt\":{\"state\":\"running\"},\"example\":{\"state\":\"failed\"},"
	    "\"modbus\":{\"state\":\"disabled\"}}}");
	json_t *b = health_note_body(st, 3ULL << 20, 7, NULL);
	assert_non_null(b);
	assert_int_equal(num(b, "v"), 0x010203);
	assert_int_equal(num(b, "fw"), 0x080103);
	assert_int_equal(num(b, "up"), 99);
	assert_int_equal(num(b, "q"), 5);
	assert_int_equal(num(b, "age"), 7);
	assert_int_equal(num(b, "dr"), 1);
	assert_int_equal(num(b, "rf"), 2);
	assert_string_equal(json_string_value(json_object_get(b, "pl")),
	                    "fdr"); /* example modbus mqtt */
	assert_int_equal(num(b, "cs"), 1);
	assert_int_equal(num(b, "bars"), 2);
	assert_int_equal(num(b, "rssi"), -90);
	assert_int_equal(num(b, "df"), 3);
	assert_int_equal(num(b, "rev"), 7);
	assert_string_equal(json_string_value(json_object_get(b, "er")), "");
	json_decref(b);
	json_decref(st);
}

static void t_caps_and_error(void **s)
{
	json_t *st = status("{\"notecard\":{\"state\":\"absent\",\"error\":\"No such device\","
	                    "\"signal\":{\"rssi\":-400}},"
	                    "\"store\":{\"queued\":99999999,\"dropped\":-5}}");
	json_t *b = health_note_body(st, 1ULL << 50, 70000, NULL);
	assert_int_equal(num(b, "q"), 0xffffff);
	assert_int_equal(num(b, "dr"), 0);
	assert_int_equal(num(b, "rssi"), -128);
	assert_int_equal(num(b, "df"), 0xffffff);
	assert_int_equal(num(b, "rev"), 0xffff);
	assert_int_equal(num(b, "cs"), 2);
	assert_int_equal(num(b, "v"), 0); /* no version known */
	/* the card's error when no other was told, cut to 12 */
	assert_string_equal(json_string_value(json_object_get(b, "er")), "No such devi");
	json_decref(b);
	/* the last error wins; a multibyte character cut in two stays valid text */
	b = health_note_body(st, 0, 0, "ab\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9xyz");
	assert_non_null(b);
	assert_string_equal(json_string_value(json_object_get(b, "er")), "ab??????????");
	json_decref(b);
	json_decref(st);
}

static void t_state(void **s)
{
	json_t *st = status("{\"notecard\":{\"state\":\"ready\"},"
	                    "\"plugins\":{\"mqtt\":{\"state\":\"running\"}}}");
	json_t *a = health_note_body(st, 0, 1, "x"), *b = health_note_body(st, 5ULL << 30, 1, "x");
	json_t *c = health_note_body(st, 0, 2, "x");
	char *sa = health_note_state(a), *sb = health_note_state(b), *sc = health_note_state(c);
	assert_string_equal(sa, sb);     /* disk space is no state change */
	assert_string_not_equal(sa, sc); /* a new revision is */
	free(sa);
	free(sb);
	free(sc);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(st);
}

static void t_fits_template(void **s)
{
	const char *top = getenv("top_srcdir");
	char path[512], err[256], why[256];
	snprintf(path, sizeof(path), "%s/etc/health-template.json", top ? top : "..");
	json_t *hints = NULL;
	if (tmpl_load_file(path, &hints, err, sizeof(err)) < 0)
		print_message("%s\n", err);
	assert_non_null(hints);
	json_t *st = status("{\"daemon\":{\"version\":\"0.1.0\",\"uptime_s\":4000000000},"
	                    "\"notecard\":{\"state\":\"not answering\"},"
	                    "\"plugins\":{\"a\":{},\"b\":{},\"c\":{},\"d\":{},\"e\":{}}}");
	json_t *b = health_note_body(st, 1ULL << 40, 65535, "a long error text here");
	bool fits = tmpl_fits(hints, b, why, sizeof(why));
	if (!fits)
		print_message("%s\n", why);
	assert_true(fits);
	assert_int_equal(json_string_length(json_object_get(b, "pl")), 4);
	json_decref(b);
	json_decref(st);
	json_decref(hints);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(t_fields),
	    cmocka_unit_test(t_caps_and_error),
	    cmocka_unit_test(t_state),
	    cmocka_unit_test(t_fits_template),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
