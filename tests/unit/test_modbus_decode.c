/* Unit tests for plugins/modbus/decode.c and values.c: every type and word order,
 * negative values, NaN, scaling, encoding for writes and its range checks. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "decode.h"

static void test_type_names(void **state)
{
	enum mb_type t;
	enum mb_order o;

	assert_int_equal(mb_type_parse("u16", &t, &o), 0);
	assert_int_equal(t, MB_U16);
	assert_int_equal(mb_type_parse("f32", &t, &o), 0);
	assert_int_equal(t, MB_F32);
	assert_int_equal(o, MB_ORDER_BE); /* the documented default */
	assert_int_equal(mb_type_parse("i32_le", &t, &o), 0);
	assert_int_equal(t, MB_I32);
	assert_int_equal(o, MB_ORDER_LE);
	assert_int_equal(mb_type_parse("u32_be", &t, &o), 0);
	assert_int_equal(o, MB_ORDER_BE);
	assert_int_equal(mb_type_parse("bool", &t, &o), 0);
	assert_int_equal(t, MB_BOOL);
	assert_int_equal(mb_type_parse("u16_le", &t, &o), -EINVAL); /* one word: no order */
	assert_int_equal(mb_type_parse("f64", &t, &o), -EINVAL);
	assert_int_equal(mb_type_parse("", &t, &o), -EINVAL);
	assert_int_equal(mb_type_parse("_le", &t, &o), -EINVAL);
	assert_int_equal(mb_kind_parse("holding", 7), MB_HOLDING);
	assert_int_equal(mb_kind_parse("discrete", 8), MB_DISCRETE);
	assert_int_equal(mb_kind_parse("hold", 4), -1);
}

static void test_decode_16(void **state)
{
	uint16_t w[1] = {0xFB2E};
	assert_true(mb_decode(MB_U16, MB_ORDER_BE, w) == 64302);
	assert_true(mb_decode(MB_I16, MB_ORDER_BE, w) == -1234);
	w[0] = 0x8000;
	assert_true(mb_decode(MB_I16, MB_ORDER_BE, w) == -32768);
	w[0] = 0x7FFF;
	assert_true(mb_decode(MB_I16, MB_ORDER_BE, w) == 32767);
	assert_true(mb_decode(MB_BOOL, MB_ORDER_BE, w) == 1);
	w[0] = 0;
	assert_true(mb_decode(MB_BOOL, MB_ORDER_BE, w) == 0);
}

static void test_decode_32(void **state)
{
	uint16_t be[2] = {0x1234, 0x5678}, le[2] = {0x5678, 0x1234};
	uint16_t neg_be[2] = {0xF8A4, 0x32EB}, neg_le[2] = {0x32EB, 0xF8A4}; /* -123456789 */
	uint16_t m1[2] = {0xFFFF, 0xFFFF};

	assert_true(mb_decode(MB_U32, MB_ORDER_BE, be) == 305419896.0);
	assert_true(mb_decode(MB_U32, MB_ORDER_LE, le) == 305419896.0);
	assert_true(mb_decode(MB_U32, MB_ORDER_LE, be) == (double)0x56781234u);
	assert_true(mb_decode(MB_I32, MB_ORDER_BE, neg_be) == -123456789.0);
	assert_true(mb_decode(MB_I32, MB_ORDER_LE, neg_le) == -123456789.0);
	assert_true(mb_decode(MB_I32, MB_ORDER_BE, m1) == -1.0);
	assert_true(mb_decode(MB_U32, MB_ORDER_BE, m1) == 4294967295.0);
}

static void test_decode_f32(void **state)
{
	uint16_t be[2] = {0xC144, 0x0000}, le[2] = {0x0000, 0xC144}; /* -12.25 */
	uint16_t nan_be[2] = {0x7FC0, 0x0000}, nan_le[2] = {0x0000, 0x7FC0};
	uint16_t tenth[2] = {0x3DCC, 0xCCCD}; /* 0.1f */
	uint16_t inf[2] = {0xFF80, 0x0000};

	assert_true(mb_decode(MB_F32, MB_ORDER_BE, be) == -12.25);
	assert_true(mb_decode(MB_F32, MB_ORDER_LE, le) == -12.25);
	assert_true(isnan(mb_decode(MB_F32, MB_ORDER_BE, nan_be)));
	assert_true(isnan(mb_decode(MB_F32, MB_ORDER_LE, nan_le)));
	/* NaN read in the wrong order is a tiny number, not NaN: order matters */
	assert_false(isnan(mb_decode(MB_F32, MB_ORDER_LE, nan_be)));
	assert_true(mb_decode(MB_F32, MB_ORDER_BE, tenth) == 0.1); /* tidied, not 0.100000001 */
	assert_true(isinf(mb_decode(MB_F32, MB_ORDER_BE, inf)));
}

static void test_scale(void **state)
{
	uint16_t w[1] = {2301};
	assert_true(fabs(mb_scale(mb_decode(MB_U16, MB_ORDER_BE, w), 0.1, 0) - 230.1) < 1e-9);
	assert_true(mb_scale(-5, 2, 100) == 90);
}

static void test_encode(void **state)
{
	uint16_t w[2];

	assert_int_equal(mb_encode(MB_U16, MB_ORDER_BE, 230.1, 0.1, 0, w), 0);
	assert_int_equal(w[0], 2301);
	assert_int_equal(mb_encode(MB_I16, MB_ORDER_BE, -1234, 1, 0, w), 0);
	assert_int_equal(w[0], 0xFB2E);
	assert_int_equal(mb_encode(MB_I32, MB_ORDER_BE, -123456789, 1, 0, w), 0);
	assert_int_equal(w[0], 0xF8A4);
	assert_int_equal(w[1], 0x32EB);
	assert_int_equal(mb_encode(MB_I32, MB_ORDER_LE, -123456789, 1, 0, w), 0);
	assert_int_equal(w[0], 0x32EB);
	assert_int_equal(w[1], 0xF8A4);
	assert_int_equal(mb_encode(MB_U32, MB_ORDER_LE, 305419896, 1, 0, w), 0);
	assert_int_equal(w[0], 0x5678);
	assert_int_equal(w[1], 0x1234);
	assert_int_equal(mb_encode(MB_F32, MB_ORDER_BE, -12.25, 1, 0, w), 0);
	assert_int_equal(w[0], 0xC144);
	assert_int_equal(w[1], 0);
	assert_int_equal(mb_encode(MB_F32, MB_ORDER_LE, -12.25, 1, 0, w), 0);
	assert_int_equal(w[1], 0xC144);
	/* offset and scale come off before encoding */
	assert_int_equal(mb_encode(MB_U16, MB_ORDER_BE, 90, 2, 100, w), -ERANGE);
	assert_int_equal(mb_encode(MB_I16, MB_ORDER_BE, 90, 2, 100, w), 0);
	assert_int_equal((int16_t)w[0], -5);
	/* ranges */
	assert_int_equal(mb_encode(MB_U16, MB_ORDER_BE, 65536, 1, 0, w), -ERANGE);
	assert_int_equal(mb_encode(MB_U16, MB_ORDER_BE, -1, 1, 0, w), -ERANGE);
	assert_int_equal(mb_encode(MB_I16, MB_ORDER_BE, 32768, 1, 0, w), -ERANGE);
	assert_int_equal(mb_encode(MB_U32, MB_ORDER_BE, 4294967296.0, 1, 0, w), -ERANGE);
	assert_int_equal(mb_encode(MB_I32, MB_ORDER_BE, -2147483649.0, 1, 0, w), -ERANGE);
	assert_int_equal(mb_encode(MB_F32, MB_ORDER_BE, 1e39, 1, 0, w), -ERANGE);
	assert_int_equal(mb_encode(MB_BOOL, MB_ORDER_BE, 2, 1, 0, w), -ERANGE);
	/* not whole raw units */
	assert_int_equal(mb_encode(MB_U16, MB_ORDER_BE, 1.5, 1, 0, w), -EDOM);
	assert_int_equal(mb_encode(MB_U16, MB_ORDER_BE, 230.15, 0.1, 0, w), -EDOM);
	assert_int_equal(mb_encode(MB_U16, MB_ORDER_BE, NAN, 1, 0, w), -EINVAL);
	assert_int_equal(mb_encode(MB_U16, MB_ORDER_BE, 1, 0, 0, w), -EINVAL);
}

/* decode(encode(x)) == x over every type and order */
static void test_roundtrip(void **state)
{
	static const struct {
		enum mb_type t;
		double v;
	} cases[] = {
	    {MB_U16, 0},    {MB_U16, 65535},        {MB_I16, -32768},        {MB_I16, 7},
	    {MB_U32, 0},    {MB_U32, 4294967295.0}, {MB_I32, -2147483648.0}, {MB_I32, 2147483647.0},
	    {MB_F32, -0.5}, {MB_F32, 1e-3},         {MB_F32, 3.4e38},
	};
	uint16_t w[2];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (int o = MB_ORDER_BE; o <= MB_ORDER_LE; o++) {
			assert_int_equal(mb_encode(cases[i].t, o, cases[i].v, 1, 0, w), 0);
			assert_true(mb_decode(cases[i].t, o, w) == cases[i].v);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_type_names), cmocka_unit_test(test_decode_16),
	    cmocka_unit_test(test_decode_32),  cmocka_unit_test(test_decode_f32),
	    cmocka_unit_test(test_scale),      cmocka_unit_test(test_encode),
	    cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
