/* store_salvage.c: re-queue the outbound notes that can still be read from a store
 * file that was moved aside as corrupt (automatically at open) or that an operator
 * names (notegw store salvage FILE). A damaged page only costs the notes on it: the
 * scan goes on past it by rowid. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store-private.h"
#include "util.h"

/* Errors met in a file before the scan gives up (each one skips ahead further). */
#define SALVAGE_MAX_ERRORS 64

static int read_gid(sqlite3 *db, char gid[17])
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT gateway_id FROM meta", -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		rc = t && xsnprintf(gid, 17, "%s", t) == 0 ? SQLITE_OK : SQLITE_CORRUPT;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_OK ? 0 : -EBADMSG;
}

/* One note into st: with its own seq (same gateway) or a new one. */
static int requeue(struct store *st, sqlite3_stmt *r, bool keep_seq)
{
	const char *file = (const char *)sqlite3_column_text(r, 2);
	const char *body = (const char *)sqlite3_column_text(r, 3);
	const void *payload = sqlite3_column_blob(r, 4);
	size_t plen = (size_t)sqlite3_column_bytes(r, 4);
	if (!file || !notefile_is_outbound(file) || (body && strlen(body) == 0))
		return -EBADMSG; /* a damaged row: not worth sending */
	if (!keep_seq)
		return store_enqueue(st, file, body, payload, plen, sqlite3_column_int(r, 5), NULL);
	int64_t seq = sqlite3_column_int64(r, 1);
	uint64_t bytes = store_note_bytes(file, body, plen);
	sqlite3_stmt *s = store_stmt(st, Q_OUT_INSERT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_text(s, 2, file, -1, SQLITE_TRANSIENT);
	if (body)
		sqlite3_bind_text(s, 3, body, -1, SQLITE_TRANSIENT);
	if (payload)
		sqlite3_bind_blob64(s, 4, payload, plen, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 5, sqlite3_column_int(r, 5) > 0 ? sqlite3_column_int(r, 5) : 0);
	sqlite3_bind_int64(s, 6, sqlite3_column_int64(r, 6));
	sqlite3_bind_int64(s, 7, (int64_t)bytes);
	int err = store_step_done(st, s);
	if (err < 0 || !(s = store_stmt(st, Q_META_ADD)))
		return err < 0 ? err : -EIO;
	sqlite3_bind_int64(s, 1, seq + 1);
	sqlite3_bind_int64(s, 2, 1);
	sqlite3_bind_int64(s, 3, (int64_t)bytes);
	return store_step_done(st, s);
}

/* Walk from's queue in rowid order into st; a read error skips ahead (1, 2, 4, …
 * rows past the last good one) until rows come again. */
static int scan(struct store *st, sqlite3 *db, bool keep_seq, int64_t *n)
{
	sqlite3_stmt *r = NULL;
	int rc = sqlite3_prepare_v2(db,
	                            "SELECT id, seq, file, body, payload, prio, created FROM out "
	                            "WHERE id > ? ORDER BY id",
	                            -1, &r, NULL);
	if (rc != SQLITE_OK) {
		log_err("store: salvage: cannot read the queue: %s", sqlite3_errmsg(db));
		return -EBADMSG;
	}
	int64_t after = 0, gap = 1, skipped = 0;
	int errors = 0, err = 0;
	for (;;) {
		sqlite3_reset(r);
		sqlite3_bind_int64(r, 1, after);
		while ((rc = sqlite3_step(r)) == SQLITE_ROW) {
			after = sqlite3_column_int64(r, 0);
			gap = 1;
			int e = requeue(st, r, keep_seq);
			if (e == -EBADMSG)
				skipped++;
			else if (e < 0)
				err = e;
			else
				(*n)++;
			if (err < 0)
				goto out;
		}
		if (rc == SQLITE_DONE || ++errors > SALVAGE_MAX_ERRORS)
			break;
		after += gap;
		gap = gap < (INT64_C(1) << 40) ? gap * 2 : gap;
	}
	if (errors > 0 || skipped > 0)
		log_warn("store: salvage: %d read error(s), %lld damaged row(s) skipped", errors,
		         (long long)skipped);
out:
	sqlite3_finalize(r);
	return err;
}

/* A store file opened read-only for reading out. Such an open of a WAL-mode file
 * still makes a -wal and a -shm beside it: ro_close removes what ro_open made, so
 * the file is left as it was found. */
struct ro {
	sqlite3 *db;
	char wal[PATH_MAX], shm[PATH_MAX];
	bool had_wal, had_shm;
};

static int ro_open(const char *from, struct ro *ro)
{
	if (xsnprintf(ro->wal, sizeof(ro->wal), "%s-wal", from) < 0 ||
	    xsnprintf(ro->shm, sizeof(ro->shm), "%s-shm", from) < 0)
		return -ENAMETOOLONG;
	ro->had_wal = access(ro->wal, F_OK) == 0;
	ro->had_shm = access(ro->shm, F_OK) == 0;
	ro->db = NULL;
	int rc = sqlite3_open_v2(from, &ro->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		return 0;
	log_err("store: salvage: cannot open %s: %s", from,
	        ro->db ? sqlite3_errmsg(ro->db) : sqlite3_errstr(rc));
	sqlite3_close_v2(ro->db);
	return -EIO;
}

static void ro_close(struct ro *ro)
{
	sqlite3_close_v2(ro->db);
	if (!ro->had_wal)
		unlink(ro->wal);
	if (!ro->had_shm)
		unlink(ro->shm);
}

int store_salvage_identity(const char *from, struct store_state *ss)
{
	struct ro ro;
	char gid[17] = "";
	int err = ro_open(from, &ro);
	if (err < 0)
		return err;
	sqlite3_stmt *s = NULL;
	int64_t next = 0;
	if ((err = read_gid(ro.db, gid)) == 0 &&
	    sqlite3_prepare_v2(ro.db,
	                       "SELECT max(next_seq, (SELECT coalesce(max(seq), 0) + 1 FROM out)) "
	                       "FROM meta",
	                       -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		next = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	ro_close(&ro);
	if (err < 0 || strlen(gid) != 16 || strspn(gid, "0123456789abcdef") != 16)
		return -EBADMSG;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss->gateway_id, gid, sizeof(gid));
	/* notes in a lost part of it may have had higher numbers: leave room */
	ss->seq_limit = (next > 0 ? next : 1) + 4096;
	ss->known = true;
	return 0;
}

int store_salvage_from(struct store *st, const char *from, const char *assume_gid, int64_t *n)
{
	struct ro ro;
	*n = 0;
	if (st->readonly)
		return -EROFS;
	int err = ro_open(from, &ro);
	if (err < 0)
		return err;
	char gid[17] = "";
	if (read_gid(ro.db, gid) < 0 && assume_gid)
		xsnprintf(gid, sizeof(gid), "%s", assume_gid);
	bool keep_seq = strcmp(gid, st->gateway_id) == 0;
	err = store_begin(st);
	if (err == 0) {
		st->room_valid = false; /* requeue writes the meta counters itself */
		err = scan(st, ro.db, keep_seq, n);
		err = err < 0 ? (store_rollback(st), err) : store_commit(st);
		st->room_valid = false;
	}
	ro_close(&ro);
	if (err < 0) {
		*n = 0;
		log_err("store: salvage from %s failed: %s", from, strerror(-err));
		return err;
	}
	log_notice("store: salvage: re-queued %lld note(s) from %s%s", (long long)*n, from,
	           keep_seq ? ", each with its own _id" : " under this store's gateway id");
	return 0;
}

int store_salvage(struct store *st, const char *from, int64_t *n)
{
	char key[PATH_MAX + 16], *v = NULL;
	*n = 0;
	if (!from || xsnprintf(key, sizeof(key), "salvaged %s", from) < 0)
		return -EINVAL;
	if (store_kv_get(st, key, &v) == 0) {
		free(v);
		log_warn("store: salvage: %s was re-queued before; not again", from);
		return -EALREADY;
	}
	int err = store_salvage_from(st, from, NULL, n);
	if (err == 0 && (err = store_kv_set(st, key, "1")) == 0) {
		char *what = xasprintf("re-queued %lld note(s) from %s", (long long)*n, from);
		(void)store_audit(st, "store", "salvage", what ? what : from);
		free(what);
	}
	return err;
}

int store_damage(struct store *st, int64_t *count, char **last)
{
	char *c = NULL;
	*count = 0;
	*last = NULL;
	int err = store_kv_get(st, "store.damage_count", &c);
	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	*count = strtoll(c, NULL, 10);
	free(c);
	err = store_kv_get(st, "store.damage", last);
	return err == -ENOENT ? 0 : err;
}
