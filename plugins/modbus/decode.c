/* Modbus value codec: register words to numbers and back, per type and word
 * order. Kept free of libmodbus and I/O so every branch has a unit test. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

static const char *const kind_names[MB_KIND_COUNT] = {"holding", "input", "coil", "discrete"};

int mb_kind_parse(const char *s, size_t len)
{
	for (int k = 0; k < MB_KIND_COUNT; k++)
		if (strlen(kind_names[k]) == len && memcmp(kind_names[k], s, len) == 0)
			return k;
	return -1;
}

const char *mb_kind_name(enum mb_kind k)
{
	return (unsigned)k < MB_KIND_COUNT ? kind_names[k] : "?";
}

static const struct {
	const char *name;
	enum mb_type type;
} type_names[] = {
    {"u16", MB_U16}, {"i16", MB_I16}, {"u32", MB_U32},
    {"i32", MB_I32}, {"f32", MB_F32}, {"bool", MB_BOOL},
};

int mb_type_parse(const char *s, enum mb_type *type, enum mb_order *order)
{
	size_t len = strlen(s);
	enum mb_order o = MB_ORDER_BE;
	bool suffixed = false;

	if (len > 3 && (strcmp(s + len - 3, "_le") == 0 || strcmp(s + len - 3, "_be") == 0)) {
		o = s[len - 2] == 'l' ? MB_ORDER_LE : MB_ORDER_BE;
		len -= 3;
		suffixed = true;
	}
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strlen(type_names[i].name) != len || memcmp(type_names[i].name, s, len) != 0)
			continue;
		/* a word order on a one-word type would be silently meaningless */
		if (suffixed && mb_type_width(type_names[i].type) != 2)
			return -EINVAL;
		*type = type_names[i].type;
		*order = o;
		return 0;
	}
	return -EINVAL;
}

const char *mb_type_name(enum mb_type t)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (type_names[i].type == t)
			return type_names[i].name;
	return "?";
}

unsigned mb_type_width(enum mb_type t)
{
	return (t == MB_U32 || t == MB_I32 || t == MB_F32) ? 2 : 1;
}

static uint32_t join32(enum mb_order o, const uint16_t *w)
{
	uint16_t hi = o == MB_ORDER_BE ? w[0] : w[1];
	uint16_t lo = o == MB_ORDER_BE ? w[1] : w[0];
	return (uint32_t)hi << 16 | lo;
}

static void split32(enum mb_order o, uint32_t v, uint16_t *w)
{
	w[o == MB_ORDER_BE ? 0 : 1] = (uint16_t)(v >> 16);
	w[o == MB_ORDER_BE ? 1 : 0] = (uint16_t)v;
}

double mb_f32_tidy(float f)
{
	char buf[32];

	if (!isfinite(f))
		return (double)f;
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, (double)f);
		if (strtof(buf, NULL) == f)
			return strtod(buf, NULL);
	}
	return (double)f;
}

double mb_decode(enum mb_type t, enum mb_order o, const uint16_t *w)
{
	uint32_t u;
	float f;

	switch (t) {
	case MB_U16:
		return w[0];
	case MB_I16:
		return (int16_t)w[0];
	case MB_U32:
		return join32(o, w);
	case MB_I32:
		return (int32_t)join32(o, w);
	case MB_F32:
		u = join32(o, w);
		memcpy(&f, &u, sizeof(f));
		return mb_f32_tidy(f);
	case MB_BOOL:
		return w[0] != 0;
	}
	return NAN;
}

double mb_scale(double raw, double scale, double offset)
{
	return raw * scale + offset;
}

int mb_encode(enum mb_type t, enum mb_order o, double value, double scale, double offset,
              uint16_t *w)
{
	double raw, r;
	double lo = 0, hi = 0;

	if (!isfinite(value) || scale == 0 || !isfinite(scale))
		return -EINVAL;
	raw = (value - offset) / scale;
	if (t == MB_F32) {
		float f = (float)raw;
		uint32_t u;
		if (!isfinite(f))
			return -ERANGE;
		memcpy(&u, &f, sizeof(u));
		split32(o, u, w);
		return 0;
	}
	r = nearbyint(raw);
	/* allow for decimal scales that binary floating point cannot hit exactly */
	if (fabs(raw - r) > 1e-6 * (fabs(raw) > 1 ? fabs(raw) : 1))
		return -EDOM;
	switch (t) {
	case MB_U16:
		lo = 0, hi = 65535;
		break;
	case MB_I16:
		lo = -32768, hi = 32767;
		break;
	case MB_U32:
		lo = 0, hi = 4294967295.0;
		break;
	case MB_I32:
		lo = -2147483648.0, hi = 2147483647.0;
		break;
	case MB_BOOL:
		lo = 0, hi = 1;
		break;
	case MB_F32:
		break;
	}
	if (r < lo || r > hi)
		return -ERANGE;
	switch (t) {
	case MB_U16:
	case MB_BOOL:
		w[0] = (uint16_t)r;
		break;
	case MB_I16:
		w[0] = (uint16_t)(int16_t)r;
		break;
	case MB_U32:
		split32(o, (uint32_t)r, w);
		break;
	case MB_I32:
		split32(o, (uint32_t)(int32_t)r, w);
		break;
	case MB_F32:
		break;
	}
	return 0;
}
