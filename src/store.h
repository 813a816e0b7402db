/* The store: a crash-safe SQLite queue between every producer and the Notecard
 * (outbound) and between the Notecard and every consumer plugin (inbound), plus the
 * audit log and small durable state (key/value). One struct store per connection;
 * the main loop and the link thread each open their own. */
#ifndef NOTEGW_STORE_H
#define NOTEGW_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum store_when_full { STORE_DROP_OLDEST, STORE_REFUSE_NEW };

struct store_opts {
	uint64_t max_size;      /* bytes of queued note data; 0 = unlimited */
	int when_full;          /* enum store_when_full */
	bool readonly;
};

/* Open (create, migrate, quick-check) the store at path. A corrupt file is moved
 * aside as path.corrupt-<time> and a fresh one started (logged loudly).
 * Returns 0 and *out, or a negative errno. */
int store_open(const char *path, const struct store_opts *opts, struct store **out);
void store_close(struct store *st);
int store_schema_version(struct store *st);
/* A random id made when the store was created: with a note's seq it names the note. */
const char *store_gateway_id(struct store *st);

/* ---- outbound ------------------------------------------------------------------ */
struct store_out {
	int64_t id;             /* row id */
	int64_t seq;            /* gateway sequence number (stable across retries) */
	char *file;
	char *body;             /* compact JSON object text or NULL */
	void *payload;          /* raw bytes or NULL */
	size_t payload_len;
	int prio;               /* higher first */
	int64_t created_ms;
};
void store_out_free(struct store_out *n); /* frees fields and n */

/* Group commit: begin/commit around many enqueues. store_enqueue outside a batch
 * commits by itself. After store_commit() returns 0, everything enqueued since
 * store_begin() is durable; on error none of it is (caller reports "not accepted"). */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);
/* Queue one note. Returns 0, -ENOSPC (full with refuse-new, or disk full),
 * -EINVAL (bad notefile/body), -EIO. *seq_out (may be NULL) gets its sequence. */
int store_enqueue(struct store *st, const char *file, const char *body, const void *payload,
                  size_t payload_len, int prio, int64_t *seq_out);
/* The next note to hand to the card: highest prio, then oldest. NULL if none.
 * Caller frees with store_out_free. Returns 0 (found or not) or negative errno. */
int store_peek_out(struct store *st, struct store_out **out);
/* Mark sent (the card accepted note.add): removes it. */
int store_out_sent(struct store *st, int64_t id);
/* Record a failed attempt (kept; counted). */
int store_out_failed(struct store *st, int64_t id, const char *why);

/* ---- inbound ------------------------------------------------------------------- */
struct store_in {
	int64_t id;
	char *file;
	char *note;             /* note id, may be NULL */
	char *body;
	char *payload;          /* base64 text */
	int64_t time;
};
void store_in_free(struct store_in *n);
/* Commit an inbound note (before it is deleted from the card). A duplicate
 * (same file, note id, time and body) is recognised: returns 1 and stores nothing. */
int store_inbound_add(struct store *st, const char *file, const char *note, const char *body,
                      const char *payload, int64_t time, int64_t *id_out);
/* Undelivered inbound notes for a consumer, oldest first, after after_id. */
int store_inbound_pending(struct store *st, const char *consumer, int64_t after_id,
                          struct store_in ***out, size_t *n);
int store_inbound_done(struct store *st, const char *consumer, int64_t id);
/* Register a consumer so that notes are kept until it has them. */
int store_consumer_add(struct store *st, const char *consumer);

/* ---- stats --------------------------------------------------------------------- */
struct store_file_stats {
	char *file;
	int64_t count;
	int64_t bytes;
	int64_t oldest_ms;
};
struct store_stats {
	int64_t queued, bytes, oldest_ms;
	int64_t dropped, refused, sent, inbound, inbound_pending;
	uint64_t bytes_written; /* approx bytes committed by this process */
};
int store_stats(struct store *st, struct store_stats *out);
/* Per-notefile queue, oldest first. Caller frees with store_file_stats_free. */
int store_queue(struct store *st, struct store_file_stats **out, size_t *n);
void store_file_stats_free(struct store_file_stats *v, size_t n);

/* ---- audit and durable key/value ------------------------------------------------ */
int store_audit(struct store *st, const char *actor, const char *action, const char *detail);
struct store_audit_row { int64_t time_ms; char *actor, *action, *detail; };
int store_audit_list(struct store *st, int64_t limit, struct store_audit_row **out, size_t *n);
void store_audit_free(struct store_audit_row *v, size_t n);
int store_kv_set(struct store *st, const char *key, const char *value);
int store_kv_get(struct store *st, const char *key, char **value); /* -ENOENT if unset */
#endif
