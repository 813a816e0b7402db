/* The daemon's door for producers' notes (plugins through the host API, the CLI's
 * send): the intake (intake.h), then group commit (submit_note) or a commit of its
 * own (submit_note_sync), then the link is woken to send. */
#ifndef NOTEGW_SUBMIT_H
#define NOTEGW_SUBMIT_H
#include <jansson.h>
#include <stddef.h>

#include "notegw/plugin.h"

struct cfg;
struct store;
struct batch;
struct link;

/* The collaborators a note passes, all borrowed; the lifecycle fills them in as it
 * opens them and points cfg at the running configuration after a reload. */
struct submit {
	const struct cfg *cfg;
	struct store *store;
	struct batch *batch;
	struct link *link; /* NULL until the link runs */
};

/* Queue a note through group commit; cb (the plugin API's shape) runs on the loop
 * after the note's commit (err 0) or refusal (err < 0, why). actor names the producer
 * in the log ("mqtt", "cli"). 0, or <0 with *why a static reason (cb never runs). */
int submit_note(const struct submit *s, const char *actor, const char *file, const char *body,
                const void *payload, size_t payload_len, ngw_put_cb cb, void *ud, const char **why);
/* submit_note for a delivery the producer may repeat, named by key (copied): see
 * batch_put_once. */
int submit_note_once(const struct submit *s, const char *actor, const void *key, size_t key_len,
                     const char *file, const char *body, const void *payload, size_t payload_len,
                     ngw_put_cb cb, void *ud, const char **why);
/* The same for a body a producer has already parsed (borrowed; NULL for none): it
 * is not parsed again. */
int submit_note_obj(const struct submit *s, const char *actor, const char *file, json_t *body,
                    const void *payload, size_t payload_len, ngw_put_cb cb, void *ud,
                    const char **why);
/* submit_note_obj with a delivery key as submit_note_once (NULL: none). */
int submit_note_obj_once(const struct submit *s, const char *actor, const void *key, size_t key_len,
                         const char *file, json_t *body, const void *payload, size_t payload_len,
                         ngw_put_cb cb, void *ud, const char **why);
/* Commit what the group commit holds now; its callbacks run before it returns. */
void submit_flush(const struct submit *s);
/* The same, durable in the store before it returns 0. */
int submit_note_sync(const struct submit *s, const char *actor, const char *file, const char *body,
                     const void *payload, size_t payload_len, const char **why);
#endif
