/* broker_bench: the broker plugin's ingest ceiling next to the bare commit rate of
 * the same disk, in the same run.
 *
 *   broker_bench [-n COUNT] [-p PUBLISHERS] [-r ROUNDS] [-d DIR] [-b BUILDDIR]
 *
 * mosquitto 2.0 sends PUBACK when the plugin's MOSQ_EVT_MESSAGE callback returns and
 * offers no way to send it later, so a plugin that acknowledges only what is
 * durable must commit inside the callback: one durable commit per message, on
 * mosquitto's only thread, however many publishers there are. The ceiling is then
 * the disk's rate of small synchronous commits. Each round, on DIR (default
 * /var/tmp: a real disk, so fsync costs what it costs), paired and in this order:
 *   fsync    write 128 bytes in place into a file already on disk and fdatasync
 *            it, COUNT times (what a commit into a WAL at its steady size costs
 *            the disk; appending would add a metadata commit per write)
 *   sqlite   one INSERT per transaction, WAL, synchronous=FULL (what the store does
 *            for a note outside a batch), COUNT times
 *   broker   COUNT QoS 1 messages from PUBLISHERS clients (20 in flight each) to
 *            benchb/out/bench.qo through notegw_broker.so; the clock stops at the
 *            last PUBACK, which the plugin lets mosquitto send only after the commit
 * Odd rounds run the three in the reverse order, so drift in the disk or the load
 * falls on each alike; the database and the broker are warmed up before the first.
 * Prints the machine, its load, fdatasync latency, each round's rates and ratios,
 * and the median of the rounds. */
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"

#define ROUNDS_MAX 15
#define PUBS_MAX   64
#define IN_FLIGHT  20

static void die(const char *what)
{
	fprintf(stderr, "broker_bench: %s\n", what);
	exit(1);
}

/* ---- the bare baselines ----------------------------------------------------------- */

/* COUNT writes of 128 bytes in place, each followed by fdatasync, over a file of
 * FSYNC_SPAN bytes written and synced first. Returns syncs/s; lat (COUNT entries)
 * gets each fdatasync's latency in ms. */
#define FSYNC_SPAN (1 << 20)
static double bare_fsync(const char *dir, int n, double *lat)
{
	char path[512], buf[128];
	static char zero[FSYNC_SPAN];
	snprintf(path, sizeof(path), "%s/fsync.bin", dir);
	memset(buf, 'x', sizeof(buf));
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, zero, sizeof(zero)) != (ssize_t)sizeof(zero) || fsync(fd) < 0)
		die("cannot make the fsync file");
	double t0 = bench_now_s();
	for (int i = 0; i < n; i++) {
		off_t at = (off_t)(i % (FSYNC_SPAN / sizeof(buf))) * (off_t)sizeof(buf);
		if (pwrite(fd, buf, sizeof(buf), at) != (ssize_t)sizeof(buf))
			die("write");
		double t = bench_now_s();
		if (fdatasync(fd) < 0)
			die("fdatasync");
		lat[i] = (bench_now_s() - t) * 1e3;
	}
	double rate = n / (bench_now_s() - t0);
	close(fd);
	unlink(path);
	return rate;
}

/* The bare database, opened once and kept across rounds like the store. */
static sqlite3 *bare_db;
static sqlite3_stmt *bare_ins;

static void bare_open(const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/bare.db", dir);
	if (sqlite3_open(path, &bare_db) != SQLITE_OK ||
	    sqlite3_exec(bare_db,
	                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                 "CREATE TABLE out(id INTEGER PRIMARY KEY, file TEXT, body TEXT)",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(bare_db, "INSERT INTO out(file, body) VALUES ('bench.qo', ?)", -1,
	                       &bare_ins, NULL) != SQLITE_OK)
		die("sqlite baseline");
}

/* COUNT single-row transactions at the store's durability. Returns commits/s. */
static double bare_sqlite(int n)
{
	double t0 = bench_now_s();
	for (int i = 0; i < n; i++) {
		char body[64];
		int len = snprintf(body, sizeof(body), "{\"i\":%d}", i);
		sqlite3_bind_text(bare_ins, 1, body, len, SQLITE_STATIC);
		if (sqlite3_step(bare_ins) != SQLITE_DONE)
			die("sqlite insert");
		sqlite3_reset(bare_ins);
	}
	return n / (bench_now_s() - t0);
}

/* ---- through mosquitto and the plugin --------------------------------------------- */

struct pub {
	struct mosquitto *m;
	atomic_int acked;
	int sent, n;
};

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
	struct pub *p = ud;
	p->acked++;
}

/* COUNT messages spread over npub publishers, IN_FLIGHT unacknowledged each. Returns
 * PUBACKed messages/s, or 0 when not all were acknowledged within 120 s. */
static double through_broker(int port, int n, int npub)
{
	static struct pub pubs[PUBS_MAX];
	char payload[64], id[32];
	int done = 0;

	for (int i = 0; i < npub; i++) {
		struct pub *p = &pubs[i];
		snprintf(id, sizeof(id), "bench-%d", i);
		p->m = mosquitto_new(id, true, p);
		p->acked = 0;
		p->sent = 0;
		p->n = n / npub + (i < n % npub);
		if (!p->m || mosquitto_connect(p->m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS)
			die("cannot connect to mosquitto");
		mosquitto_publish_callback_set(p->m, on_publish);
		mosquitto_loop_start(p->m);
	}
	double t0 = bench_now_s(), deadline = t0 + 120;
	while (done < npub && bench_now_s() < deadline) {
		done = 0;
		for (int i = 0; i < npub; i++) {
			struct pub *p = &pubs[i];
			while (p->sent < p->n && p->sent - p->acked < IN_FLIGHT) {
				int len = snprintf(payload, sizeof(payload), "{\"p\":%d,\"i\":%d}",
				                   i, p->sent);
				if (mosquitto_publish(p->m, NULL, "benchb/out/bench.qo", len,
				                      payload, 1, false) != MOSQ_ERR_SUCCESS)
					break;
				p->sent++;
			}
			done += p->acked >= p->n;
		}
		usleep(100);
	}
	double t = bench_now_s() - t0;
	for (int i = 0; i < npub; i++) {
		mosquitto_disconnect(pubs[i].m);
		mosquitto_loop_stop(pubs[i].m, false);
		mosquitto_destroy(pubs[i].m);
	}
	return done == npub ? n / t : 0;
}

static pid_t start_broker(const char *dir, const char *so, int port)
{
	char conf[512], log[512], store[512];
	snprintf(conf, sizeof(conf), "%s/mosquitto.conf", dir);
	snprintf(log, sizeof(log), "%s/mosquitto.log", dir);
	snprintf(store, sizeof(store), "%s/store.db", dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		die("mosquitto.conf");
	fprintf(f,
	        "listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
	        "plugin %s\nplugin_opt_store %s\nplugin_opt_prefix benchb\n"
	        "plugin_opt_config none\n",
	        port, so, store);
	if (getuid() == 0)
		fprintf(f, "user root\n");
	fclose(f);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("mosquitto", "mosquitto", "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		struct mosquitto *m = mosquitto_new(NULL, true, NULL);
		int ok = m && mosquitto_connect(m, "127.0.0.1", port, 60) == MOSQ_ERR_SUCCESS;
		mosquitto_destroy(m);
		if (ok)
			return pid;
		usleep(50000);
	}
	die("mosquitto did not start (see mosquitto.log in DIR)");
	return -1;
}

/* ---- the machine ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	const char *builddir = ".", *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	int n = 5000, npub = 8, rounds = 3, opt;
	double fs[ROUNDS_MAX], sq[ROUNDS_MAX], br[ROUNDS_MAX], rf[ROUNDS_MAX], rs[ROUNDS_MAX];
	char dir[256], so[512];

	while ((opt = getopt(argc, argv, "n:p:r:d:b:")) != -1) {
		if (opt == 'n')
			n = atoi(optarg);
		else if (opt == 'p')
			npub = atoi(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else if (opt == 'd')
			base = optarg;
		else if (opt == 'b')
			builddir = optarg;
		else
			die("usage: broker_bench [-n COUNT] [-p PUBLISHERS] [-r ROUNDS] [-d DIR] "
			    "[-b BUILDDIR]");
	}
	if (n < 1 || npub < 1 || npub > PUBS_MAX || rounds < 1 || rounds > ROUNDS_MAX)
		die("-n >= 1, -p 1..64, -r 1..15");
	snprintf(so, sizeof(so), "%s/plugins/mqtt/.libs/notegw_broker.so", builddir);
	char *rso = realpath(so, NULL);
	if (!rso)
		die("notegw_broker.so not built (run from the build directory or give -b)");
	snprintf(dir, sizeof(dir), "%s/broker_bench.XXXXXX", base);
	if (!mkdtemp(dir))
		die("mkdtemp");
	double *lat = calloc((size_t)n, sizeof(*lat));
	if (!lat)
		die("out of memory");

	bench_print_machine(dir);
	bench_print_load("before");
	printf("%d messages a round, %d publishers x %d in flight, %d rounds\n\n", n, npub,
	       IN_FLIGHT, rounds);
	printf("round  fdatasync/s  sqlite commit/s  broker msg/s  broker/fsync  broker/sqlite  "
	       "fsync p50/p99 ms\n");
	mosquitto_lib_init();
	int port = bench_free_port(), warm = n < 1000 ? n : 1000;
	pid_t b = start_broker(dir, rso, port);
	bare_open(dir);
	bare_sqlite(warm);
	if (through_broker(port, warm, npub) == 0)
		die("the broker did not acknowledge the warm-up (see mosquitto.log in DIR)");
	for (int r = 0; r < rounds; r++) {
		if (r % 2 == 0) {
			fs[r] = bare_fsync(dir, n, lat);
			sq[r] = bare_sqlite(n);
			br[r] = through_broker(port, n, npub);
		} else {
			br[r] = through_broker(port, n, npub);
			sq[r] = bare_sqlite(n);
			fs[r] = bare_fsync(dir, n, lat);
		}
		rf[r] = br[r] / fs[r];
		rs[r] = br[r] / sq[r];
		qsort(lat, (size_t)n, sizeof(*lat), bench_cmp_double);
		printf("%5d  %11.0f  %15.0f  %12.0f  %12.2f  %13.2f  %.2f/%.2f\n", r + 1, fs[r],
		       sq[r], br[r], rf[r], rs[r], lat[n / 2], lat[(n * 99) / 100]);
	}
	kill(b, SIGTERM);
	waitpid(b, NULL, 0);
	sqlite3_finalize(bare_ins);
	sqlite3_close(bare_db);
	printf("median %11.0f  %15.0f  %12.0f  %12.2f  %13.2f\n", bench_median(fs, rounds),
	       bench_median(sq, rounds), bench_median(br, rounds), bench_median(rf, rounds),
	       bench_median(rs, rounds));
	mosquitto_lib_cleanup();

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "broker_bench: %s left behind\n", dir);
	free(lat);
	free(rso);
	return 0;
}
