/* Unit tests of the store: queue order, sent/failed, inbound duplicates and
 * consumers, stats, audit, kv, both full policies, migration from schema v1, a
 * corrupt file moved aside, a full disk (small tmpfs, or RLIMIT_FSIZE) and recovery,
 * and no writes while idle (counted by the test VFS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "store-private.h" /* store_share_files */
#include "store.h"
#include "store_check.h"
#include "vfs_shim.h"

struct fx {
	char dir[64];
	char path[128];
};

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/ngw-store-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char mnt[96];
	snprintf(mnt, sizeof(mnt), "%s/mnt", fx->dir);
	umount2(mnt, MNT_DETACH); /* the tmpfs of t_enospc_tmpfs, even if it failed */
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static struct store *open_st(const char *path, uint64_t max, int policy)
{
	struct store_opts o = {.max_size = max, .when_full = policy};
	struct store *st = NULL;
	assert_int_equal(store_open(path, &o, &st), 0);
	assert_non_null(st);
	return st;
}

static int64_t put(struct store *st, const char *file, const char *body, int prio)
{
	int64_t seq = -1;
	assert_int_equal(store_enqueue(st, file, body, NULL, 0, prio, &seq), 0);
	return seq;
}

/* A repeated delivery key is accepted without a second row, across a reopen, also
 * inside one transaction; a rolled-back key is not remembered; keys are forgotten
 * STORE_SEEN_KEEP notes later. */
static void t_enqueue_once(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	struct store_stats ss;
	int64_t seq = -1;
	assert_int_equal(store_enqueue_once(st, "k1", 2, "a.qo", "{\"n\":1}", NULL, 0, 0, &seq), 0);
	assert_int_equal(store_enqueue_once(st, "k1", 2, "a.qo", "{\"n\":1}", NULL, 0, 0, NULL), 1);
	assert_int_equal(store_enqueue_once(st, "k2", 2, "a.qo", "{\"n\":1}", NULL, 0, 0, NULL), 0);
	assert_int_equal(store_enqueue_once(st, NULL, 0, "a.qo", "{}", NULL, 0, 0, NULL), -EINVAL);
	store_close(st);
	st = open_st(fx->path, 0, 0);
	assert_int_equal(store_enqueue_once(st, "k1", 2, "a.qo", "{\"n\":1}", NULL, 0, 0, NULL), 1);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_enqueue_once(st, "k3", 2, "a.qo", "{}", NULL, 0, 0, NULL), 0);
	assert_int_equal(store_enqueue_once(st, "k3", 2, "a.qo", "{}", NULL, 0, 0, NULL), 1);
	store_rollback(st);
	assert_int_equal(store_enqueue_once(st, "k3", 2, "a.qo", "{}", NULL, 0, 0, NULL), 0);
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 3);
	/* the oldest key is forgotten once STORE_SEEN_KEEP later notes came (the keys
	 * are trimmed every 256 notes) */
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < STORE_SEEN_KEEP + 256; i++) {
		char k[16];
		snprintf(k, sizeof(k), "n%d", i);
		assert_int_equal(
		    store_enqueue_once(st, k, strlen(k), "b.qo", NULL, NULL, 0, 0, NULL), 0);
	}
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(store_enqueue_once(st, "k1", 2, "a.qo", "{\"n\":1}", NULL, 0, 0, NULL), 0);
	assert_int_equal(store_enqueue_once(st, "n1000", 5, "b.qo", NULL, NULL, 0, 0, NULL), 1);
	store_close(st);
}

static void t_open_fresh(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
	const char *id = store_gateway_id(st);
	assert_int_equal(strlen(id), 16);
	assert_int_equal(strspn(id, "0123456789abcdef"), 16);
	char keep[17];
	strcpy(keep, id);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 0);
	assert_int_equal(ss.oldest_ms, 0);
	struct store_out *n = (void *)1;
	assert_int_equal(store_peek_out(st, &n), 0);
	assert_null(n);
	store_close(st);
	st = open_st(fx->path, 0, 0);
	assert_string_equal(store_gateway_id(st), keep);
	store_close(st);
	/* another store gets another id */
	char other[160];
	snprintf(other, sizeof(other), "%s/other.db", fx->dir);
	st = open_st(other, 0, 0);
	assert_string_not_equal(store_gateway_id(st), keep);
	store_close(st);
}

static void t_order(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	int64_t s1 = put(st, "a.qo", "{\"n\":1}", 0);
	int64_t s2 = put(st, "b.qo", "{\"n\":2}", 0);
	int64_t s3 = put(st, "u.qo", "{\"n\":3}", 5);
	int64_t s4 = put(st, "a.qo", "{\"n\":4}", 0);
	int64_t s5 = put(st, "u.qo", "{\"n\":5}", 5);
	int64_t s6 = put(st, "v.qo", "{\"n\":6}", 7);
	int64_t s7 = put(st, "a.qo", "{\"n\":7}", -3); /* counts as normal */
	assert_true(s1 < s2 && s2 < s3 && s3 < s4 && s4 < s5 && s5 < s6 && s6 < s7);
	const int64_t want[] = {s6, s3, s5, s1, s2, s4, s7};
	const size_t nwant = sizeof(want) / sizeof(want[0]);
	struct store_out **v;
	size_t n;
	assert_int_equal(store_peek_outs(st, 10, &v, &n), 0);
	assert_int_equal(n, nwant);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i]->seq, want[i]);
		store_out_free(v[i]);
	}
	free(v);
	/* a short peek takes from the urgent ones first, then the normal ones */
	assert_int_equal(store_peek_outs(st, 4, &v, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(v[3]->seq, s1);
	for (size_t i = 0; i < n; i++)
		store_out_free(v[i]);
	free(v);
	/* drain in order with peek + sent */
	for (size_t i = 0; i < nwant; i++) {
		struct store_out *o;
		assert_int_equal(store_peek_out(st, &o), 0);
		assert_non_null(o);
		assert_int_equal(o->seq, want[i]);
		assert_int_equal(store_out_sent(st, o->id), 0);
		store_out_free(o);
	}
	struct store_out *o;
	assert_int_equal(store_peek_out(st, &o), 0);
	assert_null(o);
	/* sequence numbers are never reused, also across a reopen with an empty queue */
	store_close(st);
	st = open_st(fx->path, 0, 0);
	int64_t s8 = put(st, "a.qo", "{}", 0);
	assert_true(s8 > s7);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.sent, (int64_t)nwant);
	assert_int_equal(ss.queued, 1);
	store_close(st);
}

static void t_payload_failed(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	const unsigned char bin[] = {0, 1, 2, 255, 0};
	int64_t seq;
	assert_int_equal(store_enqueue(st, "p.qo", NULL, bin, sizeof(bin), 0, &seq), 0);
	put(st, "p.qo", "{}", 0);
	struct store_out *o;
	assert_int_equal(store_peek_out(st, &o), 0);
	assert_int_equal(o->seq, seq);
	assert_null(o->body);
	assert_int_equal(o->payload_len, sizeof(bin));
	assert_memory_equal(o->payload, bin, sizeof(bin));
	assert_int_equal(o->attempts, 0);
	int64_t id = o->id;
	store_out_free(o);
	assert_int_equal(store_out_failed(st, id, "card busy"), 0);
	assert_int_equal(store_out_failed(st, id, NULL), 0);
	assert_int_equal(store_peek_out(st, &o), 0);
	assert_int_equal(o->id, id); /* kept, still first */
	assert_int_equal(o->attempts, 2);
	store_out_free(o);
	/* sent twice (a retry after a crash) is fine and counted once */
	assert_int_equal(store_out_sent(st, id), 0);
	assert_int_equal(store_out_sent(st, id), 0);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.sent, 1);
	assert_int_equal(ss.queued, 1);
	store_close(st);
}

static void t_invalid(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(store_enqueue(st, "x.qi", "{}", NULL, 0, 0, NULL), -EINVAL);
	assert_int_equal(store_enqueue(st, "../x.qo", "{}", NULL, 0, 0, NULL), -EINVAL);
	assert_int_equal(store_enqueue(st, NULL, "{}", NULL, 0, 0, NULL), -EINVAL);
	assert_int_equal(store_enqueue(st, "a.qo", NULL, NULL, 3, 0, NULL), -EINVAL);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 0);
	store_close(st);
}

static void t_txn(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(store_begin(st), 0);
	assert_true(store_in_txn(st));
	assert_int_equal(store_begin(st), -EBUSY);
	put(st, "a.qo", "{}", 0);
	put(st, "a.qo", "{}", 0);
	store_rollback(st);
	assert_false(store_in_txn(st));
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 0);
	assert_int_equal(store_begin(st), 0);
	int64_t a = put(st, "a.qo", "{}", 0);
	int64_t b = put(st, "a.qo", "{}", 0);
	assert_int_equal(b, a + 1);
	/* a refusal inside the transaction does not doom the others */
	assert_int_equal(store_enqueue(st, "bad", "{}", NULL, 0, 0, NULL), -EINVAL);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(store_commit(st), -EINVAL);
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 2);
	/* a second connection (the link thread) sees them and writes too */
	struct store *st2 = open_st(fx->path, 0, 0);
	struct store_out *o;
	assert_int_equal(store_peek_out(st2, &o), 0);
	assert_int_equal(o->seq, a);
	assert_int_equal(store_out_sent(st2, o->id), 0);
	store_out_free(o);
	int64_t c = put(st, "a.qo", "{}", 0);
	assert_int_equal(c, b + 1);
	assert_int_equal(store_stats(st2, &ss), 0);
	assert_int_equal(ss.queued, 2);
	store_close(st2);
	/* enqueues, a sent and a failed enqueue in one transaction keep the counters */
	assert_int_equal(store_begin(st), 0);
	put(st, "a.qo", "{\"x\":1}", 0);
	assert_int_equal(store_peek_out(st, &o), 0);
	assert_int_equal(store_out_sent(st, o->id), 0);
	store_out_free(o);
	int64_t d = put(st, "a.qo", "{\"x\":22}", 2);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(d, c + 2);
	store_check_counters(fx->path);
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 3);
	store_close(st);
}

static void t_inbound(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	int64_t id1, id2, id3, idd;
	assert_int_equal(store_inbound_add(st, "c.qi", NULL, "{\"a\":1}", NULL, 100, &id1), 0);
	assert_int_equal(store_inbound_add(st, "c.qi", NULL, "{\"a\":1}", NULL, 100, &idd), 1);
	assert_int_equal(idd, id1);
	assert_int_equal(store_inbound_add(st, "c.qi", NULL, "{\"a\":1}", NULL, 101, &id2), 0);
	assert_int_equal(store_inbound_add(st, "c.db", "n1", NULL, "AAEC", 100, &id3), 0);
	assert_int_equal(store_inbound_add(st, "c.db", "n1", NULL, "AAEC", 100, &idd), 1);
	assert_int_equal(idd, id3);
	/* NULL and "" differ */
	assert_int_equal(store_inbound_add(st, "c.db", "n1", "", "AAEC", 100, NULL), 0);
	assert_true(id1 < id2 && id2 < id3);

	struct store_in **v;
	size_t n;
	assert_int_equal(store_inbound_pending(st, "mqtt", 0, &v, &n), -ENOENT);
	assert_int_equal(store_consumer_add(st, "mqtt"), 0);
	assert_int_equal(store_consumer_add(st, "mqtt"), 0);
	assert_int_equal(store_consumer_add(st, "log"), 0);
	assert_int_equal(store_inbound_pending(st, "mqtt", 0, &v, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(v[0]->id, id1);
	assert_string_equal(v[0]->file, "c.qi");
	assert_null(v[0]->note);
	assert_string_equal(v[0]->body, "{\"a\":1}");
	assert_int_equal(v[0]->time, 100);
	assert_string_equal(v[2]->note, "n1");
	assert_string_equal(v[2]->payload, "AAEC");
	assert_null(v[2]->body);
	store_in_list_free(v, n);

	assert_int_equal(store_inbound_done(st, "mqtt", id1), 0);
	assert_int_equal(store_inbound_done(st, "mqtt", id1), 0);
	assert_int_equal(store_inbound_pending(st, "mqtt", 0, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0]->id, id2);
	store_in_list_free(v, n);
	assert_int_equal(store_inbound_pending(st, "mqtt", id3, &v, &n), 0);
	assert_int_equal(n, 1);
	store_in_list_free(v, n);
	assert_int_equal(store_inbound_pending(st, "log", 0, &v, &n), 0);
	assert_int_equal(n, 4);
	store_in_list_free(v, n);

	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.inbound, 4);
	assert_int_equal(ss.inbound_pending, 4);
	assert_int_equal(store_inbound_done(st, "log", id1), 0);
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.inbound_pending, 3);
	/* prune: only what every consumer has and that is old enough */
	assert_int_equal(store_inbound_prune(st, 0), 0);
	assert_int_equal(store_inbound_prune(st, INT64_MAX), 1);
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.inbound, 3);
	store_close(st);
}

static void t_inbound_batch_limit(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(store_consumer_add(st, "c"), 0);
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < STORE_INBOUND_BATCH + 5; i++)
		assert_int_equal(store_inbound_add(st, "f.qi", NULL, "{}", NULL, i, NULL), 0);
	assert_int_equal(store_commit(st), 0);
	struct store_in **v;
	size_t n;
	assert_int_equal(store_inbound_pending(st, "c", 0, &v, &n), 0);
	assert_int_equal(n, STORE_INBOUND_BATCH);
	int64_t last = v[n - 1]->id;
	store_in_list_free(v, n);
	assert_int_equal(store_inbound_pending(st, "c", last, &v, &n), 0);
	assert_int_equal(n, 5);
	store_in_list_free(v, n);
	store_close(st);
}

static void t_queue_stats(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	put(st, "b.qo", "{\"x\":1}", 0);  /* 4 + 7 */
	put(st, "a.qos", "{}", 0);        /* 5 + 2 */
	put(st, "b.qo", "{\"x\":22}", 1); /* 4 + 8 */
	struct store_file_stats *v;
	size_t n;
	assert_int_equal(store_queue(st, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].file, "b.qo");
	assert_int_equal(v[0].count, 2);
	assert_int_equal(v[0].bytes, 23);
	assert_true(v[0].oldest_ms > 0 && v[0].oldest_ms <= v[1].oldest_ms);
	assert_string_equal(v[1].file, "a.qos");
	assert_int_equal(v[1].count, 1);
	assert_int_equal(v[1].bytes, 7);
	store_file_stats_free(v, n);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 3);
	assert_int_equal(ss.bytes, 30);
	assert_true(ss.oldest_ms > 0);
	assert_true(ss.bytes_written > 0);
	store_close(st);
}

static void t_audit_kv(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(store_audit(st, "cli", "send", "a.qo"), 0);
	assert_int_equal(store_audit(st, "daemon", "reload", NULL), 0);
	assert_int_equal(store_audit(st, "link", "hub.set", "{}"), 0);
	assert_int_equal(store_audit(st, NULL, "x", NULL), -EINVAL);
	struct store_audit_row *v;
	size_t n;
	assert_int_equal(store_audit_list(st, 2, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].actor, "link");
	assert_string_equal(v[1].action, "reload");
	assert_null(v[1].detail);
	assert_true(v[0].time_ms > 0);
	store_audit_free(v, n);
	assert_int_equal(store_audit_list(st, 100, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[2].detail, "a.qo");
	store_audit_free(v, n);

	char *val = (char *)1;
	assert_int_equal(store_kv_get(st, "hub.product", &val), -ENOENT);
	assert_null(val);
	assert_int_equal(store_kv_set(st, "hub.product", "com.x:y"), 0);
	assert_int_equal(store_kv_set(st, "hub.product", "com.x:z"), 0);
	assert_int_equal(store_kv_set(st, "other", ""), 0);
	assert_int_equal(store_kv_get(st, "hub.product", &val), 0);
	assert_string_equal(val, "com.x:z");
	free(val);
	assert_int_equal(store_kv_del(st, "hub.product"), 0);
	assert_int_equal(store_kv_get(st, "hub.product", &val), -ENOENT);
	assert_int_equal(store_kv_get(st, "other", &val), 0);
	assert_string_equal(val, "");
	free(val);
	store_close(st);
}

static void t_full_refuse(void **state)
{
	struct fx *fx = *state;
	/* every note is 4 + 12 = 16 bytes */
	struct store *st = open_st(fx->path, 50, STORE_REFUSE_NEW);
	assert_int_equal(store_check_room(st, 0, 16), 0);
	assert_int_equal(store_check_room(st, 40, 16), -ENOSPC);
	int64_t first = put(st, "r.qo", "{\"n\":\"0001\"}", 0);
	put(st, "r.qo", "{\"n\":\"0002\"}", 0);
	put(st, "r.qo", "{\"n\":\"0003\"}", 0);
	assert_int_equal(store_check_room(st, 0, 16), -ENOSPC);
	assert_int_equal(store_check_room(st, 0, 2), 0);
	assert_int_equal(store_enqueue(st, "r.qo", "{\"n\":\"0004\"}", NULL, 0, 0, NULL), -ENOSPC);
	/* too big for the store at all */
	char big[80];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(store_enqueue(st, "r.qo", big, NULL, 0, 0, NULL), -ENOSPC);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 3);
	assert_int_equal(ss.bytes, 48);
	assert_true(ss.refused >= 2);
	assert_int_equal(ss.dropped, 0);
	/* the oldest is still there: nothing was dropped */
	struct store_out *o;
	assert_int_equal(store_peek_out(st, &o), 0);
	assert_int_equal(o->seq, first);
	/* sending frees room: accepted again */
	assert_int_equal(store_out_sent(st, o->id), 0);
	store_out_free(o);
	put(st, "r.qo", "{\"n\":\"0005\"}", 0);
	/* the limit is per store, also across connections */
	struct store *st2 = open_st(fx->path, 50, STORE_REFUSE_NEW);
	assert_int_equal(store_enqueue(st2, "r.qo", "{\"n\":\"0006\"}", NULL, 0, 0, NULL), -ENOSPC);
	store_close(st2);
	store_close(st);
}

static void t_full_drop(void **state)
{
	struct fx *fx = *state;
	struct store *st = open_st(fx->path, 50, STORE_DROP_OLDEST);
	int64_t seq[10];
	for (int i = 0; i < 10; i++) {
		char body[32];
		snprintf(body, sizeof(body), "{\"n\":\"%04d\"}", i);
		seq[i] = put(st, "d.qo", body, i == 1 ? 9 : 0);
	}
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 3);
	assert_int_equal(ss.bytes, 48);
	assert_int_equal(ss.dropped, 7);
	assert_int_equal(ss.refused, 0);
	/* the newest three stayed, oldest first (prio does not protect from age) */
	struct store_out **v;
	size_t n;
	assert_int_equal(store_peek_outs(st, 10, &v, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i]->seq, seq[7 + i]);
		store_out_free(v[i]);
	}
	free(v);
	/* a note bigger than the whole store is refused even here */
	char big[80];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(store_enqueue(st, "d.qo", big, NULL, 0, 0, NULL), -ENOSPC);
	store_check_counters(fx->path);
	/* counts survive a restart */
	store_close(st);
	st = open_st(fx->path, 50, STORE_DROP_OLDEST);
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.dropped, 7);
	assert_int_equal(ss.queued, 3);
	store_close(st);
}

/* Schema v1 exactly as the first release created it. */
static const char v1_sql[] =
    "PRAGMA journal_mode = WAL;"
    "CREATE TABLE meta( one INTEGER PRIMARY KEY CHECK (one = 1), gateway_id TEXT NOT NULL,"
    " next_seq INTEGER NOT NULL DEFAULT 1, q_count INTEGER NOT NULL DEFAULT 0,"
    " q_bytes INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0,"
    " sent INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO meta(one, gateway_id) VALUES (1, '0123456789abcdef');"
    "CREATE TABLE out( id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, file TEXT NOT NULL,"
    " body TEXT, payload BLOB, prio INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL);"
    "CREATE INDEX out_order ON out(prio DESC, id);"
    "CREATE TRIGGER out_ins AFTER INSERT ON out BEGIN UPDATE meta SET next_seq ="
    " max(next_seq, NEW.seq + 1), q_count = q_count + 1, q_bytes = q_bytes + NEW.bytes; END;"
    "CREATE TRIGGER out_del AFTER DELETE ON out BEGIN UPDATE meta SET q_count = q_count - 1,"
    " q_bytes = q_bytes - OLD.bytes; END;"
    "CREATE TABLE inb( id INTEGER PRIMARY KEY, dkey BLOB NOT NULL UNIQUE, file TEXT NOT NULL,"
    " note TEXT, body TEXT, payload TEXT, time INTEGER, received INTEGER NOT NULL);"
    "CREATE TABLE consumer(name TEXT PRIMARY KEY, added INTEGER NOT NULL);"
    "CREATE TABLE delivered(in_id INTEGER NOT NULL, consumer TEXT NOT NULL,"
    " PRIMARY KEY (in_id, consumer)) WITHOUT ROWID;"
    "CREATE TRIGGER inb_del AFTER DELETE ON inb BEGIN DELETE FROM delivered WHERE in_id ="
    " OLD.id; END;"
    "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "INSERT INTO out(seq, file, body, prio, created, bytes) VALUES (41, 'old.qo', '{\"v\":1}',"
    " 0, 1700000000000, 11);"
    "INSERT INTO kv VALUES ('k', 'v1');"
    "PRAGMA user_version = 1;";

static void exec_raw(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fail_msg("sql: %s", msg);
	sqlite3_close(db);
}

static void t_migrate_v1(void **state)
{
	struct fx *fx = *state;
	exec_raw(fx->path, v1_sql);
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
	assert_string_equal(store_gateway_id(st), "0123456789abcdef");
	struct store_out *o;
	assert_int_equal(store_peek_out(st, &o), 0);
	assert_non_null(o);
	assert_int_equal(o->seq, 41);
	assert_string_equal(o->body, "{\"v\":1}");
	/* v2's additions work on the migrated store */
	assert_int_equal(store_out_failed(st, o->id, "no card"), 0);
	store_out_free(o);
	assert_int_equal(store_audit(st, "test", "migrated", NULL), 0);
	assert_int_equal(put(st, "new.qo", "{}", 0), 42);
	assert_int_equal(put(st, "urgent.qo", "{}", 1), 43);
	assert_int_equal(store_peek_out(st, &o), 0);
	assert_int_equal(o->seq, 43); /* the v3 urgent index is in place */
	store_out_free(o);
	store_check_counters(fx->path);
	char *v;
	assert_int_equal(store_kv_get(st, "k", &v), 0);
	assert_string_equal(v, "v1");
	free(v);
	store_close(st);
	/* and it opens again without migrating (still v2, data intact) */
	st = open_st(fx->path, 0, 0);
	assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 3);
	store_close(st);
}

static void t_newer_schema(void **state)
{
	struct fx *fx = *state;
	exec_raw(fx->path, "CREATE TABLE t(x); PRAGMA user_version = 99;");
	struct store *st = NULL;
	assert_int_equal(store_open(fx->path, NULL, &st), -EPROTONOSUPPORT);
	assert_null(st);
	assert_int_equal(access(fx->path, F_OK), 0); /* left alone */
}

/* How many files in dir start with prefix. */
static int count_prefix(const char *dir, const char *prefix)
{
	int n = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static int first_prefix(const char *dir, const char *prefix, char *out, size_t cap)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	int r = -1;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && !strstr(e->d_name, "-wal") &&
		    !strstr(e->d_name, "-shm")) {
			assert_true(snprintf(out, cap, "%s/%.*s", dir, 100, e->d_name) < (int)cap);
			r = 0;
		}
	closedir(d);
	return r;
}

static void assert_damage_recorded(struct store *st, const char *what);

static void t_corrupt_garbage(void **state)
{
	struct fx *fx = *state;
	FILE *f = fopen(fx->path, "w");
	assert_non_null(f);
	for (int i = 0; i < 3000; i++)
		fputs("this is not an sqlite database; ", f);
	fclose(f);
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(count_prefix(fx->dir, "store.db.corrupt-"), 1);
	put(st, "a.qo", "{}", 0);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 1);
	store_close(st);
	/* the fresh store is fine: no second move */
	st = open_st(fx->path, 0, 0);
	store_close(st);
	assert_int_equal(count_prefix(fx->dir, "store.db.corrupt-"), 1);
}

/* 200 notes of body (599 'b's), checkpointed, then a dozen pages scribbled over. */
static void make_corrupt(struct fx *fx, char body[600], char gw[17])
{
	struct store *st = open_st(fx->path, 0, 0);
	memset(body, 'b', 599);
	body[599] = 0;
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < 200; i++)
		put(st, "a.qo", body, i % 3);
	assert_int_equal(store_commit(st), 0);
	strcpy(gw, store_gateway_id(st));
	store_close(st); /* checkpoints: everything is in the main file */
	FILE *f = fopen(fx->path, "r+");
	assert_non_null(f);
	/* scribble over the middle of the b-tree pages */
	for (long off = 8 * 4096; off < 20 * 4096; off += 4096) {
		fseek(f, off, SEEK_SET);
		for (int i = 0; i < 64; i++)
			fputc(0xA5, f);
	}
	fclose(f);
}

static void t_corrupt_pages(void **state)
{
	struct fx *fx = *state;
	char body[600], gw[17];
	make_corrupt(fx, body, gw);
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(count_prefix(fx->dir, "store.db.corrupt-"), 1);
	/* the same gateway: the notes read back from the moved-aside file keep their
	 * _id, and new ones carry on after the last seq used */
	assert_string_equal(store_gateway_id(st), gw);
	assert_damage_recorded(st, "corrupt");
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_true(ss.queued > 100 && ss.queued < 200);
	struct store_out **v;
	size_t n;
	assert_int_equal(store_peek_outs(st, 200, &v, &n), 0);
	assert_int_equal(n, (size_t)ss.queued);
	for (size_t i = 0; i < n; i++) {
		assert_true(v[i]->seq >= 1 && v[i]->seq <= 200);
		assert_string_equal(v[i]->body, body);
		store_out_free(v[i]);
	}
	free(v);
	assert_true(put(st, "a.qo", "{}", 0) > 200);
	/* by hand: once only */
	char aside[300];
	assert_int_equal(first_prefix(fx->dir, "store.db.corrupt-", aside, sizeof(aside)), 0);
	int64_t k = -1;
	assert_int_equal(store_salvage(st, aside, &k), -EALREADY);
	store_close(st);
}

/* A store from before the state file: the corrupt file's own meta row names the
 * gateway, and its notes keep their _id. */
static void t_corrupt_no_state(void **state)
{
	struct fx *fx = *state;
	char body[600], gw[17], sp[160];
	make_corrupt(fx, body, gw);
	snprintf(sp, sizeof(sp), "%s.state", fx->path);
	assert_int_equal(unlink(sp), 0);
	struct store *st = open_st(fx->path, 0, 0);
	assert_string_equal(store_gateway_id(st), gw);
	assert_damage_recorded(st, "corrupt");
	struct store_out *n = NULL;
	assert_int_equal(store_peek_out(st, &n), 0);
	assert_non_null(n);
	assert_true(n->seq >= 1 && n->seq <= 200);
	store_out_free(n);
	assert_true(put(st, "a.qo", "{}", 0) > 200);
	store_close(st);
}

/* The recovery by hand that docs/store.md gives, run as it is written there: the
 * sqlite3 lines through the shell, "notegw store salvage" through the call behind it. */
static void t_recover_by_hand(void **state)
{
	struct fx *fx = *state;
	if (system("command -v sqlite3 >/dev/null 2>&1") != 0) {
		print_message("SKIP: no sqlite3 command\n");
		skip();
	}
	char body[600], gw[17], aside[300], recovered[200], other[200], doc[512], line[512];
	make_corrupt(fx, body, gw);
	struct store *st = open_st(fx->path, 0, 0);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	store_close(st);
	assert_int_equal(first_prefix(fx->dir, "store.db.corrupt-", aside, sizeof(aside)), 0);
	snprintf(recovered, sizeof(recovered), "%s/recovered.db", fx->dir);
	snprintf(other, sizeof(other), "%s/other.db", fx->dir);
	setenv("CORRUPT", aside, 1);
	setenv("RECOVERED", recovered, 1);
	const char *top = getenv("top_srcdir");
	snprintf(doc, sizeof(doc), "%s/docs/store.md", top ? top : "..");
	FILE *f = fopen(doc, "r");
	assert_non_null(f);
	int ran = 0, in = 0;
	int64_t n = -1;
	while (fgets(line, sizeof(line), f)) {
		if (in == 0 && strstr(line, "<!-- recover-by-hand -->"))
			in = 1;
		else if (in == 1 && strncmp(line, "```sh", 5) == 0)
			in = 2;
		else if (in == 2 && strncmp(line, "```", 3) == 0)
			break;
		else if (in == 2 && strncmp(line, "sqlite3 ", 8) == 0) {
			assert_int_equal(system(line), 0);
			ran++;
		} else if (in == 2 && strncmp(line, "notegw store salvage ", 21) == 0) {
			struct store *o = open_st(other, 0, 0);
			assert_int_equal(store_salvage(o, recovered, &n), 0);
			store_close(o);
			ran++;
		}
	}
	fclose(f);
	assert_int_equal(ran, 2);
	/* at least what the automatic salvage found */
	assert_true(n > 0 && n >= ss.queued);
}

/* The counters status and the metrics show, the audit row, and what it says. */
static void assert_damage_recorded(struct store *st, const char *what)
{
	int64_t count = 0;
	char *last = NULL;
	assert_int_equal(store_damage(st, &count, &last), 0);
	assert_int_equal(count, 1);
	assert_non_null(last);
	assert_non_null(strstr(last, what));
	free(last);
	struct store_audit_row *a;
	size_t n;
	assert_int_equal(store_audit_list(st, 10, &a, &n), 0);
	bool found = false;
	for (size_t i = 0; i < n; i++)
		found |= strcmp(a[i].action, "damaged") == 0 && strstr(a[i].detail, what);
	store_audit_free(a, n);
	assert_true(found);
}

/* A writer that dies (SIGKILL) with 300 notes committed in 10 transactions: the
 * last ones are only in the WAL. Returns the gateway id in gw. */
static void fill_and_die(struct fx *fx, char gw[17])
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *st = NULL;
		if (store_open(fx->path, NULL, &st) < 0)
			_exit(1);
		for (int b = 0; b < 10; b++) {
			if (store_begin(st) < 0)
				_exit(1);
			for (int i = 0; i < 30; i++)
				if (store_enqueue(st, "a.qo", "{\"k\":\"some reading\"}", NULL, 0,
				                  0, NULL) < 0)
					_exit(1);
			if (store_commit(st) < 0)
				_exit(1);
		}
		if (write(pfd[1], store_gateway_id(st), 17) != 17)
			_exit(1);
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], gw, 17), 17);
	close(pfd[0]);
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFSIGNALED(ws));
}

/* After the damage: loud, same gateway, and new notes come after every seq used. */
static void assert_carried_on(struct fx *fx, const char *gw, const char *what, int64_t min_queued,
                              int64_t max_queued)
{
	struct store *st = open_st(fx->path, 0, 0);
	assert_string_equal(store_gateway_id(st), gw);
	assert_damage_recorded(st, what);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_true(ss.queued >= min_queued && ss.queued <= max_queued);
	/* said once, also to a second connection opened meanwhile (the link thread's) */
	struct store *st2 = open_st(fx->path, 0, 0);
	store_close(st2);
	assert_true(put(st, "a.qo", "{}", 0) > 300);
	store_close(st);
	/* and the next open finds nothing new */
	st = open_st(fx->path, 0, 0);
	int64_t count = 0;
	char *last = NULL;
	assert_int_equal(store_damage(st, &count, &last), 0);
	assert_int_equal(count, 1);
	free(last);
	store_close(st);
}

static void wal_path(struct fx *fx, char *wal, size_t cap)
{
	snprintf(wal, cap, "%s-wal", fx->path);
}

/* The database file lost at a crash, emptied or deleted, with its WAL: the store
 * starts again empty and says so. */
static void lose_db(void **state, bool deleted)
{
	struct fx *fx = *state;
	char gw[17], wal[160];
	fill_and_die(fx, gw);
	wal_path(fx, wal, sizeof(wal));
	assert_int_equal(deleted ? unlink(fx->path) : truncate(fx->path, 0), 0);
	unlink(wal); /* a stale WAL would be replayed into nothing */
	assert_carried_on(fx, gw, "missing or empty", 0, 0);
}

static void t_damage_db_emptied(void **state)
{
	lose_db(state, false);
}

static void t_damage_db_deleted(void **state)
{
	lose_db(state, true);
}

static void t_damage_wal_deleted(void **state)
{
	struct fx *fx = *state;
	char gw[17], wal[160];
	fill_and_die(fx, gw);
	wal_path(fx, wal, sizeof(wal));
	assert_int_equal(unlink(wal), 0);
	assert_carried_on(fx, gw, "WAL was missing", 0, 299);
}

static void flip_wal(void **state, off_t in_frame)
{
	struct fx *fx = *state;
	char gw[17], wal[160];
	fill_and_die(fx, gw);
	wal_path(fx, wal, sizeof(wal));
	struct stat sb;
	assert_int_equal(stat(wal, &sb), 0);
	/* one byte inside a page of a frame in the middle */
	off_t frame = 24 + 4096, nf = (sb.st_size - 32) / frame;
	assert_true(nf > 4);
	int fd = open(wal, O_RDWR);
	assert_true(fd >= 0);
	unsigned char c;
	off_t at = 32 + (nf / 2) * frame + in_frame;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);
	assert_carried_on(fx, gw, "damaged frame", 0, 299);
	assert_int_equal(count_prefix(fx->dir, "store.db-wal.damaged-"), 1);
}

/* a byte of a page, and a byte of a frame header's salt */
static void t_damage_wal_flipped(void **state)
{
	flip_wal(state, 24 + 1000);
}

static void t_damage_wal_salt(void **state)
{
	flip_wal(state, 9);
}

static void t_damage_wal_cut(void **state)
{
	struct fx *fx = *state;
	char gw[17], wal[160];
	fill_and_die(fx, gw);
	wal_path(fx, wal, sizeof(wal));
	struct stat sb;
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(truncate(wal, sb.st_size / 2 + 1000), 0);
	assert_carried_on(fx, gw, "cut short", 0, 299);
}

/* A clean stop and restart is not damage, nor is a SIGKILL with the WAL intact. */
static void t_damage_none(void **state)
{
	struct fx *fx = *state;
	char gw[17];
	fill_and_die(fx, gw);
	struct store *st = open_st(fx->path, 0, 0);
	assert_string_equal(store_gateway_id(st), gw);
	int64_t count = -1;
	char *last = NULL;
	assert_int_equal(store_damage(st, &count, &last), 0);
	assert_int_equal(count, 0);
	assert_null(last);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 300);
	store_close(st);
	st = open_st(fx->path, 0, 0);
	assert_int_equal(store_damage(st, &count, &last), 0);
	assert_int_equal(count, 0);
	store_close(st);
}

/* A store bigger than full_check_max is checked without its queue table: it opens
 * with its notes, and a file that is no database is still moved aside. */
static void t_bounded_check(void **state)
{
	struct fx *fx = *state;
	struct store_opts o = {.full_check_max = 4096};
	struct store *st = open_st(fx->path, 0, 0);
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < 300; i++)
		put(st, "a.qo", "{\"some\":\"data to fill a few pages\"}", 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	st = NULL;
	assert_int_equal(store_open(fx->path, &o, &st), 0);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 300);
	store_close(st);
	assert_int_equal(count_prefix(fx->dir, "store.db.corrupt-"), 0);
	FILE *f = fopen(fx->path, "w");
	assert_non_null(f);
	for (int i = 0; i < 3000; i++)
		fputs("garbage, garbage, garbage. ", f);
	fclose(f);
	st = NULL;
	assert_int_equal(store_open(fx->path, &o, &st), 0);
	assert_int_equal(count_prefix(fx->dir, "store.db.corrupt-"), 1);
	store_close(st);
}

/* Another process (the broker plugin) holds the write lock: a write waits up to
 * busy_timeout_ms, then fails with -EBUSY (not accepted) and works once it is free. */
/* A big store's start-up check skips the queue table; a corrupt page met later
 * leaves <path>.suspect, and the next start checks everything and moves it aside. */
static void t_suspect(void **state)
{
	struct fx *fx = *state;
	struct store_opts o = {.full_check_max = 4096};
	struct store *st = open_st(fx->path, 0, 0);
	char body[600], suspect[160];
	memset(body, 'q', sizeof(body) - 1);
	body[sizeof(body) - 1] = 0;
	assert_int_equal(store_begin(st), 0);
	for (int i = 0; i < 300; i++)
		put(st, "a.qo", body, 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	/* the queue's pages come after the dozen pages of the schema */
	FILE *f = fopen(fx->path, "r+");
	assert_non_null(f);
	for (long pg = 20; pg < 40; pg++) {
		fseek(f, (pg - 1) * 4096, SEEK_SET);
		for (int i = 0; i < 16; i++)
			fputc(0xA5, f);
	}
	fclose(f);
	st = NULL;
	assert_int_equal(store_open(fx->path, &o, &st), 0);
	assert_int_equal(count_prefix(fx->dir, "store.db.corrupt-"), 0);
	struct store_file_stats *v;
	size_t n;
	assert_int_equal(store_queue(st, &v, &n), -EBADMSG);
	snprintf(suspect, sizeof(suspect), "%s.suspect", fx->path);
	assert_int_equal(access(suspect, F_OK), 0);
	store_close(st);
	st = NULL;
	assert_int_equal(store_open(fx->path, &o, &st), 0);
	assert_int_equal(count_prefix(fx->dir, "store.db.corrupt-"), 1);
	assert_int_equal(access(suspect, F_OK), -1);
	assert_int_equal(store_queue(st, &v, &n), 0);
	/* the notes on the pages that still read are queued again */
	assert_int_equal(n, 1);
	assert_true(v[0].count > 0 && v[0].count < 300);
	store_file_stats_free(v, n);
	store_close(st);
}

static void t_busy(void **state)
{
	struct fx *fx = *state;
	struct store_opts o = {.busy_timeout_ms = 100};
	struct store *st = NULL;
	assert_int_equal(store_open(fx->path, &o, &st), 0);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(store_enqueue(st, "a.qo", "{}", NULL, 0, 0, NULL), -EBUSY);
	assert_int_equal(store_begin(st), -EBUSY);
	assert_false(store_in_txn(st));
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0); /* reads go on under WAL */
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	put(st, "a.qo", "{}", 0);
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, 1);
	store_close(st);
}

static void t_missing_dir(void **state)
{
	struct store *st = NULL;
	int r = store_open("/nonexistent-dir-ngw/x.db", NULL, &st);
	assert_true(r < 0);
	assert_null(st);
}

/* A group other than the file's own that this process may give a file: any, as
 * root; else a supplementary group. -1 when there is none (the group half of the
 * sharing tests is then not checkable, and they say so). */
static gid_t other_group(void)
{
	if (geteuid() == 0)
		return getegid() == 4242 ? 4243 : 4242;
	gid_t g[64];
	int n = getgroups(64, g);
	for (int i = 0; i < n; i++)
		if (g[i] != getegid())
			return g[i];
	return (gid_t)-1;
}

static mode_t mode_of(const char *p)
{
	struct stat s;
	assert_int_equal(lstat(p, &s), 0);
	return s.st_mode & 07777;
}

static gid_t gid_of(const char *p)
{
	struct stat s;
	assert_int_equal(lstat(p, &s), 0);
	return s.st_gid;
}

static void touch(const char *p, mode_t mode)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

/* A setgid directory its group may write (the package's queue directory): the
 * store made in it under umask 077 is 0660 with the directory's group, and so is
 * the WAL SQLite makes later. */
static void t_shared_dir(void **state)
{
	struct fx *fx = *state;
	char dir[128], path[160], wal[168];
	gid_t g = other_group();
	snprintf(dir, sizeof(dir), "%s/queue", fx->dir);
	snprintf(path, sizeof(path), "%s/store.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(mkdir(dir, 0700), 0);
	if (g != (gid_t)-1)
		assert_int_equal(chown(dir, (uid_t)-1, g), 0);
	assert_int_equal(chmod(dir, 02770), 0);
	mode_t old = umask(077);
	struct store *st = open_st(path, 0, 0);
	put(st, "a.qo", "{\"k\":1}", 0);
	umask(old);
	assert_int_equal(mode_of(path), 0660);
	assert_int_equal(mode_of(wal), 0660);
	if (g != (gid_t)-1) {
		assert_int_equal(gid_of(path), g);
		assert_int_equal(gid_of(wal), g);
	} else {
		print_message("no second group: the group half of t_shared_dir not checked\n");
	}
	store_close(st);

	/* A private directory: the umask decides, as before. */
	old = umask(077);
	st = open_st(fx->path, 0, 0);
	put(st, "a.qo", "{}", 0);
	umask(old);
	assert_int_equal(mode_of(fx->path), 0600);
	store_close(st);
}

/* Only the store's own regular files are touched: not through a symlink (a group
 * member could plant one pointing at a private file), not a file with a second
 * link, and not a file of another user. */
static void t_shared_dir_guards(void **state)
{
	struct fx *fx = *state;
	char dir[128], path[160], name[176], secret[128];
	snprintf(dir, sizeof(dir), "%s/queue", fx->dir);
	snprintf(path, sizeof(path), "%s/store.db", dir);
	snprintf(secret, sizeof(secret), "%s/secret", fx->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, 02770), 0);
	touch(secret, 0600);
	touch(path, 0600);
	snprintf(name, sizeof(name), "%s-wal", path);
	assert_int_equal(symlink(secret, name), 0);
	snprintf(name, sizeof(name), "%s-shm", path);
	assert_int_equal(link(secret, name), 0);

	store_share_files(path);
	assert_int_equal(mode_of(path), 0660); /* the real one is shared */
	assert_int_equal(mode_of(secret), 0600);
	assert_int_equal(unlink(name), 0);

	if (geteuid() == 0) { /* another user's file is left alone */
		touch(name, 0600);
		assert_int_equal(chown(name, 4242, (gid_t)-1), 0);
		store_share_files(path);
		assert_int_equal(mode_of(name), 0600);
	}

	/* Without the setgid bit the directory is not shared: nothing changes. */
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(chmod(dir, 0770), 0);
	store_share_files(path);
	assert_int_equal(mode_of(path), 0600);
}

/* Copy a file (the store as a crash left it: database and WAL). */
static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	assert_non_null(in);
	assert_non_null(out);
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

static int64_t queued(const char *path)
{
	struct store *st = open_st(path, 0, 0);
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	store_close(st);
	return ss.queued;
}

/* A store at the old default path is moved with its WAL (the committed notes that
 * are only in the WAL come along), also when a crash stopped an earlier move
 * between its two renames; an existing store at the new path is never replaced. */
static void t_adopt(void **state)
{
	struct fx *fx = *state;
	char old[128], oldwal[136], to[160], towal[168], dir[128], live[128], livewal[136];
	snprintf(old, sizeof(old), "%s/old.db", fx->dir);
	snprintf(oldwal, sizeof(oldwal), "%s-wal", old);
	snprintf(dir, sizeof(dir), "%s/queue", fx->dir);
	snprintf(to, sizeof(to), "%s/store.db", dir);
	snprintf(towal, sizeof(towal), "%s-wal", to);
	snprintf(live, sizeof(live), "%s/live.db", fx->dir);
	snprintf(livewal, sizeof(livewal), "%s-wal", live);
	assert_int_equal(mkdir(dir, 0700), 0);

	assert_int_equal(store_adopt(old, to), 0); /* nothing there: nothing done */
	assert_int_equal(access(to, F_OK), -1);

	/* Three notes committed and still open: they live in the WAL only. */
	struct store *st = open_st(live, 0, 0);
	for (int i = 0; i < 3; i++)
		put(st, "a.qo", "{}", 0);
	copy_file(live, old);
	copy_file(livewal, oldwal);
	store_close(st);

	assert_int_equal(store_adopt(old, to), 1);
	assert_int_equal(access(old, F_OK), -1);
	assert_int_equal(access(oldwal, F_OK), -1);
	assert_int_equal(queued(to), 3);

	/* The new path is taken: a second old store stays where it is. */
	copy_file(to, old);
	assert_int_equal(store_adopt(old, to), 0);
	assert_int_equal(access(old, F_OK), 0);
	assert_int_equal(unlink(old), 0);

	/* Interrupted after the WAL's rename: the next call completes the move. */
	assert_int_equal(unlink(to), 0);
	st = open_st(live, 0, 0);
	put(st, "a.qo", "{}", 0);
	copy_file(live, old);
	copy_file(livewal, towal);
	store_close(st);
	assert_int_equal(store_adopt(old, to), 1);
	assert_int_equal(queued(to), 4);
}

static void t_idle_no_writes(void **state)
{
	struct fx *fx = *state;
	shim_reset();
	assert_int_equal(shim_register(), SQLITE_OK);
	struct store *st = open_st(fx->path, 0, 0);
	put(st, "a.qo", "{}", 0);
	assert_int_equal(store_consumer_add(st, "mqtt"), 0);
	assert_int_equal(store_kv_set(st, "k", "v"), 0);
	assert_int_equal(store_inbound_add(st, "c.qi", NULL, "{}", NULL, 1, NULL), 0);
	uint64_t w = shim.writes;
	assert_true(w > 0); /* the shim does see our writes */
	/* what a quiet daemon does: look, look again, register again, set the same */
	for (int i = 0; i < 20; i++) {
		struct store_out *o;
		struct store_stats ss;
		struct store_file_stats *v;
		struct store_in **in;
		size_t n;
		char *val;
		assert_int_equal(store_peek_out(st, &o), 0);
		store_out_free(o);
		assert_int_equal(store_stats(st, &ss), 0);
		assert_int_equal(store_queue(st, &v, &n), 0);
		store_file_stats_free(v, n);
		assert_int_equal(store_inbound_pending(st, "mqtt", 0, &in, &n), 0);
		store_in_list_free(in, n);
		assert_int_equal(store_kv_get(st, "k", &val), 0);
		free(val);
		assert_int_equal(store_kv_set(st, "k", "v"), 0);
		assert_int_equal(store_consumer_add(st, "mqtt"), 0);
		assert_int_equal(store_inbound_prune(st, 0), 0);
		assert_int_equal(store_check_room(st, 0, 10), 0);
	}
	assert_int_equal(shim.writes, w);
	store_close(st);
	shim_unregister();
}

/* Fill a store on a size-limited file system until the disk is full: every note is
 * either accepted (and then present after reopening) or refused with -EAGAIN; the
 * store keeps working, and accepts again when space returns (grow()). */
static void fill_until_full(const char *path, int (*grow)(void *), void *ud)
{
	struct store *st = open_st(path, 0, 0);
	char body[2048];
	memset(body, 'z', sizeof(body) - 1);
	body[sizeof(body) - 1] = 0;
	int64_t accepted = 0, refused = 0;
	for (int i = 0; i < 4000 && refused < 3; i++) {
		assert_int_equal(store_begin(st), 0);
		int e = 0;
		for (int k = 0; k < 4 && e == 0; k++)
			e = store_enqueue(st, "full.qo", body, NULL, 0, 0, NULL);
		if (e == 0)
			e = store_commit(st);
		else
			assert_int_equal(store_commit(st), e); /* doomed: same error */
		if (e == 0) {
			accepted += 4;
		} else {
			assert_int_equal(e, -EAGAIN);
			refused++;
		}
		if (store_in_txn(st))
			fail_msg("transaction left open");
	}
	assert_true(refused > 0);
	assert_true(accepted > 0);
	/* still readable, and holds exactly what was accepted */
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, accepted);
	/* space returns: accepted again without reopening */
	assert_int_equal(grow(ud), 0);
	assert_int_equal(store_enqueue(st, "full.qo", body, NULL, 0, 0, NULL), 0);
	accepted++;
	store_close(st);
	st = open_st(path, 0, 0);
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, accepted);
	store_close(st);
}

struct tmpfs {
	char dir[96];
};

static int tmpfs_grow(void *ud)
{
	struct tmpfs *t = ud;
	return mount("tmpfs", t->dir, "tmpfs", MS_REMOUNT, "size=8m") < 0 ? -errno : 0;
}

static void t_enospc_tmpfs(void **state)
{
	struct fx *fx = *state;
	struct tmpfs t;
	snprintf(t.dir, sizeof(t.dir), "%s/mnt", fx->dir);
	assert_int_equal(mkdir(t.dir, 0700), 0);
	if (mount("tmpfs", t.dir, "tmpfs", 0, "size=512k") < 0) {
		print_message("no tmpfs mount here (%s): the RLIMIT_FSIZE test covers ENOSPC\n",
		              strerror(errno));
		skip();
	}
	char path[160];
	snprintf(path, sizeof(path), "%s/store.db", t.dir);
	fill_until_full(path, tmpfs_grow, &t);
	assert_int_equal(umount2(t.dir, MNT_DETACH), 0);
}

/* On a full disk the reserve beside the store is released: producers are refused
 * (-EAGAIN) before they write, and queued notes can still be marked sent, which is
 * what lets a gateway on a full disk drain instead of sending one note forever. */
static void t_reserve_tmpfs(void **state)
{
	struct fx *fx = *state;
	struct tmpfs t;
	snprintf(t.dir, sizeof(t.dir), "%s/mnt", fx->dir);
	assert_int_equal(mkdir(t.dir, 0700), 0);
	if (mount("tmpfs", t.dir, "tmpfs", 0, "size=512k") < 0) {
		print_message("no tmpfs mount here (%s)\n", strerror(errno));
		skip();
	}
	char path[160], reserve[176];
	snprintf(path, sizeof(path), "%s/store.db", t.dir);
	snprintf(reserve, sizeof(reserve), "%s.reserve", path);
	struct store *st = open_st(path, 0, 0);
	struct stat sb;
	assert_int_equal(stat(reserve, &sb), 0);
	assert_true(sb.st_size >= 64 * 1024);
	char body[2048];
	memset(body, 'z', sizeof(body) - 1);
	body[sizeof(body) - 1] = 0;
	int e = 0, accepted = 0;
	while (accepted < 4000 && (e = store_enqueue(st, "full.qo", body, NULL, 0, 0, NULL)) == 0)
		accepted++;
	assert_int_equal(e, -EAGAIN);
	assert_true(store_is_disk_full(st));
	assert_int_equal(stat(reserve, &sb), -1); /* released */
	/* producers wait; the note the card just took can be marked sent (the reserve
	 * of a 512 KiB file system holds one such commit; 1 MiB holds dozens) */
	assert_int_equal(store_enqueue(st, "full.qo", "{}", NULL, 0, 0, NULL), -EAGAIN);
	for (int i = 0; i < 1; i++) {
		struct store_out *n = NULL;
		assert_int_equal(store_peek_out(st, &n), 0);
		assert_non_null(n);
		assert_int_equal(store_out_sent(st, n->id), 0);
		store_out_free(n);
	}
	struct store_stats ss;
	assert_int_equal(store_stats(st, &ss), 0);
	assert_int_equal(ss.queued, accepted - 1);
	/* space returns: the reserve is made again and producers are accepted */
	assert_int_equal(tmpfs_grow(&t), 0);
	assert_int_equal(store_enqueue(st, "full.qo", "{}", NULL, 0, 0, NULL), 0);
	assert_int_equal(stat(reserve, &sb), 0);
	assert_false(store_is_disk_full(st));
	store_close(st);
	assert_int_equal(umount2(t.dir, MNT_DETACH), 0);
}

static int rlimit_grow(void *ud)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
		return -errno;
	rl.rlim_cur = rl.rlim_max;
	return setrlimit(RLIMIT_FSIZE, &rl) < 0 ? -errno : 0;
}

static void t_enospc_rlimit(void **state)
{
	struct fx *fx = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the child: files may not grow past 400 KiB; writes fail with EFBIG */
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl;
		getrlimit(RLIMIT_FSIZE, &rl);
		rl.rlim_cur = 400 * 1024;
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(3);
		fill_until_full(fx->path, rlimit_grow, NULL);
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	log_setup(getenv("NGW_TEST_DEBUG") ? LOG_DEBUG : LOG_CRIT, false);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(t_open_fresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_enqueue_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_payload_failed, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_invalid, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_txn, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_inbound, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_inbound_batch_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_queue_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_audit_kv, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_full_refuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_full_drop, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_migrate_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_newer_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_corrupt_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_corrupt_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_bounded_check, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_suspect, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_corrupt_no_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_recover_by_hand, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_damage_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_damage_db_emptied, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_damage_db_deleted, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_damage_wal_deleted, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_damage_wal_flipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_damage_wal_salt, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_damage_wal_cut, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_missing_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_idle_no_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_shared_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_shared_dir_guards, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_adopt, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_enospc_tmpfs, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_enospc_rlimit, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_reserve_tmpfs, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
