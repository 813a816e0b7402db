/* The plugin ABI's growth rule (src/plugin_abi.c): the host reads a descriptor field
 * added in minor N only from a plugin of minor >= N. Each plugin descriptor here ends
 * exactly where a guard page begins, so reading one byte past it kills the test. */
/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plugin_abi.h"

static void *region;
static size_t page;

/* A plugin's descriptor of `size` bytes (the first size bytes of d), placed so that
 * the next byte is unreadable. */
static const struct ngw_plugin_desc *guarded(const struct ngw_plugin_desc *d, size_t size)
{
	char *end = (char *)region + page;
	memcpy(end - size, d, size);
	return (const struct ngw_plugin_desc *)(void *)(end - size);
}

static int setup(void **state)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	region = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		return -1;
	return mprotect((char *)region + page, page, PROT_NONE);
}

static int teardown(void **state)
{
	return munmap(region, 2 * page);
}

static int f_configure(struct ngw_plugin *self)
{
	return 0;
}
static void f_error(struct ngw_plugin *self, const char *source, const char *error)
{
}
static void f_emit(struct ngw_plugin *self, const char *from, const char *topic, const char *json)
{
}
static char *f_stats(struct ngw_plugin *self)
{
	return NULL;
}

static struct ngw_plugin_desc full(uint32_t minor)
{
	struct ngw_plugin_desc d = {
	    .abi = ((uint32_t)NGW_PLUGIN_ABI_MAJOR << 16) | minor,
	    .name = "t",
	    .configure = f_configure,
	    .on_error = f_error,
	    .on_emit = f_emit,
	    .stats_json = f_stats,
	};
	return d;
}

/* This host: a plugin of the current minor has every field; its struct is read up to
 * its end and not past it. */
static void test_current_minor(void **state)
{
	struct ngw_plugin_desc d = full(NGW_PLUGIN_ABI_MINOR), got;
	const char *why = NULL;

	assert_int_equal(plugin_abi_adopt(guarded(&d, sizeof(d)), &got, &why), 0);
	assert_string_equal(got.name, "t");
	assert_ptr_equal(got.configure, f_configure);
	assert_ptr_equal(got.stats_json, f_stats);
}

/* A host one minor ahead, whose minor 1 appended on_emit and stats_json: a minor-0
 * plugin's struct ends after on_error. The host copies that much, sees the newer
 * callbacks as absent, and never touches the guard page behind the short struct. */
static void test_old_minor_plugin(void **state)
{
	const size_t ends[] = {offsetof(struct ngw_plugin_desc, on_emit),
	                       sizeof(struct ngw_plugin_desc)};
	struct ngw_plugin_desc old = full(0), now = full(1), got;
	const char *why = NULL;

	assert_int_equal(plugin_abi_adopt_ends(guarded(&old, ends[0]), ends, 2, &got, &why), 0);
	assert_ptr_equal(got.configure, f_configure);
	assert_ptr_equal(got.on_error, f_error);
	assert_null(got.on_emit);
	assert_null(got.stats_json);

	assert_int_equal(plugin_abi_adopt_ends(guarded(&now, ends[1]), ends, 2, &got, &why), 0);
	assert_ptr_equal(got.on_emit, f_emit);
	assert_ptr_equal(got.stats_json, f_stats);
}

/* Another major, or a newer minor than the host knows: refused, with a reason, after
 * reading nothing but the abi word. */
static void test_refused(void **state)
{
	struct ngw_plugin_desc d = full(NGW_PLUGIN_ABI_MINOR + 1), got;
	const char *why = NULL;

	assert_int_equal(plugin_abi_adopt(guarded(&d, sizeof(uint32_t)), &got, &why), -EPROTO);
	assert_non_null(strstr(why, "newer plugin ABI minor"));
	d.abi = ((uint32_t)(NGW_PLUGIN_ABI_MAJOR + 1) << 16);
	why = NULL;
	assert_int_equal(plugin_abi_adopt(guarded(&d, sizeof(uint32_t)), &got, &why), -EPROTO);
	assert_non_null(strstr(why, "another plugin ABI major"));
	assert_null(got.name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_current_minor),
	    cmocka_unit_test(test_old_minor_plugin),
	    cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
