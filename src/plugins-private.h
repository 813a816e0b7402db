/* What the plugin loader (plugins.c) and the host API it hands plugins
 * (plugin_host.c) share: a loaded plugin as the daemon keeps it. */
#ifndef NOTEGW_PLUGINS_PRIVATE_H
#define NOTEGW_PLUGINS_PRIVATE_H
#include <stddef.h>

#include "plugins.h"

#define MAX_PLUGINS 32

enum plugin_state { P_LOADED, P_CONFIGURED, P_DISABLED, P_RUNNING, P_FAILED, P_STOPPED };

struct plugin {
	struct ngw_plugin pub; /* first: the host API casts back */
	struct plugins *owner;
	void *dl;
	const struct ngw_plugin_desc *desc; /* &desc_copy */
	struct ngw_plugin_desc desc_copy;   /* the fields the plugin's ABI minor has */
	char *path;
	char name[64]; /* kept after an unload, for status */
	enum plugin_state state;
	struct cfg_diag *diag; /* where configure() reports, set while it runs */
	const struct cfg_doc *doc;
};

struct plugins {
	const struct plugin_env *env;
	struct plugin *v[MAX_PLUGINS];
	size_t n;
};

/* The API every plugin is handed (plugin_host.c). */
extern const struct ngw_host_api plugin_host_api;
#endif
