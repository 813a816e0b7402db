/* store_bench: figures for the store. Prints, on this machine and disk:
 * - enqueue rate with acknowledgment after commit through the group commit (batch),
 *   next to a bare SQLite insert loop with the same durability (WAL, synchronous=FULL)
 *   and batch size (ratio; aim >= 0.5), and next to one commit per note (aim >= 20x);
 * - dequeue cost (peek, and peek + sent) with 10 and with N_BIG notes queued;
 * - RSS and the time from open to the first peek with 10 and N_BIG queued;
 * - bytes written to disk per note and while idle (/proc/self/io write_bytes; idle
 *   must be 0).
 * Usage: store_bench [-d DIR] [-n NOTES] [-b BATCH] [-B N_BIG] [-i IDLE_S]
 * DIR must be on the disk under test (not tmpfs); default /var/tmp. No pass/fail. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "log.h"
#include "store.h"
#include "util.h"

static const char body[] = "{\"temp\":21.5,\"hum\":40,\"dev\":\"sensor-0042\",\"ok\":true}";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t io_write_bytes(void)
{
	char line[128];
	uint64_t v = 0;
	FILE *f = fopen("/proc/self/io", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "write_bytes: %" SCNu64, &v) == 1)
			break;
	fclose(f);
	return v;
}

static long status_kb(const char *key)
{
	char line[128];
	long v = -1;
	size_t k = strlen(key);
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, k) == 0 && line[k] == ':') {
			v = strtol(line + k + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static double median3(const double v[3])
{
	double a = v[0], b = v[1], c = v[2];
	if ((a <= b && b <= c) || (c <= b && b <= a))
		return b;
	if ((b <= a && a <= c) || (c <= a && a <= b))
		return a;
	return c;
}

static void rm_store(const char *path)
{
	char p[512];
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "store_bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* ---- enqueue through the batch ------------------------------------------------- */
static long acked, nacked;
static void on_ack(void *ud, int err, const char *why)
{
	if (err == 0)
		acked++;
	else
		nacked++;
}

static double bench_batch(const char *path, long n, int bsize, uint64_t *wbytes,
                          uint64_t *est_bytes)
{
	struct store *st;
	struct batch *b;
	sd_event *loop;
	int r;
	rm_store(path);
	if ((r = store_open(path, NULL, &st)) < 0)
		die("store_open", r);
	if ((r = sd_event_new(&loop)) < 0 || (r = batch_new(loop, st, 1000, NULL, NULL, &b)) < 0)
		die("batch_new", r);
	acked = nacked = 0;
	uint64_t w0 = io_write_bytes();
	double t0 = now_s();
	for (long i = 0; i < n;) {
		/* producers hand over bsize notes, then the loop commits them (the batch
		 * commits by itself at BATCH_MAX; a smaller bsize flushes explicitly) */
		for (int k = 0; k < bsize && i < n; k++, i++)
			if ((r = batch_put(b, "bench.qo", body, NULL, 0, 0, on_ack, NULL, NULL)) <
			    0)
				die("batch_put", r);
		if (batch_pending(b) >= BATCH_MAX)
			sd_event_run(loop, 0);
		else
			batch_flush(b);
	}
	double t = now_s() - t0;
	if (acked != n)
		die("not every note acknowledged", EIO);
	struct store_stats ss;
	store_stats(st, &ss);
	*est_bytes = ss.bytes_written;
	batch_free(b);
	sd_event_unref(loop);
	store_close(st); /* the checkpoint at close is part of what a note costs */
	sync();
	*wbytes = io_write_bytes() - w0;
	return (double)n / t;
}

/* The same durability with nothing of ours: WAL, synchronous=FULL, bsize per commit. */
static double bench_bare(const char *path, long n, int bsize)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	rm_store(path);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(
	        db,
	        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	        "CREATE TABLE q(id INTEGER PRIMARY KEY, file TEXT, body TEXT, created INT);",
	        NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO q(file, body, created) VALUES (?, ?, ?)", -1, &s,
	                       NULL) != SQLITE_OK)
		die("bare sqlite", EIO);
	double t0 = now_s();
	for (long i = 0; i < n;) {
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		for (int k = 0; k < bsize && i < n; k++, i++) {
			sqlite3_bind_text(s, 1, "bench.qo", -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 2, body, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, (int64_t)now_real_ms());
			if (sqlite3_step(s) != SQLITE_DONE)
				die("bare insert", EIO);
			sqlite3_reset(s);
		}
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			die("bare commit", EIO);
	}
	double t = now_s() - t0;
	sqlite3_finalize(s);
	sqlite3_close(db);
	return (double)n / t;
}

static double bench_single(const char *path, long n)
{
	struct store *st;
	int r;
	rm_store(path);
	if ((r = store_open(path, NULL, &st)) < 0)
		die("store_open", r);
	double t0 = now_s();
	for (long i = 0; i < n; i++)
		if ((r = store_enqueue(st, "bench.qo", body, NULL, 0, 0, NULL)) < 0)
			die("store_enqueue", r);
	double t = now_s() - t0;
	store_close(st);
	return (double)n / t;
}

/* ---- a store with many notes --------------------------------------------------- */
static void fill(const char *path, long n)
{
	struct store *st;
	int r;
	rm_store(path);
	if ((r = store_open(path, NULL, &st)) < 0)
		die("store_open", r);
	for (long i = 0; i < n;) {
		if ((r = store_begin(st)) < 0)
			die("begin", r);
		for (long k = 0; k < 50000 && i < n; k++, i++)
			if ((r = store_enqueue(st, i % 10 ? "bulk.qo" : "other.qo", body, NULL, 0,
			                       0, NULL)) < 0)
				die("enqueue", r);
		if ((r = store_commit(st)) < 0)
			die("commit", r);
	}
	store_close(st);
}

/* Restart-to-draining in a fresh process: open (quick check included), first peek,
 * RSS. Printed by the child. */
static void restart(const char *path, long queued)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		struct store *st;
		struct store_out *o = NULL;
		long rss0 = status_kb("VmRSS");
		double t0 = now_s();
		int r = store_open(path, NULL, &st);
		if (r < 0)
			die("store_open", r);
		double t1 = now_s();
		if ((r = store_peek_out(st, &o)) < 0 || !o)
			die("first peek", r < 0 ? r : ENOENT);
		double t2 = now_s();
		store_out_free(o);
		printf("  %8ld queued: open %.1f ms (start-up check included), then first peek "
		       "%.3f ms; RSS %ld kB (+%ld kB), peak %ld kB\n",
		       queued, (t1 - t0) * 1e3, (t2 - t1) * 1e3, status_kb("VmRSS"),
		       status_kb("VmRSS") - rss0, status_kb("VmHWM"));
		store_close(st);
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
}

/* The link's pattern: peek the next note, then mark it sent (one commit each). A note
 * is added (untimed) before each, so the queue stays at its size. */
static void dequeue(const char *path, long queued, int ops)
{
	struct store *st;
	int r;
	if ((r = store_open(path, NULL, &st)) < 0)
		die("store_open", r);
	double tp = 0, ts = 0;
	for (int i = 0; i < ops; i++) {
		struct store_out *o = NULL;
		if ((r = store_enqueue(st, "refill.qo", body, NULL, 0, 0, NULL)) < 0)
			die("refill", r);
		double t0 = now_s();
		if ((r = store_peek_out(st, &o)) < 0 || !o)
			die("peek", r < 0 ? r : ENOENT);
		double t1 = now_s();
		if ((r = store_out_sent(st, o->id)) < 0)
			die("sent", r);
		ts += now_s() - t1;
		tp += t1 - t0;
		store_out_free(o);
	}
	/* the link drains in batches too: peek 64, mark them sent in one commit */
	double tb = 0;
	int nb = 0;
	for (int i = 0; i < 10; i++) {
		struct store_out **v;
		size_t n;
		store_begin(st);
		for (int k = 0; k < 64; k++)
			store_enqueue(st, "refill.qo", body, NULL, 0, 0, NULL);
		if ((r = store_commit(st)) < 0)
			die("refill", r);
		double tb0 = now_s();
		if ((r = store_peek_outs(st, 64, &v, &n)) < 0)
			die("peek_outs", r);
		store_begin(st);
		for (size_t k = 0; k < n; k++) {
			store_out_sent(st, v[k]->id);
			store_out_free(v[k]);
		}
		if ((r = store_commit(st)) < 0)
			die("commit", r);
		tb += now_s() - tb0;
		nb += (int)n;
		free(v);
	}
	printf("  %8ld queued: peek %.1f us, peek+sent %.2f ms per note (one commit each), "
	       "%.1f us per note in commits of 64\n",
	       queued, tp / ops * 1e6, (tp + ts) / ops * 1e3, nb ? tb / nb * 1e6 : 0.0);
	store_close(st);
}

int main(int argc, char **argv)
{
	const char *dir = "/var/tmp";
	long n = 20000, big = 1000000;
	int bsize = 64, idle = 5, c;
	while ((c = getopt(argc, argv, "d:n:b:B:i:h")) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			n = atol(optarg);
			break;
		case 'b':
			bsize = atoi(optarg);
			break;
		case 'B':
			big = atol(optarg);
			break;
		case 'i':
			idle = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: store_bench [-d DIR] [-n NOTES] [-b BATCH] "
			                "[-B N_BIG] [-i IDLE_S]\n");
			return 2;
		}
	}
	if (n <= 0 || bsize <= 0 || big < 10 || idle < 0)
		die("bad arguments", EINVAL);
	log_setup(LOG_WARNING, false);
	signal(SIGPIPE, SIG_IGN); /* piped into head: still remove the files at the end */
	char path[512];
	snprintf(path, sizeof(path), "%s/ngw-bench-%d.db", dir, (int)getpid());
	printf("store_bench: %s, %ld notes of %zu bytes, batch %d\n", dir, n, sizeof(body) - 1,
	       bsize);

	/* fsync latency on a shared machine wanders: alternate the contenders and
	 * take each one's median of three rounds */
	uint64_t wbytes = 0, est = 0;
	double rb[3], rr[3], r1[3];
	long ns = n / 20 > 200 ? n / 20 : 200;
	for (int k = 0; k < 3; k++) {
		rb[k] = bench_batch(path, n, bsize, &wbytes, &est);
		rr[k] = bench_bare(path, n, bsize);
		r1[k] = bench_single(path, ns);
	}
	double b = median3(rb), bare = median3(rr), one = median3(r1);
	printf("enqueue, ack after commit (median of 3 rounds):\n");
	printf("  store + group commit (batch %d): %10.0f notes/s\n", bsize, b);
	printf("  bare SQLite, same durability   : %10.0f notes/s   ratio %.2f (aim >= 0.5)\n",
	       bare, b / bare);
	printf("  one commit per note            : %10.0f notes/s   batch is %.1fx (aim >= 20x)\n",
	       one, b / one);
	printf("bytes written per note (batch %d, checkpoint included): %.0f on disk "
	       "(/proc/self/io), %.0f counted by the store (WAL frames)\n",
	       bsize, (double)wbytes / n, (double)est / n);

	printf("dequeue and restart:\n");
	fill(path, 10);
	restart(path, 10);
	dequeue(path, 10, 50);
	char bigpath[600];
	snprintf(bigpath, sizeof(bigpath), "%s.big", path);
	double t0 = now_s();
	fill(bigpath, big);
	printf("  (filled %ld notes in %.1f s)\n", big, now_s() - t0);
	restart(bigpath, big);
	dequeue(bigpath, big, 50);

	/* Idle: the store is open, the daemon only looks. Nothing may be written. */
	struct store *st;
	int r = store_open(bigpath, NULL, &st);
	if (r < 0)
		die("store_open", r);
	struct store_out *o = NULL;
	store_peek_out(st, &o);
	store_out_free(o);
	uint64_t w0 = io_write_bytes();
	for (int s = 0; s < idle * 10; s++) {
		struct store_stats ss;
		store_stats(st, &ss);
		usleep(100 * 1000);
	}
	uint64_t w1 = io_write_bytes();
	printf("idle %d s with the store open (stats polled 10/s): %" PRIu64 " bytes written "
	       "(must be 0)\n",
	       idle, w1 - w0);
	store_close(st);
	rm_store(path);
	rm_store(bigpath);
	return 0;
}
