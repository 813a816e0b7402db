/* The transports' receive buffer: regressions found by fuzz/fuzz_serial_card.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "notecard/rxbuf.h"

/* An empty read into a buffer never grown: no copy, no allocation (memcpy onto a
 * NULL buffer is undefined behaviour even for zero bytes; UBSan caught it). */
static void empty_append(void **state)
{
	struct rxbuf b = {0};
	char out[8];
	size_t len = 0;
	assert_int_equal(rxbuf_append(&b, "", 0, 64), 0);
	assert_null(b.buf);
	assert_int_equal(b.len, 0);
	assert_int_equal(rxbuf_take_line(&b, out, sizeof(out), &len), 0);
	assert_int_equal(rxbuf_append(&b, "ok\r\n", 4, 64), 0);
	assert_int_equal(rxbuf_append(&b, "", 0, 64), 0);
	assert_int_equal(rxbuf_take_line(&b, out, sizeof(out), &len), 1);
	assert_string_equal(out, "ok");
	rxbuf_free(&b);
}

/* A line too long for the caller is dropped whole; the next one still comes out. */
static void long_line_dropped(void **state)
{
	struct rxbuf b = {0};
	char out[4];
	size_t len = 0;
	assert_int_equal(rxbuf_append(&b, "toolong\nab\n", 11, 64), 0);
	assert_int_equal(rxbuf_take_line(&b, out, sizeof(out), &len), -EMSGSIZE);
	assert_int_equal(rxbuf_take_line(&b, out, sizeof(out), &len), 1);
	assert_string_equal(out, "ab");
	assert_int_equal(rxbuf_append(&b, "x", 1, 0), -EMSGSIZE);
	rxbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(empty_append),
	    cmocka_unit_test(long_line_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
