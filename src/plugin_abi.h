/* The rule for growing the plugin ABI, applied where a plugin is loaded. */
#ifndef NOTEGW_PLUGIN_ABI_H
#define NOTEGW_PLUGIN_ABI_H
#include <stddef.h>

#include "notegw/plugin.h"

/* Copy a plugin's descriptor into dst (the host's full-size struct), reading only the
 * fields its ABI minor has: a field appended in minor N is read only from a plugin of
 * minor >= N, and stays zero (absent) for an older one. Nothing is read before the
 * abi word is checked. Returns 0, or -EPROTO with *why (static) for another major or a
 * newer minor than this host knows. src is borrowed for the call. */
int plugin_abi_adopt(const struct ngw_plugin_desc *src, struct ngw_plugin_desc *dst,
                     const char **why);
/* The same against a given table: ends[m] is where minor m's descriptor ends (bytes,
 * at most sizeof(*dst)), for m < n_ends. For the tests, which play a newer host. */
int plugin_abi_adopt_ends(const struct ngw_plugin_desc *src, const size_t *ends, size_t n_ends,
                          struct ngw_plugin_desc *dst, const char **why);
#endif
