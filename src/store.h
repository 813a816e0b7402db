/* The store: a crash-safe SQLite queue between every producer and the Notecard
 * (outbound) and between the Notecard and every consumer plugin (inbound), plus the
 * audit log and small durable state (key/value). One struct store per connection;
 * the main loop and the link thread each open their own, and a connection is used
 * by one thread only. Durability rules are in the comment atop store.c. */
#ifndef NOTEGW_STORE_H
#define NOTEGW_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum store_when_full { STORE_DROP_OLDEST, STORE_REFUSE_NEW };

#define STORE_SCHEMA_VERSION 3

struct store_opts {
	uint64_t max_size; /* bytes of queued note data; 0 = unlimited */
	int when_full;     /* enum store_when_full */
	bool readonly;
	int busy_timeout_ms; /* wait for another connection's lock; 0 = 5000 */
	/* The start-up quick check reads the whole file. Above this size it skips the
	 * outbound queue's table (the part that grows) so a restart with a long backlog
	 * starts draining at once; 0 = STORE_FULL_CHECK_MAX. */
	uint64_t full_check_max;
};
#define STORE_FULL_CHECK_MAX (64ull << 20)

/* Open (create, quick-check, migrate) the store at path; opts may be NULL. A corrupt
 * file (or one that is not a database; see full_check_max) is moved aside as
 * path.corrupt-<unixtime> (with its -wal) and a fresh one started, logged with log_err. I/O errors
 * are returned, never taken for corruption. Returns 0 and *out (caller closes with store_close), or
 * -ENOENT, -EACCES, -EBUSY, -EIO, -EAGAIN (disk full), -EPROTONOSUPPORT (a schema newer than
 * this program). A writable store keeps a disk reserve beside it, <path>.reserve (store_reserve.c).
 * In a setgid directory that its group may write, the store's files (this process's
 * own) are given the directory's group and mode 0660: a store shared between users. */
int store_open(const char *path, const struct store_opts *opts, struct store **out);
void store_close(struct store *st); /* rolls back an open transaction; NULL ok */
/* Move the store at from (with its -wal) to to, which must be on the same file
 * system; nothing is done when to exists or from does not. No connection may be
 * open on either. Returns 1 when moved, 0 when there was nothing to do, or -errno
 * (logged). */
int store_adopt(const char *from, const char *to);
/* Re-queue the outbound notes still readable from the store file at from (one moved
 * aside as corrupt, say), each with its own seq when from has this store's gateway
 * id. Once per file: -EALREADY after that. *n gets the number re-queued. Returns 0
 * or -errno (logged). store_open does this by itself for a file it moves aside. */
int store_salvage(struct store *st, const char *from, int64_t *n);
/* How often damage was found at open (a missing or empty database, a lost or
 * damaged WAL, a corrupt file moved aside) and the last time's
 * "<unixtime> <what>" (*last malloc'd, caller frees; NULL when never). 0 or -errno. */
int store_damage(struct store *st, int64_t *count, char **last);
int store_schema_version(struct store *st);
/* A random id (16 hex digits) made when the store was created: with a note's seq it
 * names the note ("<gateway_id>:<seq>"). Borrowed until store_close. */
const char *store_gateway_id(struct store *st);
/* Change max_size / when_full (after a config reload). */
void store_set_limits(struct store *st, uint64_t max_size, int when_full);

/* ---- outbound ------------------------------------------------------------------ */
struct store_out {
	int64_t id;  /* row id */
	int64_t seq; /* gateway sequence number (stable across retries) */
	char *file;
	char *body;    /* compact JSON object text or NULL */
	void *payload; /* raw bytes or NULL */
	size_t payload_len;
	int prio;           /* 0 normal, higher first (urgent); negative counts as 0 */
	int64_t created_ms; /* CLOCK_REALTIME */
	int64_t attempts;   /* failed attempts so far */
};
void store_out_free(struct store_out *n); /* frees fields and n; NULL ok */

/* Group commit: begin/commit around many enqueues. store_enqueue outside a batch
 * commits by itself. After store_commit() returns 0, everything enqueued since
 * store_begin() is durable; on error none of it is accepted (the transaction is
 * rolled back; caller reports "not accepted"). After an error that dooms the
 * transaction (disk full, I/O), later calls inside it return the same error and
 * store_commit returns it too. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);
bool store_in_txn(struct store *st);
/* Queue one note (nothing is kept of the arguments). Returns 0, -ENOSPC (full with
 * refuse-new, or a note larger than max_size: a refusal), -EAGAIN (the disk is full:
 * not a refusal, try again later; refused before writing while the disk reserve is
 * released), -EINVAL (not an outbound
 * notefile name, or payload_len without payload), -EBUSY, -EIO. *seq_out (may be NULL) gets its
 * sequence. With drop-oldest the oldest notes are deleted (counted, logged) to make room. */
int store_enqueue(struct store *st, const char *file, const char *body, const void *payload,
                  size_t payload_len, int prio, int64_t *seq_out);
/* The same, once per key: a producer whose source may hand it the same note again
 * (an MQTT broker redelivering a message the gateway committed but whose PUBACK was
 * lost) gives a key (at most STORE_KEY_MAX bytes) naming that delivery. When the key
 * was committed before, nothing is queued and 1 is returned; otherwise the note and
 * the key are committed together (0). Keys are kept with the note's seq and forgotten
 * once STORE_SEEN_KEEP later notes were accepted (checked every 256 notes). */
#define STORE_SEEN_KEEP 32768
#define STORE_KEY_MAX   256
int store_enqueue_once(struct store *st, const void *key, size_t key_len, const char *file,
                       const char *body, const void *payload, size_t payload_len, int prio,
                       int64_t *seq_out);
/* Would a note of `bytes` (as store_note_bytes counts) be refused now, with `pending`
 * bytes of other notes on their way in (a batch)? 0 or -ENOSPC (refuse-new and no
 * room, or the note alone is larger than max_size). A read. */
int store_check_room(struct store *st, uint64_t pending, uint64_t bytes);
/* How many bytes of max_size a note takes. */
uint64_t store_note_bytes(const char *file, const char *body, size_t payload_len);
/* The next note to hand to the card: highest prio, then oldest. *out = NULL if none.
 * Caller frees with store_out_free. Returns 0 (found or not) or negative errno. */
int store_peek_out(struct store *st, struct store_out **out);
/* Up to max next notes in the same order. *out is a malloc'd array of *n notes;
 * caller frees each with store_out_free and the array with free(). */
int store_peek_outs(struct store *st, size_t max, struct store_out ***out, size_t *n);
/* Mark sent (the card accepted note.add): removes it. 0 also if already gone
 * (dropped meanwhile). */
int store_out_sent(struct store *st, int64_t id);
/* Mark sent later: the note is skipped by peeks from now on and removed by the
 * next store_out_commit_marks (or store_close), so many marks share one commit.
 * A crash before that commit sends the note again (with its seq, so its _id).
 * 0 or -ENOMEM. */
int store_out_sent_later(struct store *st, int64_t id);
/* Commit every mark store_out_sent_later recorded, in one transaction. On an error
 * they stay recorded, to be committed by a later call. 0 or -errno. */
int store_out_commit_marks(struct store *st);
/* How many marks wait for store_out_commit_marks. */
size_t store_out_marks(const struct store *st);
/* Record a failed attempt (kept; counted; why may be NULL). */
int store_out_failed(struct store *st, int64_t id, const char *why);
/* Did the last write of this connection meet a full disk (and no commit succeed
 * since)? */
bool store_is_disk_full(struct store *st);
/* Copy the WAL into the database and truncate it to nothing (wal_checkpoint(TRUNCATE),
 * waiting at most 200 ms for other connections): on a disk the WAL filled, this is what
 * gives space back. Not inside a transaction. 0, -EBUSY (another connection kept part
 * of the WAL), -EAGAIN (no room to copy it yet) or -errno. */
int store_checkpoint(struct store *st);

/* ---- inbound ------------------------------------------------------------------- */
struct store_in {
	int64_t id;
	char *file;
	char *note;    /* note id, may be NULL */
	char *body;    /* may be NULL */
	char *payload; /* base64 text, may be NULL */
	int64_t time;
};
void store_in_free(struct store_in *n); /* NULL ok */
/* Commit an inbound note (before it is deleted from the card). A duplicate
 * (same file, note id, time, body and payload) is recognised: returns 1, stores
 * nothing and *id_out is the first copy's id. 0 when stored; negative errno.
 * Queue notes (.qi) have no note id: two identical ones within the same second of
 * `time` are taken for one. */
int store_inbound_add(struct store *st, const char *file, const char *note, const char *body,
                      const char *payload, int64_t time, int64_t *id_out);
#define STORE_INBOUND_BATCH 64
/* Undelivered inbound notes for a registered consumer, oldest first, id > after_id,
 * at most STORE_INBOUND_BATCH (call again after the last id for more). *out is a
 * malloc'd array of *n; caller frees with store_in_list_free. -ENOENT if the consumer
 * is not registered. */
int store_inbound_pending(struct store *st, const char *consumer, int64_t after_id,
                          struct store_in ***out, size_t *n);
void store_in_list_free(struct store_in **v, size_t n);
/* The consumer has it (after its own acknowledgment). Idempotent. */
int store_inbound_done(struct store *st, const char *consumer, int64_t id);
/* Register a consumer so that notes are kept until it has them; it is offered every
 * inbound note the store still holds. Idempotent. */
int store_consumer_add(struct store *st, const char *consumer);
/* Forget inbound notes every consumer has and that arrived before older_than_ms
 * (CLOCK_REALTIME); keep them long enough to recognise a card's duplicate. Writes
 * only when something goes. Returns the number removed or a negative errno. */
int store_inbound_prune(struct store *st, int64_t older_than_ms);

/* ---- stats --------------------------------------------------------------------- */
struct store_file_stats {
	char *file;
	int64_t count;
	int64_t bytes;
	int64_t oldest_ms;
};
struct store_stats {
	int64_t queued, bytes, oldest_ms; /* oldest_ms 0 when empty */
	int64_t dropped, sent;            /* persistent counters */
	int64_t refused;                  /* refusals by this connection */
	int64_t inbound, inbound_pending; /* held; not yet had by every consumer */
	uint64_t bytes_written;           /* approx bytes this connection wrote (WAL frames) */
};
int store_stats(struct store *st, struct store_stats *out);
/* Per-notefile queue, oldest first. Caller frees with store_file_stats_free. */
int store_queue(struct store *st, struct store_file_stats **out, size_t *n);
void store_file_stats_free(struct store_file_stats *v, size_t n);

/* ---- audit and durable key/value ------------------------------------------------ */
/* Append to the audit log (the newest STORE_AUDIT_KEEP rows are kept). */
#define STORE_AUDIT_KEEP 10000
int store_audit(struct store *st, const char *actor, const char *action, const char *detail);
struct store_audit_row {
	int64_t time_ms;
	char *actor, *action, *detail;
};
/* Newest first, at most limit rows. Caller frees with store_audit_free. */
int store_audit_list(struct store *st, int64_t limit, struct store_audit_row **out, size_t *n);
void store_audit_free(struct store_audit_row *v, size_t n);
/* Set a value; writes nothing when it is unchanged. */
int store_kv_set(struct store *st, const char *key, const char *value);
/* *value is malloc'd (caller frees); -ENOENT if unset. */
int store_kv_get(struct store *st, const char *key, char **value);
int store_kv_del(struct store *st, const char *key);
#endif
