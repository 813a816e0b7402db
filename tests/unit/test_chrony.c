/* The chrony SOCK sample: both layouts have the size and offsets chrony's struct
 * sock_sample has on the target's ABI, the configured one is the architecture's,
 * and the encoding does not depend on notegw's own time_t. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chrony.h"

/* Fields read back at the offsets chrony reads them, not through the structs. */
static int64_t field(const unsigned char *b, size_t off, size_t width)
{
	if (width == 4) {
		int32_t v;
		memcpy(&v, b + off, 4);
		return v;
	}
	int64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

static void layout32(void **state)
{
	assert_int_equal(sizeof(struct chrony_sample32), 32);
	assert_int_equal(offsetof(struct chrony_sample32, tv_sec), 0);
	assert_int_equal(offsetof(struct chrony_sample32, tv_usec), 4);
	assert_int_equal(offsetof(struct chrony_sample32, offset), 8);
	assert_int_equal(offsetof(struct chrony_sample32, pulse), 16);
	assert_int_equal(offsetof(struct chrony_sample32, leap), 20);
	assert_int_equal(offsetof(struct chrony_sample32, pad), 24);
	assert_int_equal(offsetof(struct chrony_sample32, magic), 28);
}

static void layout64(void **state)
{
	assert_int_equal(sizeof(struct chrony_sample64), 40);
	assert_int_equal(offsetof(struct chrony_sample64, tv_sec), 0);
	assert_int_equal(offsetof(struct chrony_sample64, tv_usec), 8);
	assert_int_equal(offsetof(struct chrony_sample64, offset), 16);
	assert_int_equal(offsetof(struct chrony_sample64, pulse), 24);
	assert_int_equal(offsetof(struct chrony_sample64, leap), 28);
	assert_int_equal(offsetof(struct chrony_sample64, pad), 32);
	assert_int_equal(offsetof(struct chrony_sample64, magic), 36);
}

/* The chrony a distribution ships for the architecture: 64-bit time_t on 64-bit
 * targets, 32-bit on Debian 12's armhf and i386. A build configured otherwise on
 * purpose (--with-chrony-time-bits) is not checked here. */
static void configured_is_the_architectures(void **state)
{
#if NOTEGW_CHRONY_TIME_BITS_EXPLICIT
	skip();
#elif defined(__x86_64__) && defined(__LP64__) || defined(__aarch64__)
	assert_int_equal(NOTEGW_CHRONY_TIME_BITS, 64);
#elif defined(__arm__) || defined(__i386__)
	assert_int_equal(NOTEGW_CHRONY_TIME_BITS, 32);
#else
	assert_int_equal(NOTEGW_CHRONY_TIME_BITS, sizeof(long) * 8);
#endif
}

static void encode(void **state)
{
	unsigned char b[CHRONY_SAMPLE_MAX + 8];
	uint64_t at = 1767225600123456ULL; /* 2026-01-01 00:00:00.123456 */
	double off, want = -0.25;

	memset(b, 0xa5, sizeof(b));
	assert_int_equal(chrony_sample_encode(b, 32, at, want), 32);
	assert_int_equal(field(b, 0, 4), 1767225600);
	assert_int_equal(field(b, 4, 4), 123456);
	memcpy(&off, b + 8, 8);
	assert_true(off == want);
	assert_int_equal(field(b, 16, 4), 0); /* pulse */
	assert_int_equal(field(b, 20, 4), 0); /* leap */
	assert_int_equal(field(b, 28, 4), CHRONY_SOCK_MAGIC);
	assert_int_equal(b[32], 0xa5); /* nothing past the sample */

	memset(b, 0xa5, sizeof(b));
	assert_int_equal(chrony_sample_encode(b, 64, at, want), 40);
	assert_int_equal(field(b, 0, 8), 1767225600);
	assert_int_equal(field(b, 8, 8), 123456);
	memcpy(&off, b + 16, 8);
	assert_true(off == want);
	assert_int_equal(field(b, 24, 4), 0);
	assert_int_equal(field(b, 28, 4), 0);
	assert_int_equal(field(b, 36, 4), CHRONY_SOCK_MAGIC);
	assert_int_equal(b[40], 0xa5);

	assert_int_equal(chrony_sample_encode(b, 16, at, want), 0);
}

/* After 2038 the 64-bit layout carries the time whatever notegw's time_t is; the
 * 32-bit one cannot, and says so rather than wrapping. */
static void after_2038(void **state)
{
	unsigned char b[CHRONY_SAMPLE_MAX];
	uint64_t sec = (uint64_t)INT32_MAX + 5;
	assert_int_equal(chrony_sample_encode(b, 64, sec * 1000000u + 7, 0.5), 40);
	assert_int_equal(field(b, 0, 8), (int64_t)sec);
	assert_int_equal(field(b, 8, 8), 7);
	assert_int_equal(chrony_sample_encode(b, 32, sec * 1000000u, 0.5), 0);
	assert_int_equal(chrony_sample_encode(b, 32, (uint64_t)INT32_MAX * 1000000u, 0.5), 32);
	assert_int_equal(field(b, 0, 4), INT32_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(layout32),
	    cmocka_unit_test(layout64),
	    cmocka_unit_test(configured_is_the_architectures),
	    cmocka_unit_test(encode),
	    cmocka_unit_test(after_2038),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
