/* The health note's body: a compact summary of the daemon's status, shaped to fit
 * the template shipped as etc/health-template.json (docs/fleet.md lists the
 * fields). Pure: the status snapshot in, the body out, for the daemon (health.c)
 * and the bench alike. */
#ifndef NOTEGW_HEALTH_NOTE_H
#define NOTEGW_HEALTH_NOTE_H
#include <jansson.h>
#include <stdint.h>

/* The body for status (status_snapshot's shape, borrowed), the free bytes of the
 * store's file system, the fleet overlay's revision and the last error (NULL: none;
 * cut to fit). New reference, or NULL on no memory. */
json_t *health_note_body(json_t *status, uint64_t disk_free, long long revision,
                         const char *last_error);
/* What a state change is made of (card state, plugin states, revision, last
 * error), as text to compare with the last note's. Caller frees. */
char *health_note_state(const json_t *body);
#endif
