/* A stand-in for notegwd that loads one plugin (mqtt.so) through the real plugin
 * ABI under the tests' fake plugin host (tests/fakehost: the daemon's config reader
 * and binder), so the integration tests can drive the plugin against a real
 * mosquitto without the Notecard link. What lies below the plugin is replaced here:
 * its "store" is a JSON-lines file, group committed like notegwd's, fsync'd before
 * note_put_sync returns (the same promise the daemon makes).
 *
 *   mqtt_fakehost PLUGIN.so CONFIG NOTES.jsonl
 * stdin, one command a line:
 *   inbound ID FILE BODY-JSON | status JSON | env NAME VALUE | error SOURCE TEXT |
 *   emit TOPIC JSON | stats | quit
 * stdout: "ready", "done ID" (inbound_done), "stats JSON", "req JSON" (card_request).
 * A note for "refuse.qo" is refused as if the store were full; the first note for
 * "flaky.qo" fails as if the disk had an I/O error; the first FULL_TRIES notes for
 * "full.qo" fail as if the disk were full. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <syslog.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <jansson.h>

#include "../fakehost/fakehost.h"
#include "notegw/plugin.h"

/* A note given to note_put, committed with the others of its batch. */
struct pend {
	struct pend *next;
	char *line;
	int err;
	const char *why;
	ngw_put_cb cb;
	void *ud;
};

#define FULL_TRIES 3

struct fake {
	struct fakehost host; /* config, log, event loop: the shared fake host */
	sd_event *loop;
	int notes_fd;
	const struct ngw_plugin_desc *desc;
	bool flaky_failed;
	int full_failed;
	struct pend *pend, **pend_tail; /* notes waiting for the group commit */
	bool commit_armed;
	char line[65536];
	size_t fill;
};

static struct fake F;

/* JSON line for a note, newline-terminated. Caller frees. */
static char *note_line(const char *file, const char *body)
{
	json_t *j = json_pack("{s:s, s:s?}", "file", file, "body", body);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL, *l = NULL;

	json_decref(j);
	if (s && asprintf(&l, "%s\n", s) < 0)
		l = NULL;
	free(s);
	return l;
}

/* Group commit, as notegwd's batch does: every pending line written, one fsync,
 * then each producer told. */
static int commit_now(sd_event_source *src, uint64_t usec, void *ud)
{
	struct pend *p = F.pend, *next;
	bool ok = true;

	F.pend = NULL;
	F.pend_tail = &F.pend;
	F.commit_armed = false;
	for (struct pend *q = p; q; q = q->next)
		if (!q->err &&
		    write(F.notes_fd, q->line, strlen(q->line)) != (ssize_t)strlen(q->line))
			ok = false;
	if (fsync(F.notes_fd) < 0)
		ok = false;
	for (; p; p = next) {
		next = p->next;
		if (!ok && !p->err) {
			p->err = -EIO;
			p->why = "store could not commit the note";
		}
		p->cb(p->ud, p->err, p->why);
		free(p->line);
		free(p);
	}
	return 0;
}

static int h_note_put(struct ngw_plugin *self, const char *file, const char *body,
                      const void *payload, size_t len, ngw_put_cb cb, void *ud, const char **why)
{
	struct pend *p;

	if (strcmp(file, "refuse.qo") == 0) {
		*why = "store full";
		return -ENOSPC;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->line = note_line(file, body))) {
		free(p);
		*why = "out of memory";
		return -ENOMEM;
	}
	if (strcmp(file, "flaky.qo") == 0 && !F.flaky_failed) {
		F.flaky_failed = true; /* an I/O error once, then fine: the retry commits */
		p->err = -EIO;
		p->why = "store could not commit the note";
	}
	if (strcmp(file, "full.qo") == 0 && F.full_failed < FULL_TRIES) {
		F.full_failed++; /* a full disk for a while, then room: the retry commits */
		p->err = -EAGAIN;
		p->why = "disk full";
	}
	p->cb = cb;
	p->ud = ud;
	*F.pend_tail = p;
	F.pend_tail = &p->next;
	if (!F.commit_armed && sd_event_add_time_relative(F.loop, NULL, CLOCK_MONOTONIC, 5000, 0,
	                                                  commit_now, NULL) >= 0)
		F.commit_armed = true;
	return 0;
}

static int h_note_put_sync(struct ngw_plugin *self, const char *file, const char *body,
                           const void *payload, size_t len, const char **why)
{
	json_t *j;
	char *s;
	int r = 0;

	if (strcmp(file, "refuse.qo") == 0) {
		*why = "store full";
		return -ENOSPC;
	}
	if (strcmp(file, "flaky.qo") == 0 && !F.flaky_failed) {
		F.flaky_failed = true; /* an I/O error once, then fine: the retry commits */
		*why = "store could not commit the note";
		return -EIO;
	}
	j = json_pack("{s:s, s:s?}", "file", file, "body", body);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s) {
		*why = "out of memory";
		return -ENOMEM;
	}
	/* One write of the whole line, then fsync: a line is either complete or absent. */
	size_t n = strlen(s);
	s[n] = '\n';
	if (write(F.notes_fd, s, n + 1) != (ssize_t)(n + 1) || fsync(F.notes_fd) < 0) {
		*why = "store could not commit the note";
		r = -EIO;
	}
	free(s);
	return r;
}

static int h_inbound_done(struct ngw_plugin *self, int64_t id)
{
	printf("done %lld\n", (long long)id);
	fflush(stdout);
	return 0;
}

struct reply {
	ngw_reply_cb cb;
	void *ud;
	char *resp;
};

static int reply_later(sd_event_source *s, void *ud)
{
	struct reply *r = ud;
	r->cb(r->ud, 0, r->resp);
	free(r->resp);
	free(r);
	sd_event_source_disable_unref(s);
	return 0;
}

static int h_card_request(struct ngw_plugin *self, const char *req, ngw_reply_cb cb, void *ud)
{
	struct reply *r = calloc(1, sizeof(*r));
	json_t *j = json_pack("{s:s}", "echo", req);

	printf("req %s\n", req);
	fflush(stdout);
	if (!r || !j)
		goto fail;
	r->cb = cb;
	r->ud = ud;
	r->resp = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!r->resp || sd_event_add_defer(F.loop, NULL, reply_later, r) < 0)
		goto fail;
	return 0;
fail:
	if (r)
		free(r->resp);
	free(r);
	return -ENOMEM;
}

static char *h_status_json(struct ngw_plugin *self)
{
	return strdup("{\"daemon\":{\"fake\":true}}");
}

static const char *h_state_dir(struct ngw_plugin *self)
{
	return "/tmp";
}

static void h_emit(struct ngw_plugin *self, const char *topic, const char *json)
{
}

static const char *h_gateway_id(struct ngw_plugin *self)
{
	return "fa4e000000000001";
}

/* What lies below the plugin, in place of the shared host's defaults. */
static void below(struct ngw_host_api *api)
{
	api->note_put = h_note_put;
	api->note_put_sync = h_note_put_sync;
	api->inbound_done = h_inbound_done;
	api->card_request = h_card_request;
	api->status_json = h_status_json;
	api->state_dir = h_state_dir;
	api->emit = h_emit;
	api->gateway_id = h_gateway_id;
}

/* Split "a b rest..." into up to n words, the last taking the rest of the line. */
static size_t words(char *s, char **w, size_t n)
{
	size_t k = 0;
	while (k < n && *s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		w[k++] = s;
		if (k == n)
			break;
		char *sp = strchr(s, ' ');
		if (!sp)
			break;
		*sp = '\0';
		s = sp + 1;
	}
	return k;
}

static void command(char *l)
{
	const struct ngw_plugin_desc *d = F.desc;
	char *rest = strchr(l, ' ');
	char *w[3] = {0};
	size_t n;

	if (rest)
		*rest++ = '\0';
	else
		rest = l + strlen(l);
	if (strcmp(l, "inbound") == 0 && d->on_inbound && words(rest, w, 3) == 3) {
		struct ngw_note note = {
		    .id = atoll(w[0]), .file = w[1], .body = w[2], .time = 1700000000};
		d->on_inbound(&F.host.plugin, &note);
	} else if (strcmp(l, "status") == 0 && d->on_status) {
		d->on_status(&F.host.plugin, rest);
	} else if (strcmp(l, "env") == 0 && d->on_env && (n = words(rest, w, 2)) >= 1) {
		d->on_env(&F.host.plugin, w[0], n > 1 ? w[1] : NULL);
	} else if (strcmp(l, "error") == 0 && d->on_error && words(rest, w, 2) == 2) {
		d->on_error(&F.host.plugin, w[0], w[1]);
	} else if (strcmp(l, "emit") == 0 && d->on_emit && words(rest, w, 2) == 2) {
		d->on_emit(&F.host.plugin, "test", w[0], w[1]);
	} else if (strcmp(l, "stats") == 0 && d->stats_json) {
		char *s = d->stats_json(&F.host.plugin);
		printf("stats %s\n", s ? s : "null");
		fflush(stdout);
		free(s);
	} else if (strcmp(l, "quit") == 0) {
		sd_event_exit(F.loop, 0);
	} else {
		fprintf(stderr, "fakehost: unknown command %s\n", l);
	}
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	ssize_t n = read(fd, F.line + F.fill, sizeof(F.line) - 1 - F.fill);
	char *nl;

	if (n <= 0) {
		sd_event_exit(F.loop, 0);
		return 0;
	}
	F.fill += (size_t)n;
	F.line[F.fill] = '\0';
	while ((nl = strchr(F.line, '\n'))) {
		*nl = '\0';
		command(F.line);
		size_t used = (size_t)(nl + 1 - F.line);
		memmove(F.line, nl + 1, F.fill - used + 1);
		F.fill -= used;
	}
	if (F.fill == sizeof(F.line) - 1)
		F.fill = 0; /* an overlong line: drop it */
	return 0;
}

int main(int argc, char **argv)
{
	const struct ngw_plugin_desc *(*describe)(void);
	void *dl;
	int rc = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: %s PLUGIN.so CONFIG NOTES.jsonl\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "fakehost: %s\n", dlerror());
		return 1;
	}
	describe = (const struct ngw_plugin_desc *(*)(void))dlsym(dl, "notegw_plugin_describe");
	if (!describe || !(F.desc = describe()) || (F.desc->abi >> 16) != NGW_PLUGIN_ABI_MAJOR) {
		fprintf(stderr, "fakehost: not a notegw plugin of this ABI\n");
		return 1;
	}
	sd_event_default(&F.loop);
	F.notes_fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fakehost_init(&F.host, argv[2], NULL, F.loop) < 0 || F.notes_fd < 0) {
		fprintf(stderr, "fakehost: cannot read %s or open %s\n", argv[2], argv[3]);
		return 1;
	}
	F.host.name = F.desc->name;
	F.host.log_max = LOG_DEBUG;
	below(&F.host.api);
	F.pend_tail = &F.pend;
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sd_event_add_signal(F.loop, NULL, SIGTERM, NULL, NULL);
	sd_event_add_signal(F.loop, NULL, SIGINT, NULL, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (F.desc->configure(&F.host.plugin) < 0 || F.host.errors) {
		fprintf(stderr, "fakehost: configure failed\n");
		goto out;
	}
	if (F.desc->disabled && F.desc->disabled(&F.host.plugin)) {
		printf("disabled\n");
		rc = 0;
		goto out;
	}
	if (F.desc->start(&F.host.plugin) < 0) {
		fprintf(stderr, "fakehost: start failed\n");
		goto out;
	}
	sd_event_add_io(F.loop, NULL, 0, EPOLLIN, on_stdin, NULL);
	printf("ready\n");
	rc = sd_event_loop(F.loop) < 0;
	if (F.desc->stop)
		F.desc->stop(&F.host.plugin);
	commit_now(NULL, 0, NULL); /* as notegwd: producers stop, then their notes commit */
	/* Let the goodbye (retained offline status, DISCONNECT) reach the broker. */
	for (int i = 0; i < 20 && sd_event_run(F.loop, 10 * 1000) > 0; i++)
		;
out:
	if (F.desc->destroy)
		F.desc->destroy(&F.host.plugin);
	fakehost_fini(&F.host);
	close(F.notes_fd);
	sd_event_unref(F.loop);
	dlclose(dl);
	return rc;
}
