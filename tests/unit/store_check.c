/* store_check.c: see store_check.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <sqlite3.h>

#include "store_check.h"

void store_check_counters(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db,
	                       "SELECT q_count = (SELECT count(*) FROM out), q_bytes = "
	                       "(SELECT coalesce(sum(bytes), 0) FROM out), next_seq > "
	                       "(SELECT coalesce(max(seq), 0) FROM out) FROM meta",
	                       -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), 1);
	assert_int_equal(sqlite3_column_int(s, 1), 1);
	assert_int_equal(sqlite3_column_int(s, 2), 1);
	sqlite3_finalize(s);
	sqlite3_close(db);
}
