/* Unit tests of control.c: a real control server on an sd-event loop in this process,
 * real clients in forked children (as root, some of them turn into `nobody` to check
 * the access rules). */
/* cmocka needs these first, in this order */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "gw.h"

static char dir[64], path[128];
static struct gw gw;
static struct control *ctl;
static struct control_reply *held; /* a reply a test answers later */
static int hold_calls;

/* ---- commands the tests register ------------------------------------------------- */

static void cmd_echo(struct gw *g, json_t *args, struct control_reply *r)
{
	const struct control_peer *p = control_reply_peer(r);
	control_reply_ok(
	    r, json_pack("{s:O,s:i,s:i}", "args", args, "uid", (int)p->uid, "access", p->access));
}

static void cmd_admin(struct gw *g, json_t *args, struct control_reply *r)
{
	control_reply_ok(r, json_pack("{s:b}", "did", 1));
}

static void cmd_fail(struct gw *g, json_t *args, struct control_reply *r)
{
	control_reply_err(r, -EIO, "card said %s", "no");
}

static void cmd_hold(struct gw *g, json_t *args, struct control_reply *r)
{
	held = r;
	hold_calls++;
}

static int on_later(sd_event_source *s, void *ud)
{
	struct control_reply *r = ud;
	control_reply_ok(r, json_pack("{s:s}", "later", "yes"));
	sd_event_source_disable_unref(s);
	return 0;
}

/* Answers from a later loop iteration, as a command waiting for the card would. */
static void cmd_later(struct gw *g, json_t *args, struct control_reply *r)
{
	sd_event_source *s = NULL;
	assert_int_equal(sd_event_add_defer(g->loop, &s, on_later, r), 0);
}

static void open_server(const char *group, const char *admin)
{
	assert_int_equal(control_open(&gw, path, group, admin, &ctl), 0);
	assert_int_equal(control_register(ctl, "echo", CONTROL_READ, cmd_echo), 0);
	assert_int_equal(control_register(ctl, "admin", CONTROL_ADMIN, cmd_admin), 0);
	assert_int_equal(control_register(ctl, "fail", CONTROL_READ, cmd_fail), 0);
	assert_int_equal(control_register(ctl, "hold", CONTROL_READ, cmd_hold), 0);
	assert_int_equal(control_register(ctl, "later", CONTROL_READ, cmd_later), 0);
	assert_int_equal(control_register(ctl, "echo", CONTROL_READ, cmd_echo), -EEXIST);
	/* so `nobody` reaches our own check rather than the file's permissions */
	assert_int_equal(chmod(path, 0666), 0);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/ngwctl.XXXXXX");
	if (!mkdtemp(dir) || chmod(dir, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	return sd_event_new(&gw.loop) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	sd_event_unref(gw.loop);
	rmdir(dir);
	return 0;
}

static int each_teardown(void **state)
{
	control_free(ctl);
	ctl = NULL;
	held = NULL;
	hold_calls = 0;
	return 0;
}

/* ---- a client in a child process --------------------------------------------------- */

struct who {
	uid_t uid;
	gid_t gid;
	gid_t groups[4];
	int n_groups;
};

enum { NO_READ, READ, READ_WAIT_CLOSE };

/* Child: connect (as who, if given), then for each request send it and read one line
 * (unless NO_READ), writing each answer line to out, then "OPEN" or "CLOSED": at once
 * (READ) or after waiting for the server to hang up (READ_WAIT_CLOSE). */
static void child_run(int out, const struct who *who, const char *const *reqs, size_t n,
                      int read_answers)
{
	if (who) {
		if (setgroups((size_t)who->n_groups, who->groups) < 0 || setgid(who->gid) < 0 ||
		    setuid(who->uid) < 0)
			_exit(10);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		dprintf(out, "CONNECT %s\n", strerror(errno));
		_exit(0);
	}
	static char buf[200 * 1024];
	size_t have = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(reqs[i]), off = 0;
		while (off < len) {
			ssize_t k = send(fd, reqs[i] + off, len - off, MSG_NOSIGNAL);
			if (k <= 0)
				break;
			off += (size_t)k;
		}
		if (len && reqs[i][len - 1] != '\n')
			shutdown(fd, SHUT_WR); /* a last request without newline ends at EOF */
		if (!read_answers)
			continue;
		for (;;) {
			char *nl = memchr(buf, '\n', have);
			if (nl) {
				size_t ln = (size_t)(nl - buf) + 1;
				if (write(out, buf, ln) < 0)
					_exit(11);
				memmove(buf, buf + ln, have - ln);
				have -= ln;
				break;
			}
			ssize_t k = recv(fd, buf + have, sizeof(buf) - have, 0);
			if (k <= 0) {
				dprintf(out, "EOF\n");
				_exit(0);
			}
			have += (size_t)k;
		}
	}
	if (read_answers) {
		/* does the server hang up afterwards? */
		struct timeval tv = {.tv_sec = 10};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ssize_t k = recv(fd, buf, sizeof(buf), read_answers == READ ? MSG_DONTWAIT : 0);
		dprintf(out, k == 0 || (k < 0 && errno == ECONNRESET) ? "CLOSED\n" : "OPEN\n");
	}
	_exit(0);
}

/* Run one client to completion while the loop serves it; returns its output lines. */
static char *run_client(const struct who *who, const char *const *reqs, size_t n, int read_answers)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		child_run(p[1], who, reqs, n, read_answers);
	}
	close(p[1]);
	int st = 0;
	for (;;) {
		assert_true(sd_event_run(gw.loop, 20 * 1000) >= 0);
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
	}
	/* let the server notice the hangup */
	for (int i = 0; i < 3; i++)
		sd_event_run(gw.loop, 1000);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	char *text = calloc(1, 256 * 1024);
	size_t len = 0;
	ssize_t k;
	while ((k = read(p[0], text + len, 256 * 1024 - 1 - len)) > 0)
		len += (size_t)k;
	close(p[0]);
	return text;
}

/* The i-th line of text as JSON (NULL if it is not JSON). */
static json_t *line_json(const char *text, int i)
{
	const char *s = text;
	for (; i > 0 && s; i--) {
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	if (!s)
		return NULL;
	size_t n = strcspn(s, "\n");
	return json_loadb(s, n, 0, NULL);
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *s = text; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL)
		if (strncmp(s, line, n) == 0 && (s[n] == '\n' || s[n] == '\0'))
			return true;
	return false;
}

static void expect_ok(json_t *j)
{
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "ok")));
}

static void expect_err(json_t *j, int code, const char *needle)
{
	assert_non_null(j);
	assert_true(json_is_false(json_object_get(j, "ok")));
	assert_int_equal(json_integer_value(json_object_get(j, "code")), code);
	const char *e = json_string_value(json_object_get(j, "error"));
	assert_non_null(e);
	if (!strstr(e, needle))
		print_message("error '%s' lacks '%s'\n", e, needle);
	assert_non_null(strstr(e, needle));
}

/* ---- tests ------------------------------------------------------------------------ */

static void t_socket_file(void **s)
{
	assert_int_equal(control_open(&gw, path, "root", "root", &ctl), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_uid, geteuid());
	if (geteuid() == 0)
		assert_int_equal(st.st_gid, 0); /* the group named "root" */

	/* a second server on a live socket is refused and leaves it alone */
	struct control *c2 = NULL;
	assert_int_equal(control_open(&gw, path, NULL, NULL, &c2), -EADDRINUSE);
	assert_int_equal(stat(path, &st), 0);
	control_free(ctl);
	ctl = NULL;
	assert_int_equal(stat(path, &st), -1); /* removed on close */

	/* a stale socket file (its daemon died) is replaced */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(control_open(&gw, path, NULL, NULL, &ctl), 0);
	control_free(ctl);
	ctl = NULL;

	/* something that is not a socket is not deleted */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(control_open(&gw, path, NULL, NULL, &ctl), -EEXIST);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(path);

	char longpath[200];
	memset(longpath, 'x', sizeof(longpath));
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(control_open(&gw, longpath, NULL, NULL, &ctl), -ENAMETOOLONG);
}

static void t_commands(void **s)
{
	open_server("root", "root");
	const char *reqs[] = {
	    "{\"cmd\":\"echo\",\"x\":[1,{\"y\":\"z\"}]}\n",
	    "{\"cmd\":\"nope\"}\n",
	    "{\"cmd\":\"fail\"}\r\n",
	    "{\"cmd\":\"later\"}\n",
	    "{\"cmd\":\"admin\"}", /* the last one may lack its newline */
	};
	char *out = run_client(NULL, reqs, 5, READ);
	json_t *j = line_json(out, 0);
	expect_ok(j);
	assert_int_equal(json_integer_value(json_object_get(j, "uid")), (int)geteuid());
	/* the server's own uid (and root) are admins */
	assert_int_equal(json_integer_value(json_object_get(j, "access")), CONTROL_ADMIN);
	json_t *x = json_object_get(json_object_get(j, "args"), "x");
	assert_string_equal(json_string_value(json_object_get(json_array_get(x, 1), "y")), "z");
	json_decref(j);
	j = line_json(out, 1);
	expect_err(j, ENOENT, "unknown command 'nope'");
	json_decref(j);
	j = line_json(out, 2);
	expect_err(j, EIO, "card said no");
	json_decref(j);
	j = line_json(out, 3);
	expect_ok(j);
	assert_string_equal(json_string_value(json_object_get(j, "later")), "yes");
	json_decref(j);
	j = line_json(out, 4);
	expect_ok(j);
	assert_true(json_is_true(json_object_get(j, "did")));
	json_decref(j);
	free(out);
}

/* Several requests in one write are answered in order, an async one included. */
static void t_pipelined(void **s)
{
	open_server("root", "root");
	const char *reqs[] = {
	    "{\"cmd\":\"later\"}\n{\"cmd\":\"echo\",\"n\":2}\n{\"cmd\":\"later\"}\n"
	    "{\"cmd\":\"echo\",\"n\":4}\n",
	    "",
	    "",
	    "",
	};
	char *out = run_client(NULL, reqs, 4, READ);
	json_t *j;
	for (int i = 0; i < 4; i++) {
		j = line_json(out, i);
		expect_ok(j);
		if (i % 2)
			assert_int_equal(
			    json_integer_value(json_object_get(json_object_get(j, "args"), "n")),
			    i + 1);
		else
			assert_non_null(json_object_get(j, "later"));
		json_decref(j);
	}
	/* the connection stays open for more */
	assert_true(has_line(out, "OPEN"));
	free(out);
}

static void t_malformed(void **s)
{
	open_server("root", "root");
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 98);
	deep[198] = '\n';
	deep[199] = '\0';
	const char *reqs[] = {
	    "not json\n",
	    "[1,2]\n",
	    "{\"cmd\":42}\n",
	    "{\"cmd\":\"echo\",\"cmd\":\"admin\"}\n",
	    deep,
	    "{\"cmd\":\"echo\",\"after\":\"errors\"}\n",
	};
	char *out = run_client(NULL, reqs, 6, READ);
	json_t *j = line_json(out, 0);
	expect_err(j, EINVAL, "malformed request");
	json_decref(j);
	j = line_json(out, 1);
	expect_err(j, EINVAL, "object with a string \"cmd\"");
	json_decref(j);
	j = line_json(out, 2);
	expect_err(j, EINVAL, "object with a string \"cmd\"");
	json_decref(j);
	j = line_json(out, 3);
	expect_err(j, EINVAL, "malformed request"); /* duplicate keys */
	json_decref(j);
	j = line_json(out, 4);
	expect_err(j, EINVAL, "nested too deeply");
	json_decref(j);
	/* errors do not end the session */
	j = line_json(out, 5);
	expect_ok(j);
	json_decref(j);
	free(out);
}

static void t_oversized(void **s)
{
	open_server("root", "root");
	size_t n = 70000;
	char *big = malloc(n + 2);
	assert_non_null(big);
	memset(big, ' ', n);
	memcpy(big, "{\"cmd\":\"echo\",\"pad\":\"", 21);
	big[n] = '\0';
	const char *reqs[] = {big};
	char *out = run_client(NULL, reqs, 1, READ_WAIT_CLOSE);
	json_t *j = line_json(out, 0);
	expect_err(j, E2BIG, "request too long");
	json_decref(j);
	assert_true(has_line(out, "CLOSED"));
	free(out);
	free(big);

	/* just under the limit is fine */
	n = 65000;
	big = malloc(n + 2);
	assert_non_null(big);
	memset(big, 'a', n);
	memcpy(big, "{\"cmd\":\"echo\",\"pad\":\"", 21);
	memcpy(big + n - 3, "\"}\n", 4);
	reqs[0] = big;
	out = run_client(NULL, reqs, 1, READ);
	j = line_json(out, 0);
	expect_ok(j);
	json_decref(j);
	free(out);
	free(big);
}

/* A client that hangs up while its answer is pending: the answer goes nowhere. */
static void t_hangup_while_pending(void **s)
{
	open_server("root", "root");
	const char *reqs[] = {"{\"cmd\":\"hold\"}\n"};
	char *out = run_client(NULL, reqs, 1, NO_READ);
	free(out);
	assert_int_equal(hold_calls, 1);
	assert_non_null(held);
	/* the peer is gone; the server may or may not have noticed yet */
	control_reply_ok(held, json_pack("{s:s}", "late", "answer"));
	held = NULL;
	for (int i = 0; i < 3; i++)
		sd_event_run(gw.loop, 1000);

	/* and a reply still held when the server goes away */
	out = run_client(NULL, reqs, 1, NO_READ);
	free(out);
	assert_non_null(held);
	control_free(ctl);
	ctl = NULL;
	control_reply_err(held, EIO, "too late");
	held = NULL;
}

/* ---- access: needs root to become someone else ------------------------------------ */

static const char *group_name(gid_t g)
{
	struct group *gr = getgrgid(g);
	return gr ? gr->gr_name : NULL;
}

static bool become_nobody(struct who *w)
{
	struct passwd *pw = getpwnam("nobody");
	if (geteuid() != 0 || !pw || pw->pw_uid == 0)
		return false;
	w->uid = pw->pw_uid;
	w->gid = pw->pw_gid;
	w->n_groups = 0;
	return group_name(w->gid) != NULL;
}

static void t_access_read_only(void **s)
{
	struct who w;
	if (!become_nobody(&w)) {
		print_message("skipped: needs root and a 'nobody' user\n");
		skip();
	}
	/* nobody's primary group is the service group; the admin group is root's */
	open_server(group_name(w.gid), "root");
	const char *reqs[] = {"{\"cmd\":\"echo\"}\n", "{\"cmd\":\"admin\"}\n",
	                      "{\"cmd\":\"echo\"}\n"};
	char *out = run_client(&w, reqs, 3, READ);
	json_t *j = line_json(out, 0);
	expect_ok(j);
	assert_int_equal(json_integer_value(json_object_get(j, "uid")), (int)w.uid);
	assert_int_equal(json_integer_value(json_object_get(j, "access")), CONTROL_READ);
	json_decref(j);
	j = line_json(out, 1);
	expect_err(j, EACCES, "permission denied: 'admin' is for root or group root");
	json_decref(j);
	j = line_json(out, 2);
	expect_ok(j);
	json_decref(j);
	free(out);
}

static void t_access_refused(void **s)
{
	struct who w;
	if (!become_nobody(&w)) {
		print_message("skipped: needs root and a 'nobody' user\n");
		skip();
	}
	open_server("root", "root");
	const char *reqs[] = {"{\"cmd\":\"echo\"}\n"};
	char *out = run_client(&w, reqs, 1, READ_WAIT_CLOSE);
	json_t *j = line_json(out, 0);
	expect_err(j, EACCES, "permission denied");
	json_decref(j);
	assert_true(has_line(out, "CLOSED"));
	free(out);
}

/* Supplementary groups count (read from /proc/PID/status). */
static void t_access_supplementary(void **s)
{
	struct who w;
	struct group *adm = getgrnam("adm");
	if (!become_nobody(&w) || !adm || adm->gr_gid == w.gid) {
		print_message("skipped: needs root, 'nobody' and group 'adm'\n");
		skip();
	}
	w.groups[0] = adm->gr_gid;
	w.n_groups = 1;
	open_server("root", "adm");
	const char *reqs[] = {"{\"cmd\":\"admin\"}\n"};
	char *out = run_client(&w, reqs, 1, READ);
	json_t *j = line_json(out, 0);
	expect_ok(j);
	json_decref(j);
	free(out);
	control_free(ctl);
	ctl = NULL;

	/* without the supplementary group the same uid is refused */
	w.n_groups = 0;
	open_server("adm", "adm");
	out = run_client(&w, reqs, 1, READ);
	j = line_json(out, 0);
	expect_err(j, EACCES, "permission denied");
	json_decref(j);
	free(out);
}

/* Past the client limit a newcomer is told so and closed; the others stay. */
static void t_too_many_clients(void **s)
{
	open_server("root", "root");
	int fds[40];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	size_t n = 0;
	for (; n < 40; n++) {
		fds[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fds[n] >= 0);
		assert_int_equal(connect(fds[n], (struct sockaddr *)&sa, sizeof(sa)), 0);
		for (int i = 0; i < 3; i++)
			sd_event_run(gw.loop, 1000); /* accept it */
		char buf[512];
		ssize_t k = recv(fds[n], buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (k > 0) {
			buf[k] = '\0';
			json_t *j = json_loads(buf, 0, NULL);
			expect_err(j, EBUSY, "too many clients");
			json_decref(j);
			break;
		}
	}
	assert_int_equal(n, 32); /* CONTROL_MAX_CLIENTS: refused at the limit, not before */
	for (size_t i = 0; i <= n && i < 40; i++)
		close(fds[i]);
	for (int i = 0; i < 5; i++)
		sd_event_run(gw.loop, 1000);
	/* the hangups freed their places */
	const char *reqs[] = {"{\"cmd\":\"echo\"}\n"};
	char *out = run_client(NULL, reqs, 1, READ);
	json_t *j = line_json(out, 0);
	expect_ok(j);
	json_decref(j);
	free(out);
}

/* Child: as uid (group gid), connect n sockets, count how many the server refused
 * with EBUSY, report "refused K" on out, keep the rest open until hold closes. */
static pid_t crowd(uid_t uid, gid_t gid, int n, int out, const int hold[2])
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid)
		return pid;
	close(hold[1]); /* EOF on hold[0] once the test closes its end */
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		_exit(10);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	struct pollfd p[64];
	int refused = 0;
	for (int i = 0; i < n; i++) {
		p[i] = (struct pollfd){.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
		                       .events = POLLIN};
		if (p[i].fd < 0 || connect(p[i].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(12);
	}
	/* the server answers a refusal when it accepts; an accepted socket stays silent:
	 * count until a second passes without news */
	while (poll(p, (nfds_t)n, 1000) > 0) {
		for (int i = 0; i < n; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			char buf[256];
			ssize_t k = recv(p[i].fd, buf, sizeof(buf) - 1, 0);
			if (k > 0) {
				buf[k] = '\0';
				if (strstr(buf, "\"code\":16") && strstr(buf, "too many clients"))
					refused++;
			}
			p[i].fd = -p[i].fd - 1; /* seen: poll ignores it from now on */
		}
	}
	dprintf(out, "refused %d\n", refused);
	char c;
	(void)!read(hold[0], &c, 1); /* until the test lets go */
	_exit(0);
}

/* Run the loop until the child reports on fd; returns the number it refused. */
static int crowd_result(int fd)
{
	char buf[64];
	size_t have = 0;
	for (int i = 0; i < 3000 && !memchr(buf, '\n', have); i++) {
		sd_event_run(gw.loop, 10 * 1000);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0) {
			ssize_t k = read(fd, buf + have, sizeof(buf) - 1 - have);
			if (k > 0)
				have += (size_t)k;
		}
	}
	buf[have] = '\0';
	int n = -1;
	assert_int_equal(sscanf(buf, "refused %d", &n), 1);
	return n;
}

/* One read-only user cannot take every place: a per-uid limit, and the last places
 * are kept for admins, so root's request still gets through. */
static void t_per_uid_and_reserve(void **s)
{
	struct who w;
	if (!become_nobody(&w)) {
		print_message("skipped: needs root and a 'nobody' user\n");
		skip();
	}
	open_server(group_name(w.gid), "root");
	int out[2], hold[2];
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(hold), 0);
	/* one user with 40 connections: 8 are kept, 32 refused */
	pid_t kids[4];
	kids[0] = crowd(w.uid, w.gid, 40, out[1], hold);
	assert_int_equal(crowd_result(out[0]), 32);
	/* three more read-only uids of the same group: together no more than 24 */
	int refused = 0;
	for (int i = 1; i < 4; i++) {
		kids[i] = crowd(w.uid - (uid_t)i, w.gid, 8, out[1], hold);
		refused += crowd_result(out[0]);
	}
	assert_int_equal(refused, 8); /* 8 + 8 + 8 fit, the fourth user's 8 do not */
	/* root still gets in, into the admins' reserve */
	const char *reqs[] = {"{\"cmd\":\"echo\"}\n"};
	char *o = run_client(NULL, reqs, 1, READ);
	json_t *j = line_json(o, 0);
	expect_ok(j);
	json_decref(j);
	free(o);
	close(hold[1]);
	for (int i = 0; i < 4; i++) {
		int st;
		while (waitpid(kids[i], &st, WNOHANG) == 0)
			sd_event_run(gw.loop, 10 * 1000);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	close(hold[0]);
	close(out[0]);
	close(out[1]);
}

/* A client that trickles a byte now and then is closed once its request has taken
 * longer than the request time; one that finished its request may idle only so long. */
static void t_trickle_does_not_extend(void **s)
{
	open_server("root", "root");
	control_set_timeouts(ctl, 1500, 400);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	const char *req = "{\"cmd\":\"echo\"}";
	bool closed = false;
	int sent = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 30 && !closed; i++) {
		/* one byte every 100 ms: never idle for long, never a whole request */
		if (send(fd, req + (i % 10), 1, MSG_NOSIGNAL) < 0) {
			closed = true;
			break;
		}
		sent++;
		for (int k = 0; k < 10; k++)
			sd_event_run(gw.loop, 10 * 1000);
		char b;
		closed = recv(fd, &b, 1, MSG_DONTWAIT) == 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(closed);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(took < 1.5); /* the request time, not the idle time, and not forever */
	close(fd);

	/* a complete request, then silence: closed after the idle time */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, "{\"cmd\":\"echo\"}\n", 15, MSG_NOSIGNAL), 15);
	closed = false;
	char buf[512];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 400 && !closed; i++) {
		sd_event_run(gw.loop, 10 * 1000);
		ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		closed = k == 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(closed);
	took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(took >= 1.4);
	close(fd);
}

static void t_register_args(void **s)
{
	open_server(NULL, NULL);
	assert_int_equal(control_register(ctl, "", CONTROL_READ, cmd_echo), -EINVAL);
	assert_int_equal(control_register(ctl, "x", 7, cmd_echo), -EINVAL);
	assert_int_equal(control_register(ctl, "x", CONTROL_READ, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(t_socket_file, each_teardown),
	    cmocka_unit_test_teardown(t_commands, each_teardown),
	    cmocka_unit_test_teardown(t_pipelined, each_teardown),
	    cmocka_unit_test_teardown(t_malformed, each_teardown),
	    cmocka_unit_test_teardown(t_oversized, each_teardown),
	    cmocka_unit_test_teardown(t_hangup_while_pending, each_teardown),
	    cmocka_unit_test_teardown(t_access_read_only, each_teardown),
	    cmocka_unit_test_teardown(t_access_refused, each_teardown),
	    cmocka_unit_test_teardown(t_access_supplementary, each_teardown),
	    cmocka_unit_test_teardown(t_too_many_clients, each_teardown),
	    cmocka_unit_test_teardown(t_per_uid_and_reserve, each_teardown),
	    cmocka_unit_test_teardown(t_trickle_does_not_extend, each_teardown),
	    cmocka_unit_test_teardown(t_register_args, each_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
