/* Inbound delivery: notes the link committed to the store, offered to every plugin
 * that consumes them, sealed ones opened first with our private key. Each consumer
 * marks its own delivery (host API inbound_done) once its peer has the note. */
#ifndef NOTEGW_DELIVERY_H
#define NOTEGW_DELIVERY_H
#include <stdint.h>

struct store;
struct plugins;
struct crypto_key;

#define DELIVERY_CONSUMERS_MAX 16

/* The last inbound row offered to one consumer this run. */
struct delivery_offered {
	char name[64];
	int64_t last;
};

/* Start from a zeroed struct; the lifecycle sets the collaborators (borrowed). */
struct delivery {
	struct store *store;
	struct plugins *plugins;
	const struct crypto_key *key; /* downlink key, or NULL: envelopes pass as they are */
	struct delivery_offered offered[DELIVERY_CONSUMERS_MAX];
};

/* Offer inbound notes not yet offered this run to every consuming plugin. */
void delivery_run(struct delivery *d);
/* Offer a consumer all its pending inbound notes again at the next run (its
 * instance was replaced: a reload). */
void delivery_reoffer(struct delivery *d, const char *consumer);
#endif
