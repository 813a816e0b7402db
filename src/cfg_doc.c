/* cfg_doc.c: the configuration file format. Reads the main INI file and every
 * conf.d/NAME.conf (in name order) into one document of sections with each key's
 * file and line, reports syntax errors as FILE:LINE, and lets owners find and claim
 * sections by pattern. Knows nothing about what a key means (see cfg_bind.c). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg-private.h"
#include "util.h"

#define CFG_MAX_LINE     4096
#define CFG_MAX_FILE     (1024 * 1024)
#define CFG_MAX_FILES    256
#define CFG_MAX_SECTIONS 4096
#define CFG_MAX_KEYS     256
#define CFG_MAX_NAME     128
#define CFG_MAX_DIAG     500

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

const struct cfg_entry *cfg_section_entry(const struct cfg_section *s, const char *key)
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
		perr(p,
		     "bad section name [%s] (letters, digits, '_', '-', components separated "
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
			perr(p, "duplicate key '%s' in [%s] (first set at line %u)", key, sec->name,
			     e->line);
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
	if (*confd)
		doc_add_dir(doc, confd, diag);
	free(dir);
	return doc;
}

int cfg_doc_add_overlay(struct cfg_doc *doc, const char *path, struct cfg_diag *diag)
{
	struct stat st;
	if (stat(path, &st) < 0 && errno == ENOENT)
		return 0;
	return doc_add_file(doc, path, diag);
}

const char *cfg_doc_value(const struct cfg_doc *doc, const char *section, const char *key)
{
	const struct cfg_entry *e = cfg_section_entry(cfg_doc_section(doc, section), key);
	return e ? e->value : NULL;
}

void cfg_doc_foreach(const struct cfg_doc *doc, const char *file, cfg_entry_fn fn, void *ud)
{
	for (size_t i = 0; doc && i < doc->n; i++)
		for (size_t j = 0; j < doc->s[i]->n; j++) {
			const struct cfg_entry *e = &doc->s[i]->e[j];
			if (!file || strcmp(e->file, file) == 0)
				fn(ud, doc->s[i]->name, e->key, e->value, e->file, e->line);
		}
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

int cfg_doc_write(const struct cfg_doc *doc, const char *pattern, FILE *f)
{
	for (size_t i = 0; doc && i < doc->n; i++) {
		const struct cfg_section *sec = doc->s[i];
		if (!cfg_pattern_match(pattern, sec->name))
			continue;
		fprintf(f, "[%s]\n", sec->name);
		/* Quoted: a value keeps its '#', ';' and edge spaces (none holds '"'). */
		for (size_t k = 0; k < sec->n; k++)
			fprintf(f, "%s = \"%s\"\n", sec->e[k].key, sec->e[k].value);
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
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
			cfg_diag_add(diag, doc->s[i]->file, doc->s[i]->line, "unknown section [%s]",
			             doc->s[i]->name);
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
	const struct cfg_entry *e = cfg_section_entry(s, key);
	if (!e)
		return NULL;
	if (line)
		*line = e->line;
	return e->file;
}

/* ---- value parsers -------------------------------------------------------------- */

const char *cfg_blame(const struct cfg_doc *doc, const char *section, const char *key,
                      unsigned *line)
{
	const char *file = cfg_where(doc, section, key, line);
	return file ? file : cfg_where(doc, section, NULL, line);
}
