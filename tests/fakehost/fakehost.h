/* The one stand-in for the daemon's side of the plugin ABI, for the plugin tests
 * (tests/modbus/mbhost, tests/unit/mqtt_fakehost, the Modbus unit tests). The config
 * half is the daemon's own: the document reader (src/cfg_doc.c) and the binder
 * (src/cfg_bind.c), so a config accepted here is one the daemon accepts and every
 * message is the daemon's FILE:LINE message. Only what lies below the plugin is fake:
 * by default note_put, emit and inbound_done print one JSON line each on `out` (or
 * only count), status_json answers `status`, and there is no card (card_request is
 * NULL). A test host may replace those entries of `api` after fakehost_init. */
#ifndef NOTEGW_TEST_FAKEHOST_H
#define NOTEGW_TEST_FAKEHOST_H
#include <stdio.h>

#include "notegw/plugin.h"

struct cfg_doc;

struct fakehost {
	struct ngw_plugin plugin;
	struct ngw_host_api api;
	sd_event *ev;
	const char *name;      /* the plugin's name, in front of its log lines      */
	int log_max;           /* log levels above it are dropped (LOG_INFO)        */
	const char *file;      /* borrowed from the caller; "test.conf" for text      */
	struct cfg_doc *doc;   /* the current config, parsed by the daemon's reader   */
	struct cfg_doc **olds; /* earlier configs: section names stay valid until fini */
	size_t n_olds;
	int errors;           /* config problems reported so far (reader + binder)   */
	char last_error[512]; /* the latest one, "FILE:LINE: ..."                    */
	FILE *out;            /* where events go (NULL = nowhere)                     */
	char *status;         /* status_json's answer, owned                          */
	int notes, emits, dones;
};

/* Load a config file (or text when file is NULL) into h. 0 or -errno; syntax errors
 * are counted in h->errors, not refused, so a test can look at them. */
int fakehost_init(struct fakehost *h, const char *file, const char *text, sd_event *ev);
void fakehost_fini(struct fakehost *h);
/* Read the config file again (after the test rewrote it). */
int fakehost_reread(struct fakehost *h);
#endif
