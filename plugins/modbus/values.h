/* Point values: out of a poll's words, into JSON, change detection, and the
 * checks on a write request from the cloud. Pure functions, unit-tested. */
#ifndef NOTEGW_MODBUS_VALUES_H
#define NOTEGW_MODBUS_VALUES_H
#include <jansson.h>
#include <stdbool.h>

#include "conf.h"

/* The engineering value of point p from a poll's data (blocks back to back, as
 * struct mb_job carries them). NaN when an f32 is NaN. */
double mb_point_value(const struct mb_device *d, const struct mb_point *p, const uint16_t *data);

/* The JSON for a value: true/false for bool, an integer for integer types that are
 * neither scaled nor offset, a real otherwise, null for NaN and infinities (JSON
 * has neither). New reference. */
json_t *mb_value_json(const struct mb_point *p, double v);

/* Worth reporting under report = change? First value, NaN <-> number, or a move
 * of more than the deadband (any move when it is 0). */
bool mb_changed(const struct mb_point *p, bool has_prev, double prev, double v);

/* A checked write request. */
struct mb_write {
	const struct mb_device *dev; /* borrowed from the conf */
	const struct mb_point *point;
	double value;
	uint16_t words[2];
};

/* Check a write request body {"device":..,"point":..,"value":..} against the conf.
 * 0 with w filled, or -EINVAL / -EPERM / -ERANGE with a readable reason in err. */
int mb_write_parse(const struct mb_conf *c, const char *body, struct mb_write *w, char *err,
                   size_t errlen);
#endif
