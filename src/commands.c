/* The daemon's side of the control-socket commands that belong to the core:
 * status, queue, send, req, sync, audit, reload, update, salvage, fleet. Each states the access it
 * needs; every admin request is written to the audit log with the caller's uid. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "control.h"
#include "fleet.h"
#include "gw.h"
#include "lifecycle.h"
#include "link.h"
#include "log.h"
#include "ota.h"
#include "status.h"
#include "store.h"
#include "submit.h"
#include "util.h"

static void audit_peer(struct gw *gw, struct control_reply *r, const char *action,
                       const char *detail)
{
	const struct control_peer *p = control_reply_peer(r);
	char actor[64];
	snprintf(actor, sizeof(actor), "uid:%u", p ? (unsigned)p->uid : 0u);
	if (store_audit(gw->store, actor, action, detail) < 0)
		log_warn("audit: could not record %s by %s", action, actor);
}

static void cmd_status(struct gw *gw, json_t *args, struct control_reply *r)
{
	control_reply_ok(r, json_pack("{s:o}", "status", status_snapshot(gw)));
}

static void cmd_queue(struct gw *gw, json_t *args, struct control_reply *r)
{
	struct store_file_stats *v = NULL;
	size_t n = 0;
	int e = store_queue(gw->store, &v, &n);
	if (e < 0) {
		control_reply_err(r, 1, "store: %s", strerror(-e));
		return;
	}
	json_t *files = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(files, json_pack("{s:s,s:I,s:I,s:I}", "file", v[i].file,
		                                       "count", (json_int_t)v[i].count, "bytes",
		                                       (json_int_t)v[i].bytes, "oldest_ms",
		                                       (json_int_t)v[i].oldest_ms));
	store_file_stats_free(v, n);
	control_reply_ok(r, json_pack("{s:o}", "files", files));
}

/* Not accepted for a reason that passes (a full disk, a lock, I/O): the reply's
 * code is EAGAIN, which the CLI turns into its "try again later" exit status. */
static int send_code(int err)
{
	return err == -EAGAIN || err == -EBUSY || err == -EIO || err == -ENOMEM ? EAGAIN : 1;
}

static void send_done(void *ud, int err, const char *why)
{
	struct control_reply *r = ud;
	if (err < 0)
		control_reply_err(r, send_code(err), "not accepted: %s",
		                  why ? why : strerror(-err));
	else
		control_reply_ok(r, NULL);
}

static void cmd_send(struct gw *gw, json_t *args, struct control_reply *r)
{
	const char *file = json_string_value(json_object_get(args, "file"));
	json_t *body = json_object_get(args, "body");
	const char *payload = json_string_value(json_object_get(args, "payload"));
	if (!file) {
		control_reply_err(r, 2, "send: 'file' missing");
		return;
	}
	if (body && !json_is_object(body)) {
		control_reply_err(r, 2, "send: 'body' must be a JSON object");
		return;
	}
	void *bin = NULL;
	size_t binlen = 0;
	if (payload && b64_decode(payload, &bin, &binlen) < 0) {
		control_reply_err(r, 2, "send: 'payload' is not base64");
		return;
	}
	const char *why = NULL;
	int e = submit_note_obj(&gw->submit, "cli", file, body, bin, binlen, send_done, r, &why);
	free(bin);
	if (e < 0)
		control_reply_err(r, send_code(e), "not accepted: %s", why ? why : strerror(-e));
}

static void req_done(void *ud, int err, const char *response)
{
	struct control_reply *r = ud;
	if (err < 0) {
		control_reply_err(r, 1, "notecard: no answer (%s)", strerror(-err));
		return;
	}
	json_t *rsp = json_loads(response, 0, NULL);
	if (!rsp)
		rsp = json_string(response);
	control_reply_ok(r, json_pack("{s:o}", "response", rsp));
}

static void cmd_req(struct gw *gw, json_t *args, struct control_reply *r)
{
	json_t *req = json_object_get(args, "req");
	if (!json_is_object(req) ||
	    (!json_object_get(req, "req") && !json_object_get(req, "cmd"))) {
		control_reply_err(r, 2, "req: a JSON object with \"req\" or \"cmd\" is needed");
		return;
	}
	char *text = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text) {
		control_reply_err(r, 1, "req: out of memory");
		return;
	}
	audit_peer(gw, r, "req", text);
	int e = gw->link ? link_request(gw->link, text, req_done, r) : -ENODEV;
	free(text);
	if (e < 0)
		control_reply_err(r, 1, "notecard: %s", strerror(-e));
}

static void cmd_sync(struct gw *gw, json_t *args, struct control_reply *r)
{
	audit_peer(gw, r, "sync", "hub.sync");
	int e = gw->link ? link_request(gw->link, "{\"req\":\"hub.sync\"}", req_done, r) : -ENODEV;
	if (e < 0)
		control_reply_err(r, 1, "notecard: %s", strerror(-e));
}

static void cmd_audit(struct gw *gw, json_t *args, struct control_reply *r)
{
	json_int_t limit = json_integer_value(json_object_get(args, "limit"));
	if (limit <= 0 || limit > 10000)
		limit = 100;
	struct store_audit_row *v = NULL;
	size_t n = 0;
	int e = store_audit_list(gw->store, limit, &v, &n);
	if (e < 0) {
		control_reply_err(r, 1, "store: %s", strerror(-e));
		return;
	}
	json_t *rows = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(rows, json_pack("{s:I,s:s,s:s,s:s}", "time_ms",
		                                      (json_int_t)v[i].time_ms, "actor", v[i].actor,
		                                      "action", v[i].action, "detail",
		                                      v[i].detail ? v[i].detail : ""));
	store_audit_free(v, n);
	control_reply_ok(r, json_pack("{s:o}", "audit", rows));
}

/* Re-queue the notes readable from a store file (docs/store.md): the daemon's own
 * store is the only one that may be written while it runs. */
static void cmd_salvage(struct gw *gw, json_t *args, struct control_reply *r)
{
	const char *file = json_string_value(json_object_get(args, "file"));
	if (!file || file[0] != '/') {
		control_reply_err(r, 2, "salvage: the absolute path of a store file is needed");
		return;
	}
	audit_peer(gw, r, "salvage", file);
	int64_t n = 0;
	int e = store_salvage(gw->store, file, &n);
	if (e == -EALREADY)
		control_reply_err(r, 1, "salvage: %s was re-queued before", file);
	else if (e < 0)
		control_reply_err(r, 1, "salvage: %s: %s (see the log)", file, strerror(-e));
	else
		control_reply_ok(r, json_pack("{s:I}", "requeued", (json_int_t)n));
}

static void cmd_fleet(struct gw *gw, json_t *args, struct control_reply *r)
{
	if (!gw->fleet) {
		control_reply_err(r, 1, "fleet: not running (see the log)");
		return;
	}
	control_reply_ok(r, json_pack("{s:o}", "fleet", fleet_status(gw->fleet, true)));
}

static void cmd_reload(struct gw *gw, json_t *args, struct control_reply *r)
{
	audit_peer(gw, r, "reload", "via control socket");
	int e = gw_reload(gw);
	if (e < 0)
		control_reply_err(r, 1,
		                  "reload refused: the new configuration has errors (see log)");
	else
		control_reply_ok(r, NULL);
}

static void cmd_update(struct gw *gw, json_t *args, struct control_reply *r)
{
	const char *op = json_string_value(json_object_get(args, "op"));
	if (!gw->ota) {
		control_reply_err(r, 1,
		                  "update: host updates are disabled ([update] enabled = false)");
		return;
	}
	if (!op || strcmp(op, "status") == 0) {
		control_reply_ok(r, json_pack("{s:o}", "update", ota_status(gw->ota)));
		return;
	}
	if (control_reply_peer(r)->access < CONTROL_ADMIN) {
		control_reply_err(r, 1, "update %s: permission denied (admin only)", op);
		return;
	}
	if (strcmp(op, "check") == 0) {
		audit_peer(gw, r, "update-check", "");
		ota_check(gw->ota);
		control_reply_ok(r, json_pack("{s:o}", "update", ota_status(gw->ota)));
	} else if (strcmp(op, "apply") == 0) {
		const char *why = NULL;
		audit_peer(gw, r, "update-apply", "");
		if (ota_apply(gw->ota, &why) < 0)
			control_reply_err(r, 1, "update apply: %s", why);
		else
			control_reply_ok(r, json_pack("{s:o}", "update", ota_status(gw->ota)));
	} else {
		control_reply_err(r, 2, "update: unknown operation '%s'", op);
	}
}

int commands_register(struct control *c)
{
	static const struct {
		const char *name;
		int access;
		control_fn fn;
	} table[] = {
	    {"status", CONTROL_READ, cmd_status},    {"queue", CONTROL_READ, cmd_queue},
	    {"audit", CONTROL_READ, cmd_audit},      {"send", CONTROL_ADMIN, cmd_send},
	    {"req", CONTROL_ADMIN, cmd_req},         {"sync", CONTROL_ADMIN, cmd_sync},
	    {"reload", CONTROL_ADMIN, cmd_reload},   {"update", CONTROL_READ, cmd_update},
	    {"salvage", CONTROL_ADMIN, cmd_salvage}, {"fleet", CONTROL_READ, cmd_fleet},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		int e = control_register(c, table[i].name, table[i].access, table[i].fn);
		if (e < 0)
			return e;
	}
	return 0;
}
