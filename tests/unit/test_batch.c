/* Unit tests of the group commit: puts wait for the delay (or BATCH_MAX), go in one
 * transaction, and every callback hears the outcome after the commit; refusals known
 * at put time come back at once; a failed commit fails every note in it. The test
 * VFS counts syncs (one commit = one WAL fsync) and injects failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "log.h"
#include "store.h"
#include "vfs_shim.h"

struct fx {
	char dir[64];
	char path[128];
	sd_event *loop;
	struct store *st;
	struct batch *b;
	int committed;
};

struct got {
	int calls;
	int err;
	const char *why;
	struct batch *again; /* put another note from inside the callback */
};

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void on_committed(void *ud)
{
	struct fx *fx = ud;
	fx->committed++;
}

static void on_done(void *ud, int err, const char *why)
{
	struct got *g = ud;
	g->calls++;
	g->err = err;
	g->why = why;
	if (g->again) {
		struct batch *b = g->again;
		g->again = NULL;
		assert_int_equal(batch_put(b, "again.qo", "{}", NULL, 0, 0, on_done, g, NULL), 0);
	}
}

static int open_all(struct fx *fx, uint64_t max, int policy, uint64_t delay_ms)
{
	struct store_opts o = {.max_size = max, .when_full = policy};
	assert_int_equal(store_open(fx->path, &o, &fx->st), 0);
	assert_int_equal(batch_new(fx->loop, fx->st, delay_ms, on_committed, fx, &fx->b), 0);
	return 0;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/ngw-batch-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
	assert_int_equal(sd_event_new(&fx->loop), 0);
	shim_reset();
	assert_int_equal(shim_register(), SQLITE_OK);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	batch_free(fx->b);
	store_close(fx->st);
	sd_event_unref(fx->loop);
	shim_reset();
	shim_unregister();
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* Turn the loop until cond holds (bounded, so a bug fails instead of hanging). */
#define RUN_UNTIL(fx, cond)                                                                        \
	do {                                                                                       \
		for (int i_ = 0; i_ < 200 && !(cond); i_++)                                        \
			assert_true(sd_event_run((fx)->loop, 100 * 1000) >= 0);                    \
		assert_true(cond);                                                                 \
	} while (0)

static int64_t queued(struct fx *fx)
{
	struct store_stats ss;
	assert_int_equal(store_stats(fx->st, &ss), 0);
	return ss.queued;
}

static void t_group(void **state)
{
	struct fx *fx = *state;
	open_all(fx, 0, 0, 20);
	struct got g[5] = {0};
	uint64_t syncs = shim.syncs;
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    batch_put(fx->b, "g.qo", "{\"a\":1}", NULL, 0, 0, on_done, &g[i], NULL), 0);
	/* nothing is acknowledged inside batch_put, nor before the commit */
	for (int i = 0; i < 5; i++)
		assert_int_equal(g[i].calls, 0);
	assert_int_equal(batch_pending(fx->b), 5);
	assert_int_equal(queued(fx), 0);
	RUN_UNTIL(fx, g[4].calls == 1);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].err, 0);
		assert_null(g[i].why);
	}
	assert_int_equal(fx->committed, 1);
	assert_int_equal(queued(fx), 5);
	assert_int_equal(batch_pending(fx->b), 0);
	/* one transaction: one WAL fsync for all five */
	assert_int_equal(shim.syncs - syncs, 1);
}

static void t_bound(void **state)
{
	struct fx *fx = *state;
	open_all(fx, 0, 0, 3600 * 1000); /* only the bound can trigger the commit */
	struct got g[BATCH_MAX] = {0};
	uint64_t syncs = shim.syncs;
	for (int i = 0; i < BATCH_MAX; i++)
		assert_int_equal(batch_put(fx->b, "b.qo", "{}", NULL, 0, 0, on_done, &g[i], NULL),
		                 0);
	assert_int_equal(g[BATCH_MAX - 1].calls, 0);
	assert_true(sd_event_run(fx->loop, 0) > 0);
	for (int i = 0; i < BATCH_MAX; i++)
		assert_int_equal(g[i].calls, 1);
	assert_int_equal(queued(fx), BATCH_MAX);
	assert_int_equal(shim.syncs - syncs, 1);
}

static void t_order_and_payload(void **state)
{
	struct fx *fx = *state;
	open_all(fx, 0, 0, 5);
	struct got g[3] = {0};
	const char bin[] = {1, 0, 2};
	assert_int_equal(batch_put(fx->b, "o.qo", "{\"n\":1}", NULL, 0, 0, on_done, &g[0], NULL),
	                 0);
	assert_int_equal(batch_put(fx->b, "o.qo", NULL, bin, sizeof(bin), 0, on_done, &g[1], NULL),
	                 0);
	assert_int_equal(batch_put(fx->b, "o.qo", "{\"n\":3}", NULL, 0, 0, on_done, &g[2], NULL),
	                 0);
	RUN_UNTIL(fx, g[2].calls == 1);
	struct store_out **v;
	size_t n;
	assert_int_equal(store_peek_outs(fx->st, 10, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0]->body, "{\"n\":1}");
	assert_int_equal(v[1]->payload_len, 3);
	assert_memory_equal(v[1]->payload, bin, 3);
	assert_string_equal(v[2]->body, "{\"n\":3}");
	assert_true(v[0]->seq < v[1]->seq && v[1]->seq < v[2]->seq);
	for (size_t i = 0; i < n; i++)
		store_out_free(v[i]);
	free(v);
}

static void t_refused_at_put(void **state)
{
	struct fx *fx = *state;
	open_all(fx, 40, STORE_REFUSE_NEW, 10);
	struct got g[3] = {0};
	const char *why = NULL;
	assert_int_equal(batch_put(fx->b, "not-a-notefile", "{}", NULL, 0, 0, on_done, &g[0], &why),
	                 -EINVAL);
	assert_string_equal(why, "invalid notefile");
	/* 16 bytes each: two fit in 40, the third is refused, counting what is pending */
	assert_int_equal(
	    batch_put(fx->b, "f.qo", "{\"n\":\"001\"}", NULL, 0, 0, on_done, &g[0], &why), 0);
	assert_int_equal(
	    batch_put(fx->b, "f.qo", "{\"n\":\"002\"}", NULL, 0, 0, on_done, &g[1], &why), 0);
	assert_int_equal(
	    batch_put(fx->b, "f.qo", "{\"n\":\"003\"}", NULL, 0, 0, on_done, &g[2], &why), -ENOSPC);
	assert_string_equal(why, "store full");
	RUN_UNTIL(fx, g[1].calls == 1);
	assert_int_equal(g[0].err, 0);
	assert_int_equal(g[1].err, 0);
	assert_int_equal(g[2].calls, 0); /* refused at once: never called back */
	assert_int_equal(queued(fx), 2);
	/* still full after the commit */
	assert_int_equal(
	    batch_put(fx->b, "f.qo", "{\"n\":\"004\"}", NULL, 0, 0, on_done, &g[2], &why), -ENOSPC);
}

static void t_drop_oldest(void **state)
{
	struct fx *fx = *state;
	open_all(fx, 40, STORE_DROP_OLDEST, 10);
	struct got g[5] = {0};
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    batch_put(fx->b, "f.qo", "{\"n\":\"001\"}", NULL, 0, 0, on_done, &g[i], NULL),
		    0);
	RUN_UNTIL(fx, g[4].calls == 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(g[i].err, 0);
	struct store_stats ss;
	assert_int_equal(store_stats(fx->st, &ss), 0);
	assert_int_equal(ss.queued, 2);
	assert_int_equal(ss.dropped, 3);
}

static void t_commit_fails(void **state)
{
	struct fx *fx = *state;
	open_all(fx, 0, 0, 10);
	struct got g[3] = {0};
	/* the fsync of the next commit fails: nothing in it is accepted */
	shim.fail_sync_at = shim.syncs + 1;
	for (int i = 0; i < 3; i++)
		assert_int_equal(batch_put(fx->b, "x.qo", "{}", NULL, 0, 0, on_done, &g[i], NULL),
		                 0);
	RUN_UNTIL(fx, g[2].calls == 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_true(g[i].err < 0);
		assert_string_equal(g[i].why, "store error");
	}
	assert_int_equal(fx->committed, 0);
	assert_true(shim.sync_failed);
	/* power is "off" in the shim after a failed fsync: restore it (no cut: the
	 * file keeps what was written) and check that the store recovers */
	shim_reset();
	memset(g, 0, sizeof(g));
	assert_int_equal(batch_put(fx->b, "x.qo", "{}", NULL, 0, 0, on_done, &g[0], NULL), 0);
	RUN_UNTIL(fx, g[0].calls == 1);
	assert_int_equal(g[0].err, 0);
	assert_int_equal(fx->committed, 1);
}

static void t_disk_full(void **state)
{
	struct fx *fx = *state;
	open_all(fx, 0, 0, 10);
	struct got g[2] = {0};
	shim.fail_writes = SQLITE_FULL;
	for (int i = 0; i < 2; i++)
		assert_int_equal(batch_put(fx->b, "x.qo", "{}", NULL, 0, 0, on_done, &g[i], NULL),
		                 0);
	RUN_UNTIL(fx, g[1].calls == 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(g[i].err, -EAGAIN);
		assert_string_equal(g[i].why, "disk full");
	}
	assert_int_equal(queued(fx), 0);
	/* space returns */
	shim.fail_writes = 0;
	memset(g, 0, sizeof(g));
	assert_int_equal(batch_put(fx->b, "x.qo", "{}", NULL, 0, 0, on_done, &g[0], NULL), 0);
	RUN_UNTIL(fx, g[0].calls == 1);
	assert_int_equal(g[0].err, 0);
	assert_int_equal(queued(fx), 1);
}

static void t_flush_and_free(void **state)
{
	struct fx *fx = *state;
	open_all(fx, 0, 0, 3600 * 1000);
	struct got g[3] = {0};
	assert_int_equal(batch_put(fx->b, "x.qo", "{}", NULL, 0, 0, on_done, &g[0], NULL), 0);
	batch_flush(fx->b);
	assert_int_equal(g[0].calls, 1);
	assert_int_equal(g[0].err, 0);
	/* a put from inside a callback goes into the next batch */
	g[1].again = fx->b;
	assert_int_equal(batch_put(fx->b, "x.qo", "{}", NULL, 0, 0, on_done, &g[1], NULL), 0);
	batch_flush(fx->b);
	assert_int_equal(g[1].calls, 1);
	assert_int_equal(batch_pending(fx->b), 1);
	/* batch_free commits what is pending */
	assert_int_equal(batch_put(fx->b, "x.qo", "{}", NULL, 0, 0, on_done, &g[2], NULL), 0);
	batch_free(fx->b);
	fx->b = NULL;
	assert_int_equal(g[1].calls, 2); /* the put from the callback */
	assert_int_equal(g[1].err, 0);
	assert_int_equal(g[2].calls, 1);
	assert_int_equal(queued(fx), 4);
	assert_int_equal(fx->committed, 3);
}

int main(void)
{
	log_setup(getenv("NGW_TEST_DEBUG") ? LOG_DEBUG : LOG_CRIT, false);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(t_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_order_and_payload, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_refused_at_put, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_drop_oldest, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_commit_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_disk_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(t_flush_and_free, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
