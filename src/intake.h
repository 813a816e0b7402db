/* The intake: the one way a producer's note becomes what the store keeps. It
 * checks the notefile (include/notegw/notefile.h), the body (a JSON object of at
 * most 8 KiB) and the payload, refuses what a satellite (ntn) notefile could never
 * send, compacts the body to exactly the text that goes up, and gives the note its
 * priority ([notefile.X] urgent). Pure, no I/O: the daemon calls it for plugins and
 * the CLI (submit.c), and the broker plugin inside mosquitto compiles it in. */
#ifndef NOTEGW_INTAKE_H
#define NOTEGW_INTAKE_H
#include <jansson.h>
#include <stddef.h>

struct cfg;

/* The largest body a producer may queue: a Notecard note body must fit the card's
 * request buffer with room for the request around it; 8 KiB of JSON is well inside
 * what note.add accepts and what a cellular plan should carry in one note. */
#define INTAKE_BODY_MAX    (8 * 1024)
#define INTAKE_PAYLOAD_MAX (8 * 1024)

/* notegwd writes its [notefile.*] rules under this name beside the store, at every
 * start and reload; the broker plugin, which may not read notegwd's configuration,
 * judges its notes by them (docs/mqtt.md). */
#define INTAKE_RULES_FILE "notefiles.conf"

/* What the intake judges a note by. */
struct intake_rules {
	const struct cfg *cfg; /* [notefile.*] (urgent, ntn); NULL: none (borrowed) */
};

/* A note ready for the store. */
struct intake_note {
	char *body; /* compact JSON text, NULL without a body; owned: intake_note_clear */
	int prio;   /* 1 for an urgent notefile, else 0 */
};

/* Check a producer's note given as text and prepare it. 0 with *out filled, or
 * -EINVAL / -EMSGSIZE / -ENOMEM with *why a static reason (and *out empty). */
int intake_prepare(const struct intake_rules *rules, const char *file, const char *body,
                   size_t payload_len, struct intake_note *out, const char **why);
/* The same for a body already parsed (borrowed; NULL when there is none), for a
 * producer that had to parse it anyway: the body is not parsed twice. */
int intake_prepare_obj(const struct intake_rules *rules, const char *file, json_t *body,
                       size_t payload_len, struct intake_note *out, const char **why);
void intake_note_clear(struct intake_note *n);
#endif
