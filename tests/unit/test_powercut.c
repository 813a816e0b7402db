/* The power-cut test, the way SQLite tests itself: the test VFS (vfs_shim.c) logs
 * every write not yet fsynced; at a random write (or at a random fsync, which then
 * fails) the power goes, the log is undone — keeping a torn prefix of one write and,
 * every other time, a random subset of them — and the store is reopened with the
 * normal VFS. Every cut must leave a file that passes integrity_check, is not moved
 * aside, holds every note whose commit returned 0, none of the notes whose "sent"
 * returned 0, and only intact notes otherwise.
 *   test_powercut [CYCLES [SEED]]   (or NOTEGW_POWERCUT_CYCLES / _SEED); default 500. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_check.h"
#include "vfs_shim.h"

static unsigned long cycles = 500;
static uint64_t seed;
static uint64_t rng;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from the printed seed */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

/* Notes carry their own check: {"n":N,"pad":"...","sum":S}. */
static uint32_t body_sum(uint32_t n, const char *pad)
{
	uint32_t h = 2166136261u ^ n;
	for (const char *p = pad; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h;
}

static void make_body(uint32_t n, char *buf, size_t cap)
{
	char pad[1200];
	size_t len = 8 + (n * 7919u) % (n % 5 == 0 ? 1100 : 120);
	for (size_t i = 0; i < len; i++)
		pad[i] = (char)('a' + (n + i * 13) % 26);
	pad[len] = 0;
	int r = snprintf(buf, cap, "{\"n\":%" PRIu32 ",\"pad\":\"%s\",\"sum\":%" PRIu32 "}", n, pad,
	                 body_sum(n, pad));
	assert_true(r > 0 && (size_t)r < cap);
}

static bool check_body(const char *body, uint32_t *n)
{
	static char pad[1300];
	uint32_t sum;
	if (!body || strlen(body) > 1280)
		return false;
	if (sscanf(body, "{\"n\":%" SCNu32 ",\"pad\":\"%1250[a-z]\",\"sum\":%" SCNu32 "}", n, pad,
	           &sum) != 3)
		return false;
	char again[1300];
	make_body(*n, again, sizeof(again));
	return strcmp(again, body) == 0 && body_sum(*n, pad) == sum;
}

struct ack {
	int64_t seq;
	uint32_t n;
};

static struct ack *acked; /* committed notes, seq ascending */
static size_t n_acked, cap_acked;
static int64_t *gone; /* seqs whose store_out_sent returned 0 */
static size_t n_gone, cap_gone;

static void add_ack(int64_t seq, uint32_t n)
{
	if (n_acked == cap_acked) {
		cap_acked = cap_acked ? cap_acked * 2 : 1024;
		acked = realloc(acked, cap_acked * sizeof(*acked));
		assert_non_null(acked);
	}
	assert_true(n_acked == 0 || acked[n_acked - 1].seq < seq);
	acked[n_acked++] = (struct ack){seq, n};
}

static void add_gone(int64_t seq)
{
	if (n_gone == cap_gone) {
		cap_gone = cap_gone ? cap_gone * 2 : 1024;
		gone = realloc(gone, cap_gone * sizeof(*gone));
		assert_non_null(gone);
	}
	gone[n_gone++] = seq;
	for (size_t i = 0; i < n_acked; i++)
		if (acked[i].seq == seq) {
			memmove(&acked[i], &acked[i + 1], (n_acked - i - 1) * sizeof(*acked));
			n_acked--;
			break;
		}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int count_corrupt(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".corrupt-"))
			n++;
	closedir(d);
	return n;
}

static uint32_t next_n = 1;
static uint64_t est_writes = 40, est_syncs = 10;
static unsigned long n_cuts, n_sync_fails, n_torn_commits, n_undone;

/* One power cycle: run until the power goes (or a clean close). */
static void run_cycle(const char *path, bool clean)
{
	bool sync_mode = rnd() % 4 == 0;
	shim_reset();
	shim.record = true;
	/* Cuts land anywhere in a cycle as long as the longest one seen (clean cycles,
	 * with no cut, measure it), so some fall in the checkpoint at close. */
	if (clean)
		;
	else if (sync_mode)
		shim.fail_sync_at = 1 + rnd() % est_syncs;
	else
		shim.cut_at_write = 1 + rnd() % est_writes;
	assert_int_equal(shim_register(), SQLITE_OK);

	struct store *st = NULL;
	char body[1400];
	if (store_open(path, NULL, &st) == 0) {
		for (int t = 0; t < 14 && !shim.dead; t++) {
			if (rnd() % 3 == 0) {
				/* the link: the oldest notes went to the card, marked sent in one
				 * transaction (sometimes outside one) */
				struct store_out **v = NULL;
				size_t n = 0, want = 1 + rnd() % 16;
				bool txn = want > 1;
				if (store_peek_outs(st, want, &v, &n) < 0 || n == 0)
					continue;
				int err = txn ? store_begin(st) : 0;
				for (size_t i = 0; i < n && err == 0; i++)
					err = store_out_sent(st, v[i]->id);
				if (txn && err == 0)
					err = store_commit(st);
				else if (txn)
					store_rollback(st);
				for (size_t i = 0; i < n; i++) {
					if (err == 0)
						add_gone(v[i]->seq);
					store_out_free(v[i]);
				}
				free(v);
				continue;
			}
			struct ack pend[8];
			size_t k = 1 + rnd() % 8;
			if (store_begin(st) < 0)
				break;
			int err = 0;
			for (size_t i = 0; i < k && err == 0; i++) {
				uint32_t n = next_n++;
				make_body(n, body, sizeof(body));
				pend[i].n = n;
				err = store_enqueue(st, "pc.qo", body, NULL, 0, (int)(n % 2),
				                    &pend[i].seq);
			}
			bool failed_before = shim.sync_failed;
			int cerr = store_commit(st);
			if (err < 0)
				assert_true(cerr < 0); /* a doomed transaction never commits */
			if (shim.sync_failed && !failed_before) {
				n_sync_fails++;
				/* the fsync of this commit failed: it must not count as accepted.
				 * (An fsync failing in an automatic checkpoint after a durable
				 * commit would not fail it; cycles stay far below the 1000-page
				 * WAL that triggers one, so every sync here belongs to a commit,
				 * or to the checkpoint at close.) */
				assert_true(cerr < 0);
			}
			if (cerr == 0) {
				for (size_t i = 0; i < k; i++)
					add_ack(pend[i].seq, pend[i].n);
			} else if (shim.dead) {
				n_torn_commits++;
			}
		}
		store_close(st);
	}
	if (shim.dead) {
		n_cuts++;
	} else {
		est_syncs = shim.syncs > est_syncs ? shim.syncs : est_syncs;
		est_writes = shim.writes > est_writes ? shim.writes : est_writes;
	}
	n_undone += shim_power_cut(rnd, rnd() % 2);
	shim_unregister();
}

static void verify(const char *dir, const char *path, unsigned long cycle)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	const char *r = (const char *)sqlite3_column_text(s, 0);
	if (strcmp(r, "ok") != 0)
		fail_msg("cycle %lu (seed %" PRIu64 "): integrity_check: %s", cycle, seed, r);
	sqlite3_finalize(s);
	sqlite3_close(db);

	/* the store opens it as it is: nothing moved aside */
	struct store *st = NULL;
	assert_int_equal(store_open(path, NULL, &st), 0);
	assert_int_equal(count_corrupt(dir), 0);
	store_close(st);

	/* (the store may have been created just now, if the first one was cut)
	 * the trigger-kept counters agree with the rows */
	store_check_counters(path);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "SELECT seq, body FROM out ORDER BY seq", -1, &s, NULL),
	    SQLITE_OK);
	size_t a = 0;
	int64_t prev = 0;
	while (sqlite3_step(s) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(s, 0);
		uint32_t n = 0;
		if (seq == prev)
			fail_msg("cycle %lu: seq %" PRId64 " twice", cycle, seq);
		prev = seq;
		if (!check_body((const char *)sqlite3_column_text(s, 1), &n))
			fail_msg("cycle %lu (seed %" PRIu64 "): seq %" PRId64 " is corrupt", cycle,
			         seed, seq);
		if (bsearch(&seq, gone, n_gone, sizeof(*gone), cmp_i64))
			fail_msg("cycle %lu (seed %" PRIu64 "): seq %" PRId64 " was sent, is back",
			         cycle, seed, seq);
		while (a < n_acked && acked[a].seq < seq)
			fail_msg("cycle %lu (seed %" PRIu64 "): acknowledged seq %" PRId64 " lost",
			         cycle, seed, acked[a].seq);
		if (a < n_acked && acked[a].seq == seq) {
			if (acked[a].n != n)
				fail_msg("cycle %lu: seq %" PRId64 " holds note %" PRIu32
				         ", not %" PRIu32,
				         cycle, seq, n, acked[a].n);
			a++;
		}
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	if (a < n_acked)
		fail_msg("cycle %lu (seed %" PRIu64 "): acknowledged seq %" PRId64 " lost", cycle,
		         seed, acked[a].seq);
}

static void t_powercut(void **state)
{
	char dir[] = "/tmp/ngw-powercut-XXXXXX";
	char path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.db", dir);
	for (unsigned long c = 1; c <= cycles; c++) {
		run_cycle(path, c % 10 == 1);
		qsort(gone, n_gone, sizeof(*gone), cmp_i64);
		verify(dir, path, c);
		if (c % 1000 == 0)
			print_message("powercut: %lu cycles, %lu cuts, %zu notes held\n", c, n_cuts,
			              n_acked);
	}
	print_message("powercut: seed %" PRIu64 ": %lu cycles, %lu power cuts (%lu in a failed "
	              "fsync), %lu commits cut, %lu writes undone, %zu acknowledged notes held, "
	              "%zu sent\n",
	              seed, cycles, n_cuts, n_sync_fails, n_torn_commits, n_undone, n_acked,
	              n_gone);
	assert_true(n_cuts > cycles / 3);
	print_message("powercut: a cycle is about %" PRIu64 " writes, %" PRIu64 " fsyncs\n",
	              est_writes, est_syncs);
	assert_true(n_acked > 0);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(acked);
	free(gone);
}

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : getenv("NOTEGW_POWERCUT_CYCLES");
	const char *s = argc > 2 ? argv[2] : getenv("NOTEGW_POWERCUT_SEED");
	if (c)
		cycles = strtoul(c, NULL, 10);
	seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (!seed)
		seed = 1;
	rng = seed;
	log_setup(getenv("NGW_TEST_DEBUG") ? LOG_DEBUG : LOG_CRIT, false);
	const struct CMUnitTest tests[] = {cmocka_unit_test(t_powercut)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
