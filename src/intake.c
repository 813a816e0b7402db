/* The intake; see intake.h. One parse of the body serves the object check, the
 * satellite size limit and the compaction. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "intake.h"
#include "notecard/template.h"
#include "notegw/notefile.h"

static int check_sizes(const char *file, bool has_body, size_t payload_len, const char **why)
{
	if (ngw_notefile_check_out(file, why) < 0)
		return -EINVAL;
	if (!has_body && payload_len == 0) {
		*why = "a note needs a body or a payload";
		return -EINVAL;
	}
	if (payload_len > INTAKE_PAYLOAD_MAX) {
		*why = "payload larger than 8 KiB";
		return -EMSGSIZE;
	}
	return 0;
}

/* A satellite (ntn) notefile's notes travel only as compact templated records of at
 * most TMPL_NTN_MAX_BYTES (see notecard/template.h for the sources): a body that
 * cannot be templated, or that takes more even in the tightest template, is refused
 * here, where the producer still hears why, rather than failing on the card. */
static int check_ntn(const struct intake_rules *rules, const struct cfg_notefile *nf, json_t *body,
                     size_t payload_len, const char **why)
{
	if (!nf || !nf->ntn)
		return 0;
	json_t *o = body ? json_incref(body) : json_object();
	size_t n = tmpl_min_size(o, payload_len);
	json_decref(o);
	if (n == SIZE_MAX) {
		*why = "a satellite (ntn) notefile takes flat bodies only: numbers, strings and "
		       "booleans (its notes are sent templated)";
		return -EINVAL;
	}
	/* the link adds "_id":"<gateway_id>:<seq>" */
	const char *gid = rules->gateway_id;
	n += (gid ? strlen(gid) : 16) + 1 + TMPL_ID_SEQ_DIGITS;
	if (n > TMPL_NTN_MAX_BYTES) {
		*why = "note too big for a satellite (ntn) notefile: more than 256 bytes on the "
		       "air even templated";
		return -EMSGSIZE;
	}
	return 0;
}

/* The checks that need the parsed body, and the note made from it. measured: the
 * compact text is held to INTAKE_BODY_MAX (the text path held the producer's own
 * text to it before parsing). */
static int prepare(const struct intake_rules *rules, const char *file, json_t *body,
                   size_t payload_len, bool measured, struct intake_note *out, const char **why)
{
	const struct cfg_notefile *nf = rules->cfg ? cfg_notefile(rules->cfg, file) : NULL;
	int r = check_ntn(rules, nf, body, payload_len, why);
	if (r < 0)
		return r;
	if (body && !(out->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
		*why = "out of memory";
		return -ENOMEM;
	}
	if (measured && out->body && strlen(out->body) > INTAKE_BODY_MAX) {
		intake_note_clear(out);
		*why = "body larger than 8 KiB";
		return -EMSGSIZE;
	}
	out->prio = nf && nf->urgent ? 1 : 0;
	return 0;
}

int intake_prepare_obj(const struct intake_rules *rules, const char *file, json_t *body,
                       size_t payload_len, struct intake_note *out, const char **why)
{
	*out = (struct intake_note){0};
	int r = check_sizes(file, body != NULL, payload_len, why);
	if (r < 0)
		return r;
	if (body && !json_is_object(body)) {
		*why = "body is not a JSON object";
		return -EINVAL;
	}
	return prepare(rules, file, body, payload_len, true, out, why);
}

int intake_prepare(const struct intake_rules *rules, const char *file, const char *body,
                   size_t payload_len, struct intake_note *out, const char **why)
{
	*out = (struct intake_note){0};
	int r = check_sizes(file, body != NULL, payload_len, why);
	if (r < 0)
		return r;
	if (!body)
		return prepare(rules, file, NULL, payload_len, false, out, why);
	if (strlen(body) > INTAKE_BODY_MAX) {
		*why = "body larger than 8 KiB";
		return -EMSGSIZE;
	}
	json_error_t e;
	json_t *o = json_loads(body, JSON_REJECT_DUPLICATES, &e);
	if (!json_is_object(o)) {
		*why = o ? "body is not a JSON object" : "body is not valid JSON";
		json_decref(o);
		return -EINVAL;
	}
	r = prepare(rules, file, o, payload_len, false, out, why);
	json_decref(o);
	return r;
}

void intake_note_clear(struct intake_note *n)
{
	free(n->body);
	*n = (struct intake_note){0};
}
