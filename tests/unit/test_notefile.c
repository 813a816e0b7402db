/* Unit tests for include/notegw/notefile.h: the notefile rules the daemon, the
 * CLI and every plugin share. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "notegw/notefile.h"

static void test_suffixes(void **state)
{
	assert_true(ngw_notefile_is_queue_out("data.qo"));
	assert_true(ngw_notefile_is_queue_out("data.qos"));
	assert_false(ngw_notefile_is_queue_out("data.db"));
	assert_false(ngw_notefile_is_queue_out(".qo")); /* nothing before the suffix */
	assert_true(ngw_notefile_is_queue_in("cmd.qi"));
	assert_true(ngw_notefile_is_queue_in("cmd.qis"));
	assert_false(ngw_notefile_is_queue_in("cmd.qo"));
	assert_true(ngw_notefile_is_db("cfg.db"));
	assert_true(ngw_notefile_is_db("cfg.dbs"));
	assert_false(ngw_notefile_is_db("cfg.dbx"));
	assert_true(ngw_notefile_suffix_out("cfg.dbs"));
	assert_true(ngw_notefile_suffix_in("cfg.dbs"));
	assert_false(ngw_notefile_suffix_out("cmd.qi"));
	assert_false(ngw_notefile_suffix_in("data.qo"));
}

static void test_check_out(void **state)
{
	const char *why = NULL;
	char name[80];

	assert_int_equal(ngw_notefile_check_out("my_sensor-1.qo", &why), 0);
	assert_int_equal(ngw_notefile_check_out("cfg.dbs", &why), 0);
	assert_int_equal(ngw_notefile_check_out("", &why), -EINVAL);
	assert_int_equal(ngw_notefile_check_out(NULL, &why), -EINVAL);
	assert_int_equal(ngw_notefile_check_out("a/b.qo", &why), -EINVAL);
	assert_non_null(strstr(why, "letters, digits"));
	assert_int_equal(ngw_notefile_check_out("data.qi", &why), -EINVAL);
	assert_non_null(strstr(why, "must end in .qo, .qos, .db or .dbs"));

	memset(name, 'a', sizeof(name));
	memcpy(name + NGW_NOTEFILE_MAX - 3, ".qo", 4); /* exactly 64 */
	assert_int_equal(ngw_notefile_check_out(name, &why), 0);
	memset(name, 'a', sizeof(name));
	memcpy(name + NGW_NOTEFILE_MAX - 2, ".qo", 4); /* 65 */
	assert_int_equal(ngw_notefile_check_out(name, &why), -EINVAL);
	assert_non_null(strstr(why, "longer than 64"));
}

/* The Notecard's own notefiles begin with '_' (_env.dbs holds the environment
 * variables Notehub sets): no producer may write them. */
static void test_system_notefiles_refused(void **state)
{
	const char *why = NULL;

	assert_int_equal(ngw_notefile_check_out("_env.dbs", &why), -EINVAL);
	assert_non_null(strstr(why, "system notefiles"));
	assert_int_equal(ngw_notefile_check_out("_health.qo", &why), -EINVAL);
	assert_false(ngw_notefile_is_out("_session.qo"));
	/* an '_' inside a name is an ordinary character */
	assert_true(ngw_notefile_is_out("my_env.dbs"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_suffixes),
	    cmocka_unit_test(test_check_out),
	    cmocka_unit_test(test_system_notefiles_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
