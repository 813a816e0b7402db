/* Point values and write requests: everything between raw words and JSON. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "values.h"

double mb_point_value(const struct mb_device *d, const struct mb_point *p, const uint16_t *data)
{
	const uint16_t *w = data + mb_block_offset(d, p->where.block) + p->where.offset;
	return mb_scale(mb_decode(p->type, p->order, w), p->scale, p->offset);
}

json_t *mb_value_json(const struct mb_point *p, double v)
{
	if (p->type == MB_BOOL)
		return json_boolean(v != 0);
	if (!isfinite(v))
		return json_null();
	if (p->type != MB_F32 && p->scale == 1 && p->offset == 0)
		return json_integer((json_int_t)v);
	return json_real(v);
}

bool mb_changed(const struct mb_point *p, bool has_prev, double prev, double v)
{
	if (!has_prev)
		return true;
	if (isnan(prev) || isnan(v))
		return isnan(prev) != isnan(v);
	if (p->deadband == 0)
		return v != prev;
	return fabs(v - prev) > p->deadband;
}

#define ERR(code, ...) (snprintf(err, errlen, __VA_ARGS__), (code))

int mb_write_parse(const struct mb_conf *c, const char *body, struct mb_write *w, char *err,
                   size_t errlen)
{
	json_error_t jerr;
	json_t *root, *jv;
	const char *dev, *pt;
	int rc;

	memset(w, 0, sizeof(*w));
	if (!body)
		return ERR(-EINVAL,
		           "empty request: want {\"device\":..,\"point\":..,\"value\":..}");
	root = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		rc = ERR(-EINVAL, "request is not a JSON object");
		goto out;
	}
	dev = json_string_value(json_object_get(root, "device"));
	pt = json_string_value(json_object_get(root, "point"));
	jv = json_object_get(root, "value");
	if (!dev || !pt || !jv) {
		rc = ERR(-EINVAL, "request needs \"device\" and \"point\" strings and a \"value\"");
		goto out;
	}
	w->dev = mb_conf_device(c, dev);
	if (!w->dev) {
		rc = ERR(-EINVAL, "no device '%.64s'", dev);
		goto out;
	}
	w->point = mb_device_point(w->dev, pt);
	if (!w->point) {
		rc = ERR(-EINVAL, "device '%.64s' has no point '%.64s'", dev, pt);
		goto out;
	}
	if (!w->point->writable) {
		rc = ERR(-EPERM, "point '%.64s' of '%.64s' is not writable", pt, dev);
		goto out;
	}
	if (json_is_boolean(jv))
		w->value = json_is_true(jv) ? 1 : 0;
	else if (json_is_number(jv))
		w->value = json_number_value(jv);
	else {
		rc = ERR(-EINVAL, "value must be a number or a boolean");
		goto out;
	}
	if (w->point->type == MB_BOOL && w->value != 0 && w->value != 1) {
		rc = ERR(-ERANGE, "value %g for bool point '%.64s': want 0, 1, true or false",
		         w->value, pt);
		goto out;
	}
	if ((w->point->has_min && w->value < w->point->min) ||
	    (w->point->has_max && w->value > w->point->max)) {
		rc = ERR(-ERANGE, "value %g for '%.64s' outside its range [%g, %g]", w->value, pt,
		         w->point->has_min ? w->point->min : -INFINITY,
		         w->point->has_max ? w->point->max : INFINITY);
		goto out;
	}
	rc = mb_encode(w->point->type, w->point->order, w->value, w->point->scale, w->point->offset,
	               w->words);
	if (rc == -ERANGE)
		rc = ERR(-ERANGE, "value %g does not fit %s", w->value,
		         mb_type_name(w->point->type));
	else if (rc == -EDOM)
		rc = ERR(-ERANGE, "value %g is not a whole multiple of scale %g from offset %g",
		         w->value, w->point->scale, w->point->offset);
	else if (rc < 0)
		rc = ERR(-EINVAL, "value %g cannot be written", w->value);
out:
	json_decref(root);
	return rc;
}
