/* Unit tests for plugins/modbus/plan.c: merged reads within the protocol limits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "plan.h"

static void test_adjacent_merge(void **state)
{
	/* given out of order; u32 at 2 joins u16 at 0,1; input table kept apart */
	struct mb_span s[] = {
	    {MB_HOLDING, 2, 2}, {MB_HOLDING, 0, 1},  {MB_INPUT, 0, 1},
	    {MB_HOLDING, 1, 1}, {MB_HOLDING, 10, 1},
	};
	struct mb_block b[5];
	struct mb_where w[5];
	int n = mb_plan(s, 5, 0, b, 5, w);

	assert_int_equal(n, 3);
	assert_int_equal(b[0].kind, MB_HOLDING);
	assert_int_equal(b[0].addr, 0);
	assert_int_equal(b[0].count, 4);
	assert_int_equal(b[1].addr, 10);
	assert_int_equal(b[1].count, 1);
	assert_int_equal(b[2].kind, MB_INPUT);
	assert_int_equal(w[0].block, 0);
	assert_int_equal(w[0].offset, 2);
	assert_int_equal(w[3].offset, 1);
	assert_int_equal(w[4].block, 1);
	assert_int_equal(w[2].block, 2);
}

static void test_gap(void **state)
{
	struct mb_span s[] = {{MB_HOLDING, 0, 1}, {MB_HOLDING, 3, 1}, {MB_HOLDING, 8, 2}};
	struct mb_block b[3];
	struct mb_where w[3];

	assert_int_equal(mb_plan(s, 3, 0, b, 3, w), 3);
	assert_int_equal(mb_plan(s, 3, 2, b, 3, w), 2); /* 0..3 joined, 8 too far */
	assert_int_equal(b[0].count, 4);
	assert_int_equal(mb_plan(s, 3, 4, b, 3, w), 1);
	assert_int_equal(b[0].count, 10);
	assert_int_equal(w[2].offset, 8);
}

static void test_register_limit(void **state)
{
	/* 200 adjacent u16: 125 + 75 */
	struct mb_span s[200];
	struct mb_block b[200];
	struct mb_where w[200];
	for (int i = 0; i < 200; i++)
		s[i] = (struct mb_span){MB_INPUT, (uint16_t)(100 + i), 1};
	assert_int_equal(mb_plan(s, 200, 0, b, 200, w), 2);
	assert_int_equal(b[0].count, MB_MAX_REGS);
	assert_int_equal(b[1].addr, 100 + MB_MAX_REGS);
	assert_int_equal(b[1].count, 75);
	assert_int_equal(w[199].block, 1);
	assert_int_equal(w[199].offset, 74);

	/* a u32 never straddles two reads: 62 u32 = 124 regs, the 63rd starts a new one */
	for (int i = 0; i < 63; i++)
		s[i] = (struct mb_span){MB_HOLDING, (uint16_t)(2 * i), 2};
	assert_int_equal(mb_plan(s, 63, 0, b, 200, w), 2);
	assert_int_equal(b[0].count, 124);
	assert_int_equal(b[1].addr, 124);
	assert_int_equal(b[1].count, 2);
}

static void test_bit_limit(void **state)
{
	struct mb_span *s = calloc(2001, sizeof(*s));
	struct mb_block b[4];
	struct mb_where *w = calloc(2001, sizeof(*w));
	for (int i = 0; i < 2001; i++)
		s[i] = (struct mb_span){MB_COIL, (uint16_t)i, 1};
	assert_int_equal(mb_plan(s, 2001, 0, b, 4, w), 2);
	assert_int_equal(b[0].count, MB_MAX_BITS);
	assert_int_equal(b[1].addr, 2000);
	assert_int_equal(b[1].count, 1);
	free(s);
	free(w);
}

static void test_errors(void **state)
{
	struct mb_span s[] = {{MB_HOLDING, 65535, 2}};
	struct mb_span t[] = {{MB_HOLDING, 0, 1}, {MB_HOLDING, 5, 1}};
	struct mb_block b[2];
	struct mb_where w[2];

	assert_int_equal(mb_plan(s, 1, 0, b, 2, w), -EINVAL);
	assert_int_equal(mb_plan(t, 2, 0, b, 1, w), -ENOBUFS);
	assert_int_equal(mb_plan(t, 0, 0, b, 1, w), 0);
	s[0].addr = 65534; /* the last two registers are fine */
	assert_int_equal(mb_plan(s, 1, 0, b, 2, w), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_adjacent_merge), cmocka_unit_test(test_gap),
	    cmocka_unit_test(test_register_limit), cmocka_unit_test(test_bit_limit),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
