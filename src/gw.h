/* The daemon's single context, passed down explicitly. */
#ifndef NOTEGW_GW_H
#define NOTEGW_GW_H
#include <stdbool.h>
#include <systemd/sd-event.h>

struct cfg;
struct store;
struct link;
struct control;
struct plugins;
struct batch;
struct crypto_key;
struct ota;
struct metrics;
struct chrony;

#define GW_CONSUMERS_MAX 16

struct gw_offered {
	char name[64];     /* a plugin consuming inbound notes */
	int64_t last;      /* the last inbound row offered to it this run */
};

struct gw {
	sd_event *loop;
	struct cfg *cfg;
	const char *config_file;
	char *store_path_cfg;      /* [store] path as configured at start (may differ from cfg's) */
	struct store *store;       /* main-thread connection */
	struct batch *batch;       /* group commit of producers' notes */
	struct link *link;
	struct control *control;
	struct plugins *plugins;
	struct crypto_key *crypto_priv; /* downlink key, or NULL */
	struct ota *ota;                /* host updates, or NULL */
	struct metrics *metrics;        /* textfile, or NULL */
	struct chrony *clock;           /* the card's time, to status and chrony */
	bool foreground;
	bool stopping;
	uint64_t started_ms;
	uint64_t reloads;
	struct gw_offered offered[GW_CONSUMERS_MAX];
};

/* Queue a note from a producer (CLI, plugin) via group commit; cb after commit.
 * actor names the producer for refusals ("mqtt", "cli"). Returns 0 or <0 with *why. */
typedef void (*gw_put_cb)(void *ud, int err, const char *why);
int gw_note_put(struct gw *gw, const char *actor, const char *file, const char *body,
                const void *payload, size_t payload_len, gw_put_cb cb, void *ud,
                const char **why);
int gw_note_put_sync(struct gw *gw, const char *actor, const char *file, const char *body,
                     const void *payload, size_t payload_len, const char **why);
/* Check a notefile name and body as any producer's input must be. 0 or -EINVAL
 * with *why a static reason. */
int gw_note_validate(const char *file, const char *body, size_t payload_len, const char **why);
/* Daemon status (caller decrefs) and as JSON text (caller frees). */
#include <jansson.h>
json_t *gw_status(struct gw *gw);
char *gw_status_json(struct gw *gw);
/* Offer inbound notes not yet offered this run to every consuming plugin. */
void gw_deliver_inbound(struct gw *gw);
/* Offer a consumer all its pending inbound notes again at the next delivery (its
 * instance was replaced: a reload). */
void gw_inbound_reoffer(struct gw *gw, const char *consumer);
/* Re-read the configuration (SIGHUP): 0, or <0 keeping the old one. */
int gw_reload(struct gw *gw);
#endif
