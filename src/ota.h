/* Host software updates through the Notecard (dfu.status / dfu.get): download in
 * chunks into a spool file that survives restarts, check the card's MD5, verify the
 * signature against the trusted keys, and hand the image to the privileged
 * installer (notegw-update.path watches the spool). Runs on the main loop and
 * reaches the card through link_request, one request at a time. */
#ifndef NOTEGW_OTA_H
#define NOTEGW_OTA_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct link;
struct ota;
struct store;

struct ota_opts {
	const char *spool_dir;    /* e.g. /var/lib/notegw/update (created 0700) */
	const char *trusted_dir;  /* /etc/notegw/trusted-update-keys           */
	uint64_t interval_ms;     /* how often to ask dfu.status               */
	unsigned chunk;           /* bytes per dfu.get (≤ 8192)                 */
	bool auto_apply;          /* hand a verified image over at once        */
};

/* loop, store and link are borrowed until ota_free. */
int ota_new(sd_event *loop, struct store *store, struct link *link, const struct ota_opts *o,
            struct ota **out);
void ota_free(struct ota *o);
json_t *ota_status(struct ota *o);   /* caller decrefs */
void ota_check(struct ota *o);       /* ask the card now */
int ota_apply(struct ota *o, const char **why); /* hand a verified image over */
#endif
