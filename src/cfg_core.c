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

#include "cfg.h"
#include "log.h"
#include "util.h"

/* ---- the core's sections -------------------------------------------------------- */

const char *const cfg_core_sections[] = {"daemon", "notecard", "hub",         "store", "control",
                                         "crypto", "update",   "notefile.**", NULL};

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
	};
	for (size_t i = 0; i < N(core); i++)
		if (cfg_bind(doc, core[i].section, core[i].keys, core[i].n,
		             (char *)cfg + core[i].offset, diag) < 0)
			r = -EINVAL;
	if (check_crypto(cfg, diag) < 0)
		r = -EINVAL;
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
