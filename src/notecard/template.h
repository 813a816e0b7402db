/* Note templates (note.template): the type hints a Notecard stores notes by, learned
 * from sample bodies or read from a file; whether a body fits them; what a note costs
 * on the air with and without one; and the per-notefile policy (learn, fit, re-learn).
 * Pure logic: no card, no store — the link glue (link_tmpl.c) does the talking. */
#ifndef NOTEGW_NOTECARD_TEMPLATE_H
#define NOTEGW_NOTECARD_TEMPLATE_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Satellite (Starnote / NTN) limits. Blues: every note sent over NTN must belong to a
 * templated notefile, and the template must be "compact" and carry a `port`
 * (dev.blues.io/starnote/satellite-best-practices, "Optimize Use of Compact
 * Templates"; notecard-schema note.template.req: format "compact ... is required for
 * Notecard LoRa and a Notecard paired with Starnote", port "an integer in the range
 * 1-100 ... required ... with Starnote"). Blues puts a Starnote note's payload in the
 * 50-256 byte range (R. Lauer, "Two-way satellite messaging with Blues Starnote",
 * hackster.io): 256 bytes a note on the air is the limit enforced here (confirm on
 * hardware). */
#define TMPL_NTN_MAX_BYTES 256
#define TMPL_PORT_MIN      1
#define TMPL_PORT_MAX      100
/* A template without format "compact" also carries the note's time and location:
 * counted as 16 bytes, the simulator's estimate (the card does not document it). */
#define TMPL_META_BYTES 16
/* Bounds on what is templated: fields a body, length of one string field. */
#define TMPL_MAX_FIELDS 64
#define TMPL_MAX_STRING 1024
/* The link's "_id" ("<gateway_id>:<seq>", docs/store.md) in a templated note: two
 * 4-byte unsigned integer slots instead of a 29-byte string, "_gw" = the number the
 * gateway_id's first 8 hex digits spell and "_seq" = seq; docs/store.md says how a
 * receiver rebuilds its dedup key from them. A seq past UINT32_MAX (4.29e9 notes:
 * 136 years at one a second) keeps the string "_id", misfits and goes plain:
 * never a wrong id. */
#define TMPL_ID_GW    "_gw"
#define TMPL_ID_SEQ   "_seq"
#define TMPL_ID_HINT  24 /* 4-byte unsigned */
#define TMPL_ID_BYTES 8  /* both slots, on the air */

/* Replace body's "_id" by "_gw" and "_seq" as above: 1 when replaced; 0 when body
 * has no "_id", or one of another form or a seq past UINT32_MAX (left unchanged);
 * -ENOMEM (body unchanged). */
int tmpl_id_compact(json_t *body);
/* Give hints the two id slots (replacing an "_id" hint). 0 or -ENOMEM. */
int tmpl_id_hints(json_t *hints);

/* ---- hints ------------------------------------------------------------------- */
/* Is hints a template body the card accepts and this module understands: a flat
 * object of at most TMPL_MAX_FIELDS fields, each true (bool), an integer hint
 * 11/12/13/14/18/21/22/23/24, a float hint 12.1/14.1/18.1, or a string of digits
 * "N" (1..TMPL_MAX_STRING: at most N bytes)? 0, or -EINVAL with err filled. */
int tmpl_hints_check(const json_t *hints, char *err, size_t errlen);
/* Read and check a template file (a JSON object of hints, at most 64 KiB). *hints
 * caller decrefs. 0, or -errno / -EINVAL with err filled ("PATH: why"). */
int tmpl_load_file(const char *path, json_t **hints, char *err, size_t errlen);
/* Does body fit hints: the same fields (hints' card keywords _lat/_lon/_ltime/_time
 * aside), each value of the hinted type and in its range, strings not longer than
 * hinted? why (may be NULL) says the first misfit. */
bool tmpl_fits(const json_t *hints, const json_t *body, char *why, size_t whylen);
/* Bytes of one templated record (fixed part; metadata unless compact). */
size_t tmpl_record_size(const json_t *hints, bool compact);
/* Bytes of a note on the air: JSON (the compact body text plus payload bytes), and
 * templated (record plus payload) for a body that fits. */
size_t tmpl_json_size(const json_t *body, size_t payload_len);
size_t tmpl_air_size(const json_t *hints, bool compact, size_t payload_len);
/* The fewest bytes body could take in any compact template (each field in its
 * smallest type, strings their own length), plus the payload; SIZE_MAX when the
 * body cannot be templated at all (arrays, objects, null, too many fields). */
size_t tmpl_min_size(const json_t *body, size_t payload_len);
/* The note.template request registering hints for file (hints NULL: clear the
 * template). compact adds format "compact"; port > 0 adds port. New reference. */
json_t *tmpl_request(const char *file, const json_t *hints, bool compact, int port);

/* ---- learning ---------------------------------------------------------------- */
struct tmpl_learner;
struct tmpl_learner *tmpl_learner_new(void); /* caller frees with tmpl_learner_free */
void tmpl_learner_free(struct tmpl_learner *lr);
void tmpl_learner_reset(struct tmpl_learner *lr);
/* Learn from one body: 0 when it agrees with the samples so far (same fields, types
 * that merge: an integer and a float make a float), 1 when it disagrees and the
 * learner started again from it, -EINVAL when it cannot be templated (not learned),
 * -ENOMEM. The id slots "_gw" and "_seq" (tmpl_id_compact) are learned like any
 * other field, but their hints hold every id (tmpl_learner_hints). */
int tmpl_learner_add(struct tmpl_learner *lr, const json_t *body);
unsigned tmpl_learner_count(const struct tmpl_learner *lr);
/* Hints for the samples so far, with headroom: integers sized for four times the
 * largest magnitude seen (unsigned when none was negative), floats 14.1 unless a
 * value needs more than 7 significant digits (then 18.1), strings half again their
 * longest length rounded up to a multiple of 4 (at least 8), "_gw" and "_seq"
 * TMPL_ID_HINT. New reference, NULL without samples or memory. */
json_t *tmpl_learner_hints(const struct tmpl_learner *lr);

/* ---- policy, one notefile ---------------------------------------------------- */
enum tmpl_mode { TMPL_OFF, TMPL_AUTO, TMPL_FILE };
/* After a misfit, this many fitting bodies in a row go plain before the template is
 * used again: two shapes interleaved in one notefile must not flip the card's
 * template (a flash write) on every note. */
#define TMPL_REFIT 3

struct tmpl_nf {
	enum tmpl_mode mode;
	unsigned learn;             /* samples to learn from; also the misfits in a row
	                             * that mean the shape changed for good */
	json_t *hints;              /* the template in force, or NULL (learning/off) */
	struct tmpl_learner *lr;    /* AUTO only: learning, or re-learning a new shape */
	struct tmpl_learner *basis; /* AUTO only: the samples t->hints came from */
	unsigned misfits;           /* in a row */
	unsigned refit;             /* fitting bodies still to go plain (TMPL_REFIT) */
	uint64_t learned;           /* how often a template was (re)learned */
	uint64_t widened;           /* how often a value past its range widened it */
};
/* Set up (hints borrowed: a reference is taken; NULL to learn). 0 or -ENOMEM;
 * tmpl_nf_clear frees. */
int tmpl_nf_init(struct tmpl_nf *t, enum tmpl_mode mode, unsigned learn, json_t *hints);
void tmpl_nf_clear(struct tmpl_nf *t);
/* How one body goes: true = templated with t->hints, false = plain. Learns while
 * there is no template; a body with the learned fields but a value out of range or
 * a longer string widens the template (AUTO); other bodies are misfits, and after
 * t->learn misfits in a row of one new shape (AUTO) the template is re-learned
 * from them. *changed says t->hints was
 * replaced (the caller persists it and registers it with the card). */
bool tmpl_nf_decide(struct tmpl_nf *t, const json_t *body, bool *changed);
#endif
