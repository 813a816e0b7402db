/* cfg_core.c: the core's own configuration: the tables of [daemon], [notecard], [hub],
 * [store], [control], [crypto], [update] and [notefile.*], their value checks and the
 * cross-key checks, bound through cfg_bind.c into struct cfg. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cfg-private.h"
#include "log.h"
#include "notegw/notefile.h"
#include "util.h"

#define CFG_FLEET_MAX_PATTERN 128

/* ---- the core's sections -------------------------------------------------------- */

const char *const cfg_core_sections[] = {"daemon",  "notecard",    "hub",    "store",
                                         "control", "crypto",      "update", "fleet",
                                         "health",  "notefile.**", NULL};

/* hub.set also knows "dfu" and "dfu-completed": transient states for a host MCU's
 * firmware update, not a mode to keep a gateway in, so they are not offered. */
const char *const cfg_hub_modes[] = {"periodic", "continuous", "minimum", "off", NULL};
static const char *const transports[] = {"i2c", "serial", NULL};
static const char *const when_full[] = {"drop-oldest", "refuse-new", NULL};
static const char *const uplinks[] = {"off", "host", "notecard", NULL};
static const char *const off_on[] = {"off", "on", NULL};

static int check_log_level(const char *v, char *err, size_t errlen)
{
	if (log_level_from_name(v) >= 0)
		return 0;
	snprintf(err, errlen, "'%s' is not one of: debug, info, notice, warning, err", v);
	return -EINVAL;
}

static int check_abs_path(const char *v, char *err, size_t errlen)
{
	if (v[0] == '/' && strlen(v) < PATH_MAX)
		return 0;
	snprintf(err, errlen, "'%s' is not an absolute path", v);
	return -EINVAL;
}

static int check_socket_path(const char *v, char *err, size_t errlen)
{
	if (check_abs_path(v, err, errlen) < 0)
		return -EINVAL;
	if (strlen(v) < sizeof(((struct sockaddr_un *)0)->sun_path))
		return 0;
	snprintf(err, errlen, "path too long for a Unix socket (max %zu bytes)",
	         sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	return -EINVAL;
}

/* "gpiochip0:17" or "/dev/gpiochip0:17": a chip name or path, ':' and a line offset. */
static int check_attn(const char *v, char *err, size_t errlen)
{
	const char *colon = strrchr(v, ':');
	bool ok = colon && colon > v && colon[1] != '\0' && strlen(colon + 1) <= 5;
	for (const char *c = v; ok && c < colon; c++)
		ok = isalnum((unsigned char)*c) || *c == '_' || *c == '-' || *c == '.' || *c == '/';
	for (const char *c = colon ? colon + 1 : v; ok && *c; c++)
		ok = isdigit((unsigned char)*c);
	if (ok && strtoul(colon + 1, NULL, 10) <= 65535) /* at most 5 digits, checked above */
		return 0;
	snprintf(err, errlen, "'%s' is not CHIP:LINE (e.g. gpiochip0:17)", v);
	return -EINVAL;
}

static int check_baud(const char *v, char *err, size_t errlen)
{
	static const long long rates[] = {1200,  2400,   4800,   9600,   19200, 38400,
	                                  57600, 115200, 230400, 460800, 921600};
	long long b;
	if (cfg_parse_int(v, &b) == 0)
		for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
			if (rates[i] == b)
				return 0;
	snprintf(err, errlen,
	         "'%s' is not a standard baud rate (1200..921600; 9600 for the "
	         "Notecard's UART)",
	         v);
	return -EINVAL;
}

static int check_template(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "off") == 0 || strcmp(v, "auto") == 0 || (v[0] == '/' && v[1]))
		return 0;
	snprintf(err, errlen, "'%s' is not off, auto or an absolute path", v);
	return -EINVAL;
}

/* ---- the fleet's rules ------------------------------------------------------------ */

/* Sections Notehub may never set, whatever [fleet] allow says. */
static const struct {
	const char *section;
	const char *why;
} never_sections[] = {
    {"control", "the control socket's access is set on the gateway only"},
    {"crypto", "keys and encryption are set on the gateway only"},
    {"fleet", "the fleet's own rules are set on the gateway only"},
};

/* Keys (the last component) Notehub may never set in any section: each names a
 * path, an identity, an address or something that widens access. */
static const char *const never_keys[] = {
    "host",         "port",     "url",        "server",       "server_unit", "insecure",
    "raw_requests", "writable", "username",   "client_id",    "tls",         "prefix",
    "enabled",      "encrypt",  "group",      "admin_group",  "sn",          "product",
    "transport",    "address",  "plugin_dir", "state_dir",    "path",        "socket",
    "device",       "attn",     "spool",      "trusted_keys", "allow",       NULL};
static const char *const never_suffixes[] = {"_file", "_dir", "_key", "_keys", "_socket", NULL};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

const char *cfg_fleet_forbidden(const char *name, const char *value)
{
	const char *dot = strrchr(name, '.');
	const char *key = dot ? dot + 1 : name;
	for (size_t i = 0; i < sizeof(never_sections) / sizeof(never_sections[0]); i++) {
		size_t k = strlen(never_sections[i].section);
		if (strncmp(name, never_sections[i].section, k) == 0 &&
		    (name[k] == '.' || name[k] == '\0'))
			return never_sections[i].why;
	}
	for (size_t i = 0; never_keys[i]; i++)
		if (strcmp(key, never_keys[i]) == 0)
			return "that key names a path, an identity or an address, or widens "
			       "access: "
			       "set on the gateway only";
	for (size_t i = 0; never_suffixes[i]; i++)
		if (ends_with(key, never_suffixes[i]))
			return "that key names a path or a key: set on the gateway only";
	if (value && (value[0] == '/' || value[0] == '~' || strncmp(value, "./", 2) == 0 ||
	              strncmp(value, "../", 3) == 0 || strstr(value, "://")))
		return "a path or an address is set on the gateway only";
	return NULL;
}

/* One allow pattern (len bytes of p) against name. */
static bool allow_one(const char *p, size_t len, const char *name)
{
	char pat[CFG_FLEET_MAX_PATTERN + 4];
	if (len == 0 || len > CFG_FLEET_MAX_PATTERN)
		return false;
	memcpy(pat, p, len);
	pat[len] = '\0';
	if (len >= 2 && strcmp(pat + len - 2, ".*") == 0) {
		/* ".*" at the end: one or more components */
		pat[len - 1] = '*';
		pat[len] = '*';
		pat[len + 1] = '\0';
	}
	return cfg_pattern_match(pat, name);
}

bool cfg_fleet_allowed(const char *allow, const char *name)
{
	for (const char *p = allow; p && *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",");
		size_t t = n;
		while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
			t--;
		if (t > 0 && allow_one(p, t, name))
			return true;
		p += n;
	}
	return false;
}

/* [fleet] allow: comma-separated patterns of name characters, '.' and '*', none of
 * them reaching a section Notehub may never set. */
static int check_allow(const char *v, char *err, size_t errlen)
{
	for (const char *p = v; *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",");
		size_t t = n;
		while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
			t--;
		if (t == 0) {
			p += n;
			continue;
		}
		bool ok = t <= CFG_FLEET_MAX_PATTERN && p[0] != '.' && p[t - 1] != '.';
		for (size_t i = 0; ok && i < t; i++)
			ok = isalnum((unsigned char)p[i]) || strchr("_-.*", p[i]);
		if (!ok) {
			snprintf(
			    err, errlen,
			    "'%.*s' is not a pattern (SECTION.KEY; '*' for one component, a final "
			    "'.*' for any below)",
			    (int)t, p);
			return -EINVAL;
		}
		for (size_t i = 0; i < sizeof(never_sections) / sizeof(never_sections[0]); i++) {
			const char *sec = never_sections[i].section;
			size_t k = strlen(sec);
			if (strncmp(p, sec, k) == 0 && (t == k || p[k] == '.')) {
				snprintf(err, errlen, "'%.*s' can never be allowed: %s", (int)t, p,
				         never_sections[i].why);
				return -EINVAL;
			}
		}
		p += n;
	}
	return 0;
}

static int check_env_prefix(const char *v, char *err, size_t errlen)
{
	bool ok = strlen(v) <= 32;
	for (const char *c = v; ok && *c; c++)
		ok = isalnum((unsigned char)*c) || strchr("_-.", *c);
	if (ok)
		return 0;
	snprintf(err, errlen, "'%s' is not a prefix (letters, digits, '_', '-', '.'; 32 at most)",
	         v);
	return -EINVAL;
}

static int check_outbound_notefile(const char *v, char *err, size_t errlen)
{
	if (notefile_is_outbound(v))
		return 0;
	snprintf(err, errlen,
	         "'%s' is not an outbound notefile (letters, digits, '_', '-', '.', ending in "
	         ".qo, .qos, .db or .dbs)",
	         v);
	return -EINVAL;
}

int cfg_fleet_overlay_path(const struct cfg_doc *doc, char *buf, size_t len)
{
	const char *allow = cfg_doc_value(doc, "fleet", "allow");
	const char *path = cfg_doc_value(doc, "fleet", "overlay");
	if (!allow || !*allow)
		return -ENOENT;
	if (path && *path)
		return path[0] == '/' && xsnprintf(buf, len, "%s", path) >= 0 ? 0 : -EINVAL;
	const char *dir = cfg_doc_value(doc, "daemon", "state_dir");
	if (!dir || !*dir)
		dir = LOCALSTATEDIR "/lib/notegw";
	return dir[0] == '/' && xsnprintf(buf, len, "%s/fleet.conf", dir) >= 0 ? 0 : -EINVAL;
}

int cfg_fleet_read_overlay(struct cfg_doc *doc, const char *path, struct cfg_diag *diag)
{
	char buf[PATH_MAX];
	const char *allow = cfg_doc_value(doc, "fleet", "allow");
	if (!path) {
		if (cfg_fleet_overlay_path(doc, buf, sizeof(buf)) < 0)
			return 0; /* off, or a bad path the binder reports */
		path = buf;
	}
	size_t before = doc->n_files;
	int r = cfg_doc_add_overlay(doc, path, diag);
	if (r < 0 || doc->n_files == before)
		return r;
	const char *file = doc->files[before];
	for (size_t i = 0; i < doc->n; i++) {
		const struct cfg_section *sec = doc->s[i];
		for (size_t j = 0; j < sec->n; j++) {
			const struct cfg_entry *e = &sec->e[j];
			char name[2 * 130];
			if (e->file != file)
				continue;
			if (xsnprintf(name, sizeof(name), "%s.%s", sec->name, e->key) < 0)
				continue; /* names are at most 128 bytes each */
			const char *why = cfg_fleet_forbidden(name, e->value);
			if (why)
				cfg_diag_add(diag, file, e->line, "%s: %s", name, why);
			else if (!cfg_fleet_allowed(allow, name))
				cfg_diag_add(diag, file, e->line, "%s: not in [fleet] allow", name);
			else
				continue;
			doc->errors++;
		}
	}
	return 0;
}

#define K(S, name, type, def, min, max, choices, field, check, req)                                \
	{                                                                                          \
		name, type, def, min, max, choices, offsetof(struct S, field), check, req          \
	}

static const struct ngw_cfg_key daemon_keys[] = {
    NGW_CFG_KEY(struct cfg_daemon, "plugin_dir", NGW_CFG_STR, PLUGINDIR, plugin_dir,
                .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_daemon, "state_dir", NGW_CFG_STR, LOCALSTATEDIR "/lib/notegw", state_dir,
                .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_daemon, "log_level", NGW_CFG_STR, "info", log_level,
                .check = check_log_level),
    NGW_CFG_KEY(struct cfg_daemon, "watchdog", NGW_CFG_DURATION, "0", watchdog_ms,
                .max = 3600 * 1000),
    NGW_CFG_KEY(struct cfg_daemon, "metrics_file", NGW_CFG_STR, NULL, metrics_file,
                .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_daemon, "chrony_socket", NGW_CFG_STR, NULL, chrony_socket,
                .check = check_socket_path),
};

static const struct ngw_cfg_key notecard_keys[] = {
    NGW_CFG_KEY(struct cfg_notecard, "transport", NGW_CFG_ENUM, "i2c", transport,
                .choices = transports),
    NGW_CFG_KEY(struct cfg_notecard, "device", NGW_CFG_STR, "/dev/i2c-1", device,
                .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_notecard, "address", NGW_CFG_INT, "0x17", address, .min = 0x08,
                .max = 0x77),
    NGW_CFG_KEY(struct cfg_notecard, "baud", NGW_CFG_INT, "9600", baud, .check = check_baud),
    NGW_CFG_KEY(struct cfg_notecard, "attn", NGW_CFG_STR, NULL, attn, .check = check_attn),
    NGW_CFG_KEY(struct cfg_notecard, "poll_interval", NGW_CFG_DURATION, "5s", poll_ms, .min = 100,
                .max = 24 * 3600 * 1000),
    NGW_CFG_KEY(struct cfg_notecard, "timing_scale", NGW_CFG_INT, "100", timing_scale_pct, .min = 1,
                .max = 1000),
};

static const struct ngw_cfg_key hub_keys[] = {
    NGW_CFG_KEY(struct cfg_hub, "product", NGW_CFG_STR, NULL, product),
    NGW_CFG_KEY(struct cfg_hub, "mode", NGW_CFG_ENUM, NULL, mode, .choices = cfg_hub_modes),
    /* minutes; -1 (the default) leaves the card's setting alone */
    NGW_CFG_KEY(struct cfg_hub, "outbound", NGW_CFG_INT, "-1", outbound, .max = 525600),
    NGW_CFG_KEY(struct cfg_hub, "inbound", NGW_CFG_INT, "-1", inbound, .max = 525600),
    NGW_CFG_KEY(struct cfg_hub, "sn", NGW_CFG_STR, NULL, sn),
};

static const struct ngw_cfg_key store_keys[] = {
    NGW_CFG_KEY(struct cfg_store, "path", NGW_CFG_STR, LOCALSTATEDIR "/lib/notegw/store.db", path,
                .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_store, "max_size", NGW_CFG_SIZE, "256M", max_size, .min = 64 * 1024,
                .max = 1LL << 40),
    NGW_CFG_KEY(struct cfg_store, "when_full", NGW_CFG_ENUM, "drop-oldest", when_full,
                .choices = when_full),
    NGW_CFG_KEY(struct cfg_store, "commit_delay", NGW_CFG_DURATION, "5ms", commit_delay_ms,
                .max = 1000),
    NGW_CFG_KEY(struct cfg_store, "card_max_pending", NGW_CFG_INT, "0", card_max_pending, .min = 0,
                .max = 1000),
};

static const struct ngw_cfg_key control_keys[] = {
    NGW_CFG_KEY(struct cfg_control, "socket", NGW_CFG_STR, "/run/notegw/control.sock", socket,
                .check = check_socket_path),
    NGW_CFG_KEY(struct cfg_control, "group", NGW_CFG_STR, "notegw", group),
    NGW_CFG_KEY(struct cfg_control, "admin_group", NGW_CFG_STR, "notegw-admin", admin_group),
};

static const struct ngw_cfg_key crypto_keys[] = {
    NGW_CFG_KEY(struct cfg_crypto, "uplink", NGW_CFG_ENUM, "off", uplink, .choices = uplinks),
    NGW_CFG_KEY(struct cfg_crypto, "public_key", NGW_CFG_STR, NULL, public_key,
                .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_crypto, "private_key", NGW_CFG_STR, NULL, private_key,
                .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_crypto, "key_name", NGW_CFG_STR, NULL, key_name),
};

static const struct ngw_cfg_key update_keys[] = {
    NGW_CFG_KEY(struct cfg_update, "enabled", NGW_CFG_BOOL, "true", enabled),
    NGW_CFG_KEY(struct cfg_update, "interval", NGW_CFG_DURATION, "1h", interval_ms, .min = 1000,
                .max = 7 * 24 * 3600 * 1000LL),
    NGW_CFG_KEY(struct cfg_update, "trusted_keys", NGW_CFG_STR,
                SYSCONFDIR "/notegw/trusted-update-keys", trusted_dir, .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_update, "spool", NGW_CFG_STR, LOCALSTATEDIR "/lib/notegw/update",
                spool_dir, .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_update, "auto_apply", NGW_CFG_BOOL, "true", auto_apply),
    /* dfu.get returns at most 8192 bytes per request in Blues' host libraries */
    NGW_CFG_KEY(struct cfg_update, "chunk", NGW_CFG_SIZE, "8K", chunk, .min = 256, .max = 8192),
};

static const struct ngw_cfg_key fleet_keys[] = {
    NGW_CFG_KEY(struct cfg_fleet, "env_prefix", NGW_CFG_STR, "notegw.", env_prefix,
                .check = check_env_prefix),
    NGW_CFG_KEY(struct cfg_fleet, "allow", NGW_CFG_STR, NULL, allow, .check = check_allow),
    NGW_CFG_KEY(struct cfg_fleet, "overlay", NGW_CFG_STR, NULL, overlay, .check = check_abs_path),
    NGW_CFG_KEY(struct cfg_fleet, "notefile", NGW_CFG_STR, "notegw.qo", notefile,
                .check = check_outbound_notefile),
};

static const struct ngw_cfg_key health_keys[] = {
    NGW_CFG_KEY(struct cfg_health, "notefile", NGW_CFG_STR, "health.qo", notefile,
                .check = check_outbound_notefile),
    /* 0 (the default): no health notes */
    NGW_CFG_KEY(struct cfg_health, "interval", NGW_CFG_DURATION, "0", interval_ms,
                .max = 7 * 24 * 3600 * 1000LL),
};

static const struct ngw_cfg_key notefile_keys[] = {
    NGW_CFG_KEY(struct cfg_notefile, "template", NGW_CFG_STR, "off", template_,
                .check = check_template),
    NGW_CFG_KEY(struct cfg_notefile, "encrypt", NGW_CFG_ENUM, NULL, encrypt, .choices = off_on),
    NGW_CFG_KEY(struct cfg_notefile, "urgent", NGW_CFG_BOOL, "false", urgent),
    NGW_CFG_KEY(struct cfg_notefile, "learn", NGW_CFG_INT, "10", learn, .min = 1, .max = 1000),
    NGW_CFG_KEY(struct cfg_notefile, "ntn", NGW_CFG_BOOL, "false", ntn),
};
#undef K

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Report a cross-key problem at the key's line (or the section's, or the file). */
static void cross_err(struct cfg *cfg, struct cfg_diag *diag, const char *section, const char *key,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void cross_err(struct cfg *cfg, struct cfg_diag *diag, const char *section, const char *key,
                      const char *fmt, ...)
{
	char msg[512];
	unsigned line = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *file = cfg_blame(cfg->doc, section, key, &line);
	if (!file)
		file = cfg->main_file;
	cfg_diag_add(diag, file, line, "[%s] %s", section, msg);
}

static int bind_notefiles(struct cfg *cfg, struct cfg_diag *diag)
{
	const char **names = NULL;
	size_t n = cfg_doc_match(cfg->doc, "notefile.**", &names);
	int r = 0;
	if (n == 0) {
		free(names); /* NULL today; freed should cfg_doc_match ever return an empty array */
		return 0;
	}
	cfg->notefiles = calloc(n, sizeof(*cfg->notefiles));
	if (!cfg->notefiles) {
		free(names);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct cfg_notefile *nf = &cfg->notefiles[cfg->n_notefiles++];
		if (cfg_bind(cfg->doc, names[i], notefile_keys, N(notefile_keys), nf, diag) < 0)
			r = -EINVAL;
		nf->name = strdup(names[i] + strlen("notefile."));
		if (!nf->name) {
			r = -ENOMEM;
			continue;
		}
		if (!notefile_is_outbound(nf->name)) {
			cross_err(cfg, diag, names[i], NULL,
			          "'%s' is not an outbound notefile (letters, digits, '_', '-', "
			          "'.', ending in .qo, .qos, .db or .dbs)",
			          nf->name);
			r = -EINVAL;
		}
		if (nf->ntn && nf->template_ && strcmp(nf->template_, "off") == 0) {
			cross_err(cfg, diag, names[i], "ntn",
			          "ntn needs a template (template = auto or a path)");
			r = -EINVAL;
		}
		if (nf->encrypt == CFG_ON && cfg->crypto.uplink == CFG_UPLINK_OFF) {
			cross_err(cfg, diag, names[i], "encrypt",
			          "encrypt = on needs [crypto] uplink = host or notecard");
			r = -EINVAL;
		}
	}
	free(names);
	return r;
}

static int check_crypto(struct cfg *cfg, struct cfg_diag *diag)
{
	int r = 0;
	if (cfg->crypto.uplink == CFG_UPLINK_HOST && !cfg->crypto.public_key) {
		cross_err(cfg, diag, "crypto", "uplink", "uplink = host needs public_key");
		r = -EINVAL;
	}
	if (cfg->crypto.uplink == CFG_UPLINK_NOTECARD && !cfg->crypto.key_name) {
		cross_err(cfg, diag, "crypto", "uplink", "uplink = notecard needs key_name");
		r = -EINVAL;
	}
	return r;
}

struct cfg *cfg_from_doc(struct cfg_doc *doc, const char *file, struct cfg_diag *diag)
{
	struct cfg *cfg = calloc(1, sizeof(*cfg));
	int r = 0;
	if (!cfg)
		return NULL;
	cfg->doc = doc;
	cfg->main_file = strdup(file ? file : "<config>");
	if (!cfg->main_file)
		goto fail;
	for (size_t i = 0; cfg_core_sections[i]; i++)
		cfg_doc_claim(doc, cfg_core_sections[i]);
	static const struct {
		const char *section;
		const struct ngw_cfg_key *keys;
		size_t n;
		size_t offset;
	} core[] = {
	    {"daemon", daemon_keys, N(daemon_keys), offsetof(struct cfg, daemon)},
	    {"notecard", notecard_keys, N(notecard_keys), offsetof(struct cfg, notecard)},
	    {"hub", hub_keys, N(hub_keys), offsetof(struct cfg, hub)},
	    {"store", store_keys, N(store_keys), offsetof(struct cfg, store)},
	    {"control", control_keys, N(control_keys), offsetof(struct cfg, control)},
	    {"crypto", crypto_keys, N(crypto_keys), offsetof(struct cfg, crypto)},
	    {"update", update_keys, N(update_keys), offsetof(struct cfg, update)},
	    {"fleet", fleet_keys, N(fleet_keys), offsetof(struct cfg, fleet)},
	    {"health", health_keys, N(health_keys), offsetof(struct cfg, health)},
	};
	for (size_t i = 0; i < N(core); i++)
		if (cfg_bind(doc, core[i].section, core[i].keys, core[i].n,
		             (char *)cfg + core[i].offset, diag) < 0)
			r = -EINVAL;
	if (check_crypto(cfg, diag) < 0)
		r = -EINVAL;
	if (cfg->health.interval_ms > 0 && cfg->health.interval_ms < 1000) {
		cross_err(cfg, diag, "health", "interval", "interval is 0 (off) or 1s at least");
		r = -EINVAL;
	}
	if (bind_notefiles(cfg, diag) < 0)
		r = -EINVAL;
	if (r < 0 || cfg_doc_errors(doc) > 0)
		goto fail;
	return cfg;
fail:
	cfg->doc = NULL; /* still the caller's */
	cfg_free(cfg);
	return NULL;
}

struct cfg *cfg_load(const char *file, struct cfg_diag *diag)
{
	struct cfg_doc *doc = cfg_doc_load(file, NULL, diag);
	if (!doc)
		return NULL;
	struct cfg *cfg = cfg_from_doc(doc, file, diag);
	if (!cfg)
		cfg_doc_free(doc);
	return cfg;
}

void cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	cfg_free_bound(daemon_keys, N(daemon_keys), &cfg->daemon);
	cfg_free_bound(notecard_keys, N(notecard_keys), &cfg->notecard);
	cfg_free_bound(hub_keys, N(hub_keys), &cfg->hub);
	cfg_free_bound(store_keys, N(store_keys), &cfg->store);
	cfg_free_bound(update_keys, N(update_keys), &cfg->update);
	cfg_free_bound(control_keys, N(control_keys), &cfg->control);
	cfg_free_bound(crypto_keys, N(crypto_keys), &cfg->crypto);
	cfg_free_bound(fleet_keys, N(fleet_keys), &cfg->fleet);
	cfg_free_bound(health_keys, N(health_keys), &cfg->health);
	for (size_t i = 0; i < cfg->n_notefiles; i++) {
		cfg_free_bound(notefile_keys, N(notefile_keys), &cfg->notefiles[i]);
		free(cfg->notefiles[i].name);
	}
	free(cfg->notefiles);
	free(cfg->main_file);
	cfg_doc_free(cfg->doc);
	free(cfg);
}

const struct cfg_notefile *cfg_notefile(const struct cfg *cfg, const char *name)
{
	for (size_t i = 0; cfg && i < cfg->n_notefiles; i++)
		if (cfg->notefiles[i].name && strcmp(cfg->notefiles[i].name, name) == 0)
			return &cfg->notefiles[i];
	return NULL;
}
