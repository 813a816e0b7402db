/* modbus_bench: what the Modbus plugin's poller costs.
 *  1. TCP: read requests per second against a local libmodbus server, through the
 *     plugin's bus worker (job queue, worker thread, eventfd back) next to bare
 *     libmodbus calls in a loop over the same number of connections: polls of one
 *     read (the worst case: a thread hand-off per request) and of four reads
 *     against one bare connection; four devices polled at once against four bare
 *     connections, each on a thread of its own. Rounds are paired (every mode and
 *     its baseline in each round, the order reversed every other round, so drift
 *     on a shared machine falls on both) and the figure is the median over the
 *     rounds of each round's ratio (aim >= 0.6), printed with its range.
 *  2. RTU over a socat pty pair: poll cycles per second through the bus worker,
 *     next to the time the same bytes need on a real line at 9600 and 115200 baud
 *     (8N1, 3.5-character gaps), computed from the bytes, not measured. A pty has
 *     no baud rate, so this is the software's share: ratio = wire time / measured
 *     cycle, median of the rounds; above 1 means the line, not the gateway, is the
 *     limit.
 * Usage: modbus_bench [TCP-REQUESTS] [RTU-CYCLES] [ROUNDS (>= 3, default 5)].
 * Prints figures; no pass/fail. Figures with date and machine: docs/benchmarks.md. */
#include <errno.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchlib.h"
#include "bus.h"

#define NREGS 10

/* ---- servers ----------------------------------------------------------------------- */
struct tcp_srv {
	modbus_t *ctx;
	int lfd;
	modbus_mapping_t *map;
};

struct tcp_conn {
	int fd;
	modbus_mapping_t *map;
};

/* one thread per connection, so parallel devices are served in parallel */
static void *tcp_conn(void *arg)
{
	struct tcp_conn *c = arg;
	modbus_t *ctx = modbus_new_tcp("127.0.0.1", 0);
	uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];

	modbus_set_socket(ctx, c->fd);
	for (;;) {
		int rc = modbus_receive(ctx, q);
		if (rc < 0)
			break;
		if (rc > 0)
			modbus_reply(ctx, q, rc, c->map);
	}
	close(c->fd);
	modbus_set_socket(ctx, -1);
	modbus_free(ctx);
	free(c);
	return NULL;
}

static void *tcp_server(void *arg)
{
	struct tcp_srv *ts = arg;

	ts->map = modbus_mapping_new(0, 0, 1000, 1000);
	for (;;) {
		struct tcp_conn *c;
		pthread_t th;
		int s = accept(ts->lfd, NULL, NULL);
		if (s < 0)
			continue;
		c = calloc(1, sizeof(*c));
		c->fd = s;
		c->map = ts->map;
		pthread_create(&th, NULL, tcp_conn, c);
		pthread_detach(th);
	}
	return NULL;
}

static void *rtu_server(void *arg)
{
	modbus_t *ctx = arg;
	modbus_mapping_t *map = modbus_mapping_new(0, 0, 1000, 1000);
	uint8_t q[MODBUS_RTU_MAX_ADU_LENGTH];

	for (;;) {
		int rc = modbus_receive(ctx, q);
		if (rc > 0)
			modbus_reply(ctx, q, rc, map);
	}
	return NULL;
}

/* ---- the poller's path ------------------------------------------------------------- */
/* a device whose poll is nblocks reads of NREGS registers (kept apart so the
 * planner could not merge them) */
static struct mb_device *device(const char *url, int nblocks)
{
	static struct mb_device d;
	static struct mb_block b[4];
	char err[160];

	for (int i = 0; i < 4; i++)
		b[i] = (struct mb_block){MB_HOLDING, (uint16_t)(20 * i), NREGS};
	memset(&d, 0, sizeof(d));
	if (mb_url_parse(url, &d.url, err, sizeof(err)) < 0) {
		fprintf(stderr, "modbus_bench: %s\n", err);
		exit(2);
	}
	static char name[] = "bench";
	d.name = name;
	d.unit = 1;
	d.timeout_ms = 1000;
	d.blocks = b;
	d.n_blocks = (size_t)nblocks;
	return &d;
}

/* n polls one after the other through a bus worker, as the plugin's timer does */
static double via_poller(const struct mb_device *d, int n, int *errors)
{
	struct mb_doneq q;
	struct mb_bus *bus;
	double t0;

	if (mb_doneq_init(&q) < 0 || mb_bus_new(d, &q, &bus) < 0) {
		fprintf(stderr, "modbus_bench: cannot start a bus\n");
		exit(1);
	}
	*errors = 0;
	t0 = bench_now_s();
	for (int i = 0; i < n; i++) {
		struct pollfd pfd = {.fd = q.efd, .events = POLLIN};
		struct mb_job *j = mb_job_new(MB_JOB_POLL, d), *done;
		mb_bus_submit(bus, j);
		do {
			poll(&pfd, 1, -1);
			done = mb_doneq_take(&q);
		} while (!done);
		*errors += done->fault != MB_OK;
		mb_job_free(done);
	}
	t0 = bench_now_s() - t0;
	mb_job_free(mb_bus_free(bus)); /* all ran: nothing is left */
	mb_doneq_destroy(&q);
	return t0;
}

/* ndev devices, each on its own connection and worker, each kept busy with one
 * poll at a time (as their timers would at a very short interval): n polls in all */
static double via_poller_parallel(const struct mb_device *proto, int ndev, int n, int *errors)
{
	struct mb_device devs[8];
	struct mb_bus *bus[8];
	struct mb_doneq q;
	int submitted = 0, done = 0;
	double t0;

	if (mb_doneq_init(&q) < 0)
		exit(1);
	for (int i = 0; i < ndev; i++) {
		devs[i] = *proto;
		devs[i].index = (unsigned)i;
		if (mb_bus_new(&devs[i], &q, &bus[i]) < 0)
			exit(1);
	}
	*errors = 0;
	t0 = bench_now_s();
	for (int i = 0; i < ndev && submitted < n; i++, submitted++)
		mb_bus_submit(bus[i], mb_job_new(MB_JOB_POLL, &devs[i]));
	while (done < n) {
		struct pollfd pfd = {.fd = q.efd, .events = POLLIN};
		struct mb_job *j;
		poll(&pfd, 1, -1);
		for (j = mb_doneq_take(&q); j;) {
			struct mb_job *next = j->next;
			unsigned i = j->dev->index;
			*errors += j->fault != MB_OK;
			done++;
			mb_job_free(j);
			if (submitted < n) {
				mb_bus_submit(bus[i], mb_job_new(MB_JOB_POLL, &devs[i]));
				submitted++;
			}
			j = next;
		}
	}
	t0 = bench_now_s() - t0;
	for (int i = 0; i < ndev; i++)
		mb_job_free(mb_bus_free(bus[i]));
	mb_doneq_destroy(&q);
	return t0;
}

static double bare_loop(const char *port, int n, int *errors)
{
	modbus_t *cli = modbus_new_tcp_pi("127.0.0.1", port);
	uint16_t regs[NREGS];
	double t;

	modbus_set_slave(cli, 1);
	if (modbus_connect(cli) < 0) {
		fprintf(stderr, "modbus_bench: connect: %s\n", modbus_strerror(errno));
		exit(1);
	}
	*errors = 0;
	t = bench_now_s();
	for (int i = 0; i < n; i++)
		if (modbus_read_registers(cli, 0, NREGS, regs) != NREGS)
			++*errors;
	t = bench_now_s() - t;
	modbus_close(cli);
	modbus_free(cli);
	return t;
}

struct bare_arg {
	const char *port;
	int n, errors;
	pthread_barrier_t *go;
};

static void *bare_thread(void *p)
{
	struct bare_arg *a = p;
	modbus_t *cli = modbus_new_tcp_pi("127.0.0.1", a->port);
	uint16_t regs[NREGS];

	modbus_set_slave(cli, 1);
	if (modbus_connect(cli) < 0) {
		fprintf(stderr, "modbus_bench: connect: %s\n", modbus_strerror(errno));
		exit(1);
	}
	pthread_barrier_wait(a->go);
	for (int i = 0; i < a->n; i++)
		if (modbus_read_registers(cli, 0, NREGS, regs) != NREGS)
			a->errors++;
	modbus_close(cli);
	modbus_free(cli);
	return NULL;
}

/* the baseline for ndev devices polled at once: ndev bare connections, each read in
 * a loop on a thread of its own (connected before the clock starts), n reads in all */
static double bare_parallel(const char *port, int ndev, int n, int *errors)
{
	struct bare_arg a[8];
	pthread_t th[8];
	pthread_barrier_t go;
	double t;

	pthread_barrier_init(&go, NULL, (unsigned)ndev + 1);
	for (int i = 0; i < ndev; i++) {
		a[i] = (struct bare_arg){port, n / ndev + (i < n % ndev), 0, &go};
		pthread_create(&th[i], NULL, bare_thread, &a[i]);
	}
	pthread_barrier_wait(&go);
	t = bench_now_s();
	*errors = 0;
	for (int i = 0; i < ndev; i++) {
		pthread_join(th[i], NULL);
		*errors += a[i].errors;
	}
	t = bench_now_s() - t;
	pthread_barrier_destroy(&go);
	return t;
}

/* the worker's request path run inline: what the thread hand-off costs */
static double inline_path(const char *port, const struct mb_device *d, int n, int *errors)
{
	modbus_t *ctx = modbus_new_tcp_pi("127.0.0.1", port);
	int connected = 0;
	double t;

	modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
	*errors = 0;
	t = bench_now_s();
	for (int i = 0; i < n; i++) {
		struct mb_job *j = mb_job_new(MB_JOB_POLL, d);
		mb_run_job(ctx, &connected, j);
		*errors += j->fault != MB_OK;
		mb_job_free(j);
	}
	t = bench_now_s() - t;
	modbus_close(ctx);
	modbus_free(ctx);
	return t;
}

enum { M_BARE, M_INLINE, M_POLL1, M_POLL4, M_BARE4, M_PAR4, M_COUNT };
#define MAX_ROUNDS 64

static double run_mode(int m, const char *port, const char *url, int n, int *e)
{
	switch (m) {
	case M_BARE:
		return bare_loop(port, n, e);
	case M_INLINE:
		return inline_path(port, device(url, 1), n, e);
	case M_POLL1:
		return via_poller(device(url, 1), n, e);
	case M_POLL4:
		return via_poller(device(url, 4), n / 4, e); /* the same n requests */
	case M_BARE4:
		return bare_parallel(port, 4, n, e);
	default:
		return via_poller_parallel(device(url, 1), 4, n, e);
	}
}

static void bench_tcp(int n, int rounds)
{
	static const char *const names[M_COUNT] = {
	    "bare libmodbus loop, 1 conn", "poller's request path, inline",
	    "poller, 1 read per poll",     "poller, 4 reads per poll",
	    "bare libmodbus, 4 conns",     "poller, 4 devices at once"};
	/* what each mode is compared with: the same work over as many connections */
	static const int base[M_COUNT] = {M_BARE, M_BARE, M_BARE, M_BARE, M_BARE4, M_BARE4};
	static struct tcp_srv ts;
	char port[8], url[64];
	double rate[M_COUNT][MAX_ROUNDS], ratio[M_COUNT][MAX_ROUNDS];
	int errors[M_COUNT] = {0};
	pthread_t th;
	modbus_t *srv;
	int e;

	snprintf(port, sizeof(port), "%d", bench_free_port());
	srv = modbus_new_tcp_pi("127.0.0.1", port);
	ts.lfd = modbus_tcp_pi_listen(srv, 8);
	if (ts.lfd < 0) {
		fprintf(stderr, "modbus_bench: listen: %s\n", modbus_strerror(errno));
		exit(1);
	}
	ts.ctx = srv;
	pthread_create(&th, NULL, tcp_server, &ts);
	pthread_detach(th);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%s", port);
	bare_loop(port, n / 10, &e); /* warm up both ends */

	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < M_COUNT; k++) {
			int m = r % 2 ? M_COUNT - 1 - k : k; /* every other round backwards */
			rate[m][r] = n / run_mode(m, port, url, n, &e);
			errors[m] += e;
		}
		for (int m = 0; m < M_COUNT; m++)
			ratio[m][r] = rate[m][r] / rate[base[m]][r];
	}
	printf("tcp: %d reads of %d registers per mode and round, %d paired rounds "
	       "(order reversed every other round); median, ratio to its baseline in the "
	       "same round\n",
	       n, NREGS, rounds);
	for (int m = 0; m < M_COUNT; m++) {
		printf("tcp: %-30s %9.0f req/s (%d errors)", names[m],
		       bench_median(rate[m], rounds), errors[m]);
		if (base[m] != m) {
			double lo = ratio[m][0], hi = ratio[m][0];
			for (int r = 1; r < rounds; r++) {
				lo = ratio[m][r] < lo ? ratio[m][r] : lo;
				hi = ratio[m][r] > hi ? ratio[m][r] : hi;
			}
			printf("  ratio to %s %.2f (%.2f-%.2f)%s",
			       base[m] == M_BARE ? "bare 1" : "bare 4",
			       bench_median(ratio[m], rounds), lo, hi,
			       m == M_INLINE ? "" : " (aim >= 0.6)");
		}
		printf("\n");
	}
}

/* time on the wire of one poll: request 8 bytes, response 5 + 2n, 10 bits a char at
 * 8N1, and the 3.5-character silence before each frame (1.75 ms above 19200 baud) */
static double wire_s(int baud, int nregs)
{
	double chars = 8 + 5 + 2.0 * nregs;
	double gap = baud > 19200 ? 0.00175 : 3.5 * 10.0 / baud;
	return chars * 10.0 / baud + 2 * gap;
}

static void bench_rtu(int n, int rounds)
{
	char dir[] = "/tmp/mbbenchXXXXXX", a[64], b[64], url[128];
	pid_t socat;
	const int bauds[] = {9600, 115200};

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return;
	}
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	socat = fork();
	if (socat == 0) {
		char la[96], lb[96];
		snprintf(la, sizeof(la), "pty,raw,echo=0,link=%s", a);
		snprintf(lb, sizeof(lb), "pty,raw,echo=0,link=%s", b);
		execlp("socat", "socat", la, lb, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		struct stat st;
		if (stat(a, &st) == 0 && stat(b, &st) == 0)
			break;
		usleep(20000);
	}
	for (size_t k = 0; k < sizeof(bauds) / sizeof(bauds[0]); k++) {
		modbus_t *srv = modbus_new_rtu(a, bauds[k], 'N', 8, 1);
		pthread_t th;
		int errors, all_errors = 0;
		double cyc[MAX_ROUNDS], t;

		modbus_set_slave(srv, 1);
		if (modbus_connect(srv) < 0) {
			printf("rtu: cannot open %s: %s (socat missing?)\n", a,
			       modbus_strerror(errno));
			break;
		}
		pthread_create(&th, NULL, rtu_server, srv);
		snprintf(url, sizeof(url), "rtu:%s?baud=%d", b, bauds[k]);
		for (int r = 0; r < rounds; r++) {
			cyc[r] = via_poller(device(url, 1), n, &errors) / n;
			all_errors += errors;
		}
		t = bench_median(cyc, rounds);
		printf("rtu %6d baud: cycle on the pty %7.3f ms (median of %d rounds of %d), "
		       "on the wire %7.3f ms, ratio wire/cycle %6.1f (%d errors)\n",
		       bauds[k], t * 1e3, rounds, n, wire_s(bauds[k], NREGS) * 1e3,
		       wire_s(bauds[k], NREGS) / t, all_errors);
		pthread_cancel(th);
		pthread_join(th, NULL);
		modbus_close(srv);
		modbus_free(srv);
	}
	kill(socat, SIGTERM);
	waitpid(socat, NULL, 0);
	unlink(a);
	unlink(b);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	int n_tcp = argc > 1 ? atoi(argv[1]) : 10000;
	int n_rtu = argc > 2 ? atoi(argv[2]) : 2000;
	int rounds = argc > 3 ? atoi(argv[3]) : 5;

	if (n_tcp < 4 || n_rtu < 1 || rounds < 3 || rounds > MAX_ROUNDS) {
		fprintf(stderr,
		        "usage: modbus_bench [TCP-REQUESTS >= 4] [RTU-CYCLES] "
		        "[ROUNDS 3..%d]\n",
		        MAX_ROUNDS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	bench_tcp(n_tcp, rounds);
	bench_rtu(n_rtu, rounds);
	return 0;
}
