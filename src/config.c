/* config.c: the INI reader (main file + conf.d) into a document of sections, and the
 * one loop that binds a section through a key table, for the core and the plugins.
 * The core's own tables are at the end. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "cfg.h"
#include "log.h"
#include "util.h"

#define CFG_MAX_LINE 4096
#define CFG_MAX_FILE (1024 * 1024)
#define CFG_MAX_FILES 256
#define CFG_MAX_SECTIONS 4096
#define CFG_MAX_KEYS 256
#define CFG_MAX_NAME 128
#define CFG_MAX_DIAG 500

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

/* ---- diagnostics ---------------------------------------------------------------- */

void cfg_diag_add(struct cfg_diag *d, const char *file, unsigned line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (!d)
		return;
	if (d->n > CFG_MAX_DIAG)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->n == CFG_MAX_DIAG)
		snprintf(msg, sizeof(msg), "too many errors, stopping here");
	char *s;
	if (file && line)
		s = xasprintf("%s:%u: %s", file, line, msg);
	else if (file)
		s = xasprintf("%s: %s", file, msg);
	else
		s = xasprintf("%s", msg);
	char **nm = s ? realloc(d->msgs, (d->n + 1) * sizeof(*nm)) : NULL;
	if (!nm) {
		free(s);
		return;
	}
	d->msgs = nm;
	d->msgs[d->n++] = s;
}

void cfg_diag_clear(struct cfg_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->msgs[i]);
	free(d->msgs);
	d->msgs = NULL;
	d->n = 0;
}

/* ---- the document --------------------------------------------------------------- */

static void section_free(struct cfg_section *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->e[i].key);
		free(s->e[i].value);
	}
	free(s->e);
	free(s->name);
	free(s);
}

void cfg_doc_free(struct cfg_doc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->n; i++)
		section_free(doc->s[i]);
	free(doc->s);
	for (size_t i = 0; i < doc->n_files; i++)
		free(doc->files[i]);
	free(doc->files);
	free(doc);
}

size_t cfg_doc_errors(const struct cfg_doc *doc)
{
	return doc ? doc->errors : 0;
}

static const char *doc_intern_file(struct cfg_doc *doc, const char *name)
{
	char *dup = strdup(name);
	char **nf = dup ? realloc(doc->files, (doc->n_files + 1) * sizeof(*nf)) : NULL;
	if (!nf) {
		free(dup);
		return NULL;
	}
	doc->files = nf;
	doc->files[doc->n_files++] = dup;
	return dup;
}

const struct cfg_section *cfg_doc_section(const struct cfg_doc *doc, const char *name)
{
	if (!doc)
		return NULL;
	for (size_t i = 0; i < doc->n; i++)
		if (strcmp(doc->s[i]->name, name) == 0)
			return doc->s[i];
	return NULL;
}

static const struct cfg_entry *section_entry(const struct cfg_section *s, const char *key)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (strcmp(s->e[i].key, key) == 0)
			return &s->e[i];
	return NULL;
}

/* Parser state for one file. */
struct parse {
	struct cfg_doc *doc;
	struct cfg_diag *diag;
	const char *file;
	unsigned line;
	struct cfg_section *cur;
	bool bad_header; /* keys under a rejected header are not reported again */
};

static void perr(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(struct parse *p, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->doc->errors++;
	cfg_diag_add(p->diag, p->file, p->line, "%s", msg);
}

static bool name_char(char c, bool section)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || (section && c == '.');
}

/* Section names: dot-separated non-empty components of name characters. */
static bool section_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CFG_MAX_NAME || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!name_char(s[i], true))
			return false;
		if (s[i] == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

static bool key_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CFG_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i], false))
			return false;
	return true;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* Cut a comment ('#' or ';' at the start or after a blank) outside double quotes. */
static void cut_comment(char *s)
{
	bool quoted = false;
	for (char *c = s; *c; c++) {
		if (*c == '"')
			quoted = !quoted;
		else if (!quoted && (*c == '#' || *c == ';') &&
		         (c == s || c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			return;
		}
	}
}

static void parse_section_header(struct parse *p, char *s)
{
	char *end = strchr(s, ']');
	p->cur = NULL;
	p->bad_header = true;
	if (!end) {
		perr(p, "missing ']' in section header");
		return;
	}
	*end = '\0';
	char *rest = trim(end + 1);
	if (*rest) {
		perr(p, "unexpected text after section header");
		return;
	}
	char *name = trim(s + 1);
	if (!section_name_ok(name)) {
		perr(p, "bad section name [%s] (letters, digits, '_', '-', components separated "
		        "by '.')",
		     name);
		return;
	}
	for (size_t i = 0; i < p->doc->n; i++)
		if (strcmp(p->doc->s[i]->name, name) == 0) {
			p->cur = p->doc->s[i];
			p->bad_header = false;
			return;
		}
	if (p->doc->n >= CFG_MAX_SECTIONS) {
		perr(p, "too many sections (max %d)", CFG_MAX_SECTIONS);
		return;
	}
	if (p->doc->n == p->doc->cap) {
		size_t nc = p->doc->cap ? p->doc->cap * 2 : 16;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		struct cfg_section **ns = realloc(p->doc->s, nc * sizeof(*ns));
		if (!ns)
			goto nomem;
		p->doc->s = ns;
		p->doc->cap = nc;
	}
	struct cfg_section *sec = calloc(1, sizeof(*sec));
	if (!sec)
		goto nomem;
	sec->name = strdup(name);
	if (!sec->name) {
		free(sec);
		goto nomem;
	}
	sec->file = p->file;
	sec->line = p->line;
	p->doc->s[p->doc->n++] = sec;
	p->cur = sec;
	p->bad_header = false;
	return;
nomem:
	perr(p, "out of memory");
}

static void parse_key_value(struct parse *p, char *s)
{
	char *eq = strchr(s, '=');
	if (!eq) {
		perr(p, "expected 'key = value' or '[section]'");
		return;
	}
	*eq = '\0';
	char *key = trim(s), *value = trim(eq + 1);
	if (!key_name_ok(key)) {
		perr(p, "bad key name '%s'", key);
		return;
	}
	if (!p->cur) {
		if (!p->bad_header)
			perr(p, "key '%s' outside of any section", key);
		return;
	}
	size_t vn = strlen(value);
	if (vn >= 1 && value[0] == '"') {
		if (vn < 2 || value[vn - 1] != '"') {
			perr(p, "unterminated quoted value for '%s'", key);
			return;
		}
		value[vn - 1] = '\0';
		value++;
		if (strchr(value, '"')) {
			perr(p, "stray '\"' in value for '%s'", key);
			return;
		}
	}
	struct cfg_section *sec = p->cur;
	for (size_t i = 0; i < sec->n; i++) {
		struct cfg_entry *e = &sec->e[i];
		if (strcmp(e->key, key) != 0)
			continue;
		if (e->file == p->file) {
			perr(p, "duplicate key '%s' in [%s] (first set at line %u)", key,
			     sec->name, e->line);
			return;
		}
		/* a later file overrides */
		char *nv = strdup(value);
		if (!nv) {
			perr(p, "out of memory");
			return;
		}
		free(e->value);
		e->value = nv;
		e->file = p->file;
		e->line = p->line;
		return;
	}
	if (sec->n >= CFG_MAX_KEYS) {
		perr(p, "too many keys in [%s] (max %d)", sec->name, CFG_MAX_KEYS);
		return;
	}
	if (sec->n == sec->cap) {
		size_t nc = sec->cap ? sec->cap * 2 : 8;
		struct cfg_entry *ne = realloc(sec->e, nc * sizeof(*ne));
		if (!ne) {
			perr(p, "out of memory");
			return;
		}
		sec->e = ne;
		sec->cap = nc;
	}
	struct cfg_entry *e = &sec->e[sec->n];
	e->key = strdup(key);
	e->value = strdup(value);
	if (!e->key || !e->value) {
		free(e->key);
		free(e->value);
		perr(p, "out of memory");
		return;
	}
	e->file = p->file;
	e->line = p->line;
	sec->n++;
}

/* Parse one file's text into doc; text is modified in place. */
static void parse_text(struct cfg_doc *doc, char *text, size_t len, const char *file,
                       struct cfg_diag *diag)
{
	struct parse p = {.doc = doc, .diag = diag, .file = file};
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3;
		len -= 3;
	}
	if (memchr(text, '\0', len)) {
		p.line = 0;
		perr(&p, "file contains a NUL byte");
		return;
	}
	char *s = text, *end = text + len;
	while (s < end) {
		char *nl = memchr(s, '\n', (size_t)(end - s));
		char *eol = nl ? nl : end;
		size_t n = (size_t)(eol - s);
		p.line++;
		if (n > CFG_MAX_LINE) {
			perr(&p, "line too long (max %d bytes)", CFG_MAX_LINE);
			s = nl ? nl + 1 : end;
			continue;
		}
		*eol = '\0';
		if (n > 0 && s[n - 1] == '\r')
			s[n - 1] = '\0';
		char *line = trim(s);
		s = nl ? nl + 1 : end;
		if (*line == '#' || *line == ';' || *line == '\0')
			continue;
		if (*line == '[') {
			cut_comment(line);
			parse_section_header(&p, trim(line));
		} else {
			cut_comment(line);
			parse_key_value(&p, trim(line));
		}
	}
}

static struct cfg_doc *doc_new(void)
{
	return calloc(1, sizeof(struct cfg_doc));
}

struct cfg_doc *cfg_doc_parse_string(const char *text, const char *name, struct cfg_diag *diag)
{
	struct cfg_doc *doc = doc_new();
	size_t len = strlen(text);
	char *copy = malloc(len + 1);
	const char *file = doc ? doc_intern_file(doc, name ? name : "<string>") : NULL;
	if (!doc || !copy || !file) {
		free(copy);
		cfg_doc_free(doc);
		return NULL;
	}
	memcpy(copy, text, len + 1);
	parse_text(doc, copy, len, file, diag);
	free(copy);
	return doc;
}

/* Read and parse one file. Returns 0 or -errno (reported). */
static int doc_add_file(struct cfg_doc *doc, const char *path, struct cfg_diag *diag)
{
	char *text = NULL;
	size_t len = 0;
	int r = read_file(path, CFG_MAX_FILE, &text, &len);
	if (r == -EFBIG || (r == 0 && len > CFG_MAX_FILE)) {
		cfg_diag_add(diag, path, 0, "file too large (max %d bytes)", CFG_MAX_FILE);
		doc->errors++;
		free(text);
		return -EFBIG;
	}
	if (r < 0) {
		cfg_diag_add(diag, path, 0, "cannot read: %s", strerror(-r));
		doc->errors++;
		return r;
	}
	const char *file = doc_intern_file(doc, path);
	if (!file) {
		free(text);
		return -ENOMEM;
	}
	parse_text(doc, text, len, file, diag);
	free(text);
	return 0;
}

static int strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.conf files of a directory, in byte order of their names (not the locale's). */
static void doc_add_dir(struct cfg_doc *doc, const char *dir, struct cfg_diag *diag)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	size_t n = 0;
	if (!d) {
		if (errno != ENOENT) {
			cfg_diag_add(diag, dir, 0, "cannot read directory: %s", strerror(errno));
			doc->errors++;
		}
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		if (n >= CFG_MAX_FILES) {
			cfg_diag_add(diag, dir, 0, "too many .conf files (max %d)", CFG_MAX_FILES);
			doc->errors++;
			break;
		}
		char *path = xasprintf("%s/%s", dir, de->d_name);
		char **nn = path ? realloc(names, (n + 1) * sizeof(*nn)) : NULL;
		if (!nn) {
			free(path);
			break;
		}
		names = nn;
		names[n++] = path;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), strcmp_p);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		/* skip what is not a regular file (a directory named x.conf) */
		if (stat(names[i], &st) == 0 && !S_ISREG(st.st_mode)) {
			free(names[i]);
			continue;
		}
		doc_add_file(doc, names[i], diag);
		free(names[i]);
	}
	free(names);
}

struct cfg_doc *cfg_doc_load(const char *file, const char *confd, struct cfg_diag *diag)
{
	struct cfg_doc *doc = doc_new();
	char *dir = NULL;
	if (!doc)
		return NULL;
	if (doc_add_file(doc, file, diag) < 0) {
		cfg_doc_free(doc);
		return NULL;
	}
	if (!confd) {
		const char *slash = strrchr(file, '/');
		if (slash)
			dir = xasprintf("%.*s/conf.d", (int)(slash - file), file);
		else
			dir = strdup("conf.d");
		if (!dir) {
			cfg_doc_free(doc);
			return NULL;
		}
		confd = dir;
	}
	doc_add_dir(doc, confd, diag);
	free(dir);
	return doc;
}

/* ---- patterns and claims -------------------------------------------------------- */

bool cfg_pattern_match(const char *pattern, const char *name)
{
	const char *p = pattern, *n = name;
	while (*p) {
		if (p[0] == '*' && p[1] == '*' && p[2] == '\0')
			return *n != '\0' && *n != '.';
		if (*p == '*') {
			size_t k = strcspn(n, ".");
			if (k == 0)
				return false;
			n += k;
			p++;
			continue;
		}
		if (*p != *n)
			return false;
		p++;
		n++;
	}
	return *n == '\0';
}

size_t cfg_doc_match(const struct cfg_doc *doc, const char *pattern, const char ***out)
{
	size_t k = 0;
	*out = NULL;
	if (!doc)
		return 0;
	for (size_t i = 0; i < doc->n; i++)
		if (cfg_pattern_match(pattern, doc->s[i]->name))
			k++;
	if (k == 0)
		return 0;
	const char **names = calloc(k, sizeof(*names));
	if (!names)
		return 0;
	k = 0;
	for (size_t i = 0; i < doc->n; i++)
		if (cfg_pattern_match(pattern, doc->s[i]->name))
			names[k++] = doc->s[i]->name;
	*out = names;
	return k;
}

void cfg_doc_claim(struct cfg_doc *doc, const char *pattern)
{
	for (size_t i = 0; doc && i < doc->n; i++)
		if (cfg_pattern_match(pattern, doc->s[i]->name))
			doc->s[i]->claimed = true;
}

void cfg_doc_report_unclaimed(const struct cfg_doc *doc, struct cfg_diag *diag)
{
	for (size_t i = 0; doc && i < doc->n; i++)
		if (!doc->s[i]->claimed)
			cfg_diag_add(diag, doc->s[i]->file, doc->s[i]->line,
			             "unknown section [%s]", doc->s[i]->name);
}

const char *cfg_where(const struct cfg_doc *doc, const char *section, const char *key,
                      unsigned *line)
{
	const struct cfg_section *s = cfg_doc_section(doc, section);
	if (!s)
		return NULL;
	if (!key) {
		if (line)
			*line = s->line;
		return s->file;
	}
	const struct cfg_entry *e = section_entry(s, key);
	if (!e)
		return NULL;
	if (line)
		*line = e->line;
	return e->file;
}

/* ---- value parsers -------------------------------------------------------------- */

/* Unsigned decimal digits only (no sign, no blanks); *end past them. */
static int parse_u64(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *c = s;
	if (!isdigit((unsigned char)*c))
		return -EINVAL;
	for (; isdigit((unsigned char)*c); c++) {
		unsigned d = (unsigned)(*c - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	*end = c;
	return 0;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mul = 1;
	const char *end;
	if (parse_u64(s, &v, &end) < 0)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'K':
	case 'k':
		mul = 1024;
		end++;
		break;
	case 'M':
	case 'm':
		mul = 1024 * 1024;
		end++;
		break;
	case 'G':
	case 'g':
		mul = 1024 * 1024 * 1024;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

int cfg_parse_duration_ms(const char *s, uint64_t *out)
{
	uint64_t v, mul;
	const char *end;
	if (parse_u64(s, &v, &end) < 0)
		return -EINVAL;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mul = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mul = 3600 * 1000;
	else
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Decimal (optionally signed) or 0x-hex; a leading zero does not mean octal. */
static int parse_int(const char *s, long long *out)
{
	const char *c = s;
	bool neg = false;
	int base = 10;
	if (*c == '-' || *c == '+')
		neg = *c++ == '-';
	if (c[0] == '0' && (c[1] == 'x' || c[1] == 'X')) {
		base = 16;
		c += 2;
		if (!isxdigit((unsigned char)*c))
			return -EINVAL;
	} else if (!isdigit((unsigned char)*c)) {
		return -EINVAL;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(c, &end, base);
	if (errno || *end != '\0' || v > (unsigned long long)LLONG_MAX)
		return -EINVAL;
	*out = neg ? -(long long)v : (long long)v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;
	if (!*s)
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end != '\0' || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

/* ---- binding -------------------------------------------------------------------- */

static void choices_text(const char *const *choices, char *buf, size_t cap)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; choices && choices[i]; i++) {
		int n = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", choices[i]);
		if (n < 0 || (size_t)n >= cap - off)
			return;
		off += (size_t)n;
	}
}

static bool has_range(const struct ngw_cfg_key *k)
{
	return k->min != 0 || k->max != 0;
}

/* Parse one value into out + k->offset. Returns 0, or -EINVAL with err written. */
static int bind_value(const struct ngw_cfg_key *k, const char *v, void *out, bool is_default,
                      char *err, size_t errlen)
{
	char *field = (char *)out + k->offset;
	bool range = has_range(k) && !is_default;
	switch (k->type) {
	case NGW_CFG_STR: {
		char *dup = NULL;
		if (v && *v && !(dup = strdup(v))) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		char *old;
		memcpy(&old, field, sizeof(old));
		if (!is_default)
			free(old);
		memcpy(field, &dup, sizeof(dup));
		return 0;
	}
	case NGW_CFG_BOOL: {
		bool b;
		if (cfg_parse_bool(v, &b) < 0) {
			snprintf(err, errlen, "'%s' is not a boolean (true/false, yes/no, on/off)",
			         v);
			return -EINVAL;
		}
		memcpy(field, &b, sizeof(b));
		return 0;
	}
	case NGW_CFG_INT: {
		long long i;
		if (parse_int(v, &i) < 0) {
			snprintf(err, errlen, "'%s' is not an integer", v);
			return -EINVAL;
		}
		if (range && (i < k->min || i > k->max)) {
			snprintf(err, errlen, "%s out of range %lld..%lld", v, k->min, k->max);
			return -EINVAL;
		}
		memcpy(field, &i, sizeof(i));
		return 0;
	}
	case NGW_CFG_SIZE: {
		uint64_t u;
		if (cfg_parse_size(v, &u) < 0) {
			snprintf(err, errlen, "'%s' is not a size (bytes with optional K, M or G)",
			         v);
			return -EINVAL;
		}
		if (range && (u < (uint64_t)k->min || u > (uint64_t)k->max)) {
			snprintf(err, errlen, "%s out of range %lld..%lld bytes", v, k->min,
			         k->max);
			return -EINVAL;
		}
		memcpy(field, &u, sizeof(u));
		return 0;
	}
	case NGW_CFG_DURATION: {
		uint64_t u;
		if (cfg_parse_duration_ms(v, &u) < 0) {
			snprintf(err, errlen,
			         "'%s' is not a duration (integer with ms, s, m or h; bare = "
			         "seconds)",
			         v);
			return -EINVAL;
		}
		if (range && (u < (uint64_t)k->min || u > (uint64_t)k->max)) {
			snprintf(err, errlen, "%s out of range %lldms..%lldms", v, k->min, k->max);
			return -EINVAL;
		}
		memcpy(field, &u, sizeof(u));
		return 0;
	}
	case NGW_CFG_ENUM: {
		for (int i = 0; k->choices && k->choices[i]; i++)
			if (strcasecmp(v, k->choices[i]) == 0) {
				memcpy(field, &i, sizeof(i));
				return 0;
			}
		char list[256];
		choices_text(k->choices, list, sizeof(list));
		snprintf(err, errlen, "'%s' is not one of: %s", v, list);
		return -EINVAL;
	}
	case NGW_CFG_DOUBLE: {
		double d;
		if (parse_double(v, &d) < 0) {
			snprintf(err, errlen, "'%s' is not a number", v);
			return -EINVAL;
		}
		if (range && (d < (double)k->min || d > (double)k->max)) {
			snprintf(err, errlen, "%s out of range %lld..%lld", v, k->min, k->max);
			return -EINVAL;
		}
		memcpy(field, &d, sizeof(d));
		return 0;
	}
	}
	snprintf(err, errlen, "key of unknown type");
	return -EINVAL;
}

/* The "unset" value of a key without a default. */
static void bind_unset(const struct ngw_cfg_key *k, void *out)
{
	char *field = (char *)out + k->offset;
	switch (k->type) {
	case NGW_CFG_STR: {
		char *null = NULL;
		memcpy(field, &null, sizeof(null));
		break;
	}
	case NGW_CFG_BOOL: {
		bool b = false;
		memcpy(field, &b, sizeof(b));
		break;
	}
	case NGW_CFG_INT: {
		long long i = 0;
		memcpy(field, &i, sizeof(i));
		break;
	}
	case NGW_CFG_SIZE:
	case NGW_CFG_DURATION: {
		uint64_t u = 0;
		memcpy(field, &u, sizeof(u));
		break;
	}
	case NGW_CFG_ENUM: {
		int i = -1;
		memcpy(field, &i, sizeof(i));
		break;
	}
	case NGW_CFG_DOUBLE: {
		double d = 0;
		memcpy(field, &d, sizeof(d));
		break;
	}
	}
}

int cfg_bind(const struct cfg_doc *doc, const char *section, const struct ngw_cfg_key *keys,
             size_t n_keys, void *out, struct cfg_diag *diag)
{
	const struct cfg_section *sec = cfg_doc_section(doc, section);
	const char *docfile = doc && doc->n_files ? doc->files[0] : NULL;
	char err[512];
	int r = 0;

	for (size_t i = 0; i < n_keys; i++) {
		const struct ngw_cfg_key *k = &keys[i];
		bind_unset(k, out);
		if (k->def && bind_value(k, k->def, out, true, err, sizeof(err)) < 0) {
			/* a programming error in a key table: say so loudly */
			cfg_diag_add(diag, docfile, 0, "[%s] %s: bad built-in default: %s", section,
			             k->name, err);
			r = -EINVAL;
		}
	}
	for (size_t j = 0; sec && j < sec->n; j++) {
		const struct cfg_entry *e = &sec->e[j];
		const struct ngw_cfg_key *k = NULL;
		for (size_t i = 0; i < n_keys && !k; i++)
			if (strcmp(keys[i].name, e->key) == 0)
				k = &keys[i];
		if (!k) {
			cfg_diag_add(diag, e->file, e->line, "unknown key '%s' in [%s]", e->key,
			             section);
			r = -EINVAL;
			continue;
		}
		if (*e->value == '\0' && k->type != NGW_CFG_STR) {
			cfg_diag_add(diag, e->file, e->line, "[%s] %s: empty value", section,
			             e->key);
			r = -EINVAL;
			continue;
		}
		if (k->check && *e->value) {
			err[0] = '\0';
			if (k->check(e->value, err, sizeof(err)) != 0) {
				cfg_diag_add(diag, e->file, e->line, "[%s] %s: %s", section, e->key,
				             err[0] ? err : "bad value");
				r = -EINVAL;
				continue;
			}
		}
		if (bind_value(k, e->value, out, false, err, sizeof(err)) < 0) {
			cfg_diag_add(diag, e->file, e->line, "[%s] %s: %s", section, e->key, err);
			r = -EINVAL;
		}
	}
	for (size_t i = 0; i < n_keys; i++) {
		if (!keys[i].required || section_entry(sec, keys[i].name))
			continue;
		if (sec)
			cfg_diag_add(diag, sec->file, sec->line, "missing required key '%s' in [%s]",
			             keys[i].name, section);
		else
			cfg_diag_add(diag, docfile, 0, "missing section [%s] (needs key '%s')",
			             section, keys[i].name);
		r = -EINVAL;
	}
	return r;
}

void cfg_free_bound(const struct ngw_cfg_key *keys, size_t n_keys, void *out)
{
	for (size_t i = 0; i < n_keys; i++) {
		if (keys[i].type != NGW_CFG_STR)
			continue;
		char *field = (char *)out + keys[i].offset, *p, *null = NULL;
		memcpy(&p, field, sizeof(p));
		free(p);
		memcpy(field, &null, sizeof(null));
	}
}

/* ---- the core's sections -------------------------------------------------------- */

const char *const cfg_core_sections[] = {"daemon", "notecard", "hub",         "store",
                                         "control", "crypto",  "update", "notefile.**", NULL};

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
	static const long long rates[] = {1200,   2400,   4800,   9600,   19200,  38400,
	                                  57600,  115200, 230400, 460800, 921600};
	long long b;
	if (parse_int(v, &b) == 0)
		for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
			if (rates[i] == b)
				return 0;
	snprintf(err, errlen, "'%s' is not a standard baud rate (1200..921600; 9600 for the "
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

#define K(S, name, type, def, min, max, choices, field, check, req)                           \
	{name, type, def, min, max, choices, offsetof(struct S, field), check, req}

static const struct ngw_cfg_key daemon_keys[] = {
	K(cfg_daemon, "plugin_dir", NGW_CFG_STR, PLUGINDIR, 0, 0, NULL, plugin_dir, check_abs_path,
	  0),
	K(cfg_daemon, "state_dir", NGW_CFG_STR, LOCALSTATEDIR "/lib/notegw", 0, 0, NULL, state_dir,
	  check_abs_path, 0),
	K(cfg_daemon, "log_level", NGW_CFG_STR, "info", 0, 0, NULL, log_level, check_log_level, 0),
	K(cfg_daemon, "watchdog", NGW_CFG_DURATION, "0", 0, 3600 * 1000, NULL, watchdog_ms, NULL,
	  0),
	K(cfg_daemon, "metrics_file", NGW_CFG_STR, NULL, 0, 0, NULL, metrics_file, check_abs_path,
	  0),
	K(cfg_daemon, "chrony_socket", NGW_CFG_STR, NULL, 0, 0, NULL, chrony_socket,
	  check_socket_path, 0),
};

static const struct ngw_cfg_key notecard_keys[] = {
	K(cfg_notecard, "transport", NGW_CFG_ENUM, "i2c", 0, 0, transports, transport, NULL, 0),
	K(cfg_notecard, "device", NGW_CFG_STR, "/dev/i2c-1", 0, 0, NULL, device, check_abs_path, 0),
	K(cfg_notecard, "address", NGW_CFG_INT, "0x17", 0x08, 0x77, NULL, address, NULL, 0),
	K(cfg_notecard, "baud", NGW_CFG_INT, "9600", 0, 0, NULL, baud, check_baud, 0),
	K(cfg_notecard, "attn", NGW_CFG_STR, NULL, 0, 0, NULL, attn, check_attn, 0),
	K(cfg_notecard, "poll_interval", NGW_CFG_DURATION, "5s", 100, 24 * 3600 * 1000, NULL,
	  poll_ms, NULL, 0),
	K(cfg_notecard, "timing_scale", NGW_CFG_INT, "100", 1, 1000, NULL, timing_scale_pct, NULL,
	  0),
};

static const struct ngw_cfg_key hub_keys[] = {
	K(cfg_hub, "product", NGW_CFG_STR, NULL, 0, 0, NULL, product, NULL, 0),
	K(cfg_hub, "mode", NGW_CFG_ENUM, NULL, 0, 0, cfg_hub_modes, mode, NULL, 0),
	/* minutes; -1 (the default) leaves the card's setting alone */
	K(cfg_hub, "outbound", NGW_CFG_INT, "-1", 0, 525600, NULL, outbound, NULL, 0),
	K(cfg_hub, "inbound", NGW_CFG_INT, "-1", 0, 525600, NULL, inbound, NULL, 0),
	K(cfg_hub, "sn", NGW_CFG_STR, NULL, 0, 0, NULL, sn, NULL, 0),
};

static const struct ngw_cfg_key store_keys[] = {
	K(cfg_store, "path", NGW_CFG_STR, LOCALSTATEDIR "/lib/notegw/store.db", 0, 0, NULL, path,
	  check_abs_path, 0),
	K(cfg_store, "max_size", NGW_CFG_SIZE, "256M", 64 * 1024, 1LL << 40, NULL, max_size, NULL,
	  0),
	K(cfg_store, "when_full", NGW_CFG_ENUM, "drop-oldest", 0, 0, when_full, when_full, NULL, 0),
	K(cfg_store, "commit_delay", NGW_CFG_DURATION, "5ms", 0, 1000, NULL, commit_delay_ms, NULL,
	  0),
	K(cfg_store, "card_max_pending", NGW_CFG_INT, "25", 1, 1000, NULL, card_max_pending, NULL,
	  0),
};

static const struct ngw_cfg_key control_keys[] = {
	K(cfg_control, "socket", NGW_CFG_STR, "/run/notegw/control.sock", 0, 0, NULL, socket,
	  check_socket_path, 0),
	K(cfg_control, "group", NGW_CFG_STR, "notegw", 0, 0, NULL, group, NULL, 0),
	K(cfg_control, "admin_group", NGW_CFG_STR, "notegw-admin", 0, 0, NULL, admin_group, NULL, 0),
};

static const struct ngw_cfg_key crypto_keys[] = {
	K(cfg_crypto, "uplink", NGW_CFG_ENUM, "off", 0, 0, uplinks, uplink, NULL, 0),
	K(cfg_crypto, "public_key", NGW_CFG_STR, NULL, 0, 0, NULL, public_key, check_abs_path, 0),
	K(cfg_crypto, "private_key", NGW_CFG_STR, NULL, 0, 0, NULL, private_key, check_abs_path, 0),
	K(cfg_crypto, "key_name", NGW_CFG_STR, NULL, 0, 0, NULL, key_name, NULL, 0),
};

static const struct ngw_cfg_key update_keys[] = {
	K(cfg_update, "enabled", NGW_CFG_BOOL, "true", 0, 0, NULL, enabled, NULL, 0),
	K(cfg_update, "interval", NGW_CFG_DURATION, "1h", 1000, 7 * 24 * 3600 * 1000LL, NULL,
	  interval_ms, NULL, 0),
	K(cfg_update, "trusted_keys", NGW_CFG_STR, SYSCONFDIR "/notegw/trusted-update-keys", 0, 0,
	  NULL, trusted_dir, check_abs_path, 0),
	K(cfg_update, "spool", NGW_CFG_STR, LOCALSTATEDIR "/lib/notegw/update", 0, 0, NULL,
	  spool_dir, check_abs_path, 0),
	K(cfg_update, "auto_apply", NGW_CFG_BOOL, "true", 0, 0, NULL, auto_apply, NULL, 0),
	/* dfu.get returns at most 8192 bytes per request in Blues' host libraries */
	K(cfg_update, "chunk", NGW_CFG_SIZE, "8K", 256, 8192, NULL, chunk, NULL, 0),
};

static const struct ngw_cfg_key notefile_keys[] = {
	K(cfg_notefile, "template", NGW_CFG_STR, "off", 0, 0, NULL, template_, check_template, 0),
	K(cfg_notefile, "encrypt", NGW_CFG_ENUM, NULL, 0, 0, off_on, encrypt, NULL, 0),
	K(cfg_notefile, "urgent", NGW_CFG_BOOL, "false", 0, 0, NULL, urgent, NULL, 0),
	K(cfg_notefile, "learn", NGW_CFG_INT, "10", 1, 1000, NULL, learn, NULL, 0),
	K(cfg_notefile, "ntn", NGW_CFG_BOOL, "false", 0, 0, NULL, ntn, NULL, 0),
};
#undef K

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Report a cross-key problem at the key's line (or the section's, or the file). */
static void cross_err(struct cfg *cfg, struct cfg_diag *diag, const char *section,
                      const char *key, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void cross_err(struct cfg *cfg, struct cfg_diag *diag, const char *section,
                      const char *key, const char *fmt, ...)
{
	char msg[512];
	unsigned line = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *file = cfg_where(cfg->doc, section, key, &line);
	if (!file)
		file = cfg_where(cfg->doc, section, NULL, &line);
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
