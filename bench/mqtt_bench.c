/* mqtt_bench: how fast MQTT messages become committed notes, next to what the same
 * broker delivers to a bare libmosquitto QoS 1 subscriber in the same run.
 *
 *   mqtt_bench [-n COUNT] [-d DIR] [-b BUILDDIR]
 *
 * Starts mosquitto (with notegw_broker.so on prefix "benchb") on a free loopback
 * port and notegwd (mqtt.so on prefix "notecard", no Notecard: the link retries while
 * the store fills) with their files in DIR (default /var/tmp, a real disk, so fsync
 * costs what it costs). Then, with the same publisher (QoS 1, 20 in flight):
 *   bare    publish to bare/x, a libmosquitto subscriber counts arrivals
 *   client  publish to notecard/out/bench.qo, the daemon's mqtt plugin hands them to
 *           the group commit and acknowledges them to the broker after it
 *   broker  publish to benchb/out/benchb.qo, mosquitto's plugin commits each before
 *           the PUBACK (the publisher's acknowledgment comes after the commit)
 * A reader thread polls the store every millisecond: a row is counted "committed"
 * when another connection can see it, so publish->commit latencies include commit.
 * Prints msgs/s, the ratio to bare, p50/p99 publish->commit, and the daemon's RSS. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
	fprintf(stderr, "mqtt_bench: %s\n", what);
	exit(1);
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		die("no free port");
	close(fd);
	return ntohs(a.sin_port);
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

/* ---- MQTT clients ----------------------------------------------------------------- */

static atomic_int received, acked;
static atomic_bool online;

static void on_sub_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	if (strcmp(msg->topic, "notecard/status") == 0) {
		if (msg->payloadlen && strstr(msg->payload, "\"online\":true"))
			online = true;
		return;
	}
	received++;
}

static void on_pub_publish(struct mosquitto *m, void *ud, int mid)
{
	acked++;
}

static struct mosquitto *client(const char *id, int port)
{
	struct mosquitto *m = mosquitto_new(id, true, NULL);
	if (!m || mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS)
		die("cannot connect to mosquitto");
	mosquitto_loop_start(m);
	return m;
}

/* ---- committed rows, watched from another connection ------------------------------ */

struct watch {
	const char *db;
	const char *file;
	int want;
	uint64_t *seen_us; /* [want]: first time row i was visible */
	uint64_t *pub_us;  /* [want]: publish time of message i */
	atomic_int count;
	atomic_bool stop;
};

static void *watcher(void *arg)
{
	struct watch *w = arg;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t last = 0;

	while (!w->stop && sqlite3_open_v2(w->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL;
		usleep(10000);
	}
	sqlite3_busy_timeout(db, 1000);
	while (!w->stop && w->count < w->want) {
		if (!st &&
		    sqlite3_prepare_v2(db, "SELECT id, body FROM out WHERE id > ? AND file = ?", -1,
		                       &st, NULL) != SQLITE_OK) {
			usleep(1000); /* table not there yet */
			continue;
		}
		sqlite3_bind_int64(st, 1, last);
		sqlite3_bind_text(st, 2, w->file, -1, SQLITE_STATIC);
		uint64_t t = now_us();
		while (sqlite3_step(st) == SQLITE_ROW) {
			int i = -1;
			last = sqlite3_column_int64(st, 0);
			const char *b = (const char *)sqlite3_column_text(st, 1);
			if (b && sscanf(b, "{\"i\":%d", &i) == 1 && i >= 0 && i < w->want &&
			    !w->seen_us[i]) {
				w->seen_us[i] = t;
				w->count++;
			}
		}
		sqlite3_reset(st);
		usleep(1000);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct result {
	double rate;
	double p50_ms, p99_ms;
	int done;
};

/* Publish n messages to topic as fast as 20 in flight allow; wait until done()
 * reaches n (or 60 s). */
static struct result run(struct mosquitto *pub, const char *topic, int n, struct watch *w,
                         bool count_acks)
{
	struct result r = {0};
	char payload[128];
	uint64_t t0, t1, deadline;
	pthread_t th;

	received = 0;
	acked = 0;
	if (w)
		pthread_create(&th, NULL, watcher, w);
	usleep(100000);
	t0 = now_us();
	for (int i = 0; i < n; i++) {
		uint64_t t = now_us();
		if (w)
			w->pub_us[i] = t;
		int len = snprintf(payload, sizeof(payload), "{\"i\":%d,\"t\":%" PRIu64 "}", i, t);
		while (mosquitto_publish(pub, NULL, topic, len, payload, 1, false) ==
		       MOSQ_ERR_NOMEM)
			usleep(100);
		/* keep at most 20 unacknowledged (libmosquitto's default window) */
		while (i + 1 - acked > 20)
			usleep(50);
	}
	deadline = now_us() + 60 * 1000000u;
	for (;;) {
		int d = w ? w->count : count_acks ? acked : received;
		if (d >= n || now_us() > deadline) {
			r.done = d;
			break;
		}
		usleep(200);
	}
	t1 = now_us();
	if (w) {
		/* the last commit seen, not when we noticed the loop ended */
		uint64_t last = 0;
		for (int i = 0; i < n; i++)
			if (w->seen_us[i] > last)
				last = w->seen_us[i];
		if (last)
			t1 = last;
		w->stop = true;
		pthread_join(th, NULL);
		/* n > 0 said to the compiler too: at -O1 on arm64 gcc sees a negative int */
		uint64_t *lat = n > 0 ? calloc((size_t)n, sizeof(*lat)) : NULL;
		int k = 0;
		for (int i = 0; lat && i < n; i++)
			if (w->seen_us[i])
				lat[k++] = w->seen_us[i] - w->pub_us[i];
		if (k)
			qsort(lat, (size_t)k, sizeof(*lat), cmp_u64);
		if (k) {
			r.p50_ms = lat[k / 2] / 1000.0;
			r.p99_ms = lat[(k * 99) / 100] / 1000.0;
		}
		free(lat);
	}
	r.rate = r.done / ((t1 - t0) / 1e6);
	return r;
}

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

int main(int argc, char **argv)
{
	const char *builddir = ".", *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	int n = 5000, opt, port;
	char dir[256], path[1024], store[512], conf[512], mconf[512], plugdir[512], so[512];
	char bso[512], daemon[512];
	bool keep = false;

	while ((opt = getopt(argc, argv, "n:d:b:k")) != -1) {
		if (opt == 'n')
			n = atoi(optarg);
		else if (opt == 'd')
			base = optarg;
		else if (opt == 'b')
			builddir = optarg;
		else if (opt == 'k')
			keep = true;
		else
			die("usage: mqtt_bench [-n COUNT] [-d DIR] [-b BUILDDIR] [-k]");
	}
	if (n < 100 || n > 1000000)
		die("COUNT between 100 and 1000000");
	snprintf(dir, sizeof(dir), "%s/mqtt-bench-XXXXXX", base);
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(store, sizeof(store), "%s/store.db", dir);
	snprintf(plugdir, sizeof(plugdir), "%s/plugins", dir);
	mkdir(plugdir, 0755);
	snprintf(so, sizeof(so), "%s/plugins/mqtt/.libs/mqtt.so", builddir);
	snprintf(bso, sizeof(bso), "%s/plugins/mqtt/.libs/notegw_broker.so", builddir);
	snprintf(daemon, sizeof(daemon), "%s/notegwd", builddir);
	char *rso = realpath(so, NULL), *rbso = realpath(bso, NULL);
	if (!rso || access(daemon, X_OK) < 0)
		die("run from the build directory (or -b BUILDDIR) after make");
	snprintf(path, sizeof(path), "%s/mqtt.so", plugdir);
	if (symlink(rso, path) < 0)
		die("symlink");
	port = free_port();

	snprintf(mconf, sizeof(mconf), "%s/mosquitto.conf", dir);
	FILE *f = fopen(mconf, "w");
	if (!f)
		die("mosquitto.conf");
	fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n", port);
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
	        "[store]\npath = %s\nmax_size = 1G\n[control]\nsocket = %s/control.sock\n"
	        "[notecard]\ntransport = serial\ndevice = %s/no-card\n[update]\nenabled = false\n"
	        "[mqtt]\nhost = 127.0.0.1\nport = %d\nclient_id = notegw-bench\n"
	        "reconnect_min = 100ms\n",
	        plugdir, dir, store, dir, dir, port);
	fclose(f);

	char log1[512], log2[512];
	snprintf(log1, sizeof(log1), "%s/mosquitto.log", dir);
	snprintf(log2, sizeof(log2), "%s/notegwd.log", dir);
	char a_mosq[] = "mosquitto", a_c[] = "-c", a_f[] = "-f";
	char *margv[] = {a_mosq, a_c, mconf, NULL};
	char *dargv[] = {daemon, a_f, a_c, conf, NULL};
	pid_t broker = spawn(margv, log1);
	usleep(300000);
	pid_t gw = spawn(dargv, log2);

	mosquitto_lib_init();
	struct mosquitto *sub = mosquitto_new("bench-sub", true, NULL);
	mosquitto_message_callback_set(sub, on_sub_message);
	for (int i = 0; i < 50 && mosquitto_connect(sub, "127.0.0.1", port, 60); i++)
		usleep(100000);
	mosquitto_subscribe(sub, NULL, "notecard/status", 1);
	mosquitto_subscribe(sub, NULL, "bare/#", 1);
	mosquitto_loop_start(sub);
	for (int i = 0; i < 100 && !online; i++)
		usleep(100000);
	if (!online)
		die("the daemon's mqtt plugin did not come online (see the logs in DIR with -k)");
	struct mosquitto *pub = client("bench-pub", port);
	mosquitto_publish_callback_set(pub, on_pub_publish);

	struct watch wc = {.db = store, .file = "bench.qo", .want = n};
	struct watch wb = {.db = store, .file = "benchb.qo", .want = n};
	wc.seen_us = calloc((size_t)n, 8);
	wc.pub_us = calloc((size_t)n, 8);
	wb.seen_us = calloc((size_t)n, 8);
	wb.pub_us = calloc((size_t)n, 8);

	struct result bare = run(pub, "bare/x", n, NULL, false);
	long rss0 = proc_kb(gw, "VmRSS");
	struct result cl = run(pub, "notecard/out/bench.qo", n, &wc, false);
	long rss = proc_kb(gw, "VmRSS"), hwm = proc_kb(gw, "VmHWM");
	struct result br = {0};
	if (rbso)
		br = run(pub, "benchb/out/benchb.qo", n, &wb, true);

	printf("mqtt_bench: %d QoS 1 messages each, files in %s\n", n, dir);
	printf("  %-34s %9.0f msgs/s\n", "bare libmosquitto subscriber", bare.rate);
	printf("  %-34s %9.0f msgs/s  ratio %.2f  publish->commit p50 %.2f ms p99 %.2f ms%s\n",
	       "client plugin (PUBACK after commit)", cl.rate, cl.rate / bare.rate, cl.p50_ms,
	       cl.p99_ms, cl.done < n ? "  INCOMPLETE" : "");
	if (rbso)
		printf(
		    "  %-34s %9.0f msgs/s  ratio %.2f  publish->commit p50 %.2f ms p99 %.2f ms%s\n",
		    "broker plugin (PUBACK after commit)", br.rate, br.rate / bare.rate, br.p50_ms,
		    br.p99_ms, br.done < n ? "  INCOMPLETE" : "");
	else
		printf("  broker plugin not built\n");
	printf("  notegwd RSS: %.1f MiB idle, %.1f MiB after the client run, peak %.1f MiB\n",
	       rss0 / 1024.0, rss / 1024.0, hwm / 1024.0);

	mosquitto_disconnect(pub);
	mosquitto_disconnect(sub);
	mosquitto_loop_stop(pub, true);
	mosquitto_loop_stop(sub, true);
	mosquitto_destroy(pub);
	mosquitto_destroy(sub);
	mosquitto_lib_cleanup();
	kill(gw, SIGTERM);
	waitpid(gw, NULL, 0);
	kill(broker, SIGTERM);
	waitpid(broker, NULL, 0);
	if (!keep) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "mqtt_bench: could not remove %s\n", dir);
	}
	free(rso);
	free(rbso);
	free(wc.seen_us);
	free(wc.pub_us);
	free(wb.seen_us);
	free(wb.pub_us);
	return 0;
}
