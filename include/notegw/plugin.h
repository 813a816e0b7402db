/* notegw plugin interface: what a plugin exports and what the daemon offers it.
 * A plugin is a shared object in $(libdir)/notegw/plugins exporting
 * notegw_plugin_describe(); the daemon refuses one whose ABI major differs. */
#ifndef NOTEGW_PLUGIN_H
#define NOTEGW_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* jansson's object type, for a body a plugin has already parsed (note_put_json);
 * a plugin that uses it includes <jansson.h> itself. */
struct json_t;

#ifdef __cplusplus
extern "C" {
#endif

/* Bump NGW_PLUGIN_ABI_MAJOR for any incompatible change to the structs below; bump
 * the minor when only appending fields at the end of struct ngw_host_api or of struct
 * ngw_plugin_desc. Each struct is owned by one side and read by the other:
 * - struct ngw_host_api is the host's: a plugin built for minor N uses only fields of
 *   minors <= N, and the host refuses a plugin built for a newer minor than its own.
 * - struct ngw_plugin_desc is the plugin's (its own static data): the host reads a
 *   field added in minor N only when the plugin's minor is >= N, so the shorter struct
 *   of an older plugin is never read past; to the host, such a field is absent (NULL).
 * Neither struct is ever reordered or shrunk within a major. */
#define NGW_PLUGIN_ABI_MAJOR 1
#define NGW_PLUGIN_ABI_MINOR 2
#define NGW_PLUGIN_ABI ((NGW_PLUGIN_ABI_MAJOR << 16) | NGW_PLUGIN_ABI_MINOR)

/* ---- configuration map: one row per key of a section ---------------------------- */
enum ngw_cfg_type {
	NGW_CFG_STR,      /* char * (malloc'd, owned by the struct's owner)              */
	NGW_CFG_BOOL,     /* bool: true/false/yes/no/on/off/1/0                           */
	NGW_CFG_INT,      /* long long, within [min, max]                                 */
	NGW_CFG_SIZE,     /* uint64_t bytes; K/M/G suffixes (powers of 1024)              */
	NGW_CFG_DURATION, /* uint64_t milliseconds; ms/s/m/h suffixes                     */
	NGW_CFG_ENUM,     /* int: index into choices[]                                    */
	NGW_CFG_DOUBLE,   /* double, within [min, max]                                    */
};

struct ngw_cfg_key {
	const char *name;
	enum ngw_cfg_type type;
	const char *def;             /* default as text, NULL = unset (STR stays NULL)    */
	long long min, max;          /* INT/SIZE/DURATION/DOUBLE range; both 0 = no range */
	const char *const *choices;  /* ENUM: NULL-terminated list                       */
	size_t offset;               /* offsetof() into the plugin's own struct          */
	/* optional extra check on the raw text; returns 0 or writes a message to err */
	int (*check)(const char *value, char *err, size_t errlen);
	int required;                /* nonzero: key must be present                     */
};

/* One key row, the only way rows are written (core and plugins alike):
 *   NGW_CFG_KEY(struct my_conf, "port", NGW_CFG_INT, "1883", port, .min = 1, .max = 65535)
 * S is the struct the section binds into, field its member; what follows the field
 * is optional designated initialisers (.min, .max, .choices, .check, .required). */
#define NGW_CFG_KEY(S, name_, type_, def_, field, ...)                                             \
	{                                                                                          \
		.name = (name_), .type = (type_), .def = (def_), .offset = offsetof(S, field),     \
		__VA_ARGS__                                                                        \
	}

/* ---- notes ----------------------------------------------------------------------- */
/* An inbound note from Notehub, as committed to the store. Borrowed for the call. */
struct ngw_note {
	int64_t id;              /* store row id: pass to inbound_done()               */
	const char *file;        /* notefile, e.g. "data.qi"                           */
	const char *note;        /* note id for .db files, or NULL                     */
	const char *body;        /* compact JSON object text, or NULL                  */
	const char *payload;     /* base64 text, or NULL                               */
	int64_t time;            /* the note's time (epoch seconds), 0 if unknown      */
};

struct ngw_plugin;

/* Called once the store committed (err = 0) or did not (err < 0) a note; `why` is a
 * readable reason or NULL. Refusals for good: -ENOSPC store full (max_size with
 * refuse-new), -EINVAL bad note, -EMSGSIZE too large. Anything else may pass and the
 * producer should offer the note again later (not acknowledge it): -EAGAIN disk
 * full, -EBUSY, -EIO. */
typedef void (*ngw_put_cb)(void *userdata, int err, const char *why);
/* A Notecard answer to card_request(): err < 0 when no answer came (-ETIMEDOUT, -EIO,
 * -ENODEV); otherwise response is the card's JSON text (borrowed for the call). */
typedef void (*ngw_reply_cb)(void *userdata, int err, const char *response);

/* What the daemon offers a plugin. Fields are only ever appended. */
struct ngw_host_api {
	uint32_t abi;
	sd_event *(*event)(struct ngw_plugin *self);
	void (*log)(struct ngw_plugin *self, int level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	/* Names of config sections matching a pattern ("modbus.*" matches one level,
	 * "modbus.*.*" two). *names is caller-freed (free(names) only; strings borrowed
	 * until reload). Returns the count or a negative errno. */
	int (*cfg_sections)(struct ngw_plugin *self, const char *pattern, const char ***names);
	/* Parse one section into out through keys[] (n_keys rows); defaults applied.
	 * Problems are reported as FILE:LINE: message and make it return -EINVAL.
	 * A missing section yields the defaults. Free with cfg_free(). */
	int (*cfg_bind)(struct ngw_plugin *self, const char *section,
	                const struct ngw_cfg_key *keys, size_t n_keys, void *out);
	void (*cfg_free)(const struct ngw_cfg_key *keys, size_t n_keys, void *out);
	/* Report a config problem for a section/key (used for cross-key checks). */
	void (*cfg_error)(struct ngw_plugin *self, const char *section, const char *key,
	                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

	/* Queue a note for Notehub. body: a JSON object's text (or NULL), payload: bytes
	 * (or NULL). Returns 0 when accepted for commit (cb follows, from the loop) or a
	 * negative errno with *why set to a static reason when refused at once. */
	int (*note_put)(struct ngw_plugin *self, const char *notefile, const char *body,
	                const void *payload, size_t payload_len, ngw_put_cb cb, void *userdata,
	                const char **why);
	/* The same, committed durably before it returns 0: it blocks the loop for a
	 * commit (an fsync), so prefer note_put. No plugin in this tree uses it; the MQTT
	 * plugin holds its PUBACKs until note_put's callback instead. */
	int (*note_put_sync)(struct ngw_plugin *self, const char *notefile, const char *body,
	                     const void *payload, size_t payload_len, const char **why);
	/* Mark an inbound note delivered by this plugin (after its own acknowledgment). */
	int (*inbound_done)(struct ngw_plugin *self, int64_t id);
	/* One raw request to the Notecard; cb is called from the loop. */
	int (*card_request)(struct ngw_plugin *self, const char *request_json,
	                    ngw_reply_cb cb, void *userdata);
	/* The daemon's status as JSON text (caller frees). */
	char *(*status_json)(struct ngw_plugin *self);
	/* The host's idea of the state directory (e.g. /var/lib/notegw). Borrowed. */
	const char *(*state_dir)(struct ngw_plugin *self);
	/* Tell the other plugins something local subscribers may want: topic is a
	 * relative name ("modbus/result", "error"), json an object's text. The MQTT
	 * plugin publishes it under its prefix. */
	void (*emit)(struct ngw_plugin *self, const char *topic, const char *json);

	/* Minor 1. note_put for a delivery the source may repeat: key (key_len bytes,
	 * copied) names the delivery, e.g. an MQTT session, message id and a hash of
	 * the message. A note whose key the store already committed is not queued again:
	 * cb gets 0 and the note keeps the one "_id" it has. The store keeps the newest
	 * keys only (docs/store.md). Use it only when (host->abi & 0xffff) >= 1. */
	int (*note_put_once)(struct ngw_plugin *self, const void *key, size_t key_len,
	                     const char *notefile, const char *body, const void *payload,
	                     size_t payload_len, ngw_put_cb cb, void *userdata, const char **why);

	/* Minor 2. The gateway id the store keeps in its state file: 16 hex digits, the
	 * same across restarts and store repairs, the first half of every note's "_id".
	 * Borrowed until the plugin stops; NULL while no store is open (--check-config).
	 * Use it only when (host->abi & 0xffff) >= 2. */
	const char *(*gateway_id)(struct ngw_plugin *self);
	/* Minor 2. note_put_once (key NULL: note_put) for a body the plugin has already
	 * parsed: body is a jansson object, borrowed for the call, that the host does not
	 * parse again (one parse per body on its way in). Use it only when
	 * (host->abi & 0xffff) >= 2. */
	int (*note_put_json)(struct ngw_plugin *self, const void *key, size_t key_len,
	                     const char *notefile, struct json_t *body, const void *payload,
	                     size_t payload_len, ngw_put_cb cb, void *userdata, const char **why);
	/* Minor 2. Commit every note put so far now, without waiting for the group
	 * commit's delay: for a producer that has nothing more to give until it hears
	 * back (an MQTT client whose broker waits for PUBACKs). The callbacks of those
	 * notes run before it returns. */
	void (*note_flush)(struct ngw_plugin *self);
};

/* A loaded plugin as the plugin sees it; the daemon keeps more behind it. */
struct ngw_plugin {
	const struct ngw_host_api *host;
	void *priv;              /* the plugin's own state                             */
};

/* What a plugin exports, through notegw_plugin_describe(). configure is required;
 * every other callback may be NULL. Fields are only ever appended (see the ABI rule). */
struct ngw_plugin_desc {
	uint32_t abi;                    /* NGW_PLUGIN_ABI the plugin was built against */
	const char *name;                /* "mqtt"                                      */
	const char *description;
	const char *version;
	const char *const *sections;     /* section patterns it owns, NULL-terminated   */
	/* Parse and validate its sections into self->priv; no side effects (also run by
	 * --check-config). Return 0, -EINVAL on config errors (already reported). */
	int (*configure)(struct ngw_plugin *self);
	/* Nonzero when configured but switched off (enabled = false): not started. */
	int (*disabled)(struct ngw_plugin *self);
	int (*start)(struct ngw_plugin *self);   /* open sockets, add loop sources      */
	/* New configuration: configure() has already been run into new_priv. Take it
	 * over (and free the old) or return <0 to keep running with the old. */
	int (*reload)(struct ngw_plugin *self, void *new_priv);
	void (*stop)(struct ngw_plugin *self);   /* drain and close; loop still runs    */
	void (*destroy)(struct ngw_plugin *self);/* free self->priv                     */
	/* An inbound note is in the store; call host->inbound_done once delivered. */
	void (*on_inbound)(struct ngw_plugin *self, const struct ngw_note *note);
	/* Gateway status changed (JSON text, borrowed) or an env var changed. */
	void (*on_status)(struct ngw_plugin *self, const char *status_json);
	void (*on_env)(struct ngw_plugin *self, const char *name, const char *value);
	/* A refused input elsewhere (e.g. a bad Modbus write request) to report. */
	void (*on_error)(struct ngw_plugin *self, const char *source, const char *error);
	/* Something another plugin emitted (see ngw_host_api.emit). */
	void (*on_emit)(struct ngw_plugin *self, const char *from, const char *topic,
	                const char *json);
	/* Counters for `notegw status`: return a JSON object text (caller frees). */
	char *(*stats_json)(struct ngw_plugin *self);
};

/* Exported by every plugin. */
const struct ngw_plugin_desc *notegw_plugin_describe(void);

#ifdef __cplusplus
}
#endif
#endif
