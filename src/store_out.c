/* store_out.c: the outbound queue — enqueue under the max_size policy, peek in
 * priority-then-age order, sent and failed marks — and the queue statistics. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store-private.h"
#include "util.h"

uint64_t store_note_bytes(const char *file, const char *body, size_t payload_len)
{
	return (uint64_t)(file ? strlen(file) : 0) + (body ? strlen(body) : 0) + payload_len;
}

static int read_room(struct store *st, int64_t *next_seq, int64_t *used)
{
	sqlite3_stmt *s = store_stmt(st, Q_META_ROOM);
	*next_seq = *used = 0; /* defined even on the error paths */
	if (!s)
		return -EIO;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*next_seq = sqlite3_column_int64(s, 0);
		*used = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	log_warn("store: meta: %s", sqlite3_errmsg(st->db));
	return rc == SQLITE_DONE ? -EBADMSG : store_errno(st, rc);
}

static int refuse(struct store *st)
{
	st->refused++;
	if (!st->refusing) {
		st->refusing = true;
		log_warn("store: full (max_size %llu bytes, refuse-new): refusing new notes",
		         (unsigned long long)st->max_size);
	}
	return -ENOSPC;
}

int store_check_room(struct store *st, uint64_t pending, uint64_t bytes)
{
	int64_t seq, used;
	if (!st->max_size)
		return 0;
	if (bytes > st->max_size)
		return refuse(st);
	if (st->when_full == STORE_DROP_OLDEST)
		return 0;
	int err = read_room(st, &seq, &used);
	if (err < 0)
		return err;
	if ((uint64_t)used + pending + bytes > st->max_size)
		return refuse(st);
	return 0;
}

/* Delete oldest notes until `bytes` more fit; inside a write transaction. */
static int drop_oldest(struct store *st, int64_t used, uint64_t bytes)
{
	int64_t n = 0, first_seq = 0;
	char first_file[80] = "";
	int err = 0;
	while ((uint64_t)used + bytes > st->max_size) {
		sqlite3_stmt *s = store_stmt(st, Q_OUT_OLDEST);
		if (!s)
			return -EIO;
		int rc = sqlite3_step(s);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(s);
			if (rc == SQLITE_DONE)
				return -ENOSPC; /* accounting says full but nothing is queued */
			err = store_errno(st, rc);
			break;
		}
		int64_t id = sqlite3_column_int64(s, 0);
		if (n == 0) {
			first_seq = sqlite3_column_int64(s, 1);
			const char *f = (const char *)sqlite3_column_text(s, 2);
			(void)xsnprintf(first_file, sizeof(first_file), "%s", f ? f : "?");
		}
		used -= sqlite3_column_int64(s, 3);
		sqlite3_reset(s);
		s = store_stmt(st, Q_OUT_DELETE);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, id);
		if ((err = store_step_done(st, s)) < 0)
			break;
		n++;
	}
	if (n > 0) {
		sqlite3_stmt *s = store_stmt(st, Q_META_DROPPED);
		if (!s)
			return -EIO;
		sqlite3_bind_int64(s, 1, n);
		int e = store_step_done(st, s);
		if (err == 0)
			err = e;
		if (err == 0)
			log_warn("store: full (max_size %llu bytes, drop-oldest): dropped %lld "
			         "oldest note(s), from %s seq %lld",
			         (unsigned long long)st->max_size, (long long)n, first_file,
			         (long long)first_seq);
	}
	return err;
}

static int insert(struct store *st, const char *file, const char *body, const void *payload,
                  size_t payload_len, int prio, uint64_t bytes, int64_t *seq_out)
{
	int err;
	if (!st->room_valid) {
		if ((err = read_room(st, &st->room_seq, &st->room_used)) < 0)
			return err;
		st->room_valid = true;
	}
	if (st->max_size && (uint64_t)st->room_used + bytes > st->max_size) {
		if (st->when_full != STORE_DROP_OLDEST)
			return refuse(st);
		/* the out_del trigger counts the deletes in the meta row: bring it up to
		 * date first, and read it again after */
		int64_t used = st->room_used;
		if ((err = store_flush_counts(st)) < 0 || (err = drop_oldest(st, used, bytes)) < 0)
			return err;
		if ((err = read_room(st, &st->room_seq, &st->room_used)) < 0)
			return err;
	}
	int64_t seq = st->room_seq;
	if (seq >= st->seq_limit && (err = store_state_reserve(st, seq)) < 0)
		return err; /* the state file must know a seq before a note has it */
	sqlite3_stmt *s = store_stmt(st, Q_OUT_INSERT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_text(s, 2, file, -1, SQLITE_STATIC);
	if (body)
		sqlite3_bind_text(s, 3, body, -1, SQLITE_STATIC);
	if (payload)
		sqlite3_bind_blob64(s, 4, payload, payload_len, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, prio > 0 ? prio : 0);
	sqlite3_bind_int64(s, 6, (int64_t)now_real_ms());
	sqlite3_bind_int64(s, 7, (int64_t)bytes);
	if ((err = store_step_done(st, s)) < 0)
		return err;
	st->room_seq = seq + 1;
	st->room_used += (int64_t)bytes;
	st->add_count++;
	st->add_bytes += (int64_t)bytes;
	if (seq_out)
		*seq_out = seq;
	return 0;
}

/* Whether a note may go in at all, before any transaction: 0 with *bytes, or
 * -EINVAL, a refusal (max_size), or the reserve's on a full disk. */
static int admit(struct store *st, const char *file, const char *body, const void *payload,
                 size_t payload_len, uint64_t *bytes)
{
	if (!file || !notefile_is_outbound(file) || (payload_len && !payload))
		return -EINVAL;
	*bytes = store_note_bytes(file, body, payload_len);
	if (st->max_size && *bytes > st->max_size)
		return refuse(st);
	/* on a full disk the room left is for taking notes out; inside a batch the
	 * whole transaction fails, as it would at its commit */
	int err = store_reserve_gate(st);
	if (err < 0)
		store_doom(st, err);
	return err;
}

static void accepting_again(struct store *st)
{
	if (st->refusing) {
		st->refusing = false;
		log_info("store: accepting notes again (%lld refused so far)",
		         (long long)st->refused);
	}
}

int store_enqueue(struct store *st, const char *file, const char *body, const void *payload,
                  size_t payload_len, int prio, int64_t *seq_out)
{
	uint64_t bytes;
	int err = admit(st, file, body, payload, payload_len, &bytes);
	if (err < 0)
		return err;
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	err = insert(st, file, body, payload, payload_len, prio, bytes, seq_out);
	err = store_wend(st, began, err);
	if (err == 0)
		accepting_again(st);
	return err;
}

/* The kv row naming a delivery key: "seen:" and the key in hex. */
static int seen_name(const void *key, size_t key_len, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *k = key;
	if (!key_len || key_len > STORE_KEY_MAX || 5 + 2 * key_len + 1 > size)
		return -EINVAL;
	memcpy(out, "seen:", 5);
	for (size_t i = 0; i < key_len; i++) {
		out[5 + 2 * i] = hex[k[i] >> 4];
		out[6 + 2 * i] = hex[k[i] & 15];
	}
	out[5 + 2 * key_len] = '\0';
	return 0;
}

/* 1 when the key was committed before, 0 when not, or -errno. */
static int seen(struct store *st, const char *name)
{
	sqlite3_stmt *s = store_stmt(st, Q_SEEN_FIND);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : store_errno(st, rc);
}

/* Keep the key with its note's seq; every 256 notes forget the keys of notes more
 * than STORE_SEEN_KEEP older. */
static int remember(struct store *st, const char *name, int64_t seq)
{
	sqlite3_stmt *s = store_stmt(st, Q_SEEN_ADD);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, seq);
	int err = store_step_done(st, s);
	if (err < 0 || seq % 256 != 0 || seq <= STORE_SEEN_KEEP)
		return err;
	if (!(s = store_stmt(st, Q_SEEN_TRIM)))
		return -EIO;
	sqlite3_bind_int64(s, 1, seq - STORE_SEEN_KEEP);
	return store_step_done(st, s);
}

int store_enqueue_once(struct store *st, const void *key, size_t key_len, const char *file,
                       const char *body, const void *payload, size_t payload_len, int prio,
                       int64_t *seq_out)
{
	char name[5 + 2 * STORE_KEY_MAX + 1];
	uint64_t bytes;
	int64_t seq = 0;
	if (!key || seen_name(key, key_len, name, sizeof(name)) < 0)
		return -EINVAL;
	int err = admit(st, file, body, payload, payload_len, &bytes);
	if (err < 0)
		return err;
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	int dup = seen(st, name);
	err = dup < 0 ? dup : 0;
	if (dup == 0 &&
	    (err = insert(st, file, body, payload, payload_len, prio, bytes, &seq)) == 0)
		err = remember(st, name, seq);
	err = store_wend(st, began, err);
	if (err == 0 && dup == 0) {
		accepting_again(st);
		if (seq_out)
			*seq_out = seq;
	}
	return err < 0 ? err : dup;
}

void store_out_free(struct store_out *n)
{
	if (!n)
		return;
	free(n->file);
	free(n->body);
	free(n->payload);
	free(n);
}

static struct store_out *row_out(sqlite3_stmt *s)
{
	bool oom = false;
	struct store_out *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->id = sqlite3_column_int64(s, 0);
	n->seq = sqlite3_column_int64(s, 1);
	n->file = store_col_text(s, 2, &oom);
	n->body = store_col_text(s, 3, &oom);
	const void *p = sqlite3_column_blob(s, 4);
	int plen = sqlite3_column_bytes(s, 4);
	if (p && plen > 0) {
		n->payload = malloc((size_t)plen);
		if (n->payload) {
			memcpy(n->payload, p, (size_t)plen);
			n->payload_len = (size_t)plen;
		} else {
			oom = true;
		}
	}
	n->prio = sqlite3_column_int(s, 5);
	n->created_ms = sqlite3_column_int64(s, 6);
	n->attempts = sqlite3_column_int64(s, 7);
	if (oom || !n->file) {
		store_out_free(n);
		return NULL;
	}
	return n;
}

static bool marked(const struct store *st, int64_t id)
{
	for (size_t i = 0; i < st->n_marks; i++)
		if (st->marks[i] == id)
			return true;
	return false;
}

/* Append up to max - *k rows of query q to v, past the notes marked sent. */
static int peek_rows(struct store *st, enum store_q q, struct store_out **v, size_t max, size_t *k)
{
	sqlite3_stmt *s = store_stmt(st, q);
	if (!s)
		return -EIO;
	int err = 0, rc = SQLITE_DONE;
	sqlite3_bind_int64(s, 1, (int64_t)(max - *k + st->n_marks));
	while (*k < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (marked(st, sqlite3_column_int64(s, 0)))
			continue;
		if (!(v[*k] = row_out(s))) {
			err = -ENOMEM;
			break;
		}
		(*k)++;
	}
	if (err == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		err = store_errno(st, rc);
		log_warn("store: peek: %s", sqlite3_errmsg(st->db));
	}
	sqlite3_reset(s);
	return err;
}

int store_peek_outs(struct store *st, size_t max, struct store_out ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (max == 0)
		return 0;
	if (max > 4096)
		max = 4096;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	struct store_out **v = calloc(max, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	/* urgent notes from their small index, then normal ones in rowid (age) order */
	int err = peek_rows(st, Q_OUT_PEEK_URGENT, v, max, &k);
	if (err == 0 && k < max)
		err = peek_rows(st, Q_OUT_PEEK, v, max, &k);
	if (err < 0 || k == 0) {
		for (size_t i = 0; i < k; i++)
			store_out_free(v[i]);
		free(v);
		return err;
	}
	*out = v;
	*n = k;
	return 0;
}

int store_peek_out(struct store *st, struct store_out **out)
{
	struct store_out **v;
	size_t n;
	*out = NULL;
	int err = store_peek_outs(st, 1, &v, &n);
	if (err < 0 || n == 0)
		return err;
	*out = v[0];
	free(v);
	return 0;
}

int store_out_sent(struct store *st, int64_t id)
{
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	/* the out_del trigger updates the meta row: bring it up to date first */
	int err = store_flush_counts(st);
	st->room_valid = false;
	if (err < 0)
		return store_wend(st, began, err);
	sqlite3_stmt *s = store_stmt(st, Q_OUT_DELETE);
	err = -EIO;
	if (s) {
		sqlite3_bind_int64(s, 1, id);
		err = store_step_done(st, s);
	}
	if (err == 0 && sqlite3_changes(st->db) == 1)
		err = store_step_done(st, store_stmt(st, Q_META_SENT));
	return store_wend(st, began, err);
}

int store_out_sent_later(struct store *st, int64_t id)
{
	if (st->n_marks == st->cap_marks) {
		size_t nc = st->cap_marks ? st->cap_marks * 2 : 64;
		int64_t *v = realloc(st->marks, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		st->marks = v;
		st->cap_marks = nc;
	}
	st->marks[st->n_marks++] = id;
	return 0;
}

size_t store_out_marks(const struct store *st)
{
	return st->n_marks;
}

int store_out_commit_marks(struct store *st)
{
	if (!st->n_marks)
		return 0;
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	/* the out_del trigger updates the meta row: bring it up to date first */
	int err = store_flush_counts(st);
	st->room_valid = false;
	for (size_t i = 0; err == 0 && i < st->n_marks; i++) {
		sqlite3_stmt *s = store_stmt(st, Q_OUT_DELETE);
		if (!s) {
			err = -EIO;
			break;
		}
		sqlite3_bind_int64(s, 1, st->marks[i]);
		err = store_step_done(st, s);
		/* 0 changes: dropped meanwhile (drop-oldest), not sent */
		if (err == 0 && sqlite3_changes(st->db) == 1)
			err = store_step_done(st, store_stmt(st, Q_META_SENT));
	}
	err = store_wend(st, began, err);
	if (err == 0)
		st->n_marks = 0;
	return err;
}

int store_out_failed(struct store *st, int64_t id, const char *why)
{
	int began = store_wbegin(st);
	if (began < 0)
		return began;
	sqlite3_stmt *s = store_stmt(st, Q_OUT_FAILED);
	int err = -EIO;
	if (s) {
		if (why)
			sqlite3_bind_text(s, 1, why, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, id);
		err = store_step_done(st, s);
	}
	return store_wend(st, began, err);
}

/* ---- stats ------------------------------------------------------------------------ */

int store_stats(struct store *st, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *s = store_stmt(st, Q_STATS);
	if (!s)
		return -EIO;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->queued = sqlite3_column_int64(s, 0);
		out->bytes = sqlite3_column_int64(s, 1);
		out->dropped = sqlite3_column_int64(s, 2);
		out->sent = sqlite3_column_int64(s, 3);
		out->oldest_ms = sqlite3_column_int64(s, 4);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -EBADMSG : store_errno(st, rc);
	s = store_stmt(st, Q_IN_STATS);
	if (!s)
		return -EIO;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->inbound = sqlite3_column_int64(s, 0);
		out->inbound_pending = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return store_errno(st, rc);
	out->refused = st->refused;
	out->bytes_written = st->bytes_written;
	return 0;
}

void store_file_stats_free(struct store_file_stats *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].file);
	free(v);
}

int store_queue(struct store *st, struct store_file_stats **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	sqlite3_stmt *s = store_stmt(st, Q_QUEUE);
	if (!s)
		return -EIO;
	struct store_file_stats *v = NULL;
	size_t k = 0, cap = 0;
	int err = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (k == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct store_file_stats *nv = realloc(v, nc * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				break;
			}
			v = nv;
			cap = nc;
		}
		bool oom = false;
		v[k].file = store_col_text(s, 0, &oom);
		v[k].count = sqlite3_column_int64(s, 1);
		v[k].bytes = sqlite3_column_int64(s, 2);
		v[k].oldest_ms = sqlite3_column_int64(s, 3);
		k++;
		if (oom) {
			err = -ENOMEM;
			break;
		}
	}
	if (err == 0 && rc != SQLITE_DONE)
		err = store_errno(st, rc);
	sqlite3_reset(s);
	if (err < 0) {
		store_file_stats_free(v, k);
		return err;
	}
	*out = v;
	*n = k;
	return 0;
}
