/* Inside the store: the connection struct and its cache of prepared statements,
 * shared by store.c (open, schema, transactions), store_out.c and store_in.c. */
#ifndef NOTEGW_STORE_PRIVATE_H
#define NOTEGW_STORE_PRIVATE_H
#include <sqlite3.h>

#include "store.h"

/* Every statement the store runs more than once, prepared on first use and kept for
 * the life of the connection. The SQL text is in store.c's table. */
enum store_q {
	Q_BEGIN,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_META_ROOM,
	Q_OUT_INSERT,
	Q_OUT_OLDEST,
	Q_OUT_DELETE,
	Q_META_DROPPED,
	Q_META_SENT,
	Q_OUT_PEEK_URGENT,
	Q_OUT_PEEK,
	Q_META_ADD,
	Q_OUT_FAILED,
	Q_STATS,
	Q_QUEUE,
	Q_IN_ADD,
	Q_IN_FIND,
	Q_IN_PENDING,
	Q_IN_DONE,
	Q_IN_PRUNE,
	Q_IN_STATS,
	Q_CONSUMER_ADD,
	Q_CONSUMER_HAS,
	Q_AUDIT_ADD,
	Q_AUDIT_TRIM,
	Q_AUDIT_LIST,
	Q_KV_SET,
	Q_KV_GET,
	Q_KV_DEL,
	Q_SEEN_FIND,
	Q_SEEN_ADD,
	Q_SEEN_TRIM,
	Q_COUNT
};

struct store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *q[Q_COUNT];
	uint64_t max_size;
	int when_full;
	bool readonly;
	bool in_txn; /* between store_begin and store_commit/rollback */
	int doomed;  /* <0: the open transaction failed; commit returns this */
	int schema_version;
	int sys_errno; /* errno after the last failed step */
	/* next_seq and q_bytes as they are inside the open write transaction (the write
	 * lock keeps other connections out), so a batch reads the meta row once; and
	 * what this transaction's inserts add to it, written once before COMMIT. */
	bool room_valid;
	int64_t room_seq, room_used;
	int64_t add_count, add_bytes;
	int page_size;
	char gateway_id[17];
	int64_t refused;     /* refusals by this connection */
	bool refusing;       /* logged "refusing"; log again when accepting */
	bool suspect;        /* met a corrupt page; <path>.suspect written */
	bool disk_full;      /* a write met a full disk; said once, until a commit succeeds */
	bool reserve_off;    /* no disk reserve can exist here (store_reserve.c) */
	bool gated;          /* producers refused for a full disk (store_reserve_gate) */
	int busy_ms;         /* the busy timeout given at open */
	uint64_t relieve_at; /* CLOCK_MONOTONIC ms: the next checkpoint on a full disk */
	uint64_t bytes_written;
	int64_t seq_limit; /* reserved in <path>.state: a higher seq reserves more first */
	bool fresh;        /* this open created the schema */
	/* notes the card took whose "sent" marks wait for store_out_commit_marks: one
	 * commit for many notes spares the disk; peeks skip them meanwhile */
	int64_t *marks;
	size_t n_marks, cap_marks;
};

/* The statement for q, reset and with bindings cleared; NULL on error (logged). */
sqlite3_stmt *store_stmt(struct store *st, enum store_q q);
/* SQLite result code to -errno (SQLITE_FULL and ENOSPC-like I/O errors: -EAGAIN,
 * after store_disk_full). */
int store_errno(struct store *st, int rc);
/* store_reserve.c: the disk reserve. init makes it at open when missing; disk_full
 * says once that the disk is full and releases it; disk_ok says space is back (a
 * commit went through); gate is asked before a producer writes: 0, or -EAGAIN while
 * the reserve is gone and cannot be made again. */
void store_reserve_init(struct store *st);
void store_disk_full(struct store *st);
void store_disk_ok(struct store *st);
int store_reserve_gate(struct store *st);
/* On a full disk, outside a transaction, at most once a second: checkpoint and
 * truncate the WAL (store_checkpoint), which gives its space back. */
void store_relieve(struct store *st);

/* Fail the open transaction (if any) with err: later calls in it and the commit
 * return err. */
void store_doom(struct store *st, int err);
/* Run a statement that returns no rows to the end; 0 or -errno. Resets it. */
int store_step_done(struct store *st, sqlite3_stmt *s);
/* Around a write outside store_begin: start/finish an implicit transaction.
 * store_wbegin returns 1 when it started one (pass to store_wend), 0 when inside
 * the caller's, or -errno (also a doomed transaction's error). store_wend commits
 * (err == 0) or rolls back the implicit one, or dooms the caller's on error, and
 * returns err or the commit's error. */
int store_wbegin(struct store *st);
int store_wend(struct store *st, int began, int err);
/* Write the pending insert counters into the meta row (before a delete or COMMIT).
 * 0 or -errno (the transaction is then doomed). */
int store_flush_counts(struct store *st);
/* Count what the last writes put in the WAL into bytes_written. */
void store_account(struct store *st);
/* In a setgid, group-writable directory: give path, path-wal and path-shm (regular
 * files with one link that this process owns; symlinks are not followed) the
 * directory's group and mode 0660. Elsewhere nothing. Failures are logged. */
void store_share_files(const char *path);
/* <path>.state (store_state.c): the gateway id, the sequence reserved so far and
 * whether a writer may have rows only in the WAL, kept outside the database. */
struct store_state {
	bool known; /* the file was there and readable */
	bool open;
	char gateway_id[17];
	int64_t seq_limit;
};
/* 0, -ENOENT (none yet), -EBADMSG (unreadable, logged) or -errno. */
int store_state_read(const char *path, struct store_state *ss);
/* Replace it atomically; 0 or -errno (logged). */
int store_state_write(const char *path, const struct store_state *ss);
/* Before a note gets seq >= st->seq_limit: reserve the next block. 0 or -errno. */
int store_state_reserve(struct store *st, int64_t seq);
/* Before SQLite opens path: damage it would take silently, given what ss says
 * (a static description) or NULL. A damaged WAL is copied first; copy gets the
 * copy's path or "". */
const char *store_state_check(const char *path, const struct store_state *ss, char *copy,
                              size_t cap);
/* Re-queue the outbound notes readable from the store file at from (store_salvage.c).
 * Notes keep their seq when from's gateway id (or assume_gid when from's meta row is
 * unreadable) is st's. *n gets the number re-queued. 0 or -errno. */
int store_salvage_from(struct store *st, const char *from, const char *assume_gid, int64_t *n);
/* The gateway id of the store file at from and a seq_limit above every seq it
 * used (for a corrupt store that has no state file yet). 0 or -errno. */
int store_salvage_identity(const char *from, struct store_state *ss);

/* Strdup of a column's text, NULL for SQL NULL; *oom set on allocation failure. */
char *store_col_text(sqlite3_stmt *s, int col, bool *oom);
#endif
