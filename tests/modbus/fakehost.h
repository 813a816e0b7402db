/* A stand-in for the daemon's side of the plugin ABI, for the Modbus tests: an INI
 * reader with the same key-table binding rules as the daemon's config (unknown keys
 * are errors, FILE:LINE messages), and note_put/emit/inbound_done that print one
 * JSON line each on stdout (or record them for unit tests). */
#ifndef NOTEGW_TEST_FAKEHOST_H
#define NOTEGW_TEST_FAKEHOST_H
#include <stdio.h>

#include "notegw/plugin.h"

struct fakehost {
	struct ngw_plugin plugin;
	struct ngw_host_api api;
	sd_event *ev;
	const char *file;
	char *text; /* the config file's text, owned */
	int errors; /* cfg_error count                */
	char last_error[512];
	FILE *out;    /* where events go (NULL = nowhere) */
	char *status; /* status_json's answer, owned    */
	int notes, emits, dones;
};

/* Load a config file (or text when file is NULL) into h. 0 or -errno. */
int fakehost_init(struct fakehost *h, const char *file, const char *text, sd_event *ev);
void fakehost_fini(struct fakehost *h);
/* Read the config file again (after the test rewrote it). */
int fakehost_reread(struct fakehost *h);
#endif
