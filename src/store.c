/* store.c: opening the SQLite store (quick check, corrupt files moved aside, schema
 * and forward migrations), its prepared statements and transactions. The queues
 * themselves are in store_out.c and store_in.c.
 *
 * Durability guarantees
 * - The database runs in WAL mode with synchronous=FULL: a transaction is durable,
 *   power cut included, once COMMIT returns, because the WAL is fsynced as part of
 *   every commit. With NORMAL a commit could roll back on power loss, so it is never
 *   used. A producer is told "accepted" only after store_commit() (or a store_enqueue
 *   outside a batch) returned 0; any failure of a write, of COMMIT or of its fsync
 *   rolls the transaction back and is reported as "not accepted", never retried on
 *   the assumption that it worked. tests/unit/test_powercut.c checks this with a VFS
 *   that drops unsynced writes at random points.
 * - A note leaves the outbound queue only when the link marks it sent, after the
 *   Notecard answered note.add, so delivery is at-least-once: a crash between
 *   note.add and that commit sends the note again.
 * - Duplicates are recognisable: the store was given a random gateway id (16 hex
 *   digits, in the meta row) when it was created, and every outbound note gets the
 *   next number of a per-store sequence, assigned in the enqueueing transaction and
 *   never reused (also after the note was sent or dropped). The link adds
 *   "_id":"<gateway_id>:<seq>" to the body it hands to note.add; a retry carries the
 *   same _id, so a receiver drops what it has seen (docs/store.md).
 * - Inbound notes are committed before the link deletes them from the card; a
 *   crash in between makes the card offer the note again, and store_inbound_add
 *   recognises it by a SHA-256 of (file, note id, time, body, payload).
 * - Full: max_size bounds the bytes of queued notes (file + body + payload). With
 *   drop-oldest the oldest notes make room (counted, logged); with refuse-new the
 *   enqueue fails with -ENOSPC, a refusal for good. A full disk (SQLITE_FULL,
 *   ENOSPC, EDQUOT, EFBIG) fails the transaction with -EAGAIN, "try again later":
 *   producers must not take it for a refusal. The disk reserve beside the store
 *   (store_reserve.c) is then released so that notes can still be marked sent and
 *   the WAL checkpointed, and producers wait until the reserve can be made again.
 * - At open a quick check runs (of the whole file up to 64 MiB; above, of all but the
 *   queue table, and of everything again after a corrupt page was met at run time:
 *   <path>.suspect); a corrupt file is renamed to <path>.corrupt-<time>
 *   (with its WAL) with an error logged, and a fresh store is created — the daemon
 *   never crash-loops on a bad file, and the old data stays for forensics.
 * - Sharing: in a setgid directory its group may write, the store's files get that
 *   group and mode 0660 (store_share_files), so that the broker plugin, running
 *   as mosquitto, and the daemon can both write them.
 * - Nothing is written unless a caller writes: no timers, no housekeeping. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store-private.h"
#include "util.h"

/* SQLite page cache per connection, KiB (a string: it goes into a PRAGMA) */
#define STORE_CACHE_KIB "128"

static const char *const sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_META_ROOM] = "SELECT next_seq, q_bytes FROM meta",
    [Q_OUT_INSERT] = "INSERT INTO out(seq, file, body, payload, prio, created, bytes) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
    [Q_OUT_OLDEST] = "SELECT id, seq, file, bytes FROM out ORDER BY id LIMIT 1",
    [Q_OUT_DELETE] = "DELETE FROM out WHERE id = ?",
    [Q_META_DROPPED] = "UPDATE meta SET dropped = dropped + ?",
    [Q_META_SENT] = "UPDATE meta SET sent = sent + 1",
    [Q_OUT_PEEK_URGENT] = "SELECT id, seq, file, body, payload, prio, created, attempts FROM "
                          "out WHERE prio > 0 ORDER BY prio DESC, id LIMIT ?",
    [Q_OUT_PEEK] = "SELECT id, seq, file, body, payload, prio, created, attempts FROM out "
                   "WHERE prio <= 0 ORDER BY id LIMIT ?",
    [Q_META_ADD] = "UPDATE meta SET next_seq = max(next_seq, ?), q_count = q_count + ?, "
                   "q_bytes = q_bytes + ?",
    [Q_OUT_FAILED] = "UPDATE out SET attempts = attempts + 1, last_error = ? WHERE id = ?",
    [Q_STATS] = "SELECT q_count, q_bytes, dropped, sent, "
                "(SELECT created FROM out ORDER BY id LIMIT 1) FROM meta",
    [Q_QUEUE] = "SELECT file, count(*), sum(bytes), min(created) FROM out "
                "GROUP BY file ORDER BY min(id)",
    [Q_IN_ADD] = "INSERT OR IGNORE INTO inb(dkey, file, note, body, payload, time, received) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
    [Q_IN_FIND] = "SELECT id FROM inb WHERE dkey = ?",
    [Q_IN_PENDING] = "SELECT i.id, i.file, i.note, i.body, i.payload, i.time FROM inb i "
                     "WHERE i.id > ?2 AND NOT EXISTS (SELECT 1 FROM delivered d "
                     "WHERE d.in_id = i.id AND d.consumer = ?1) ORDER BY i.id LIMIT ?3",
    [Q_IN_DONE] = "INSERT OR IGNORE INTO delivered(in_id, consumer) "
                  "SELECT id, ?2 FROM inb WHERE id = ?1",
    [Q_IN_PRUNE] = "DELETE FROM inb WHERE received < ? AND NOT EXISTS (SELECT 1 FROM consumer c "
                   "WHERE NOT EXISTS (SELECT 1 FROM delivered d WHERE d.in_id = inb.id "
                   "AND d.consumer = c.name))",
    [Q_IN_STATS] = "SELECT count(*), coalesce(sum(EXISTS (SELECT 1 FROM consumer c WHERE NOT "
                   "EXISTS (SELECT 1 FROM delivered d WHERE d.in_id = i.id AND "
                   "d.consumer = c.name))), 0) FROM inb i",
    [Q_CONSUMER_ADD] = "INSERT OR IGNORE INTO consumer(name, added) VALUES (?, ?)",
    [Q_CONSUMER_HAS] = "SELECT 1 FROM consumer WHERE name = ?",
    [Q_AUDIT_ADD] = "INSERT INTO audit(time, actor, action, detail) VALUES (?, ?, ?, ?)",
    [Q_AUDIT_TRIM] = "DELETE FROM audit WHERE id <= ?",
    [Q_AUDIT_LIST] = "SELECT time, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?",
    [Q_KV_SET] = "INSERT INTO kv(k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = ?2 "
                 "WHERE v IS NOT ?2",
    [Q_KV_GET] = "SELECT v FROM kv WHERE k = ?",
    [Q_KV_DEL] = "DELETE FROM kv WHERE k = ?",
    /* delivery keys (store_enqueue_once): "seen:<hex>" -> the note's seq */
    [Q_SEEN_FIND] = "SELECT 1 FROM kv WHERE k = ?",
    [Q_SEEN_ADD] = "INSERT INTO kv(k, v) VALUES (?1, ?2)",
    [Q_SEEN_TRIM] = "DELETE FROM kv WHERE k >= 'seen:' AND k < 'seen;' AND "
                    "CAST(v AS INTEGER) <= ?",
};

/* The first schema. Frozen: later versions change it only through migrations, so a
 * store made by any release opens in every later one. (Since v3 the insert counters
 * in the meta row are kept by the store's code, once per transaction; deletes are
 * still counted by the out_del trigger, whoever deletes.) */
static const char schema_v1[] =
    "CREATE TABLE meta("
    " one INTEGER PRIMARY KEY CHECK (one = 1),"
    " gateway_id TEXT NOT NULL,"
    " next_seq INTEGER NOT NULL DEFAULT 1,"
    " q_count INTEGER NOT NULL DEFAULT 0,"
    " q_bytes INTEGER NOT NULL DEFAULT 0,"
    " dropped INTEGER NOT NULL DEFAULT 0,"
    " sent INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO meta(one, gateway_id) VALUES (1, lower(hex(randomblob(8))));"
    "CREATE TABLE out("
    " id INTEGER PRIMARY KEY,"
    " seq INTEGER NOT NULL,"
    " file TEXT NOT NULL,"
    " body TEXT,"
    " payload BLOB,"
    " prio INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " bytes INTEGER NOT NULL);"
    "CREATE INDEX out_order ON out(prio DESC, id);"
    "CREATE TRIGGER out_ins AFTER INSERT ON out BEGIN"
    " UPDATE meta SET next_seq = max(next_seq, NEW.seq + 1), q_count = q_count + 1,"
    " q_bytes = q_bytes + NEW.bytes; END;"
    "CREATE TRIGGER out_del AFTER DELETE ON out BEGIN"
    " UPDATE meta SET q_count = q_count - 1, q_bytes = q_bytes - OLD.bytes; END;"
    "CREATE TABLE inb("
    " id INTEGER PRIMARY KEY,"
    " dkey BLOB NOT NULL UNIQUE,"
    " file TEXT NOT NULL,"
    " note TEXT,"
    " body TEXT,"
    " payload TEXT,"
    " time INTEGER,"
    " received INTEGER NOT NULL);"
    "CREATE TABLE consumer(name TEXT PRIMARY KEY, added INTEGER NOT NULL);"
    "CREATE TABLE delivered(in_id INTEGER NOT NULL, consumer TEXT NOT NULL,"
    " PRIMARY KEY (in_id, consumer)) WITHOUT ROWID;"
    "CREATE TRIGGER inb_del AFTER DELETE ON inb BEGIN"
    " DELETE FROM delivered WHERE in_id = OLD.id; END;"
    "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "PRAGMA user_version = 1;";

/* migrations[v] takes a store from version v to v + 1. */
static const char *const migrations[] = {
    [0] = schema_v1,
    /* v2: the audit log, and why a note's last attempt failed. */
    [1] = "CREATE TABLE audit("
          " id INTEGER PRIMARY KEY,"
          " time INTEGER NOT NULL,"
          " actor TEXT NOT NULL,"
          " action TEXT NOT NULL,"
          " detail TEXT);"
          "ALTER TABLE out ADD COLUMN last_error TEXT;"
          "PRAGMA user_version = 2;",
    /* v3: cheaper enqueues. Only urgent notes are indexed (normal ones are taken in
     * rowid order), and inserts update the meta counters once per transaction from
     * the store's code instead of once per row from a trigger. */
    [2] = "DROP TRIGGER out_ins;"
          "DROP INDEX out_order;"
          "CREATE INDEX out_urgent ON out(prio DESC, id) WHERE prio > 0;"
          "PRAGMA user_version = 3;",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* A corrupt page met at run time (the start-up check of a big store skips the
 * queue): leave <path>.suspect so that the next start checks the whole file and
 * moves it aside if need be. */
static void mark_suspect(struct store *st)
{
	char p[PATH_MAX];
	if (st->suspect || xsnprintf(p, sizeof(p), "%s.suspect", st->path) < 0)
		return;
	st->suspect = true;
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	log_err("store: %s: corrupt page found (%s): the next start checks the whole file",
	        st->path, sqlite3_errmsg(st->db));
}

/* No room on the disk: the reserve goes (store_reserve.c) and the caller may try
 * again later. */
static int disk_full(struct store *st)
{
	if (st && st->path)
		store_disk_full(st);
	return -EAGAIN;
}

int store_errno(struct store *st, int rc)
{
	int e;
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return disk_full(st);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		if (st && st->db)
			mark_suspect(st);
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		e = st && st->db ? sqlite3_system_errno(st->db) : 0;
		return e > 0 ? -e : -EACCES;
	case SQLITE_IOERR:
		/* The unix VFS reports a short write that is not ENOSPC (a quota, a file
		 * size limit) as a plain write error: it is still a full disk to us. */
		e = st && st->db ? sqlite3_system_errno(st->db) : 0;
		if (!e && st)
			e = st->sys_errno;
		if (e == ENOSPC || e == EDQUOT || e == EFBIG)
			return disk_full(st);
		return -EIO;
	default:
		return -EIO;
	}
}

sqlite3_stmt *store_stmt(struct store *st, enum store_q q)
{
	sqlite3_stmt *s = st->q[q];
	if (!s) {
		int rc =
		    sqlite3_prepare_v3(st->db, sql[q], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
		if (rc != SQLITE_OK) {
			log_err("store: prepare %d: %s", (int)q, sqlite3_errmsg(st->db));
			return NULL;
		}
		st->q[q] = s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static void forget_room(struct store *st)
{
	st->room_valid = false;
	st->add_count = st->add_bytes = 0;
}

void store_doom(struct store *st, int err)
{
	forget_room(st);
	if (st->in_txn && !st->doomed && err < 0)
		st->doomed = err;
}

int store_step_done(struct store *st, sqlite3_stmt *s)
{
	if (!s)
		return -EIO;
	errno = 0;
	int rc = sqlite3_step(s);
	while (rc == SQLITE_ROW)
		rc = sqlite3_step(s);
	/* sqlite3_system_errno() is not kept for every I/O error (a short write from
	 * RLIMIT_FSIZE or a quota); errno right after the failing step is. */
	st->sys_errno = rc == SQLITE_DONE ? 0 : errno;
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return 0;
	bool was_full = st->disk_full;
	int err = store_errno(st, rc);
	if (!(was_full && err == -EAGAIN)) /* a full disk is said once (store_disk_full) */
		log_warn("store: %s: %s (%d, errno %d)", sqlite3_sql(s), sqlite3_errmsg(st->db), rc,
		         st->sys_errno);
	store_doom(st, err);
	return err;
}

void store_account(struct store *st)
{
	int cur = 0, hi = 0;
	if (sqlite3_db_status(st->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 1) == SQLITE_OK &&
	    cur > 0)
		st->bytes_written += (uint64_t)cur * ((uint64_t)st->page_size + 24);
}

char *store_col_text(sqlite3_stmt *s, int col, bool *oom)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	if (!t)
		return NULL;
	char *c = strdup((const char *)t);
	if (!c)
		*oom = true;
	return c;
}

/* ---- transactions ----------------------------------------------------------------- */

int store_flush_counts(struct store *st)
{
	if (st->add_count == 0)
		return 0;
	sqlite3_stmt *s = store_stmt(st, Q_META_ADD);
	if (!s) {
		store_doom(st, -EIO);
		return -EIO;
	}
	sqlite3_bind_int64(s, 1, st->room_seq);
	sqlite3_bind_int64(s, 2, st->add_count);
	sqlite3_bind_int64(s, 3, st->add_bytes);
	int err = store_step_done(st, s);
	st->add_count = st->add_bytes = 0;
	return err;
}

static int commit_now(struct store *st)
{
	int err = store_flush_counts(st);
	forget_room(st);
	if (err == 0)
		err = store_step_done(st, store_stmt(st, Q_COMMIT));
	if (err == 0)
		store_disk_ok(st);
	if (err < 0) {
		if (err != -EAGAIN)
			log_err("store: commit failed (%s): not accepted", strerror(-err));
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	}
	store_account(st);
	return err;
}

static void rollback_now(struct store *st)
{
	forget_room(st);
	if (!sqlite3_get_autocommit(st->db)) {
		sqlite3_stmt *s = store_stmt(st, Q_ROLLBACK);
		if (!s || sqlite3_step(s) != SQLITE_DONE)
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		if (s)
			sqlite3_reset(s);
	}
	/* Pages written for a transaction that then failed were still written. */
	store_account(st);
}

int store_begin(struct store *st)
{
	if (st->readonly)
		return -EROFS;
	if (st->in_txn)
		return -EBUSY;
	store_relieve(st);
	int err = store_step_done(st, store_stmt(st, Q_BEGIN));
	if (err < 0)
		return err;
	st->in_txn = true;
	st->doomed = 0;
	return 0;
}

int store_commit(struct store *st)
{
	if (!st->in_txn)
		return -EINVAL;
	int err = st->doomed;
	st->in_txn = false;
	st->doomed = 0;
	if (err < 0) {
		rollback_now(st);
		return err;
	}
	return commit_now(st);
}

void store_rollback(struct store *st)
{
	if (!st->in_txn)
		return;
	st->in_txn = false;
	st->doomed = 0;
	rollback_now(st);
}

bool store_in_txn(struct store *st)
{
	return st->in_txn;
}

int store_wbegin(struct store *st)
{
	if (st->readonly)
		return -EROFS;
	if (st->in_txn)
		return st->doomed ? st->doomed : 0;
	int err = store_step_done(st, store_stmt(st, Q_BEGIN));
	return err < 0 ? err : 1;
}

int store_wend(struct store *st, int began, int err)
{
	if (began != 1)
		return err;
	if (err < 0) {
		rollback_now(st);
		return err;
	}
	return commit_now(st);
}

/* ---- open --------------------------------------------------------------------------- */

/* One quick check statement; 0 ok, -EBADMSG corrupt, other -errno. */
static int check_one(struct store *st, const char *text)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, text, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const char *r = (const char *)sqlite3_column_text(s, 0);
			if (!r || strcmp(r, "ok") != 0) {
				char first[160];
				(void)xsnprintf(first, sizeof(first), "%s", r ? r : "?");
				first[strcspn(first, "\n")] = 0;
				log_err("store: %s: quick check failed: %s", st->path, first);
				rc = SQLITE_CORRUPT;
			} else {
				rc = SQLITE_OK;
			}
		}
	}
	int err = store_errno(st, rc);
	if (err < 0 && err != -EBADMSG)
		log_err("store: %s: quick check could not run: %s", st->path,
		        sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return err;
}

/* The start-up check: 0 ok, -EBADMSG corrupt (or not a database), other -errno when
 * the check itself could not run (I/O, busy): that is no proof of corruption. A big
 * file is checked table by table except the outbound queue, so the time to start
 * draining does not grow with the backlog; a damaged queue page still shows up as
 * SQLITE_CORRUPT (-EBADMSG) from the call that meets it. */
static int quick_check(struct store *st, uint64_t full_max)
{
	struct stat sb;
	char suspect[PATH_MAX];
	if (xsnprintf(suspect, sizeof(suspect), "%s.suspect", st->path) == 0 &&
	    access(suspect, F_OK) == 0) {
		log_warn("store: %s: a corrupt page was seen: checking the whole file", st->path);
		int err = check_one(st, "PRAGMA quick_check");
		if (err == 0 || err == -EBADMSG)
			unlink(suspect); /* settled: fine, or moved aside next */
		return err;
	}
	if (stat(st->path, &sb) < 0 || (uint64_t)sb.st_size <= full_max)
		return check_one(st, "PRAGMA quick_check");
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db,
	                            "SELECT name FROM sqlite_schema WHERE type = 'table' AND "
	                            "name <> 'out' ORDER BY name",
	                            -1, &s, NULL);
	int err = 0;
	while (rc == SQLITE_OK && err == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		char q[160];
		const char *t = (const char *)sqlite3_column_text(s, 0);
		if (!t || xsnprintf(q, sizeof(q), "PRAGMA quick_check(\"%s\")", t) < 0)
			continue;
		err = check_one(st, q);
		rc = SQLITE_OK;
	}
	if (err == 0 && rc != SQLITE_DONE && rc != SQLITE_OK) {
		err = store_errno(st, rc);
		log_err("store: %s: quick check: %s", st->path, sqlite3_errmsg(st->db));
	}
	sqlite3_finalize(s);
	if (err == 0)
		log_info("store: %s is %lld MiB: start-up check skipped the outbound queue",
		         st->path, (long long)(sb.st_size >> 20));
	return err;
}

/* Give a store's files (database and -wal) another name; the -shm is
 * only an index of the WAL, rebuilt at open, and is removed. The -wal goes first: a
 * crash between the renames must never leave a WAL beside a database it does not
 * belong to, which SQLite would replay into it. With the WAL moved and the database
 * not yet, the next attempt moves the database after it. */
static int rename_store_files(const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (xsnprintf(a, sizeof(a), "%s-wal", from) < 0 ||
	    xsnprintf(b, sizeof(b), "%s-wal", to) < 0)
		return -ENAMETOOLONG;
	if (rename(a, b) < 0 && errno != ENOENT)
		goto fail;
	if (xsnprintf(a, sizeof(a), "%s-shm", from) == 0 && unlink(a) < 0 && errno != ENOENT)
		goto fail;
	if (rename(from, to) < 0)
		goto fail;
	return 0;
fail:;
	int r = -errno;
	log_err("store: cannot move %s to %s: %s", from, to, strerror(errno));
	return r;
}

/* Rename the corrupt file (and its WAL, which belongs to it: replayed onto a fresh
 * database it would write old pages into it) out of the way. */
static int move_aside(const char *path, char *aside, size_t cap)
{
	char mark[PATH_MAX];
	time_t now = time(NULL);
	int r = xsnprintf(aside, cap, "%s.corrupt-%lld", path, (long long)now);
	for (int i = 1; r == 0 && access(aside, F_OK) == 0 && i < 100; i++)
		r = xsnprintf(aside, cap, "%s.corrupt-%lld-%d", path, (long long)now, i);
	if (r < 0)
		return r;
	if ((r = rename_store_files(path, aside)) < 0)
		return r;
	if (xsnprintf(mark, sizeof(mark), "%s.suspect", path) == 0)
		unlink(mark); /* the fresh store is not suspect */
	log_err("store: %s is corrupt: moved aside to %s, starting a fresh store and "
	        "re-queueing the notes still readable from it",
	        path, aside);
	return 0;
}

/* A store that another program writes too (the mosquitto broker plugin, which runs
 * as its own user) lives in a setgid directory its group may write: the package's
 * /var/lib/notegw/queue, 2770 notegw:notegw-store. There each file of the store is
 * given the directory's group and mode 0660, whoever made it and under whatever
 * umask; SQLite creates -wal and -shm with the database file's mode, so fixing the
 * database right after it is opened covers the files made later. In any other
 * directory the files keep the mode the umask gave them.
 *
 * Only regular files with one link that this process owns are changed, and through
 * an O_PATH descriptor taken without following symlinks: a member of the group can
 * put names into the directory, and must not get some other file of ours made
 * group-readable through them. O_PATH also matters because closing an ordinary
 * descriptor would drop every POSIX lock this process holds on the file, the other
 * connection's (the link thread's) included. */
void store_share_files(const char *path)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char dir[PATH_MAX], name[PATH_MAX], self[64];
	struct stat ds, fs;

	if (xsnprintf(dir, sizeof(dir), "%s", path) < 0)
		return;
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0'; /* a store in / */
	else
		*slash = '\0';
	if (stat(dir, &ds) < 0 || !(ds.st_mode & S_ISGID) || !(ds.st_mode & S_IWGRP))
		return;
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		if (xsnprintf(name, sizeof(name), "%s%s", path, suffix[i]) < 0)
			continue;
		int fd = open(name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue; /* not there (yet) */
		if (fstat(fd, &fs) == 0 && S_ISREG(fs.st_mode) && fs.st_nlink == 1 &&
		    fs.st_uid == geteuid()) {
			if (fs.st_gid != ds.st_gid &&
			    fchownat(fd, "", (uid_t)-1, ds.st_gid, AT_EMPTY_PATH) < 0)
				log_warn("store: cannot give %s the group of %s (%u): %s", name,
				         dir, (unsigned)ds.st_gid, strerror(errno));
			/* chmod() through /proc acts on the file the descriptor holds */
			if ((fs.st_mode & 07777) != 0660 &&
			    (xsnprintf(self, sizeof(self), "/proc/self/fd/%d", fd) < 0 ||
			     chmod(self, 0660) < 0))
				log_warn("store: cannot make %s group-writable: %s", name,
				         strerror(errno));
		}
		close(fd);
	}
}

/* Move a store to a new path, unless something is there already (rename_store_files
 * says in which order, and why). */
int store_adopt(const char *from, const char *to)
{
	struct stat s;
	int r;

	if (lstat(to, &s) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	if (lstat(from, &s) < 0)
		return errno == ENOENT ? 0 : -errno;
	if ((r = rename_store_files(from, to)) < 0)
		return r;
	/* the mark and the state go with the file they describe */
	static const char *const beside[] = {".suspect", ".state"};
	for (size_t i = 0; i < sizeof(beside) / sizeof(beside[0]); i++) {
		char a[PATH_MAX], b[PATH_MAX];
		if (xsnprintf(a, sizeof(a), "%s%s", from, beside[i]) == 0 &&
		    xsnprintf(b, sizeof(b), "%s%s", to, beside[i]) == 0 && rename(a, b) < 0 &&
		    errno != ENOENT)
			log_warn("store: cannot move %s to %s: %s", a, b, strerror(errno));
	}
	log_notice("store: moved %s to %s", from, to);
	return 1;
}

static int exec(struct store *st, const char *what, const char *text)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, text, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return 0;
	int err = store_errno(st, rc);
	log_err("store: %s: %s: %s", st->path, what, msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return err;
}

static int pragma_int(struct store *st, const char *text, int *v)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, text, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*v = sqlite3_column_int(s, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	return store_errno(st, rc);
}

/* Bring the schema to STORE_SCHEMA_VERSION, one step per transaction so a cut in the
 * middle resumes at the step it was in. A read first: an up-to-date store (the
 * usual case) starts no write. */
static int migrate(struct store *st)
{
	int v = 0, err;
	if ((err = pragma_int(st, "PRAGMA user_version", &v)) < 0)
		return err;
	st->fresh = v == 0;
	if (v > STORE_SCHEMA_VERSION) {
		log_err("store: %s has schema %d, newer than this notegw (%d): not opening it",
		        st->path, v, STORE_SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	while (v < STORE_SCHEMA_VERSION) {
		if (st->readonly) {
			log_err("store: %s has schema %d, needs %d: open it read-write once",
			        st->path, v, STORE_SCHEMA_VERSION);
			return -EPROTONOSUPPORT;
		}
		if ((err = exec(st, "begin", "BEGIN IMMEDIATE")) < 0)
			return err;
		int now = 0;
		err = pragma_int(st, "PRAGMA user_version", &now); /* another process may have */
		if (err == 0 && now == v)
			err = exec(st, "migrate", migrations[v]);
		if (err == 0)
			err = exec(st, "commit", "COMMIT");
		if (err < 0) {
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return err;
		}
		if (now == v)
			log_info("store: %s: schema %d -> %d", st->path, v, v + 1);
		if ((err = pragma_int(st, "PRAGMA user_version", &v)) < 0)
			return err;
	}
	st->schema_version = v;
	return 0;
}

static int load_meta(struct store *st)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "SELECT gateway_id FROM meta", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	int err = store_errno(st, rc);
	if (rc == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		if (!id || xsnprintf(st->gateway_id, sizeof(st->gateway_id), "%s", id) < 0)
			err = -EBADMSG;
	} else if (rc == SQLITE_DONE) {
		err = -EBADMSG;
	}
	if (err < 0)
		log_err("store: %s: no gateway id: %s", st->path, strerror(-err));
	sqlite3_finalize(s);
	return err;
}

static void close_db(struct store *st)
{
	for (int i = 0; i < Q_COUNT; i++) {
		sqlite3_finalize(st->q[i]);
		st->q[i] = NULL;
	}
	if (st->db)
		sqlite3_close_v2(st->db);
	st->db = NULL;
}

/* One attempt: open, check, configure, migrate. -EBADMSG means corrupt. */
static int open_once(struct store *st, int timeout_ms, uint64_t full_max)
{
	int flags =
	    (st->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
	    SQLITE_OPEN_NOMUTEX;
	int rc = sqlite3_open_v2(st->path, &st->db, flags, NULL);
	if (rc != SQLITE_OK) {
		int err = store_errno(st, rc);
		log_err("store: cannot open %s: %s", st->path,
		        st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		return err == -EBADMSG ? -EIO : err;
	}
	if (!st->readonly)
		store_share_files(st->path);
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, timeout_ms);
	st->busy_ms = timeout_ms;
	/* The queue is read at its head and written at its tail: a few pages hot. SQLite's
	 * default cache (2 MiB a connection) would fill with pages of notes long sent and
	 * grow the daemon by that much per connection as a backlog drains; the start-up
	 * check goes through it too. A file that is no database fails here too: the check below
	 * says so. */
	(void)sqlite3_exec(st->db, "PRAGMA cache_size = -" STORE_CACHE_KIB, NULL, NULL, NULL);
	int err = quick_check(st, full_max);
	if (err < 0)
		return err;
	if (!st->readonly) {
		sqlite3_stmt *s = NULL;
		rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(s);
		const char *mode =
		    rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
		if (!mode || strcmp(mode, "wal") != 0) {
			err = rc == SQLITE_ROW ? -EIO : store_errno(st, rc);
			log_err("store: %s: cannot use WAL: %s", st->path, sqlite3_errmsg(st->db));
		}
		sqlite3_finalize(s);
		if (err < 0)
			return err == -EBADMSG ? -EIO : err;
		/* FULL: the WAL is fsynced at every commit, so an acknowledged note survives a
		 * power cut. A 4 MiB cap on the idle WAL keeps flash use bounded. (How often
		 * it is checkpointed follows the disk: store_reserve_init.) */
		if ((err = exec(
		         st, "pragmas",
		         "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 4194304;")) < 0)
			return err == -EBADMSG ? -EIO : err;
	}
	if ((err = migrate(st)) < 0)
		return err;
	if ((err = load_meta(st)) < 0)
		return err;
	if ((err = pragma_int(st, "PRAGMA page_size", &st->page_size)) < 0)
		return err;
	return 0;
}

/* Say it loudly, where an operator looks: the log, the audit log, and the
 * counters that status and the metrics show (store_damage). */
static void record_damage(struct store *st, const char *what)
{
	char *count = NULL, num[24], *v = NULL;
	long long n =
	    store_kv_get(st, "store.damage_count", &count) == 0 ? strtoll(count, NULL, 10) : 0;
	free(count);
	log_err("store: %s: DAMAGED: %s; continuing with gateway id %s", st->path, what,
	        st->gateway_id);
	(void)xsnprintf(num, sizeof(num), "%lld", n + 1);
	if (!(v = xasprintf("%lld %s", (long long)(now_real_ms() / 1000), what)) ||
	    store_kv_set(st, "store.damage_count", num) < 0 ||
	    store_kv_set(st, "store.damage", v) < 0 ||
	    store_audit(st, "store", "damaged", what) < 0)
		log_err("store: %s: cannot record the damage in the store", st->path);
	free(v);
}

/* After a read-write open: a fresh store takes the gateway id and sequence the state
 * file remembers; damage is recorded, the readable notes of a corrupt file are
 * re-queued, and the state file is brought up to date (written only on a change). */
static int after_open(struct store *st, const struct store_state *ss, const char *damage,
                      const char *copy, const char *aside)
{
	int err = 0;
	int64_t next = 0;
	/* a store from before the state file: the corrupt file may still say who it was */
	struct store_state prev = *ss;
	if (!prev.known && aside[0] && st->fresh && store_salvage_identity(aside, &prev) == 0)
		log_notice("store: %s: keeping gateway id %s of the corrupt file", st->path,
		           prev.gateway_id);
	ss = &prev;
	/* a fresh file takes the remembered gateway; a damaged one that lost its last
	 * transactions must not hand out their seqs again */
	if (ss->known &&
	    (st->fresh || ((damage || aside[0]) && strcmp(ss->gateway_id, st->gateway_id) == 0))) {
		char q[160];
		if (xsnprintf(q, sizeof(q),
		              "UPDATE meta SET gateway_id = '%s', next_seq = max(next_seq, %lld)",
		              ss->gateway_id, (long long)ss->seq_limit) < 0 ||
		    (err = exec(st, "keep the gateway id", q)) < 0)
			return err < 0 ? err : -ENAMETOOLONG;
		memcpy(st->gateway_id, ss->gateway_id, sizeof(st->gateway_id));
	}
	if (aside[0]) {
		int64_t n = 0;
		char *what;
		err = store_salvage_from(st, aside, ss->known ? ss->gateway_id : NULL, &n);
		char *key = xasprintf("salvaged %s", aside);
		if (err == 0 && key)
			(void)store_kv_set(st, key, "1"); /* notegw store salvage: not twice */
		free(key);
		what = err < 0 ? xasprintf("it was corrupt: moved aside to %s; re-queueing its "
		                           "notes failed (%s): notegw store salvage %s",
		                           aside, strerror(-err), aside)
		               : xasprintf("it was corrupt: moved aside to %s; %lld readable "
		                           "note(s) re-queued",
		                           aside, (long long)n);
		record_damage(st, what ? what : "it was corrupt: moved aside");
		free(what);
	} else if (damage) {
		char *what = copy[0] ? xasprintf("%s; a copy is kept as %s", damage, copy) : NULL;
		record_damage(st, what ? what : damage);
		free(what);
		/* empty the WAL, so that the next connection (the link thread's, the next
		 * start) does not find the same damaged frames and say it again */
		if (copy[0])
			(void)exec(st, "checkpoint", "PRAGMA wal_checkpoint(TRUNCATE)");
	}
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "SELECT next_seq FROM meta", -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
		next = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return store_errno(st, rc) < 0 ? store_errno(st, rc) : -EBADMSG;
	bool same = ss->known && strcmp(ss->gateway_id, st->gateway_id) == 0;
	struct store_state now = {.known = true, .open = true};
	memcpy(now.gateway_id, st->gateway_id, sizeof(now.gateway_id));
	now.seq_limit = same && ss->seq_limit > next ? ss->seq_limit : next + 1024;
	st->seq_limit = now.seq_limit;
	if (!same || !ss->open || ss->seq_limit != now.seq_limit)
		return store_state_write(st->path, &now);
	return 0;
}

/* The last connection to close checkpoints and removes the WAL: from then on no
 * committed row lives only there. */
static void state_closed(struct store *st)
{
	char wal[PATH_MAX];
	struct store_state ss;
	if (xsnprintf(wal, sizeof(wal), "%s-wal", st->path) < 0 || access(wal, F_OK) == 0 ||
	    store_state_read(st->path, &ss) < 0 || !ss.open ||
	    strcmp(ss.gateway_id, st->gateway_id) != 0)
		return;
	ss.open = false;
	(void)store_state_write(st->path, &ss);
}

int store_open(const char *path, const struct store_opts *opts, struct store **out)
{
	static const struct store_opts defaults = {0};
	if (!opts)
		opts = &defaults;
	if (!path || !*path || !out)
		return -EINVAL;
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	int err = -ENOMEM;
	if (!(st->path = strdup(path)))
		goto fail;
	st->max_size = opts->max_size;
	st->when_full = opts->when_full;
	st->readonly = opts->readonly;
	/* the start-up check handles corruption itself: no .suspect marks meanwhile */
	st->suspect = true;
	int timeout = opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
	uint64_t full_max = opts->full_check_max ? opts->full_check_max : STORE_FULL_CHECK_MAX;
	struct store_state state = {0};
	const char *damage = NULL;
	char copy[PATH_MAX] = "", aside[PATH_MAX] = "";
	if (!st->readonly) {
		(void)store_state_read(path, &state);
		damage = store_state_check(path, &state, copy, sizeof(copy));
	}
	err = open_once(st, timeout, full_max);
	if (err == -EBADMSG && !st->readonly) {
		close_db(st);
		if ((err = move_aside(path, aside, sizeof(aside))) < 0)
			goto fail;
		err = open_once(st, timeout, full_max);
		if (err == -EBADMSG)
			err = -EIO; /* a fresh file that is corrupt: the disk, not the data */
	}
	if (err < 0)
		goto fail;
	if (!st->readonly && (err = after_open(st, &state, damage, copy, aside)) < 0)
		goto fail;
	st->suspect = false;
	store_reserve_init(st);
	store_account(st); /* creation and migration are not note traffic */
	st->bytes_written = 0;
	*out = st;
	return 0;
fail:
	store_close(st);
	return err;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->db && st->in_txn)
		store_rollback(st);
	/* a mark that cannot commit now only means the note is sent again */
	if (st->db && !st->readonly && st->n_marks && store_out_commit_marks(st) < 0)
		log_warn("store: %zu sent marks not committed at close; those notes go to the "
		         "card again (same _id)",
		         st->n_marks);
	free(st->marks);
	bool was_open = st->db && !st->readonly && st->seq_limit > 0;
	close_db(st);
	if (was_open)
		state_closed(st);
	free(st->path);
	free(st);
}

int store_schema_version(struct store *st)
{
	return st->schema_version;
}

const char *store_gateway_id(struct store *st)
{
	return st->gateway_id;
}

void store_set_limits(struct store *st, uint64_t max_size, int when_full)
{
	st->max_size = max_size;
	st->when_full = when_full;
}
