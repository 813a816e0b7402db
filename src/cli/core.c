/* core.c: the everyday subcommands (status queue send req sync audit), each one
 * control request and a readable rendering of its answer.
 *
 * The control protocol for them (src/commands.c answers): one JSON object per line
 * each way. Every response has "ok"; a refusal is {"ok":false,"error":"text",
 * "code":N}. N is for scripts: the control layer uses errno values (13 not allowed,
 * 22 malformed request, 2 unknown command, 7 request too long, 16 too many
 * clients); the commands use 1 (refused), 2 (bad arguments) and 11 (not accepted
 * now, try again later: a full disk). The CLI exits 4 on 11 and 16, 1 on any other
 * refusal. Times are UTC epoch milliseconds in "*_ms" fields (epoch seconds in
 * "time"/"oldest"/"last_sync", which the CLI also reads); a field the daemon does not
 * know is left out or null. `--json` prints the daemon's whole response object.
 *
 * status (read)
 *   > {"cmd":"status"}
 *   < {"ok":true,"status":{
 *      "daemon":   {"version":"0.1.0","pid":812,"uptime_s":3600,"reloads":0,
 *                   "config":"/etc/notegw/notegw.conf","rss_bytes":7340032,
 *                   "pss_bytes":2621440,"private_bytes":1835008},
 *      "notecard": {"state":"ready","transport":"i2c","device":"/dev/i2c-1",
 *                   "uid":"dev:864475044204278","sku":"NOTE-WBEX","firmware":"8.1.3",
 *                   "connected":true,"signal":{"bars":3,"rssi":-71,"rat":"lte"},
 *                   "error":"last transport error"},
 *      "hub":      {"product":"com.example.user:gateway","mode":"periodic",
 *                   "last_sync_ms":1764036000000,"sync_error":"..."},
 *      "store":    {"queued":12,"bytes":4096,"oldest_ms":1764030000000,"oldest_age_s":60,
 *                   "inbound_pending":0, ...counters},
 *      "plugins":  {"mqtt":{"state":"running", ...counters}, ...},
 *      "update":   {...}}}
 *   Known fields are printed with labels; any other field as it comes. (A status
 *   object at the top level of the response, without "status", is read too.)
 *
 * queue (read): what waits in the store, per notefile, oldest first
 *   > {"cmd":"queue"}
 *   < {"ok":true,"files":[{"file":"data.qo","count":3,"bytes":512,
 *                          "oldest_ms":1764030000000},...]}
 *
 * send (admin): enqueue one note through the store
 *   > {"cmd":"send","file":"data.qo","body":{...}}        ("payload":"base64" optional)
 *   < {"ok":true}                                          ("id": the store row, optional)
 *
 * req (admin): one raw Notecard request
 *   > {"cmd":"req","req":{"req":"card.version"}}
 *   < {"ok":true,"response":{...the card's response...}}   ("rsp" is read too)
 *   The card's own "err" stays inside the response (the CLI exits 1 on it); ok:false
 *   is for when no answer came (transport failure, timeout).
 *
 * sync (admin): ask the Notecard to sync now
 *   > {"cmd":"sync"}
 *   < {"ok":true,"response":{...hub.sync's response...}}
 *
 * audit (read): the audit log, oldest first, the last `limit` entries
 *   > {"cmd":"audit","limit":50}
 *   < {"ok":true,"audit":[{"time_ms":1764036000000,"actor":"uid:0","action":"send",
 *                          "detail":"data.qo"},...]}           ("entries" is read too)
 *
 * fleet (read): configuration from Notehub (docs/fleet.md)
 *   > {"cmd":"fleet"}
 *   < {"ok":true,"fleet":{"enabled":true,"revision":3,"allow":"modbus.*","env_prefix":"notegw.",
 *      "overlay":"/var/lib/notegw/fleet.conf","text":"...the overlay...",
 *      "variables":{"modbus.meter1.interval":"30s"},"applied":{...},
 *      "last":"refused","last_ms":1764036000000,
 *      "refused":[{"var":"notegw.control.socket","why":"..."}]}}
 *
 * salvage (admin): re-queue the notes readable from a store file (docs/store.md)
 *   > {"cmd":"salvage","file":"/var/lib/notegw/queue/store.db.corrupt-1764036000"}
 *   < {"ok":true,"requeued":128}
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "notegw/notefile.h"
#include "util.h"

#define CLI_MAX_BODY (60 * 1024) /* under the control socket's 64 KiB line */

/* ---- rendering helpers ---------------------------------------------------------- */

/* v in epoch seconds, or milliseconds when ms. */
static void fmt_time(json_t *v, bool ms, char *buf, size_t cap)
{
	if (!json_is_integer(v) && !json_is_real(v)) {
		snprintf(buf, cap, "-");
		return;
	}
	time_t t = (time_t)(json_number_value(v) / (ms ? 1000 : 1));
	struct tm tm;
	if (t <= 0 || !gmtime_r(&t, &tm)) {
		snprintf(buf, cap, "-");
		return;
	}
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
	long long ago = (long long)(time(NULL) - t);
	if (ago < 0)
		snprintf(buf, cap, "%s", when);
	else if (ago < 120)
		snprintf(buf, cap, "%s (%llds ago)", when, ago);
	else if (ago < 7200)
		snprintf(buf, cap, "%s (%lldm ago)", when, ago / 60);
	else if (ago < 172800)
		snprintf(buf, cap, "%s (%lldh ago)", when, ago / 3600);
	else
		snprintf(buf, cap, "%s (%lldd ago)", when, ago / 86400);
}

static void fmt_bytes(json_t *v, char *buf, size_t cap)
{
	if (!json_is_number(v)) {
		snprintf(buf, cap, "-");
		return;
	}
	double b = json_number_value(v);
	if (b < 1024)
		snprintf(buf, cap, "%.0f B", b);
	else if (b < 1024 * 1024)
		snprintf(buf, cap, "%.1f KiB", b / 1024);
	else if (b < 1024.0 * 1024 * 1024)
		snprintf(buf, cap, "%.1f MiB", b / (1024 * 1024));
	else
		snprintf(buf, cap, "%.1f GiB", b / (1024.0 * 1024 * 1024));
}

static void fmt_secs(json_t *v, char *buf, size_t cap)
{
	if (!json_is_number(v)) {
		snprintf(buf, cap, "-");
		return;
	}
	long long s = (long long)json_number_value(v);
	if (s < 3600)
		snprintf(buf, cap, "%lldm %llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, cap, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, cap, "%lldd %lldh", s / 86400, s % 86400 / 3600);
}

/* Any value as one line of text. */
static void fmt_value(json_t *v, char *buf, size_t cap)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		snprintf(buf, cap, "%s", json_string_value(v));
		break;
	case JSON_INTEGER:
		snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, cap, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, cap, "yes");
		break;
	case JSON_FALSE:
		snprintf(buf, cap, "no");
		break;
	case JSON_NULL:
		snprintf(buf, cap, "-");
		break;
	default: {
		char *s = json_dumps(v, JSON_COMPACT);
		snprintf(buf, cap, "%s", s ? s : "?");
		free(s);
	}
	}
}

static void fmt_signal(json_t *v, char *buf, size_t cap)
{
	if (!json_is_object(v)) {
		fmt_value(v, buf, cap);
		return;
	}
	char bars[32] = "", rssi[32] = "", rat[64] = "";
	json_t *b = json_object_get(v, "bars"), *r = json_object_get(v, "rssi"),
	       *t = json_object_get(v, "rat");
	if (json_is_integer(b))
		snprintf(bars, sizeof(bars), "%" JSON_INTEGER_FORMAT " bars",
		         json_integer_value(b));
	if (json_is_number(r))
		snprintf(rssi, sizeof(rssi), "%srssi %.0f dBm", bars[0] ? ", " : "",
		         json_number_value(r));
	if (json_is_string(t))
		snprintf(rat, sizeof(rat), "%s%s", bars[0] || rssi[0] ? ", " : "",
		         json_string_value(t));
	if (!bars[0] && !rssi[0] && !rat[0])
		fmt_value(v, buf, cap);
	else
		snprintf(buf, cap, "%s%s%s", bars, rssi, rat);
}

enum kind { K_TEXT, K_TIME, K_TIME_MS, K_BYTES, K_SECS, K_SIGNAL };
struct field {
	const char *key, *label;
	enum kind kind;
};

static void print_field(const char *label, json_t *v, enum kind kind)
{
	char buf[512];
	switch (kind) {
	case K_TIME:
	case K_TIME_MS:
		fmt_time(v, kind == K_TIME_MS, buf, sizeof(buf));
		break;
	case K_BYTES:
		fmt_bytes(v, buf, sizeof(buf));
		break;
	case K_SECS:
		fmt_secs(v, buf, sizeof(buf));
		break;
	case K_SIGNAL:
		fmt_signal(v, buf, sizeof(buf));
		break;
	default:
		fmt_value(v, buf, sizeof(buf));
	}
	printf("  %-12s %s\n", label, buf);
}

/* Known fields in order with their labels, then whatever else the daemon sent. */
static void print_section(const char *title, json_t *obj, const struct field *known)
{
	printf("%s\n", title);
	if (!json_is_object(obj)) {
		printf("  (not reported)\n");
		return;
	}
	for (const struct field *f = known; f->key; f++) {
		json_t *v = json_object_get(obj, f->key);
		if (v)
			print_field(f->label, v, f->kind);
	}
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		bool seen = false;
		for (const struct field *f = known; f->key && !seen; f++)
			seen = strcmp(f->key, k) == 0;
		if (!seen)
			print_field(k, v, K_TEXT);
	}
}

static bool no_args(struct cli *cli, int argc, char **argv)
{
	if (argc <= 1)
		return true;
	fprintf(stderr, "%s: %s takes no arguments (got '%s')\n", cli->prog, argv[0], argv[1]);
	return false;
}

/* Send req (stolen) and print the whole answer when --json; *rsp for the caller. */
static int call(struct cli *cli, json_t *req, json_t **rsp)
{
	if (!req) {
		fprintf(stderr, "%s: out of memory\n", cli->prog);
		return CLI_REFUSED;
	}
	int r = cli_call(cli, req, rsp);
	json_decref(req);
	if (r == CLI_OK && cli->json)
		cli_print_json(*rsp);
	return r;
}

/* The card's answer inside a req/sync response ("response", or "rsp"). Borrowed. */
static json_t *card_response(json_t *rsp)
{
	json_t *c = json_object_get(rsp, "response");
	return c ? c : json_object_get(rsp, "rsp");
}

/* ---- status --------------------------------------------------------------------- */

/* The labels and formats of the sections `notegw status` knows. */
static const struct field status_daemon[] = {
    {"version", "version", K_TEXT},
    {"pid", "pid", K_TEXT},
    {"uptime_s", "uptime", K_SECS},
    {"uptime", "uptime", K_SECS},
    {"config", "config", K_TEXT},
    {"reloads", "reloads", K_TEXT},
    {"rss_bytes", "memory (VmRSS)", K_BYTES},
    {"pss_bytes", "memory (Pss)", K_BYTES},
    {"private_bytes", "memory (private)", K_BYTES},
    {NULL, NULL, K_TEXT},
};
static const struct field status_notecard[] = {
    {"state", "state", K_TEXT},
    {"transport", "transport", K_TEXT},
    {"device", "device", K_TEXT},
    {"uid", "device UID", K_TEXT},
    {"sku", "SKU", K_TEXT},
    {"firmware", "firmware", K_TEXT},
    {"connected", "connected", K_TEXT},
    {"signal", "signal", K_SIGNAL},
    {"error", "last error", K_TEXT},
    {NULL, NULL, K_TEXT},
};
static const struct field status_hub[] = {
    {"product", "product", K_TEXT},           {"mode", "mode", K_TEXT},
    {"last_sync_ms", "last sync", K_TIME_MS}, {"last_sync", "last sync", K_TIME},
    {"sync_error", "sync error", K_TEXT},     {NULL, NULL, K_TEXT},
};
static const struct field status_store[] = {
    {"queued", "queued", K_TEXT},
    {"bytes", "bytes", K_BYTES},
    {"oldest_ms", "oldest", K_TIME_MS},
    {"oldest", "oldest", K_TIME},
    {"oldest_age_s", "oldest age", K_SECS},
    {"max_size", "max size", K_BYTES},
    {"damage_count", "damaged", K_TEXT},
    {"damage", "last damage", K_TEXT},
    {NULL, NULL, K_TEXT},
};
static const struct field status_none[] = {{NULL, NULL, K_TEXT}};

/* Each plugin's state, then its other keys indented under it. */
static void print_plugins(json_t *plugins)
{
	const char *name, *k;
	json_t *p, *v;

	printf("plugins\n");
	if (!json_is_object(plugins) || json_object_size(plugins) == 0)
		printf("  (none)\n");
	json_object_foreach(plugins, name, p)
	{
		char state[128];
		fmt_value(json_is_object(p) ? json_object_get(p, "state") : p, state,
		          sizeof(state));
		printf("  %-12s %s\n", name, state);
		if (json_is_object(p))
			json_object_foreach(p, k, v)
			{
				char buf[512];
				if (strcmp(k, "state") == 0)
					continue;
				fmt_value(v, buf, sizeof(buf));
				printf("    %-14s %s\n", k, buf);
			}
	}
}

/* Bytes per note per notefile: what templates save on the air. */
static void print_notefiles(json_t *nfs)
{
	const char *name;
	json_t *p;

	if (!json_is_object(nfs) || !json_object_size(nfs))
		return;
	printf("notefiles\n");
	json_object_foreach(nfs, name, p)
	{
		json_int_t notes = json_integer_value(json_object_get(p, "notes"));
		json_int_t bj = json_integer_value(json_object_get(p, "bytes_json"));
		printf("  %-12s %" JSON_INTEGER_FORMAT " notes, %" JSON_INTEGER_FORMAT
		       " B/note (as JSON %" JSON_INTEGER_FORMAT "), %" JSON_INTEGER_FORMAT
		       " templated, template %s\n",
		       name, notes, json_integer_value(json_object_get(p, "bytes_per_note")),
		       notes ? bj / notes : 0, json_integer_value(json_object_get(p, "templated")),
		       json_string_value(json_object_get(p, "template")) ?: "-");
	}
}

/* Anything else the daemon reports: sections of their own. */
static void print_other_sections(json_t *st)
{
	static const char *const shown[] = {"ok",    "status",  "daemon",    "notecard", "hub",
	                                    "store", "plugins", "notefiles", NULL};
	const char *k;
	json_t *v;

	json_object_foreach(st, k, v)
	{
		bool seen = false;
		for (size_t i = 0; shown[i] && !seen; i++)
			seen = strcmp(shown[i], k) == 0;
		if (seen)
			continue;
		if (json_is_object(v)) {
			print_section(k, v, status_none);
		} else {
			char buf[512];
			fmt_value(v, buf, sizeof(buf));
			printf("%s: %s\n", k, buf);
		}
	}
}

static int run_status(struct cli *cli, int argc, char **argv)
{
	json_t *rsp = NULL;
	if (!no_args(cli, argc, argv))
		return CLI_USAGE;
	int r = call(cli, json_pack("{s:s}", "cmd", "status"), &rsp);
	if (r != CLI_OK || cli->json)
		goto out;
	json_t *st = json_object_get(rsp, "status");
	if (!json_is_object(st))
		st = rsp;
	print_section("daemon", json_object_get(st, "daemon"), status_daemon);
	print_section("notecard", json_object_get(st, "notecard"), status_notecard);
	print_section("hub", json_object_get(st, "hub"), status_hub);
	print_section("store", json_object_get(st, "store"), status_store);
	print_plugins(json_object_get(st, "plugins"));
	print_notefiles(json_object_get(st, "notefiles"));
	print_other_sections(st);
out:
	json_decref(rsp);
	return r;
}

/* ---- fleet --------------------------------------------------------------------- */

static int run_fleet(struct cli *cli, int argc, char **argv)
{
	json_t *rsp = NULL;
	if (!no_args(cli, argc, argv))
		return CLI_USAGE;
	int r = call(cli, json_pack("{s:s}", "cmd", "fleet"), &rsp);
	if (r != CLI_OK || cli->json)
		goto out;
	json_t *f = json_object_get(rsp, "fleet");
	if (!json_is_true(json_object_get(f, "enabled"))) {
		printf("configuration from Notehub is off ([fleet] allow is not set)\n");
		goto out;
	}
	char when[64];
	fmt_time(json_object_get(f, "last_ms"), true, when, sizeof(when));
	printf("allow        %s\n", json_string_value(json_object_get(f, "allow")));
	printf("variables    %s<section>.<key>\n",
	       json_string_value(json_object_get(f, "env_prefix")));
	printf("revision     %" JSON_INTEGER_FORMAT "\n",
	       json_integer_value(json_object_get(f, "revision")));
	printf("last change  %s %s\n", json_string_value(json_object_get(f, "last")) ?: "-", when);
	json_t *refused = json_object_get(f, "refused");
	size_t i;
	json_t *e;
	if (json_array_size(refused) > 0)
		printf("refused (nothing of that batch was applied)\n");
	json_array_foreach(refused, i, e)
	{
		printf("  %s: %s\n", json_string_value(json_object_get(e, "var")),
		       json_string_value(json_object_get(e, "why")));
	}
	const char *text = json_string_value(json_object_get(f, "text"));
	printf("overlay      %s\n", json_string_value(json_object_get(f, "overlay")) ?: "-");
	if (text)
		fputs(text, stdout);
	else
		printf("  (none yet)\n");
out:
	json_decref(rsp);
	return r;
}

/* ---- queue ---------------------------------------------------------------------- */

static int run_queue(struct cli *cli, int argc, char **argv)
{
	json_t *rsp = NULL;
	if (!no_args(cli, argc, argv))
		return CLI_USAGE;
	int r = call(cli, json_pack("{s:s}", "cmd", "queue"), &rsp);
	if (r != CLI_OK || cli->json)
		goto out;
	json_t *files = json_object_get(rsp, "files");
	if (!json_is_array(files) || json_array_size(files) == 0) {
		printf("the queue is empty\n");
		goto out;
	}
	int w = 4;
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f)
	{
		const char *name = json_string_value(json_object_get(f, "file"));
		if (name && (int)strlen(name) > w)
			w = (int)strlen(name);
	}
	printf("%-*s %8s %10s  %s\n", w, "FILE", "COUNT", "BYTES", "OLDEST");
	json_array_foreach(files, i, f)
	{
		char count[32], bytes[32], oldest[64];
		const char *name = json_string_value(json_object_get(f, "file"));
		fmt_value(json_object_get(f, "count"), count, sizeof(count));
		fmt_bytes(json_object_get(f, "bytes"), bytes, sizeof(bytes));
		json_t *ms = json_object_get(f, "oldest_ms");
		fmt_time(ms ? ms : json_object_get(f, "oldest"), ms != NULL, oldest,
		         sizeof(oldest));
		printf("%-*s %8s %10s  %s\n", w, name ? name : "?", count, bytes, oldest);
	}
out:
	json_decref(rsp);
	return r;
}

/* ---- send ----------------------------------------------------------------------- */

/* A JSON object from text, or NULL with a message printed. */
static json_t *parse_object(struct cli *cli, const char *what, const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
	if (!j) {
		fprintf(stderr, "%s: %s is not valid JSON: %s (line %d, column %d)\n", cli->prog,
		        what, e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		fprintf(stderr, "%s: %s must be a JSON object ({...})\n", cli->prog, what);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The text of arg, or all of stdin for "-". Caller frees. */
static char *arg_text(struct cli *cli, const char *arg)
{
	if (strcmp(arg, "-") != 0) {
		if (strlen(arg) > CLI_MAX_BODY) {
			fprintf(stderr, "%s: JSON too large (max %d bytes)\n", cli->prog,
			        CLI_MAX_BODY);
			return NULL;
		}
		return strdup(arg);
	}
	size_t len;
	char *t = cli_read_all(NULL, CLI_MAX_BODY, &len);
	if (!t)
		fprintf(stderr, "%s: reading stdin: %s\n", cli->prog,
		        errno == EFBIG ? "too large (max 60 KiB)" : strerror(errno));
	return t;
}

static int run_send(struct cli *cli, int argc, char **argv)
{
	json_t *body = NULL, *rsp = NULL;
	char *text = NULL;
	int r = CLI_USAGE;
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s send NOTEFILE [JSON|-]\n", cli->prog);
		return CLI_USAGE;
	}
	const char *file = argv[1];
	const char *why = NULL;
	if (ngw_notefile_check_out(file, &why) < 0) {
		fprintf(stderr,
		        "%s: '%s' is not an outbound notefile (letters, digits, '_', '-', '.'; "
		        "ending .qo, .qos, .db or .dbs): %s\n",
		        cli->prog, file, why);
		return CLI_USAGE;
	}
	if (argc == 3) {
		text = arg_text(cli, argv[2]);
		if (!text)
			goto out;
		body = parse_object(cli, "the note body", text);
		if (!body)
			goto out;
	} else {
		body = json_object(); /* a note without a body */
	}
	r = call(cli, json_pack("{s:s,s:s,s:O}", "cmd", "send", "file", file, "body", body), &rsp);
	if (r == CLI_OK && !cli->json) {
		json_t *id = json_object_get(rsp, "id");
		if (json_is_integer(id))
			printf("queued for %s (id %" JSON_INTEGER_FORMAT ")\n", file,
			       json_integer_value(id));
		else
			printf("queued for %s\n", file);
	}
out:
	json_decref(body);
	json_decref(rsp);
	free(text);
	return r;
}

/* ---- req ------------------------------------------------------------------------ */

static int run_req(struct cli *cli, int argc, char **argv)
{
	json_t *req = NULL, *rsp = NULL;
	char *text = NULL;
	int r = CLI_USAGE;
	if (argc != 2) {
		fprintf(stderr, "usage: %s req JSON|REQUEST-NAME|-\n", cli->prog);
		return CLI_USAGE;
	}
	const char *a = argv[1];
	if (a[0] == '{' || strcmp(a, "-") == 0) {
		text = arg_text(cli, a);
		if (!text || !(req = parse_object(cli, "the request", text)))
			goto out;
	} else {
		/* a bare name is a request without arguments: "card.version" */
		req = json_pack("{s:s}", "req", a);
	}
	if (!json_is_string(json_object_get(req, "req")) &&
	    !json_is_string(json_object_get(req, "cmd"))) {
		fprintf(stderr, "%s: a Notecard request needs \"req\" (or \"cmd\")\n", cli->prog);
		goto out;
	}
	r = call(cli, json_pack("{s:s,s:O}", "cmd", "req", "req", req), &rsp);
	if (r != CLI_OK)
		goto out;
	json_t *card = card_response(rsp);
	if (!cli->json)
		cli_print_json(card ? card : json_null());
	const char *err = json_string_value(json_object_get(card, "err"));
	if (err) {
		fprintf(stderr, "%s: the Notecard said: %s\n", cli->prog, err);
		r = CLI_REFUSED;
	}
out:
	json_decref(req);
	json_decref(rsp);
	free(text);
	return r;
}

/* ---- sync ----------------------------------------------------------------------- */

static int run_sync(struct cli *cli, int argc, char **argv)
{
	json_t *rsp = NULL;
	if (!no_args(cli, argc, argv))
		return CLI_USAGE;
	int r = call(cli, json_pack("{s:s}", "cmd", "sync"), &rsp);
	if (r == CLI_OK) {
		const char *err = json_string_value(json_object_get(card_response(rsp), "err"));
		if (err) {
			fprintf(stderr, "%s: the Notecard said: %s\n", cli->prog, err);
			r = CLI_REFUSED;
		} else if (!cli->json) {
			printf("sync requested\n");
		}
	}
	json_decref(rsp);
	return r;
}

/* ---- store salvage --------------------------------------------------------------- */

static int run_store(struct cli *cli, int argc, char **argv)
{
	char abs[PATH_MAX];
	json_t *rsp = NULL;
	if (argc != 3 || strcmp(argv[1], "salvage") != 0) {
		fprintf(stderr, "usage: %s store salvage FILE\n", cli->prog);
		return CLI_USAGE;
	}
	if (!realpath(argv[2], abs)) {
		fprintf(stderr, "%s: %s: %s\n", cli->prog, argv[2], strerror(errno));
		return CLI_USAGE;
	}
	int r = call(cli, json_pack("{s:s,s:s}", "cmd", "salvage", "file", abs), &rsp);
	if (r == CLI_OK && !cli->json)
		printf("re-queued %lld note(s) from %s\n",
		       (long long)json_integer_value(json_object_get(rsp, "requeued")), abs);
	json_decref(rsp);
	return r;
}

/* ---- audit ---------------------------------------------------------------------- */

static int run_audit(struct cli *cli, int argc, char **argv)
{
	long limit = 50;
	json_t *rsp = NULL;
	for (int i = 1; i < argc; i++) {
		char *end;
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			limit = strtol(argv[++i], &end, 10);
			if (*end || limit < 1 || limit > 100000) {
				fprintf(stderr, "%s: -n wants a count from 1 to 100000\n",
				        cli->prog);
				return CLI_USAGE;
			}
		} else {
			fprintf(stderr, "usage: %s audit [-n COUNT]\n", cli->prog);
			return CLI_USAGE;
		}
	}
	int r = call(cli, json_pack("{s:s,s:I}", "cmd", "audit", "limit", (json_int_t)limit), &rsp);
	if (r != CLI_OK || cli->json)
		goto out;
	json_t *entries = json_object_get(rsp, "audit");
	if (!entries)
		entries = json_object_get(rsp, "entries");
	if (!json_is_array(entries) || json_array_size(entries) == 0) {
		printf("the audit log is empty\n");
		goto out;
	}
	size_t i;
	json_t *e;
	int wa = 5, wc = 6;
	json_array_foreach(entries, i, e)
	{
		const char *a = json_string_value(json_object_get(e, "actor"));
		const char *c = json_string_value(json_object_get(e, "action"));
		if (a && (int)strlen(a) > wa)
			wa = (int)strlen(a);
		if (c && (int)strlen(c) > wc)
			wc = (int)strlen(c);
	}
	printf("%-20s  %-*s  %-*s  %s\n", "TIME", wa, "ACTOR", wc, "ACTION", "DETAIL");
	json_array_foreach(entries, i, e)
	{
		char when[32] = "-", actor[256], action[128], detail[1024];
		json_t *t = json_object_get(e, "time_ms");
		double div = 1000;
		if (!t) {
			t = json_object_get(e, "time");
			div = 1;
		}
		if (json_is_number(t)) {
			time_t tt = (time_t)(json_number_value(t) / div);
			struct tm tm;
			if (gmtime_r(&tt, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
		}
		fmt_value(json_object_get(e, "actor"), actor, sizeof(actor));
		fmt_value(json_object_get(e, "action"), action, sizeof(action));
		json_t *d = json_object_get(e, "detail");
		fmt_value(d ? d : json_null(), detail, sizeof(detail));
		printf("%-20s  %-*s  %-*s  %s\n", when, wa, actor, wc, action, detail);
	}
out:
	json_decref(rsp);
	return r;
}

const struct cli_cmd cli_cmds_core[] = {
    {"status", "", "daemon, Notecard, hub, store and plugins at a glance", run_status},
    {"queue", "", "what waits in the store, per notefile, oldest first", run_queue},
    {"send", "NOTEFILE [JSON|-]", "queue one note (body from JSON, stdin, or empty)", run_send},
    {"req", "JSON|NAME|-", "one raw Notecard request (admin group)", run_req},
    {"sync", "", "ask the Notecard to sync now (admin group)", run_sync},
    {"audit", "[-n COUNT]", "the audit log: time, actor, change", run_audit},
    {"fleet", "", "configuration from Notehub: the overlay, what was refused and why", run_fleet},
    {"store", "salvage FILE", "re-queue the notes readable from a store file (admin group)",
     run_store},
    {NULL, NULL, NULL, NULL},
};
