/* The notefile rules, in the one place both the daemon and plugins read them:
 * which suffixes carry notes up (.qo .qos .db .dbs) and down (.qi .qis .db .dbs),
 * which are queues and which databases, what characters a name may hold, how long
 * it may be, and that names starting with '_' are the Notecard's own (system
 * notefiles such as _env.dbs, _health.qo) that no producer may write.
 * Header-only, so a plugin needs nothing but this file to follow them. */
#ifndef NOTEGW_NOTEFILE_H
#define NOTEGW_NOTEFILE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest notefile name accepted, in bytes. */
#define NGW_NOTEFILE_MAX 64

/* A letter, digit, '-', '_' or '.'. */
static inline bool ngw_notefile_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* Does name end in sfx with at least one character before it? */
static inline bool ngw_notefile_ends(const char *name, const char *sfx)
{
	size_t n = strlen(name), k = strlen(sfx);
	return n > k && strcmp(name + n - k, sfx) == 0;
}

/* A queue the host sends up: .qo, or .qos (sealed on the card). */
static inline bool ngw_notefile_is_queue_out(const char *name)
{
	return ngw_notefile_ends(name, ".qo") || ngw_notefile_ends(name, ".qos");
}

/* A queue Notehub sends down: .qi, or .qis (sealed). */
static inline bool ngw_notefile_is_queue_in(const char *name)
{
	return ngw_notefile_ends(name, ".qi") || ngw_notefile_ends(name, ".qis");
}

/* A database notefile, synced both ways: .db, or .dbs (sealed). */
static inline bool ngw_notefile_is_db(const char *name)
{
	return ngw_notefile_ends(name, ".db") || ngw_notefile_ends(name, ".dbs");
}

/* The suffix of a notefile notes can go up in / come down in (no name check). */
static inline bool ngw_notefile_suffix_out(const char *name)
{
	return ngw_notefile_is_queue_out(name) || ngw_notefile_is_db(name);
}

static inline bool ngw_notefile_suffix_in(const char *name)
{
	return ngw_notefile_is_queue_in(name) || ngw_notefile_is_db(name);
}

/* Can a producer queue notes for name? 0, or -EINVAL with *why a static reason. */
static inline int ngw_notefile_check_out(const char *name, const char **why)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0) {
		*why = "notefile name missing";
		return -EINVAL;
	}
	if (n > NGW_NOTEFILE_MAX) {
		*why = "notefile name longer than 64 characters";
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (!ngw_notefile_char_ok(name[i])) {
			*why = "notefile name may only hold letters, digits, '-', '_' and '.'";
			return -EINVAL;
		}
	if (!ngw_notefile_suffix_out(name)) {
		*why = "notefile must end in .qo, .qos, .db or .dbs";
		return -EINVAL;
	}
	if (name[0] == '_') {
		*why = "notefile names starting with '_' are the Notecard's own (system notefiles)";
		return -EINVAL;
	}
	return 0;
}

static inline bool ngw_notefile_is_out(const char *name)
{
	const char *why;
	return ngw_notefile_check_out(name, &why) == 0;
}

#ifdef __cplusplus
}
#endif
#endif
