/* cfg_bind.c: the typed binder, for the core and the plugins alike. Walks one section
 * of a document through a table of key rows (include/notegw/plugin.h: NGW_CFG_KEY) into
 * a struct: defaults, value parsers (sizes, durations, bools, integers, enums), ranges,
 * each row's own check, required and unknown keys, every problem as FILE:LINE. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg-private.h"

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
int cfg_parse_int(const char *s, long long *out)
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
		if (cfg_parse_int(v, &i) < 0) {
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
		if (!keys[i].required || cfg_section_entry(sec, keys[i].name))
			continue;
		if (sec)
			cfg_diag_add(diag, sec->file, sec->line,
			             "missing required key '%s' in [%s]", keys[i].name, section);
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
