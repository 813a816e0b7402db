/* What the document reader (cfg_doc.c) shares with the binder (cfg_bind.c) and no one
 * else: a section's entries with the file and line each came from. */
#ifndef NOTEGW_CFG_PRIVATE_H
#define NOTEGW_CFG_PRIVATE_H
#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

struct cfg_entry {
	char *key;
	char *value;
	const char *file; /* interned in the doc */
	unsigned line;
};

struct cfg_section {
	char *name;
	const char *file; /* where it was first opened */
	unsigned line;
	struct cfg_entry *e;
	size_t n, cap;
	bool claimed;
};

struct cfg_doc {
	struct cfg_section **s; /* pointers stay put while the array grows */
	size_t n, cap;
	char **files; /* every file read, for the entries' file names */
	size_t n_files;
	size_t errors;
};

/* The entry for key in s (the last file's value wins at parse time), or NULL. s may be
 * NULL. Borrowed from the document. */
const struct cfg_entry *cfg_section_entry(const struct cfg_section *s, const char *key);
#endif
