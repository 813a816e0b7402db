/* The plugin ABI's growth rule (src/plugin_abi.c): the host reads a descriptor field
 * added in minor N only from a plugin of minor >= N. Each plugin descriptor here ends
 * exactly where a guard page begins, so reading one byte past it kills the test: the
 * simulated ones below, and a real shared object built for minor 0
 * (tests/plugins/oldminor.c, in TEST_PLUGIN_DIR). */
/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"
#include "plugin_abi.h"
#include "plugins.h"

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

/* The real loader, this host's table: the minor-0 plugin is loaded, configured and
 * started, its descriptor read up to the end minor 0 defines and not a byte further. */
static void test_real_old_minor_loads(void **state)
{
	char dir[] = "/tmp/oldminor.XXXXXX", link[PATH_MAX];
	struct cfg_diag diag = {0};
	struct cfg_doc *doc = cfg_doc_parse_string("", "empty", &diag);
	struct plugin_env env = {.config_file = "empty"};
	struct plugins *ps = NULL;

	assert_non_null(doc);
	assert_non_null(mkdtemp(dir));
	snprintf(link, sizeof(link), "%s/oldminor.so", dir);
	assert_int_equal(symlink(TEST_PLUGIN_DIR "/oldminor.so", link), 0);
	assert_int_equal(plugins_load(&env, dir, doc, true, &diag, &ps), 0);
	assert_int_equal(diag.n, 0);
	assert_int_equal(plugins_start(ps), 0);
	json_t *stats = plugins_stats(ps); /* through stats_json, a field of minor 0 */
	char *text = json_dumps(stats, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(strstr(text, "\"oldminor\""));
	assert_non_null(strstr(text, "\"minor\":0"));
	free(text);
	json_decref(stats);
	plugins_stop(ps);
	plugins_free(ps);
	cfg_doc_free(doc);
	cfg_diag_clear(&diag);
	unlink(link);
	rmdir(dir);
}

/* A host one minor ahead, whose minor 1 appended on_emit and stats_json, and the real
 * shared object of a minor 0 that ended before them: the host takes its abi word
 * (minor 0, as built), its older fields, and treats the newer ones as absent without
 * reading them (the guard page stands right behind the plugin's descriptor). */
static void test_real_old_minor_newer_host(void **state)
{
	const size_t ends[] = {offsetof(struct ngw_plugin_desc, on_emit),
	                       sizeof(struct ngw_plugin_desc)};
	void *dl = dlopen(TEST_PLUGIN_DIR "/oldminor_short.so", RTLD_NOW | RTLD_LOCAL);
	const struct ngw_plugin_desc *(*describe)(void);
	struct ngw_plugin_desc got;
	const char *why = NULL;

	assert_non_null(dl);
	*(void **)&describe = dlsym(dl, "notegw_plugin_describe");
	assert_non_null(describe);
	const struct ngw_plugin_desc *theirs = describe();
	assert_non_null(theirs);
	assert_int_equal(plugin_abi_adopt_ends(theirs, ends, 2, &got, &why), 0);
	assert_int_equal(got.abi, (uint32_t)NGW_PLUGIN_ABI_MAJOR << 16);
	assert_string_equal(got.name, "oldminor");
	assert_non_null(got.configure);
	assert_non_null(got.on_error);
	assert_null(got.on_emit);
	assert_null(got.stats_json);
	dlclose(dl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_current_minor),
	    cmocka_unit_test(test_old_minor_plugin),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_real_old_minor_loads),
	    cmocka_unit_test(test_real_old_minor_newer_host),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
