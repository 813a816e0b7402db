/* mqtt_bench: the client plugin's capacity, i.e. how fast it drains a backlog of QoS 1
 * messages queued at the broker into committed notes, next to a bare libmosquitto QoS 1
 * subscriber draining the same backlog from the same broker in the same run.
 *
 *   mqtt_bench [-n COUNT] [-r ROUNDS] [-d DIR] [-b BUILDDIR] [-k]
 *
 * Starts mosquitto (default limits: 20 QoS 1 messages in flight per client; with
 * notegw_broker.so on prefix "benchb" when built) on a free loopback port, with its
 * files and notegwd's (mqtt.so, no Notecard: the store only fills) in DIR (default
 * /var/tmp, a real disk, so fsync costs what it costs). Each round and body size:
 *   bare    COUNT messages are queued for a persistent subscriber session while it is
 *           away; then a plain libmosquitto subscriber (loop thread) connects and
 *           drains them;
 *   client  COUNT messages are queued for notegwd's session while it is stopped; then
 *           notegwd starts and its mqtt plugin drains them into the store, each PUBACK
 *           after its commit.
 * A drain rate is taken from the first arrival (bare) or first committed row (client,
 * seen by another store connection polling every 2 ms) to the last, so neither side
 * pays for its process start or connect. The modes alternate (bare first in even
 * rounds, client first in odd ones); each round gives a paired ratio, and the median
 * of ROUNDS (>= 3) is reported, for small and for 4 KiB bodies. Also printed: the
 * machine, the load average before and after, the fsync latency in DIR, the daemon's
 * RSS, and the broker plugin's publisher-paced rate (its PUBACK follows each commit,
 * so no backlog forms at the broker to drain). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
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
#define BIG_BODY   4096 /* bytes of the large bodies */
#define PUB_WINDOW 100  /* the publisher's messages in flight while it queues a backlog */
#define DRAIN_S    300  /* the longest a drain may take before the round is given up */

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
	fprintf(stderr, "mqtt_bench: %s\n", what);
	exit(1);
}

static pid_t spawn(char *const argv[], const char *logpath)
{
	pid_t p = fork();
	if (p < 0)
		die("fork");
	if (p == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	return p;
}

static void stop(pid_t p)
{
	kill(p, SIGTERM);
	waitpid(p, NULL, 0);
}

/* ---- the machine ------------------------------------------------------------------- */

/* What one small durable write costs in dir: 4 KiB appended, then fdatasync. */
static double fsync_ms(const char *dir)
{
	char path[600], block[4096];
	double v[101];
	int n = 101, fd;

	snprintf(path, sizeof(path), "%s/fsync-probe", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	memset(block, 'x', sizeof(block));
	for (int i = 0; i < n; i++) {
		uint64_t t = now_us();
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) ||
		    fdatasync(fd) < 0) {
			close(fd);
			return -1;
		}
		v[i] = (now_us() - t) / 1000.0;
	}
	close(fd);
	unlink(path);
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return v[n / 2];
}

/* ---- MQTT clients ------------------------------------------------------------------ */

static atomic_int acked;

static void on_pub_publish(struct mosquitto *m, void *ud, int mid)
{
	acked++;
}

static struct mosquitto *publisher(int port)
{
	struct mosquitto *m = mosquitto_new("bench-pub", true, NULL);
	if (!m)
		die("mosquitto_new");
	mosquitto_publish_callback_set(m, on_pub_publish);
	mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, PUB_WINDOW);
	if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS)
		die("cannot connect to mosquitto");
	mosquitto_loop_start(m);
	return m;
}

/* One message body: {"i":N,"r":ROUND} or, big, padded to BIG_BODY bytes. */
static int body(char *buf, size_t cap, int i, int round, bool big)
{
	int n = snprintf(buf, cap, "{\"i\":%d,\"r\":%d", i, round);
	if (big) {
		n += snprintf(buf + n, cap - (size_t)n, ",\"pad\":\"");
		while (n < BIG_BODY - 2)
			buf[n++] = 'p';
		buf[n++] = '"';
	}
	buf[n++] = '}';
	buf[n] = '\0';
	return n;
}

/* Publish n messages on topic (QoS 1) and wait until the broker took them all. */
static void queue_backlog(struct mosquitto *pub, const char *topic, int n, int round, bool big)
{
	char payload[BIG_BODY + 64];
	uint64_t deadline;

	acked = 0;
	for (int i = 0; i < n; i++) {
		int len = body(payload, sizeof(payload), i, round, big);
		while (i - acked >= PUB_WINDOW)
			usleep(50);
		while (mosquitto_publish(pub, NULL, topic, len, payload, 1, false) ==
		       MOSQ_ERR_NOMEM)
			usleep(100);
	}
	deadline = now_us() + 60 * 1000000ull;
	while (acked < n && now_us() < deadline)
		usleep(1000);
	if (acked < n)
		die("the broker did not take the backlog");
}

/* The bare subscriber: arrivals counted, first and last time kept. */
struct bare {
	int want;
	atomic_int count;
	uint64_t first_us, last_us;
};

static void on_bare_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	struct bare *b = ud;
	uint64_t t = now_us();

	if (b->count == 0)
		b->first_us = t;
	if (++b->count == b->want)
		b->last_us = t;
}

static struct mosquitto *bare_client(int port, struct bare *b)
{
	struct mosquitto *m = mosquitto_new("bench-bare", false, b);
	if (!m)
		die("mosquitto_new");
	mosquitto_message_callback_set(m, on_bare_message);
	if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS)
		die("cannot connect to mosquitto");
	return m;
}

/* Connect the bare subscriber's session once so that the broker queues for it. */
static void bare_session(int port)
{
	struct bare b = {0};
	struct mosquitto *m = bare_client(port, &b);
	mosquitto_subscribe(m, NULL, "bare/#", 1);
	for (int i = 0; i < 20; i++)
		mosquitto_loop(m, 50, 1);
	mosquitto_disconnect(m);
	mosquitto_loop(m, 50, 1);
	mosquitto_destroy(m);
}

static double drain_bare(struct mosquitto *pub, int port, int n, int round, bool big)
{
	struct bare b = {.want = n};
	struct mosquitto *m;
	uint64_t deadline;

	queue_backlog(pub, "bare/x", n, round, big);
	m = bare_client(port, &b);
	mosquitto_loop_start(m);
	deadline = now_us() + DRAIN_S * 1000000ull;
	while (b.count < n && now_us() < deadline)
		usleep(1000);
	mosquitto_disconnect(m);
	mosquitto_loop_stop(m, false);
	mosquitto_destroy(m);
	if (b.count < n || b.last_us <= b.first_us)
		return 0;
	return (n - 1) / ((b.last_us - b.first_us) / 1e6);
}

/* ---- the daemon, and its committed rows seen from another connection -------------- */

struct daemon {
	char *argv[5];
	char log[600];
	pid_t pid;
	long rss_kb;
};

static long proc_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0)
			sscanf(line + strlen(key), ": %ld", &v);
	fclose(f);
	return v;
}

/* Rows of file as they become visible: when the first were seen and how many, and when
 * the count reached want. */
static int watch_rows(const char *store, const char *file, int want, uint64_t *first_us,
                      int *first_n, uint64_t *last_us)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t last = 0;
	int count = 0;
	uint64_t deadline = now_us() + DRAIN_S * 1000000ull;

	if (sqlite3_open_v2(store, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die("cannot open the store");
	sqlite3_busy_timeout(db, 1000);
	if (sqlite3_prepare_v2(db, "SELECT id FROM out WHERE id > ? AND file = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		die("the store has no out table");
	while (count < want && now_us() < deadline) {
		sqlite3_bind_int64(st, 1, last);
		sqlite3_bind_text(st, 2, file, -1, SQLITE_STATIC);
		int got = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			last = sqlite3_column_int64(st, 0);
			got++;
		}
		sqlite3_reset(st);
		uint64_t t = now_us();
		if (got && count == 0) {
			*first_us = t;
			*first_n = got;
		}
		count += got;
		if (count >= want)
			*last_us = t;
		else
			usleep(2000);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return count;
}

static double drain_client(struct mosquitto *pub, struct daemon *d, const char *store, int n,
                           int round, bool big)
{
	char topic[128], file[64];
	uint64_t first = 0, last = 0;
	int first_n = 0, got;

	snprintf(file, sizeof(file), "b%d%s.qo", round, big ? "big" : "small");
	snprintf(topic, sizeof(topic), "notecard/out/%s", file);
	queue_backlog(pub, topic, n, round, big);
	d->pid = spawn(d->argv, d->log);
	got = watch_rows(store, file, n, &first, &first_n, &last);
	d->rss_kb = proc_kb(d->pid, "VmHWM");
	stop(d->pid);
	if (got < n || last <= first)
		return 0;
	return (n - first_n) / ((last - first) / 1e6);
}

static void on_status(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	if (msg->payloadlen && strstr(msg->payload, "\"online\":true"))
		*(bool *)ud = true;
}

/* Start notegwd once, until its plugin is online (it subscribes before it says so):
 * from then on the broker queues notecard/out/ messages for its session while it is
 * stopped. */
static void client_session(struct daemon *d, int port)
{
	bool online = false;
	struct mosquitto *m = mosquitto_new("bench-status", true, &online);

	if (!m)
		die("mosquitto_new");
	mosquitto_message_callback_set(m, on_status);
	if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS)
		die("cannot connect to mosquitto");
	mosquitto_subscribe(m, NULL, "notecard/status", 1);
	d->pid = spawn(d->argv, d->log);
	for (int i = 0; i < 200 && !online; i++)
		mosquitto_loop(m, 50, 1);
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	if (!online)
		die("the daemon's mqtt plugin did not come online (see the logs in DIR with -k)");
	usleep(200000); /* the status is published after the subscribe, not after its SUBACK */
}

/* ---- the broker plugin, publisher-paced ------------------------------------------- */

static double broker_rate(struct mosquitto *pub, int n)
{
	char payload[64];
	uint64_t t0 = now_us(), deadline;

	acked = 0;
	for (int i = 0; i < n; i++) {
		int len = body(payload, sizeof(payload), i, 0, false);
		while (i - acked >= 20)
			usleep(50);
		mosquitto_publish(pub, NULL, "benchb/out/benchb.qo", len, payload, 1, false);
	}
	deadline = now_us() + DRAIN_S * 1000000ull;
	while (acked < n && now_us() < deadline)
		usleep(200);
	return acked / ((now_us() - t0) / 1e6);
}

int main(int argc, char **argv)
{
	const char *builddir = ".", *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	int n = 20000, rounds = 3, opt, port;
	char dir[256], path[1024], store[512], conf[512], mconf[512], plugdir[512], so[512];
	char bso[512], daemon[512], log1[512];
	bool keep = false;

	while ((opt = getopt(argc, argv, "n:r:d:b:k")) != -1) {
		if (opt == 'n')
			n = atoi(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else if (opt == 'd')
			base = optarg;
		else if (opt == 'b')
			builddir = optarg;
		else if (opt == 'k')
			keep = true;
		else
			die("usage: mqtt_bench [-n COUNT] [-r ROUNDS] [-d DIR] [-b BUILDDIR] [-k]");
	}
	if (n < 100 || n > 1000000)
		die("COUNT between 100 and 1000000");
	if (rounds < 1 || rounds > ROUNDS_MAX)
		die("ROUNDS between 1 and 15");
	snprintf(dir, sizeof(dir), "%s/mqtt-bench-XXXXXX", base);
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(store, sizeof(store), "%s/store.db", dir);
	snprintf(plugdir, sizeof(plugdir), "%s/plugins", dir);
	mkdir(plugdir, 0755);
	snprintf(so, sizeof(so), "%s/plugins/mqtt/.libs/mqtt.so", builddir);
	snprintf(bso, sizeof(bso), "%s/plugins/mqtt/.libs/notegw_broker.so", builddir);
	snprintf(daemon, sizeof(daemon), "%s/notegwd", builddir);
	char *rso = realpath(so, NULL), *rbso = realpath(bso, NULL),
	     *rdaemon = realpath(daemon, NULL);
	if (!rso || !rdaemon || access(rdaemon, X_OK) < 0)
		die("run from the build directory (or -b BUILDDIR) after make");
	snprintf(path, sizeof(path), "%s/mqtt.so", plugdir);
	if (symlink(rso, path) < 0)
		die("symlink");
	port = bench_free_port();

	snprintf(mconf, sizeof(mconf), "%s/mosquitto.conf", dir);
	FILE *f = fopen(mconf, "w");
	if (!f)
		die("mosquitto.conf");
	/* Queues without a bound, so a backlog of any COUNT is kept for an absent session;
	 * the in-flight window stays at mosquitto's default for both subscribers. */
	fprintf(f,
	        "listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
	        "persistence false\n",
	        port);
	if (getuid() == 0)
		fprintf(f, "user root\n");
	if (rbso)
		fprintf(f,
		        "plugin %s\nplugin_opt_store %s\nplugin_opt_prefix benchb\n"
		        "plugin_opt_max_payload 8K\n",
		        rbso, store);
	fclose(f);

	snprintf(conf, sizeof(conf), "%s/notegw.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		die("notegw.conf");
	fprintf(f,
	        "[daemon]\nplugin_dir = %s\nstate_dir = %s\nlog_level = notice\n"
	        "[store]\npath = %s\nmax_size = 4G\n[control]\nsocket = %s/control.sock\n"
	        "[notecard]\ntransport = serial\ndevice = %s/no-card\n[update]\nenabled = false\n"
	        "[mqtt]\nhost = 127.0.0.1\nport = %d\nclient_id = notegw-bench\n"
	        "reconnect_min = 100ms\n",
	        plugdir, dir, store, dir, dir, port);
	fclose(f);

	struct daemon d = {.argv = {rdaemon, (char *)"-f", (char *)"-c", conf, NULL}};
	snprintf(d.log, sizeof(d.log), "%s/notegwd.log", dir);
	snprintf(log1, sizeof(log1), "%s/mosquitto.log", dir);
	char *margv[] = {(char *)"mosquitto", (char *)"-c", mconf, NULL};

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("mqtt_bench: drain of %d QoS 1 messages queued at the broker, %d paired round(s)\n",
	       n, rounds);
	bench_print_machine(dir);
	bench_print_load("before");
	double fs = fsync_ms(dir);
	printf("  fsync (4 KiB write + fdatasync) in %s: median %.3f ms (%.0f/s)\n", dir, fs,
	       fs > 0 ? 1000.0 / fs : 0);

	pid_t broker = spawn(margv, log1);
	usleep(300000);
	mosquitto_lib_init();
	struct mosquitto *pub = publisher(port);
	bare_session(port);
	client_session(&d, port);
	stop(d.pid);

	double bare[2][ROUNDS_MAX], cl[2][ROUNDS_MAX], ratio[2][ROUNDS_MAX];
	long hwm = 0;
	for (int r = 0; r < rounds; r++) {
		for (int big = 0; big < 2; big++) {
			if (r % 2 == 0) {
				bare[big][r] = drain_bare(pub, port, n, r, big);
				cl[big][r] = drain_client(pub, &d, store, n, r, big);
			} else {
				cl[big][r] = drain_client(pub, &d, store, n, r, big);
				bare[big][r] = drain_bare(pub, port, n, r, big);
			}
			if (d.rss_kb > hwm)
				hwm = d.rss_kb;
			ratio[big][r] = bare[big][r] > 0 ? cl[big][r] / bare[big][r] : 0;
			printf(
			    "  round %d, %s bodies: bare %.0f msgs/s, client plugin %.0f msgs/s, "
			    "ratio %.2f%s\n",
			    r + 1, big ? "4 KiB" : "small", bare[big][r], cl[big][r], ratio[big][r],
			    cl[big][r] == 0 || bare[big][r] == 0 ? "  INCOMPLETE" : "");
			fflush(stdout);
		}
	}
	for (int big = 0; big < 2; big++)
		printf("  %s bodies, median of %d: bare %.0f msgs/s, client plugin (PUBACK after "
		       "commit) %.0f msgs/s, ratio %.2f\n",
		       big ? "4 KiB" : "small", rounds, bench_median(bare[big], rounds),
		       bench_median(cl[big], rounds), bench_median(ratio[big], rounds));
	printf("  notegwd peak RSS while draining: %.1f MiB\n", hwm / 1024.0);
	if (rbso) {
		double br = broker_rate(pub, n < 5000 ? n : 5000);
		printf("  broker plugin (PUBACK after each commit), one publisher, 20 in flight: "
		       "%.0f msgs/s (fsync rate %.0f/s)\n",
		       br, fs > 0 ? 1000.0 / fs : 0);
	}
	bench_print_load("after");

	mosquitto_disconnect(pub);
	mosquitto_loop_stop(pub, true);
	mosquitto_destroy(pub);
	mosquitto_lib_cleanup();
	stop(broker);
	if (!keep) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "mqtt_bench: could not remove %s\n", dir);
	}
	free(rso);
	free(rbso);
	free(rdaemon);
	return 0;
}
