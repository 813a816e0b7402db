/* Configuration: INI files (main file + every conf.d/NAME.conf in name order) parsed into a
 * document of sections, then bound to structs through tables of keys (one table per
 * section kind), so every key's type, default and check is declared in one place.
 * Three files, as fluent-bit keeps config_format/, flb_config_map.c and flb_config.c:
 * cfg_doc.c the file format (document, diagnostics, section claims), cfg_bind.c the
 * binder the core and plugins share, cfg_core.c the core's own tables.
 *
 * Syntax: "[section]" (letters, digits, '_', '-', dot-separated components),
 * "key = value", comments from '#' or ';' at the start of a line or after blank
 * space, blank lines; a value may be double-quoted to keep blanks, '#' or ';'.
 * The same section may appear in several files: its keys merge, and a key set in a
 * later file overrides the earlier one. A key given twice in one file is an error.
 * Values: sizes are bytes with optional K/M/G (powers of 1024); durations are
 * integers with ms/s/m/h, a bare number meaning seconds; bools are
 * true/false/yes/no/on/off/1/0; integers are decimal or 0x-hex; an empty value
 * leaves a string key unset. Limits: 4096 bytes a line, 1 MiB a file, 256 conf.d
 * files, 4096 sections, 256 keys a section. */
#ifndef NOTEGW_CFG_H
#define NOTEGW_CFG_H
#include "notegw/plugin.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_DEFAULT_FILE SYSCONFDIR "/notegw/notegw.conf"

struct cfg_doc;     /* parsed text: sections with key/value/file/line */
struct cfg_section; /* one [section] (merged across files)            */

/* ---- the document (cfg_doc.c) ------------------------------------------------------ */

/* Diagnostics collector: every problem as "FILE:LINE: message". */
struct cfg_diag {
	char **msgs;
	size_t n;
};
void cfg_diag_add(struct cfg_diag *d, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void cfg_diag_clear(struct cfg_diag *d);

/* Parse a main file and its conf.d directory (dir may be NULL: derive
 * "<dirname(file)>/conf.d"; "": the main file alone). Returns a document (caller frees with
 * cfg_doc_free) even with errors (in diag), or NULL when the main file cannot be read. */
struct cfg_doc *cfg_doc_load(const char *file, const char *confd, struct cfg_diag *diag);
struct cfg_doc *cfg_doc_parse_string(const char *text, const char *name, struct cfg_diag *diag);
void cfg_doc_free(struct cfg_doc *doc);

/* Sections whose name matches pattern ('*' matches one dot-free component, a final
 * '**' one or more components: "notefile.**" matches "notefile.data.qo"). *out is
 * caller-freed (array only; names borrowed from doc). Returns the count. */
size_t cfg_doc_match(const struct cfg_doc *doc, const char *pattern, const char ***out);
const struct cfg_section *cfg_doc_section(const struct cfg_doc *doc, const char *name);
bool cfg_pattern_match(const char *pattern, const char *name);
/* Read one more file into doc after the others (the fleet overlay): its keys
 * override. A missing file is no error. 0, or -errno (reported in diag). */
int cfg_doc_add_overlay(struct cfg_doc *doc, const char *path, struct cfg_diag *diag);
/* The raw text of key in section (the last file's), or NULL. Borrowed from doc. */
const char *cfg_doc_value(const struct cfg_doc *doc, const char *section, const char *key);
/* Call fn for every key of doc read from file (every key when file is NULL), in
 * section order; all strings borrowed for the call. */
typedef void (*cfg_entry_fn)(void *ud, const char *section, const char *key, const char *value,
                             const char *file, unsigned line);
void cfg_doc_foreach(const struct cfg_doc *doc, const char *file, cfg_entry_fn fn, void *ud);
/* Mark sections claimed by an owner; cfg_doc_unclaimed reports the rest. */
void cfg_doc_claim(struct cfg_doc *doc, const char *pattern);
void cfg_doc_report_unclaimed(const struct cfg_doc *doc, struct cfg_diag *diag);

/* Where a key was set ("file", line) for later cross-checks; NULL if unset. key NULL:
 * where the section was opened (first file). The string is borrowed from doc. */
const char *cfg_where(const struct cfg_doc *doc, const char *section, const char *key,
                      unsigned *line);
/* Where to point a problem about key in section (key NULL: the section): the key's
 * line, else the section's header; NULL when the section is absent. Borrowed. */
const char *cfg_blame(const struct cfg_doc *doc, const char *section, const char *key,
                      unsigned *line);
/* Number of syntax errors met while parsing doc. */
size_t cfg_doc_errors(const struct cfg_doc *doc);
/* Write the sections whose names match pattern, with their merged keys (conf.d
 * applied), as an INI text the loader reads back to the same values. 0 or -errno. */
int cfg_doc_write(const struct cfg_doc *doc, const char *pattern, FILE *f);

/* ---- the binder (cfg_bind.c) ------------------------------------------------------- */

/* Bind a section through a key table into out. Reports unknown keys, bad values and
 * missing required keys. Returns 0 or -EINVAL. A missing section yields the defaults.
 * Every key's field is written (defaults first) without freeing what was there:
 * start from a zeroed struct or one already passed to cfg_free_bound. Defaults are
 * not range-checked, so a default outside [min, max] can mean "unset" (-1). An ENUM
 * without a default is -1; a STR without one is NULL. Strings are malloc'd (free
 * with cfg_free_bound) even when binding fails. */
int cfg_bind(const struct cfg_doc *doc, const char *section, const struct ngw_cfg_key *keys,
             size_t n_keys, void *out, struct cfg_diag *diag);
void cfg_free_bound(const struct ngw_cfg_key *keys, size_t n_keys, void *out);

/* Value parsers shared with the CLI and tests. Return 0 or -EINVAL. */
int cfg_parse_size(const char *s, uint64_t *out);
int cfg_parse_duration_ms(const char *s, uint64_t *out);
int cfg_parse_bool(const char *s, bool *out);
/* Decimal (optionally signed) or 0x-hex; a leading zero does not mean octal. */
int cfg_parse_int(const char *s, long long *out);

/* ---- the core's own sections (cfg_core.c) ------------------------------------------ */
enum cfg_transport { CFG_TRANSPORT_I2C, CFG_TRANSPORT_SERIAL };
enum cfg_when_full { CFG_DROP_OLDEST, CFG_REFUSE_NEW };
enum cfg_uplink { CFG_UPLINK_OFF, CFG_UPLINK_HOST, CFG_UPLINK_NOTECARD };
enum cfg_tristate { CFG_INHERIT = -1, CFG_OFF = 0, CFG_ON = 1 };

struct cfg_notecard {
	int transport; /* enum cfg_transport */
	char *device;
	long long address;
	long long baud;
	char *attn;                 /* "gpiochip0:17" or NULL */
	uint64_t poll_ms;           /* inbound poll interval without ATTN */
	long long timing_scale_pct; /* pacing scale for tests/tuning; 100 = note-c, 1..1000 */
};

struct cfg_hub {
	char *product;
	int mode;                    /* index into cfg_hub_modes, -1 when unset */
	long long outbound, inbound; /* minutes, -1 unset */
	char *sn;
};
extern const char *const cfg_hub_modes[];

struct cfg_store {
	char *path;
	uint64_t max_size;
	int when_full;              /* enum cfg_when_full */
	uint64_t commit_delay_ms;   /* group-commit window */
	long long card_max_pending; /* unsynced notes on the card at most; 0: its storage decides */
};

struct cfg_control {
	char *socket;
	char *group;       /* read-only access */
	char *admin_group; /* mutating access  */
};

struct cfg_crypto {
	int uplink; /* enum cfg_uplink */
	char *public_key;
	char *private_key; /* for downlink */
	char *key_name;    /* Notehub env var name for uplink = notecard */
};

struct cfg_notefile {
	char *name;      /* after "notefile." */
	char *template_; /* "off", "auto" or a path */
	int encrypt;     /* enum cfg_tristate */
	bool urgent;
	long long learn; /* notes to learn a template from */
	bool ntn;        /* satellite notefile: templates enforced */
};

struct cfg_daemon {
	char *plugin_dir;
	char *state_dir;
	char *log_level;
	uint64_t watchdog_ms; /* 0: from WATCHDOG_USEC */
	char *metrics_file;   /* Prometheus textfile, or NULL */
	char *chrony_socket;  /* chrony SOCK refclock path, or NULL */
};

struct cfg_update {
	bool enabled;         /* watch dfu.status for host images */
	uint64_t interval_ms; /* how often to ask */
	char *trusted_dir;    /* public keys allowed to sign images */
	char *spool_dir;      /* where images are downloaded (state_dir/update) */
	bool auto_apply;      /* hand a verified image to the installer at once */
	uint64_t chunk;       /* bytes per dfu.get */
};

/* Configuration from Notehub (docs/fleet.md): environment variables named
 * <env_prefix><section>.<key> become the generated overlay, read after conf.d. */
struct cfg_fleet {
	char *env_prefix;       /* "notegw." */
	char *allow;            /* comma-separated patterns; NULL: nothing (off) */
	char *overlay;          /* the generated file; NULL: <state_dir>/fleet.conf */
	char *notefile;         /* refusals and rollbacks reported to Notehub here */
};

/* The health note (docs/fleet.md). */
struct cfg_health {
	char *notefile;
	uint64_t interval_ms;   /* 0: no health notes */
};

struct cfg {
	struct cfg_doc *doc; /* kept for plugins' own sections */
	char *main_file;
	struct cfg_daemon daemon;
	struct cfg_notecard notecard;
	struct cfg_hub hub;
	struct cfg_store store;
	struct cfg_control control;
	struct cfg_crypto crypto;
	struct cfg_update update;
	struct cfg_fleet fleet;
	struct cfg_health health;
	struct cfg_notefile *notefiles;
	size_t n_notefiles;
};

/* Load and validate the core sections (plugins validate theirs; the daemon then
 * calls cfg_doc_report_unclaimed). Returns NULL with diag filled on any error,
 * including syntax errors met while parsing; caller frees with cfg_free.
 * cfg_from_doc: on success doc belongs to the result (cfg->doc); on failure the
 * caller still owns doc, so --check-config can go on validating plugin sections. */
struct cfg *cfg_load(const char *file, struct cfg_diag *diag);
struct cfg *cfg_from_doc(struct cfg_doc *doc, const char *file, struct cfg_diag *diag);
void cfg_free(struct cfg *cfg);
const struct cfg_notefile *cfg_notefile(const struct cfg *cfg, const char *name);
/* Does name ("section.key") match one of the comma-separated patterns of allow
 * (NULL: none)? A pattern is a name, '*' standing for one dot-free component, and
 * a final ".*" for one or more components: "modbus.*" matches
 * "modbus.meter1.interval", "hub.outbound" only itself. */
bool cfg_fleet_allowed(const char *allow, const char *name);
/* Why name ("section.key") can never be set from Notehub, whatever [fleet] allow
 * says (the control socket, keys, the fleet's own rules, paths, anything that
 * widens access), or NULL when it may be allowed. value may be NULL (any value). */
const char *cfg_fleet_forbidden(const char *name, const char *value);
/* Where the fleet overlay of doc is read from: [fleet] overlay, else
 * <[daemon] state_dir>/fleet.conf, from the raw text (the binder checks it). 0 with
 * buf filled; -ENOENT when the fleet is off ([fleet] allow unset); -EINVAL when the
 * path is not absolute or too long. */
int cfg_fleet_overlay_path(const struct cfg_doc *doc, char *buf, size_t len);
/* Read the fleet overlay into doc after everything else: path, or (NULL) where
 * cfg_fleet_overlay_path says; nothing when the fleet is off or the file is
 * missing. Each key it sets that is forbidden or not allowed is a FILE:LINE
 * error. 0, or -errno when it cannot be read (reported). */
int cfg_fleet_read_overlay(struct cfg_doc *doc, const char *path, struct cfg_diag *diag);
/* The core's section patterns, for claiming (cfg_from_doc claims them). NULL-terminated. */
extern const char *const cfg_core_sections[];
#endif
