/* store_in.c: inbound notes (duplicate recognition, per-consumer delivery marks,
 * pruning), the audit log and the durable key/value table. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store-private.h"
#include "util.h"

/* The duplicate key: SHA-256 over every field, each with a presence byte and its
 * length so that no two different notes hash the same input. */
static int dedupe_key(const char *file, const char *note, const char *body, const char *payload,
                      int64_t time, unsigned char key[32])
{
	const char *f[] = {file, note, body, payload};
	unsigned int len = 0;
	int ok = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return -ENOMEM;
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
		goto out;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		unsigned char hdr[9] = {f[i] ? 1 : 0};
		uint64_t n = f[i] ? strlen(f[i]) : 0;
		for (int b = 0; b < 8; b++)
			hdr[1 + b] = (unsigned char)(n >> (8 * b));
		if (EVP_DigestUpdate(c, hdr, sizeof(hdr)) != 1 ||
		    (n && EVP_DigestUpdate(c, f[i], n) != 1))
			goto out;
	}
	unsigned char t[8];
	for (int b = 0; b < 8; b++)
		t[b] = (unsigned char)((uint64_t)time >> (8 * b));
	if (EVP_DigestUpdate(c, t, sizeof(t)) != 1 || EVP_DigestFinal_ex(c, key, &len) != 1 ||
	    len != 32)
		goto out;
	ok = 1;
out:
	EVP_MD_CTX_free(c);
	return ok ? 0 : -EIO;
}

int store_inbound_add(struct store *st, const char *file, const char *note, const char *body,
                      const char *payload, int64_t time, int64_t *id_out)
{
	unsigned char key[32];
	int64_t id = 0;
	int dup = 0;
	if (!file || !*file)
		return -EINVAL;
	int err = dedupe_key(file, note, body, payload, time, key);
	if (err < 0)
		return err;
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	sqlite3_stmt *s = store_stmt(st, Q_IN_ADD);
	err = -EIO;
	if (s) {
		sqlite3_bind_blob(s, 1, key, sizeof(key), SQLITE_STATIC);
		sqlite3_bind_text(s, 2, file, -1, SQLITE_STATIC);
		if (note)
			sqlite3_bind_text(s, 3, note, -1, SQLITE_STATIC);
		if (body)
			sqlite3_bind_text(s, 4, body, -1, SQLITE_STATIC);
		if (payload)
			sqlite3_bind_text(s, 5, payload, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 6, time);
		sqlite3_bind_int64(s, 7, (int64_t)now_real_ms());
		err = store_step_done(st, s);
	}
	if (err == 0 && sqlite3_changes(st->db) == 1) {
		id = sqlite3_last_insert_rowid(st->db);
	} else if (err == 0) {
		dup = 1;
		s = store_stmt(st, Q_IN_FIND);
		if (!s) {
			err = -EIO;
		} else {
			sqlite3_bind_blob(s, 1, key, sizeof(key), SQLITE_STATIC);
			if (sqlite3_step(s) == SQLITE_ROW)
				id = sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
		}
	}
	err = store_wend(st, began, err);
	if (err < 0)
		return err;
	if (dup)
		log_debug("store: inbound %s note %s is a duplicate of %lld", file,
		          note ? note : "-", (long long)id);
	if (id_out)
		*id_out = id;
	return dup;
}

void store_in_free(struct store_in *n)
{
	if (!n)
		return;
	free(n->file);
	free(n->note);
	free(n->body);
	free(n->payload);
	free(n);
}

void store_in_list_free(struct store_in **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		store_in_free(v[i]);
	free(v);
}

static int consumer_known(struct store *st, const char *consumer)
{
	sqlite3_stmt *s = store_stmt(st, Q_CONSUMER_HAS);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, consumer, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : store_errno(st, rc);
}

int store_inbound_pending(struct store *st, const char *consumer, int64_t after_id,
                          struct store_in ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!consumer)
		return -EINVAL;
	int err = consumer_known(st, consumer);
	if (err < 0)
		return err;
	sqlite3_stmt *s = store_stmt(st, Q_IN_PENDING);
	if (!s)
		return -EIO;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	struct store_in **v = calloc(STORE_INBOUND_BATCH, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	int rc;
	sqlite3_bind_text(s, 1, consumer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, after_id);
	sqlite3_bind_int(s, 3, STORE_INBOUND_BATCH);
	while (k < STORE_INBOUND_BATCH && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		bool oom = false;
		struct store_in *r = calloc(1, sizeof(*r));
		if (!r) {
			err = -ENOMEM;
			break;
		}
		v[k++] = r;
		r->id = sqlite3_column_int64(s, 0);
		r->file = store_col_text(s, 1, &oom);
		r->note = store_col_text(s, 2, &oom);
		r->body = store_col_text(s, 3, &oom);
		r->payload = store_col_text(s, 4, &oom);
		r->time = sqlite3_column_int64(s, 5);
		if (oom) {
			err = -ENOMEM;
			break;
		}
	}
	if (err == 0 && k < STORE_INBOUND_BATCH && rc != SQLITE_DONE)
		err = store_errno(st, rc);
	sqlite3_reset(s);
	if (err < 0 || k == 0) {
		store_in_list_free(v, k);
		return err;
	}
	*out = v;
	*n = k;
	return 0;
}

int store_inbound_done(struct store *st, const char *consumer, int64_t id)
{
	if (!consumer)
		return -EINVAL;
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	sqlite3_stmt *s = store_stmt(st, Q_IN_DONE);
	int err = -EIO;
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_text(s, 2, consumer, -1, SQLITE_STATIC);
		err = store_step_done(st, s);
	}
	return store_wend(st, began, err);
}

int store_consumer_add(struct store *st, const char *consumer)
{
	if (!consumer || !*consumer)
		return -EINVAL;
	if (consumer_known(st, consumer) == 0)
		return 0; /* no write for a consumer registering again at every start */
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	sqlite3_stmt *s = store_stmt(st, Q_CONSUMER_ADD);
	int err = -EIO;
	if (s) {
		sqlite3_bind_text(s, 1, consumer, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (int64_t)now_real_ms());
		err = store_step_done(st, s);
	}
	return store_wend(st, began, err);
}

int store_inbound_prune(struct store *st, int64_t older_than_ms)
{
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	sqlite3_stmt *s = store_stmt(st, Q_IN_PRUNE);
	int err = -EIO, n = 0;
	if (s) {
		sqlite3_bind_int64(s, 1, older_than_ms);
		err = store_step_done(st, s);
		if (err == 0)
			n = sqlite3_changes(st->db);
	}
	err = store_wend(st, began, err);
	return err < 0 ? err : n;
}

/* ---- audit ---------------------------------------------------------------------- */

int store_audit(struct store *st, const char *actor, const char *action, const char *detail)
{
	if (!actor || !action)
		return -EINVAL;
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	sqlite3_stmt *s = store_stmt(st, Q_AUDIT_ADD);
	int err = -EIO;
	if (s) {
		sqlite3_bind_int64(s, 1, (int64_t)now_real_ms());
		sqlite3_bind_text(s, 2, actor, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, action, -1, SQLITE_STATIC);
		if (detail)
			sqlite3_bind_text(s, 4, detail, -1, SQLITE_STATIC);
		err = store_step_done(st, s);
	}
	int64_t last = sqlite3_last_insert_rowid(st->db);
	if (err == 0 && last > STORE_AUDIT_KEEP) {
		if (!(s = store_stmt(st, Q_AUDIT_TRIM))) {
			err = -EIO;
		} else {
			sqlite3_bind_int64(s, 1, last - STORE_AUDIT_KEEP);
			err = store_step_done(st, s);
		}
	}
	return store_wend(st, began, err);
}

void store_audit_free(struct store_audit_row *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].actor);
		free(v[i].action);
		free(v[i].detail);
	}
	free(v);
}

int store_audit_list(struct store *st, int64_t limit, struct store_audit_row **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (limit <= 0)
		return 0;
	if (limit > STORE_AUDIT_KEEP)
		limit = STORE_AUDIT_KEEP;
	sqlite3_stmt *s = store_stmt(st, Q_AUDIT_LIST);
	if (!s)
		return -EIO;
	struct store_audit_row *v = calloc((size_t)limit, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	int err = 0, rc;
	sqlite3_bind_int64(s, 1, limit);
	while (k < (size_t)limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		bool oom = false;
		v[k].time_ms = sqlite3_column_int64(s, 0);
		v[k].actor = store_col_text(s, 1, &oom);
		v[k].action = store_col_text(s, 2, &oom);
		v[k].detail = store_col_text(s, 3, &oom);
		k++;
		if (oom) {
			err = -ENOMEM;
			break;
		}
	}
	if (err == 0 && k < (size_t)limit && rc != SQLITE_DONE)
		err = store_errno(st, rc);
	sqlite3_reset(s);
	if (err < 0 || k == 0) {
		store_audit_free(v, k);
		return err;
	}
	*out = v;
	*n = k;
	return 0;
}

/* ---- key/value ------------------------------------------------------------------- */

int store_kv_set(struct store *st, const char *key, const char *value)
{
	if (!key || !value)
		return -EINVAL;
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	sqlite3_stmt *s = store_stmt(st, Q_KV_SET);
	int err = -EIO;
	if (s) {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
		err = store_step_done(st, s);
	}
	return store_wend(st, began, err);
}

int store_kv_get(struct store *st, const char *key, char **value)
{
	*value = NULL;
	if (!key)
		return -EINVAL;
	sqlite3_stmt *s = store_stmt(st, Q_KV_GET);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s), err = 0;
	if (rc == SQLITE_ROW) {
		bool oom = false;
		*value = store_col_text(s, 0, &oom);
		if (oom || !*value)
			err = -ENOMEM;
	} else {
		err = rc == SQLITE_DONE ? -ENOENT : store_errno(st, rc);
	}
	sqlite3_reset(s);
	return err;
}

int store_kv_del(struct store *st, const char *key)
{
	if (!key)
		return -EINVAL;
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	sqlite3_stmt *s = store_stmt(st, Q_KV_DEL);
	int err = -EIO;
	if (s) {
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		err = store_step_done(st, s);
	}
	return store_wend(st, began, err);
}
