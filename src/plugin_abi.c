/* plugin_abi.c: which part of a plugin's descriptor the host may read. The plugin owns
 * struct ngw_plugin_desc (it is the plugin's static data), so a plugin built against
 * an older minor has a shorter struct: the host copies just that much and treats the
 * rest as absent callbacks, instead of reading past the plugin's struct. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "plugin_abi.h"

#define END_OF(field)                                                                              \
	(offsetof(struct ngw_plugin_desc, field) + sizeof(((struct ngw_plugin_desc *)0)->field))

/* Where each minor's descriptor ends. A minor that appends a field to the descriptor
 * adds its row here (and bumps NGW_PLUGIN_ABI_MINOR); the rows never change. */
static const size_t desc_end[NGW_PLUGIN_ABI_MINOR + 1] = {
    [0] = END_OF(stats_json),
    [1] = END_OF(stats_json), /* minor 1 appended to the host API only */
    [2] = END_OF(stats_json), /* minor 2 too (gateway_id, note_put_json, note_flush) */
};
_Static_assert(END_OF(stats_json) == sizeof(struct ngw_plugin_desc),
               "a field was appended to struct ngw_plugin_desc: give its minor a row in "
               "desc_end[] and bump NGW_PLUGIN_ABI_MINOR");

int plugin_abi_adopt_ends(const struct ngw_plugin_desc *src, const size_t *ends, size_t n_ends,
                          struct ngw_plugin_desc *dst, const char **why)
{
	uint32_t abi;

	memset(dst, 0, sizeof(*dst));
	memcpy(&abi, src, sizeof(abi)); /* the first field in every version */
	if (abi >> 16 != NGW_PLUGIN_ABI_MAJOR) {
		*why = "built for another plugin ABI major";
		return -EPROTO;
	}
	if ((abi & 0xffff) >= n_ends) {
		*why = "built for a newer plugin ABI minor than this notegwd speaks";
		return -EPROTO;
	}
	memcpy(dst, src, ends[abi & 0xffff]);
	return 0;
}

int plugin_abi_adopt(const struct ngw_plugin_desc *src, struct ngw_plugin_desc *dst,
                     const char **why)
{
	return plugin_abi_adopt_ends(src, desc_end, sizeof(desc_end) / sizeof(desc_end[0]), dst,
	                             why);
}
