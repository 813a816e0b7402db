/* oldminor: a plugin built for plugin ABI minor 0, for tests/unit/test_plugin_abi.
 * It is a shared object of its own, loaded the way notegwd loads any plugin.
 *
 * Its descriptor is copied to the very end of a page whose next page is unreadable,
 * so a host that reads one byte more than the plugin's descriptor holds crashes.
 * DESC_END (bytes, default the whole struct as minor 0 defines it) makes the
 * descriptor shorter: built with DESC_END = offsetof(on_emit) it is a plugin of a
 * minor 0 that ended before on_emit, against which the test plays a newer host. */
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "notegw/plugin.h"

#ifndef DESC_END
#define DESC_END sizeof(struct ngw_plugin_desc)
#endif

static int configure(struct ngw_plugin *self)
{
	return 0;
}

static void on_error(struct ngw_plugin *self, const char *source, const char *error)
{
}

static void on_emit(struct ngw_plugin *self, const char *from, const char *topic, const char *json)
{
}

static char *stats_json(struct ngw_plugin *self)
{
	return strdup("{\"minor\":0}");
}

static const struct ngw_plugin_desc desc = {
    .abi = (uint32_t)NGW_PLUGIN_ABI_MAJOR << 16, /* minor 0 */
    .name = "oldminor",
    .description = "a plugin of plugin ABI minor 0 (tests)",
    .version = "0",
    .configure = configure,
    .on_error = on_error,
    .on_emit = on_emit,
    .stats_json = stats_json,
};

const struct ngw_plugin_desc *notegw_plugin_describe(void)
{
	static const struct ngw_plugin_desc *placed;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *region;

	if (placed)
		return placed;
	region = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		return NULL;
	memcpy(region + page - DESC_END, &desc, DESC_END);
	if (mprotect(region, page, PROT_READ) < 0 || mprotect(region + page, page, PROT_NONE) < 0)
		return NULL;
	placed = (const struct ngw_plugin_desc *)(void *)(region + page - DESC_END);
	return placed;
}
