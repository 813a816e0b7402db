/* control.c: the control socket. One JSON request per line in, one JSON response per
 * line out, one request at a time per client; peers are identified by SO_PEERCRED and
 * sorted into admin / read-only / refused by uid and group membership. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "gw.h"
#include "log.h"
#include "util.h"

#define CONTROL_MAX_LINE    (64 * 1024) /* a request, newline excluded */
#define CONTROL_MAX_DEPTH   32          /* nesting of a request's JSON */
#define CONTROL_MAX_CLIENTS 32
/* Of those, the last places are kept for admin peers (root, the daemon's own uid, the
 * admin group), and no uid but root may hold more than CONTROL_MAX_PER_UID: one
 * read-only user cannot lock the operator out. */
#define CONTROL_ADMIN_RESERVE 8
#define CONTROL_MAX_PER_UID   8
#define CONTROL_MAX_CMDS      128
/* A client with no request under way is closed CONTROL_IDLE_MS after its last complete
 * request (or its connect); one that started a request must finish it within
 * CONTROL_REQUEST_MS of its first byte. Bytes that trickle in extend neither. */
#define CONTROL_IDLE_MS    60000
#define CONTROL_REQUEST_MS 10000
#define CONTROL_MAX_GROUPS 1024

struct ctl_cmd {
	char *name;
	int access;
	control_fn fn;
};

struct client {
	struct control *c;
	struct client *prev, *next;
	int fd;
	sd_event_source *io, *idle;
	struct control_peer peer;
	char *in; /* unread request bytes */
	size_t in_len;
	char *out; /* unsent response bytes */
	size_t out_len, out_off;
	uint64_t last_done; /* CLOCK_MONOTONIC usec: connect, or the last complete request */
	uint64_t req_start; /* when the first byte of the unfinished request came */
	struct control_reply *pending; /* the request being answered, or NULL */
	bool eof;                      /* the peer shut its side: answer what came, then close */
	bool closing;                  /* close once out is sent */
	bool in_dispatch;              /* a handler is on the stack: free later, not now */
	bool dead;                     /* free at the next safe point */
};

struct control_reply {
	struct client *cl; /* NULL once the client is gone */
	struct control_peer peer;
	char *cmd;
};

struct control {
	struct gw *gw;
	sd_event *loop;
	int fd;
	sd_event_source *listen;
	char *path;
	char *group_name, *admin_name;
	gid_t gid, admin_gid;
	bool have_gid, have_admin;
	uid_t euid;
	struct ctl_cmd cmds[CONTROL_MAX_CMDS];
	size_t n_cmds;
	struct client *clients;
	size_t n_clients;
	uint64_t idle_usec, request_usec;
	size_t refused_at; /* n_clients when a refusal was last logged */
};

/* ---- access ----------------------------------------------------------------- */

static int group_lookup(const char *name, gid_t *gid)
{
	struct group gr, *res = NULL;
	char buf[16384];
	if (!name || !*name)
		return -ENOENT;
	int r = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
	if (r != 0)
		return -r;
	if (!res)
		return -ENOENT;
	*gid = gr.gr_gid;
	return 0;
}

/* The peer's supplementary groups from /proc/PID/status ("Groups:\t4 27 1000"): what
 * the kernel holds for that process, unlike the group database. */
static int proc_groups(pid_t pid, gid_t *gids, size_t cap, size_t *n)
{
	char path[64], *text = NULL;
	size_t len;
	if (pid <= 0 || xsnprintf(path, sizeof(path), "/proc/%d/status", (int)pid) < 0)
		return -EINVAL;
	int r = read_file(path, 64 * 1024, &text, &len);
	if (r < 0)
		return r;
	char *g = strstr(text, "\nGroups:");
	r = -ENODATA;
	if (!g)
		goto out;
	*n = 0;
	for (char *c = g + 8; *c && *c != '\n';) {
		if (isspace((unsigned char)*c)) {
			c++;
			continue;
		}
		char *end;
		errno = 0;
		unsigned long v = strtoul(c, &end, 10);
		if (end == c || errno) {
			r = -EINVAL;
			goto out;
		}
		if (*n < cap)
			gids[(*n)++] = (gid_t)v;
		c = end;
	}
	r = 0;
out:
	free(text);
	return r;
}

/* The group database's idea, when /proc cannot tell (another pid namespace). */
static int db_groups(uid_t uid, gid_t primary, gid_t *gids, size_t cap, size_t *n)
{
	struct passwd pw, *res = NULL;
	char buf[16384];
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return -ENOENT;
	int k = (int)cap;
	if (getgrouplist(pw.pw_name, primary, gids, &k) < 0)
		return -ENOBUFS;
	*n = (size_t)k;
	return 0;
}

static bool peer_in_group(const struct control_peer *p, gid_t g, const gid_t *gids, size_t n)
{
	if (p->gid == g)
		return true;
	for (size_t i = 0; i < n; i++)
		if (gids[i] == g)
			return true;
	return false;
}

/* -1: refused; otherwise the highest enum control_access granted. */
static int peer_access(struct control *c, const struct control_peer *p)
{
	if (p->uid == 0 || p->uid == c->euid)
		return CONTROL_ADMIN;
	gid_t *gids = calloc(CONTROL_MAX_GROUPS, sizeof(*gids));
	size_t n = 0;
	if (!gids)
		return -1;
	if (proc_groups(p->pid, gids, CONTROL_MAX_GROUPS, &n) < 0 &&
	    db_groups(p->uid, p->gid, gids, CONTROL_MAX_GROUPS, &n) < 0)
		n = 0;
	int access = -1;
	if (c->have_admin && peer_in_group(p, c->admin_gid, gids, n))
		access = CONTROL_ADMIN;
	else if (c->have_gid && peer_in_group(p, c->gid, gids, n))
		access = CONTROL_READ;
	free(gids);
	return access;
}

/* ---- clients ---------------------------------------------------------------- */

static void client_free(struct client *cl)
{
	struct control *c = cl->c;
	if (cl->pending)
		cl->pending->cl = NULL; /* the handler still holds it; it answers into nothing */
	sd_event_source_disable_unref(cl->io);
	sd_event_source_disable_unref(cl->idle);
	if (cl->fd >= 0)
		close(cl->fd);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	c->n_clients--;
	free(cl->in);
	free(cl->out);
	free(cl);
}

static uint64_t loop_now(struct control *c)
{
	uint64_t now = 0;
	sd_event_now(c->loop, CLOCK_MONOTONIC, &now);
	return now;
}

/* The deadline follows from the client's state, never from when bytes arrived: a
 * request under way has its own, shorter time; otherwise idle counts from the last
 * complete request. */
static void client_arm_idle(struct client *cl)
{
	uint64_t at =
	    cl->in_len ? cl->req_start + cl->c->request_usec : cl->last_done + cl->c->idle_usec;
	sd_event_source_set_time(cl->idle, at);
	sd_event_source_set_enabled(cl->idle, SD_EVENT_ONESHOT);
}

/* Queue one response line; the caller flushes. */
static int client_queue(struct client *cl, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	size_t n = strlen(text);
	char *nb = realloc(cl->out, cl->out_len + n + 1);
	if (!nb) {
		free(text);
		return -ENOMEM;
	}
	cl->out = nb;
	memcpy(cl->out + cl->out_len, text, n);
	cl->out[cl->out_len + n] = '\n';
	cl->out_len += n + 1;
	free(text);
	return 0;
}

static void client_queue_err(struct client *cl, int code, const char *msg)
{
	json_t *m = json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg, "code", code);
	if (m)
		client_queue(cl, m);
	json_decref(m);
}

/* Send what is queued. 0 when all is out, 1 when the socket is full, <0 on error. */
static int client_flush(struct client *cl)
{
	while (cl->out_off < cl->out_len) {
		ssize_t k = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			return -errno;
		}
		cl->out_off += (size_t)k;
	}
	free(cl->out);
	cl->out = NULL;
	cl->out_len = cl->out_off = 0;
	return 0;
}

/* Nesting depth of JSON text outside strings, so a deep request is refused before
 * the parser recurses into it. */
static bool depth_ok(const char *s, size_t n, int max)
{
	int depth = 0;
	bool str = false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				str = false;
		} else if (ch == '"') {
			str = true;
		} else if (ch == '{' || ch == '[') {
			if (++depth > max)
				return false;
		} else if (ch == '}' || ch == ']') {
			depth--;
		}
	}
	return true;
}

static const struct ctl_cmd *cmd_find(struct control *c, const char *name)
{
	for (size_t i = 0; i < c->n_cmds; i++)
		if (strcmp(c->cmds[i].name, name) == 0)
			return &c->cmds[i];
	return NULL;
}

/* Handle one request line (no newline, NUL-terminated at len). */
static void client_request(struct client *cl, char *line, size_t len)
{
	struct control *c = cl->c;
	json_error_t jerr;
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (!depth_ok(line, len, CONTROL_MAX_DEPTH)) {
		client_queue_err(cl, EINVAL, "request nested too deeply");
		return;
	}
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		char msg[256];
		snprintf(msg, sizeof(msg), "malformed request: %s", jerr.text);
		client_queue_err(cl, EINVAL, msg);
		return;
	}
	const char *name = json_string_value(json_object_get(req, "cmd"));
	if (!json_is_object(req) || !name) {
		client_queue_err(cl, EINVAL, "a request is an object with a string \"cmd\"");
		goto out;
	}
	const struct ctl_cmd *cmd = cmd_find(c, name);
	if (!cmd) {
		char msg[160];
		snprintf(msg, sizeof(msg), "unknown command '%.64s'", name);
		client_queue_err(cl, ENOENT, msg);
		goto out;
	}
	if (cl->peer.access < cmd->access) {
		log_warn("control: refused '%s' to uid %u pid %d (needs group %s)", cmd->name,
		         (unsigned)cl->peer.uid, (int)cl->peer.pid,
		         c->admin_name ? c->admin_name : "root");
		char msg[256];
		snprintf(msg, sizeof(msg), "permission denied: '%s' is for root or group %s",
		         cmd->name, c->admin_name ? c->admin_name : "root");
		client_queue_err(cl, EACCES, msg);
		goto out;
	}
	struct control_reply *r = calloc(1, sizeof(*r));
	if (!r || !(r->cmd = strdup(cmd->name))) {
		free(r);
		client_queue_err(cl, ENOMEM, "out of memory");
		goto out;
	}
	r->cl = cl;
	r->peer = cl->peer;
	cl->pending = r;
	log_debug("control: uid %u pid %d: %s", (unsigned)cl->peer.uid, (int)cl->peer.pid,
	          cmd->name);
	cmd->fn(c->gw, req, r); /* may answer now or later */
out:
	json_decref(req);
}

/* Answer the buffered requests one by one, flush, read more or close: the one place
 * that moves a client on. May free cl. */
static void client_kick(struct client *cl)
{
	for (;;) {
		if (cl->dead)
			break;
		int f = client_flush(cl);
		if (f < 0) {
			cl->dead = true;
			break;
		}
		if (f > 0 || cl->pending)
			break; /* wait for the socket or the handler */
		if (cl->closing) {
			cl->dead = true;
			break;
		}
		char *nl = cl->in_len ? memchr(cl->in, '\n', cl->in_len) : NULL;
		if (!nl) {
			if (cl->in_len > CONTROL_MAX_LINE) {
				client_queue_err(cl, E2BIG, "request too long (max 65536 bytes)");
				cl->closing = true;
				cl->in_len = 0;
				continue;
			}
			if (cl->eof) {
				if (cl->in_len) /* a last request without newline */
					nl = cl->in + cl->in_len;
				else
					cl->closing = true;
			}
			if (!nl) {
				if (cl->closing)
					continue;
				break;
			}
		}
		size_t n = (size_t)(nl - cl->in);
		if (n > CONTROL_MAX_LINE) {
			client_queue_err(cl, E2BIG, "request too long (max 65536 bytes)");
			cl->closing = true;
			cl->in_len = 0;
			continue;
		}
		/* take the line out of the buffer before the handler runs */
		char *line = malloc(n + 1);
		if (!line) {
			cl->dead = true;
			break;
		}
		memcpy(line, cl->in, n);
		line[n] = '\0';
		size_t rest = cl->in_len - (n < cl->in_len ? n + 1 : n);
		memmove(cl->in, cl->in + cl->in_len - rest, rest);
		cl->in_len = rest;
		/* a complete request: idle counts from here, and what follows is the next */
		cl->last_done = cl->req_start = loop_now(cl->c);
		if (n > 0) {
			cl->in_dispatch = true;
			client_request(cl, line, n);
			cl->in_dispatch = false;
		}
		free(line);
	}
	if (cl->dead) {
		client_free(cl);
		return;
	}
	/* read only when idle, so one client cannot queue without bound */
	uint32_t ev = 0;
	if (cl->out_len)
		ev |= EPOLLOUT;
	else if (!cl->pending && !cl->eof && !cl->closing)
		ev |= EPOLLIN;
	sd_event_source_set_io_events(cl->io, ev);
	sd_event_source_set_enabled(cl->io, ev ? SD_EVENT_ON : SD_EVENT_OFF);
	if (cl->pending)
		sd_event_source_set_enabled(cl->idle, SD_EVENT_OFF);
	else
		client_arm_idle(cl);
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct client *cl = ud;
	if (revents & EPOLLIN) {
		size_t want = CONTROL_MAX_LINE + 2 - cl->in_len;
		if (cl->in_len <= CONTROL_MAX_LINE) {
			char *nb = realloc(cl->in, CONTROL_MAX_LINE + 2);
			if (!nb) {
				client_free(cl);
				return 0;
			}
			cl->in = nb;
			ssize_t k = recv(fd, cl->in + cl->in_len, want, MSG_DONTWAIT);
			if (k < 0 && errno != EAGAIN && errno != EINTR) {
				client_free(cl);
				return 0;
			}
			if (k == 0)
				cl->eof = true;
			if (k > 0) {
				if (cl->in_len == 0)
					cl->req_start = loop_now(cl->c);
				cl->in_len += (size_t)k;
			}
		}
	} else if (revents & (EPOLLHUP | EPOLLERR)) {
		client_free(cl);
		return 0;
	}
	client_kick(cl);
	return 0;
}

static int on_client_idle(sd_event_source *s, uint64_t usec, void *ud)
{
	struct client *cl = ud;
	if (cl->in_len)
		log_info(
		    "control: closing client uid %u pid %d: a request unfinished after %llu ms",
		    (unsigned)cl->peer.uid, (int)cl->peer.pid,
		    (unsigned long long)(cl->c->request_usec / 1000));
	else
		log_debug("control: closing idle client uid %u", (unsigned)cl->peer.uid);
	client_free(cl);
	return 0;
}

static size_t clients_of(struct control *c, uid_t uid)
{
	size_t n = 0;
	for (struct client *cl = c->clients; cl; cl = cl->next)
		n += cl->peer.uid == uid;
	return n;
}

/* Room for this peer? NULL, or why not (EBUSY: try again later). */
static const char *no_room(struct control *c, const struct control_peer *p)
{
	if (c->n_clients >= CONTROL_MAX_CLIENTS)
		return "too many clients, try again";
	if (p->access < CONTROL_ADMIN &&
	    c->n_clients >= CONTROL_MAX_CLIENTS - CONTROL_ADMIN_RESERVE)
		return "too many clients (the rest is kept for admins), try again";
	if (p->uid != 0 && clients_of(c, p->uid) >= CONTROL_MAX_PER_UID)
		return "too many clients of this user, try again";
	return NULL;
}

/* Say no and hang up, without keeping state for a peer we will not serve. */
static void refuse(int fd, int code, const char *msg)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\",\"code\":%d}\n", msg,
	                 code);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static int on_accept(sd_event_source *s, int lfd, uint32_t revents, void *ud)
{
	struct control *c = ud;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warn("control: accept: %s", strerror(errno));
		return 0;
	}
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		log_warn("control: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return 0;
	}
	struct control_peer peer = {.pid = cred.pid, .uid = cred.uid, .gid = cred.gid};
	peer.access = peer_access(c, &peer);
	if (peer.access < 0) {
		log_warn("control: refused uid %u gid %u pid %d: not root, not in group %s or %s",
		         (unsigned)peer.uid, (unsigned)peer.gid, (int)peer.pid,
		         c->group_name ? c->group_name : "-", c->admin_name ? c->admin_name : "-");
		refuse(fd, EACCES, "permission denied: not in the notegw groups");
		return 0;
	}
	const char *busy = no_room(c, &peer);
	if (busy) {
		/* said once per burst, not once per refused connection */
		if (c->n_clients != c->refused_at) {
			log_warn("control: %s: refusing uid %u pid %d (%zu clients, %zu of this "
			         "user)",
			         busy, (unsigned)peer.uid, (int)peer.pid, c->n_clients,
			         clients_of(c, peer.uid));
			c->refused_at = c->n_clients;
		}
		refuse(fd, EBUSY, busy);
		return 0;
	}
	struct client *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		close(fd);
		return 0;
	}
	cl->c = c;
	cl->fd = fd;
	cl->peer = peer;
	if (sd_event_add_io(c->loop, &cl->io, fd, EPOLLIN, on_client_io, cl) < 0 ||
	    sd_event_add_time(c->loop, &cl->idle, CLOCK_MONOTONIC, UINT64_MAX, 0, on_client_idle,
	                      cl) < 0) {
		sd_event_source_unref(cl->io);
		close(fd);
		free(cl);
		return 0;
	}
	cl->next = c->clients;
	if (c->clients)
		c->clients->prev = cl;
	c->clients = cl;
	c->n_clients++;
	cl->last_done = cl->req_start = loop_now(c);
	client_arm_idle(cl);
	return 0;
}

/* ---- replies ---------------------------------------------------------------- */

static void reply_send(struct control_reply *r, json_t *msg)
{
	struct client *cl = r->cl;
	free(r->cmd);
	free(r);
	if (cl) {
		cl->pending = NULL;
		cl->last_done = loop_now(cl->c); /* idle counts from the answer */
		if (!msg || client_queue(cl, msg) < 0)
			client_queue_err(cl, ENOMEM, "out of memory");
		if (!cl->in_dispatch)
			client_kick(cl); /* an asynchronous answer: move on now */
	}
	json_decref(msg);
}

void control_reply_ok(struct control_reply *r, json_t *result)
{
	json_t *msg = json_object();
	if (msg) {
		json_object_set_new(msg, "ok", json_true());
		if (json_is_object(result))
			json_object_update_missing(msg, result);
		else if (result)
			json_object_set(msg, "result", result);
	}
	json_decref(result);
	reply_send(r, msg);
}

void control_reply_err(struct control_reply *r, int code, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_t *msg =
	    json_pack("{s:b,s:s,s:i}", "ok", 0, "error", text, "code", code < 0 ? -code : code);
	reply_send(r, msg);
}

const struct control_peer *control_reply_peer(struct control_reply *r)
{
	return &r->peer;
}

/* ---- the server ------------------------------------------------------------- */

int control_register(struct control *c, const char *cmd, int access, control_fn fn)
{
	if (!cmd || !*cmd || !fn || (access != CONTROL_READ && access != CONTROL_ADMIN))
		return -EINVAL;
	if (cmd_find(c, cmd))
		return -EEXIST;
	if (c->n_cmds >= CONTROL_MAX_CMDS)
		return -ENOSPC;
	char *name = strdup(cmd);
	if (!name)
		return -ENOMEM;
	c->cmds[c->n_cmds++] = (struct ctl_cmd){.name = name, .access = access, .fn = fn};
	return 0;
}

/* A socket file left by a daemon that died is removed; a live one is not. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	close(fd);
	if (r == 0)
		return -EADDRINUSE;
	if (e != ECONNREFUSED)
		return -e;
	return unlink(path) < 0 ? -errno : 0;
}

int control_open(struct gw *gw, const char *path, const char *group, const char *admin_group,
                 struct control **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct control *c = NULL;
	int r;
	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->gw = gw;
	c->loop = gw->loop;
	c->euid = geteuid();
	c->idle_usec = CONTROL_IDLE_MS * 1000ull;
	c->request_usec = CONTROL_REQUEST_MS * 1000ull;
	c->path = strdup(path);
	c->group_name = group ? strdup(group) : NULL;
	c->admin_name = admin_group ? strdup(admin_group) : NULL;
	if (!c->path || (group && !c->group_name) || (admin_group && !c->admin_name)) {
		r = -ENOMEM;
		goto fail;
	}
	c->have_gid = group_lookup(group, &c->gid) == 0;
	c->have_admin = group_lookup(admin_group, &c->admin_gid) == 0;
	if (group && !c->have_gid)
		log_notice("control: group %s does not exist: read access for root only", group);
	if (admin_group && !c->have_admin)
		log_notice("control: group %s does not exist: admin access for root only",
		           admin_group);

	char *slash = strrchr(c->path, '/');
	if (slash && slash != c->path) {
		*slash = '\0';
		if (mkdir(c->path, 0755) < 0 && errno != EEXIST)
			log_warn("control: mkdir %s: %s", c->path, strerror(errno));
		*slash = '/';
	}
	r = clear_stale(path, &sa);
	if (r < 0) {
		log_err("control: %s: %s", path,
		        r == -EADDRINUSE ? "another daemon is listening there"
		        : r == -EEXIST   ? "exists and is not a socket"
		                         : strerror(-r));
		goto fail;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = -errno;
		goto fail;
	}
	/* born 0600 so no one connects before the group is set; widened below */
	mode_t old = umask(0177);
	r = bind(c->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = -errno;
		log_err("control: bind %s: %s", path, strerror(-r));
		goto fail;
	}
	if (c->have_gid && chown(path, (uid_t)-1, c->gid) < 0)
		log_warn("control: chown %s to group %s: %s", path, group, strerror(errno));
	if (chmod(path, 0660) < 0) {
		r = -errno;
		goto fail_unlink;
	}
	if (listen(c->fd, 16) < 0) {
		r = -errno;
		goto fail_unlink;
	}
	r = sd_event_add_io(c->loop, &c->listen, c->fd, EPOLLIN, on_accept, c);
	if (r < 0)
		goto fail_unlink;
	*out = c;
	return 0;
fail_unlink:
	unlink(path);
fail:
	if (c->fd >= 0)
		close(c->fd);
	free(c->path);
	free(c->group_name);
	free(c->admin_name);
	free(c);
	return r;
}

void control_set_timeouts(struct control *c, uint64_t idle_ms, uint64_t request_ms)
{
	c->idle_usec = idle_ms * 1000;
	c->request_usec = request_ms * 1000;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	while (c->clients)
		/* client_free unlinks the head, so c->clients is the next client */
		client_free(c->clients); // NOLINT(clang-analyzer-unix.Malloc)
	sd_event_source_disable_unref(c->listen);
	if (c->fd >= 0) {
		close(c->fd);
		unlink(c->path);
	}
	for (size_t i = 0; i < c->n_cmds; i++)
		free(c->cmds[i].name);
	free(c->path);
	free(c->group_name);
	free(c->admin_name);
	free(c);
}
