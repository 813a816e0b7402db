/* Note templates: Notecard type hints (dev.blues.io "Working with Note Templates":
 * true = bool; 11/12/13/14/18 = signed int of 1/2/3/4/8 bytes; 21..24 = unsigned int
 * of 1..4 bytes; 12.1/14.1/18.1 = float of 2/4/8 bytes; "N" = string of at most N
 * bytes), learned from bodies or checked from a file, and the byte accounting the
 * simulator (sim/notecard_sim/template.py) uses too, so status and sim agree. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notecard/template.h"
#include "util.h"

#define TMPL_FILE_MAX (64 * 1024)

enum kind { K_BOOL, K_INT, K_REAL, K_STR };

/* One hint, decoded. */
struct hint {
	enum kind k;
	size_t bytes; /* on the air */
	long long lo; /* K_INT range */
	unsigned long long hi;
	bool is_unsigned;
};

static const struct {
	int code;
	size_t bytes;
	bool is_unsigned;
} int_hints[] = {
    {11, 1, false}, {12, 2, false}, {13, 3, false}, {14, 4, false}, {18, 8, false},
    {21, 1, true},  {22, 2, true},  {23, 3, true},  {24, 4, true},
};

static const struct {
	double code;
	size_t bytes;
} real_hints[] = {{12.1, 2}, {14.1, 4}, {18.1, 8}};

/* The card fills these itself in compact templates; a body need not carry them. */
static bool card_keyword(const char *k)
{
	return strcmp(k, "_lat") == 0 || strcmp(k, "_lon") == 0 || strcmp(k, "_ltime") == 0 ||
	       strcmp(k, "_time") == 0;
}

static void int_range(size_t bytes, bool is_unsigned, long long *lo, unsigned long long *hi)
{
	if (is_unsigned) {
		*lo = 0;
		*hi = bytes >= 8 ? ULLONG_MAX : (1ULL << (8 * bytes)) - 1;
	} else if (bytes >= 8) {
		*lo = LLONG_MIN;
		*hi = LLONG_MAX;
	} else {
		*lo = -(1LL << (8 * bytes - 1));
		*hi = (1ULL << (8 * bytes - 1)) - 1;
	}
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Decode one hint value; -EINVAL when it is none the card documents. */
static int hint_of(const json_t *v, struct hint *h)
{
	memset(h, 0, sizeof(*h));
	if (json_is_true(v)) {
		h->k = K_BOOL;
		h->bytes = 1;
		return 0;
	}
	if (json_is_integer(v)) {
		json_int_t c = json_integer_value(v);
		for (size_t i = 0; i < sizeof(int_hints) / sizeof(int_hints[0]); i++)
			if (int_hints[i].code == c) {
				h->k = K_INT;
				h->bytes = int_hints[i].bytes;
				h->is_unsigned = int_hints[i].is_unsigned;
				int_range(h->bytes, h->is_unsigned, &h->lo, &h->hi);
				return 0;
			}
		return -EINVAL;
	}
	if (json_is_real(v)) {
		double c = json_real_value(v);
		for (size_t i = 0; i < sizeof(real_hints) / sizeof(real_hints[0]); i++)
			if (fabs(real_hints[i].code - c) < 1e-9) {
				h->k = K_REAL;
				h->bytes = real_hints[i].bytes;
				return 0;
			}
		return -EINVAL;
	}
	if (json_is_string(v) && all_digits(json_string_value(v))) {
		const char *s = json_string_value(v);
		if (strlen(s) > 5)
			return -EINVAL;
		long n = strtol(s, NULL, 10);
		if (n < 1 || n > TMPL_MAX_STRING)
			return -EINVAL;
		h->k = K_STR;
		h->bytes = (size_t)n;
		return 0;
	}
	return -EINVAL;
}

int tmpl_hints_check(const json_t *hints, char *err, size_t errlen)
{
	if (!json_is_object(hints)) {
		snprintf(err, errlen, "a template is a JSON object of type hints");
		return -EINVAL;
	}
	if (json_object_size(hints) == 0 || json_object_size(hints) > TMPL_MAX_FIELDS) {
		snprintf(err, errlen, "a template has 1 to %d fields", TMPL_MAX_FIELDS);
		return -EINVAL;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)hints, k, v)
	{
		struct hint h;
		if (hint_of(v, &h) < 0) {
			snprintf(
			    err, errlen,
			    "field '%s': not a template type hint (true; 11, 12, 13, 14, 18, "
			    "21, 22, 23, 24; 12.1, 14.1, 18.1; or a string length \"1\"..\"%d\")",
			    k, TMPL_MAX_STRING);
			return -EINVAL;
		}
		if (card_keyword(k) && h.k != K_INT && h.k != K_REAL) {
			snprintf(err, errlen, "field '%s': the card fills it with a number", k);
			return -EINVAL;
		}
	}
	return 0;
}

int tmpl_load_file(const char *path, json_t **hints, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	*hints = NULL;
	int r = read_file(path, TMPL_FILE_MAX, &text, &len);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	json_error_t jerr;
	json_t *h = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!h) {
		snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
		return -EINVAL;
	}
	char why[256];
	r = tmpl_hints_check(h, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		json_decref(h);
		return r;
	}
	*hints = h;
	return 0;
}

/* Does v survive a float of `bytes` bytes without losing what the producer sent
 * (its significant digits) or overflowing? */
static bool real_fits(double v, size_t bytes)
{
	if (!isfinite(v))
		return false;
	if (bytes >= 8)
		return true;
	int digits = bytes == 4 ? 7 : 3;
	double max = bytes == 4 ? FLT_MAX : 65504.0;
	if (fabs(v) > max)
		return false;
	char buf[40];
	snprintf(buf, sizeof(buf), "%.*g", digits, v);
	return strtod(buf, NULL) == v;
}

static bool value_fits(const struct hint *h, const json_t *v)
{
	switch (h->k) {
	case K_BOOL:
		return json_is_boolean(v);
	case K_INT: {
		if (!json_is_integer(v))
			return false;
		json_int_t x = json_integer_value(v);
		if (x < h->lo)
			return false;
		return x < 0 || (unsigned long long)x <= h->hi;
	}
	case K_REAL:
		if (json_is_integer(v))
			return real_fits((double)json_integer_value(v), h->bytes);
		return json_is_real(v) && real_fits(json_real_value(v), h->bytes);
	case K_STR:
		return json_is_string(v) && json_string_length(v) <= h->bytes;
	}
	return false;
}

bool tmpl_fits(const json_t *hints, const json_t *body, char *why, size_t whylen)
{
	char dummy[1];
	if (!why) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	if (!json_is_object(hints) || !json_is_object(body)) {
		snprintf(why, whylen, "no template or no body");
		return false;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v)
	{
		json_t *hv = json_object_get(hints, k);
		struct hint h;
		if (!hv || hint_of(hv, &h) < 0) {
			snprintf(why, whylen, "field '%s' is not in the template", k);
			return false;
		}
		if (!value_fits(&h, v)) {
			snprintf(why, whylen, "field '%s' does not fit its template type", k);
			return false;
		}
	}
	/* a missing field would reach Notehub as the card's zero, a value nobody sent */
	json_object_foreach((json_t *)hints, k, v)
	{
		if (!card_keyword(k) && !json_object_get(body, k)) {
			snprintf(why, whylen, "field '%s' of the template is missing", k);
			return false;
		}
	}
	return true;
}

size_t tmpl_record_size(const json_t *hints, bool compact)
{
	size_t n = compact ? 0 : TMPL_META_BYTES;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)hints, k, v)
	{
		struct hint h;
		if (hint_of(v, &h) == 0)
			n += h.bytes;
	}
	return n;
}

size_t tmpl_json_size(const json_t *body, size_t payload_len)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	size_t n = s ? strlen(s) : 2; /* the card stores "{}" for no body */
	free(s);
	return n + payload_len;
}

size_t tmpl_air_size(const json_t *hints, bool compact, size_t payload_len)
{
	return tmpl_record_size(hints, compact) + payload_len;
}

/* The smallest integer hint holding [lo, hi], unsigned when lo >= 0. */
static int int_code_for(long long lo, unsigned long long hi)
{
	for (size_t i = 0; i < sizeof(int_hints) / sizeof(int_hints[0]); i++) {
		if (int_hints[i].is_unsigned != (lo >= 0))
			continue;
		long long a;
		unsigned long long b;
		int_range(int_hints[i].bytes, int_hints[i].is_unsigned, &a, &b);
		if (lo >= a && hi <= b)
			return int_hints[i].code;
	}
	return lo >= 0 && hi > (unsigned long long)LLONG_MAX ? 0 : 18;
}

static size_t int_code_bytes(int code)
{
	for (size_t i = 0; i < sizeof(int_hints) / sizeof(int_hints[0]); i++)
		if (int_hints[i].code == code)
			return int_hints[i].bytes;
	return 8;
}

size_t tmpl_min_size(const json_t *body, size_t payload_len)
{
	if (!json_is_object(body) || json_object_size(body) > TMPL_MAX_FIELDS)
		return SIZE_MAX;
	size_t n = payload_len;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v)
	{
		if (json_is_boolean(v)) {
			n += 1;
		} else if (json_is_integer(v)) {
			json_int_t x = json_integer_value(v);
			unsigned long long m = x < 0 ? 0 : (unsigned long long)x;
			n += int_code_bytes(int_code_for(x < 0 ? x : 0, m));
		} else if (json_is_real(v)) {
			n += real_fits(json_real_value(v), 4) ? 4 : 8;
		} else if (json_is_string(v) && json_string_length(v) <= TMPL_MAX_STRING) {
			n += json_string_length(v) ? json_string_length(v) : 1;
		} else {
			return SIZE_MAX;
		}
	}
	return n;
}

json_t *tmpl_request(const char *file, const json_t *hints, bool compact, int port)
{
	json_t *rq = json_pack("{s:s,s:s}", "req", "note.template", "file", file);
	if (!rq)
		return NULL;
	if (hints && json_object_set(rq, "body", (json_t *)hints) < 0)
		goto fail;
	if (hints && compact && json_object_set_new(rq, "format", json_string("compact")) < 0)
		goto fail;
	if (hints && port > 0 && json_object_set_new(rq, "port", json_integer(port)) < 0)
		goto fail;
	return rq;
fail:
	json_decref(rq);
	return NULL;
}

/* ---- the link's id ----------------------------------------------------------- */
int tmpl_id_compact(json_t *body)
{
	const char *id = json_string_value(json_object_get(body, "_id"));
	const char *colon = id ? strrchr(id, ':') : NULL;
	if (!colon || colon - id < 8 || !all_digits(colon + 1) || strlen(colon + 1) > 10 ||
	    json_object_get(body, TMPL_ID_GW) || json_object_get(body, TMPL_ID_SEQ))
		return 0;
	char gw[9];
	memcpy(gw, id, 8);
	gw[8] = '\0';
	if (strspn(gw, "0123456789abcdef") != 8)
		return 0;
	unsigned long long seq = strtoull(colon + 1, NULL, 10);
	if (seq > UINT32_MAX)
		return 0;
	json_t *g = json_integer((json_int_t)strtoull(gw, NULL, 16));
	json_t *q = json_integer((json_int_t)seq);
	if (!g || !q) {
		json_decref(g);
		json_decref(q);
		return -ENOMEM;
	}
	if (json_object_set_new(body, TMPL_ID_GW, g) < 0) {
		json_decref(q);
		return -ENOMEM;
	}
	if (json_object_set_new(body, TMPL_ID_SEQ, q) < 0) {
		json_object_del(body, TMPL_ID_GW);
		return -ENOMEM;
	}
	json_object_del(body, "_id");
	return 1;
}

int tmpl_id_hints(json_t *hints)
{
	json_object_del(hints, "_id");
	return json_object_set_new(hints, TMPL_ID_GW, json_integer(TMPL_ID_HINT)) < 0 ||
	               json_object_set_new(hints, TMPL_ID_SEQ, json_integer(TMPL_ID_HINT)) < 0
	           ? -ENOMEM
	           : 0;
}

/* ---- learning ---------------------------------------------------------------- */
struct field {
	char *key;
	enum kind k;
	long long lo, hi; /* K_INT, and the integers seen in a K_REAL */
	bool dbl;         /* K_REAL: a value needs more than a 4-byte float */
	size_t maxlen;    /* K_STR */
};

struct tmpl_learner {
	struct field f[TMPL_MAX_FIELDS];
	size_t n;
	unsigned count;
};

struct tmpl_learner *tmpl_learner_new(void)
{
	return calloc(1, sizeof(struct tmpl_learner));
}

void tmpl_learner_reset(struct tmpl_learner *lr)
{
	for (size_t i = 0; i < lr->n; i++)
		free(lr->f[i].key);
	memset(lr, 0, sizeof(*lr));
}

void tmpl_learner_free(struct tmpl_learner *lr)
{
	if (!lr)
		return;
	tmpl_learner_reset(lr);
	free(lr);
}

unsigned tmpl_learner_count(const struct tmpl_learner *lr)
{
	return lr->count;
}

static int kind_of(const json_t *v, enum kind *k)
{
	if (json_is_boolean(v))
		*k = K_BOOL;
	else if (json_is_integer(v))
		*k = K_INT;
	else if (json_is_real(v) && isfinite(json_real_value(v)))
		*k = K_REAL;
	else if (json_is_string(v) && json_string_length(v) <= TMPL_MAX_STRING)
		*k = K_STR;
	else
		return -EINVAL;
	return 0;
}

static struct field *find(struct tmpl_learner *lr, const char *key)
{
	for (size_t i = 0; i < lr->n; i++)
		if (strcmp(lr->f[i].key, key) == 0)
			return &lr->f[i];
	return NULL;
}

/* Same fields, and kinds that merge (int and real make real)? */
static bool same_shape(struct tmpl_learner *lr, const json_t *body)
{
	if (json_object_size(body) != lr->n)
		return false;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v)
	{
		struct field *f = find(lr, k);
		enum kind kd;
		if (!f || kind_of(v, &kd) < 0)
			return false;
		bool num = (kd == K_INT || kd == K_REAL) && (f->k == K_INT || f->k == K_REAL);
		if (kd != f->k && !num)
			return false;
	}
	return true;
}

static void merge(struct field *f, const json_t *v, bool first)
{
	enum kind kd;
	if (kind_of(v, &kd) < 0)
		return; /* not reached: the caller checked every value's kind */
	if (first)
		f->k = kd;
	else if (kd == K_REAL && f->k == K_INT)
		f->k = K_REAL;
	if (kd == K_INT) {
		long long x = json_integer_value(v);
		if (first || x < f->lo)
			f->lo = x;
		if (first || x > f->hi)
			f->hi = x;
		if (f->k == K_REAL && !real_fits((double)x, 4))
			f->dbl = true;
	} else if (kd == K_REAL) {
		if (!real_fits(json_real_value(v), 4))
			f->dbl = true;
	} else if (kd == K_STR) {
		size_t n = json_string_length(v);
		if (n > f->maxlen)
			f->maxlen = n;
	}
}

int tmpl_learner_add(struct tmpl_learner *lr, const json_t *body)
{
	if (!json_is_object(body) || json_object_size(body) == 0 ||
	    json_object_size(body) > TMPL_MAX_FIELDS)
		return -EINVAL;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v)
	{
		enum kind kd;
		if (kind_of(v, &kd) < 0)
			return -EINVAL;
	}
	int restarted = 0;
	if (lr->count && !same_shape(lr, body)) {
		tmpl_learner_reset(lr);
		restarted = 1;
	}
	bool first = lr->count == 0;
	json_object_foreach((json_t *)body, k, v)
	{
		struct field *f = first ? NULL : find(lr, k);
		if (!f) {
			f = &lr->f[lr->n];
			memset(f, 0, sizeof(*f));
			if (!(f->key = strdup(k)))
				return -ENOMEM;
			lr->n++;
		}
		merge(f, v, first);
	}
	lr->count++;
	return restarted;
}

static bool is_id_slot(const char *key)
{
	return strcmp(key, TMPL_ID_GW) == 0 || strcmp(key, TMPL_ID_SEQ) == 0;
}

static json_t *hint_for(const struct field *f)
{
	if (f->k == K_INT && is_id_slot(f->key))
		return json_integer(TMPL_ID_HINT); /* every id, not the samples' */
	switch (f->k) {
	case K_BOOL:
		return json_true();
	case K_INT: {
		/* headroom: four times the largest magnitude, so the next reading a
		 * little past the samples still fits */
		unsigned long long mlo = f->lo < 0 ? (unsigned long long)-(f->lo + 1) + 1 : 0;
		unsigned long long mhi = f->hi > 0 ? (unsigned long long)f->hi : 0;
		unsigned long long m = mlo > mhi ? mlo : mhi;
		unsigned long long m4 = m > ULLONG_MAX / 4 ? ULLONG_MAX : m * 4;
		long long lo = 0;
		if (f->lo < 0)
			lo = m4 > (unsigned long long)LLONG_MAX ? LLONG_MIN : -(long long)m4;
		int code = int_code_for(lo, m4);
		return json_integer(code ? code : 18);
	}
	case K_REAL:
		return json_real(f->dbl ? 18.1 : 14.1);
	case K_STR: {
		/* half again the longest seen, rounded up to 4, at least 8: "ok" and
		 * "warn" seen leave room for "alarm" */
		size_t n = (f->maxlen + f->maxlen / 2 + 3) / 4 * 4;
		if (n < 8)
			n = 8;
		if (n > TMPL_MAX_STRING)
			n = TMPL_MAX_STRING;
		char buf[24];
		snprintf(buf, sizeof(buf), "%zu", n);
		return json_string(buf);
	}
	}
	return NULL;
}

json_t *tmpl_learner_hints(const struct tmpl_learner *lr)
{
	if (!lr->count)
		return NULL;
	json_t *h = json_object();
	for (size_t i = 0; h && i < lr->n; i++) {
		if (json_object_set_new(h, lr->f[i].key, hint_for(&lr->f[i])) < 0) {
			json_decref(h);
			return NULL;
		}
	}
	return h;
}

/* ---- policy ------------------------------------------------------------------ */
int tmpl_nf_init(struct tmpl_nf *t, enum tmpl_mode mode, unsigned learn, json_t *hints)
{
	memset(t, 0, sizeof(*t));
	t->mode = mode;
	t->learn = learn ? learn : 1;
	t->hints = json_incref(hints);
	if (mode == TMPL_AUTO &&
	    (!(t->lr = tmpl_learner_new()) || !(t->basis = tmpl_learner_new()))) {
		tmpl_nf_clear(t);
		return -ENOMEM;
	}
	return 0;
}

void tmpl_nf_clear(struct tmpl_nf *t)
{
	json_decref(t->hints);
	tmpl_learner_free(t->lr);
	tmpl_learner_free(t->basis);
	memset(t, 0, sizeof(*t));
}

bool tmpl_nf_decide(struct tmpl_nf *t, const json_t *body, bool *changed)
{
	*changed = false;
	if (t->mode == TMPL_OFF)
		return false;
	if (t->mode == TMPL_AUTO && (!t->lr || !t->basis))
		return false; /* not reached: tmpl_nf_init makes both for auto */
	if (t->hints && tmpl_fits(t->hints, body, NULL, 0)) {
		t->misfits = 0;
		if (t->refit) {
			t->refit--;
			return false;
		}
		return true;
	}
	if (t->hints && t->mode == TMPL_AUTO && t->basis->count && same_shape(t->basis, body)) {
		/* the same fields, a value past the learned range or length: widen
		 * the template (headroom makes this rare) rather than send it plain */
		json_t *h =
		    tmpl_learner_add(t->basis, body) == 0 ? tmpl_learner_hints(t->basis) : NULL;
		if (h && tmpl_fits(h, body, NULL, 0)) {
			json_decref(t->hints);
			t->hints = h;
			t->widened++;
			t->misfits = 0;
			*changed = true;
			return t->refit == 0;
		}
		json_decref(h);
	}
	if (t->hints) {
		/* a new run of misfits learns afresh: only a shape that keeps coming
		 * replaces the template */
		if (t->misfits++ == 0 && t->lr)
			tmpl_learner_reset(t->lr);
		t->refit = TMPL_REFIT;
	}
	if (t->mode != TMPL_AUTO || tmpl_learner_add(t->lr, body) < 0)
		return false;
	if (tmpl_learner_count(t->lr) < t->learn)
		return false;
	json_t *h = tmpl_learner_hints(t->lr);
	if (!h)
		return false;
	json_decref(t->hints);
	t->hints = h;
	t->learned++;
	t->misfits = 0;
	t->refit = 0;
	/* what it was learned from stays, to widen it later */
	struct tmpl_learner *tmp = t->basis;
	t->basis = t->lr;
	t->lr = tmp;
	tmpl_learner_reset(t->lr);
	*changed = true;
	return tmpl_fits(h, body, NULL, 0);
}
