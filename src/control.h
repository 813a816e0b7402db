/* The control socket: a Unix stream socket, one JSON request per line, one JSON
 * response per line. Peers are identified with SO_PEERCRED; each command declares
 * the access it needs. Modules register their own commands. */
#ifndef NOTEGW_CONTROL_H
#define NOTEGW_CONTROL_H
#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

struct control;
struct gw;

enum control_access {
	CONTROL_READ,   /* root, the service group or the admin group */
	CONTROL_ADMIN,  /* root or the admin group                   */
};

struct control_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int access;     /* highest enum control_access granted */
};

/* A reply in progress: answer now or later (asynchronous commands). */
struct control_reply;
/* Send {"ok":true,...result} (result stolen, may be NULL) or {"ok":false,"error":msg}
 * and release the reply. Exactly one of them per reply. */
void control_reply_ok(struct control_reply *r, json_t *result);
void control_reply_err(struct control_reply *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const struct control_peer *control_reply_peer(struct control_reply *r);

/* A command handler: args is the request object (borrowed). */
typedef void (*control_fn)(struct gw *gw, json_t *args, struct control_reply *r);
int control_register(struct control *c, const char *cmd, int access, control_fn fn);

int control_open(struct gw *gw, const char *path, const char *group, const char *admin_group,
                 struct control **out);
/* How long a client may sit without a request (default 60 s after its last complete
 * one) and how long one request may take to arrive (default 10 s from its first
 * byte); for the tests. */
void control_set_timeouts(struct control *c, uint64_t idle_ms, uint64_t request_ms);
void control_free(struct control *c);
#endif
