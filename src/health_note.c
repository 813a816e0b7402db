/* The health note's body; see health_note.h. Each field is sized for its template
 * slot: counts and ages are capped at the slot's largest value rather than wrapped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_note.h"
#include "util.h"

#define U24_MAX   0xffffffLL
#define U16_MAX   0xffffLL
#define U32_MAX   0xffffffffLL
#define PL_SLOTS  4  /* plugin letters: the template's "pl" string length */
#define ERR_SLOTS 12 /* the template's "er" string length */

static long long cap(long long v, long long max)
{
	return v < 0 ? 0 : v > max ? max : v;
}

static long long num(json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

/* "notecard-8.1.3.17184" or "0.1.0" to 0x080103: a byte each for major, minor,
 * patch, from the first digit on. */
static long long version_code(const char *v)
{
	unsigned long part[3] = {0, 0, 0};
	if (!v)
		return 0;
	v += strcspn(v, "0123456789");
	for (size_t i = 0; i < 3 && *v >= '0' && *v <= '9'; i++) {
		char *end;
		part[i] = strtoul(v, &end, 10);
		v = *end == '.' ? end + 1 : end;
	}
	return (long long)(((part[0] & 0xff) << 16) | ((part[1] & 0xff) << 8) | (part[2] & 0xff));
}

/* The link's card states, in the order docs/fleet.md gives their codes. */
static long long card_code(const char *state)
{
	static const char *const states[] = {
	    "starting", "ready", "absent", "not answering", "store unavailable", NULL};
	for (size_t i = 0; state && states[i]; i++)
		if (strcmp(state, states[i]) == 0)
			return (long long)i;
	return 9;
}

/* One letter per plugin in name order: r running, d disabled, f failed, s other. */
static void plugin_letters(json_t *plugins, char *out)
{
	const char *name;
	json_t *p;
	const char *names[64];
	size_t n = 0;
	json_object_foreach(plugins, name, p)
	{
		if (n < 64)
			names[n++] = name;
	}
	for (size_t i = 1; i < n; i++) /* a few names: insertion sort */
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			const char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	size_t k = 0;
	for (size_t i = 0; i < n && k < PL_SLOTS; i++) {
		const char *st =
		    json_string_value(json_object_get(json_object_get(plugins, names[i]), "state"));
		out[k++] = !st                           ? 's'
		           : strcmp(st, "running") == 0  ? 'r'
		           : strcmp(st, "disabled") == 0 ? 'd'
		           : strcmp(st, "failed") == 0   ? 'f'
		                                         : 's';
	}
	out[k] = '\0';
}

json_t *health_note_body(json_t *status, uint64_t disk_free, long long revision,
                         const char *last_error)
{
	json_t *d = json_object_get(status, "daemon"), *st = json_object_get(status, "store");
	json_t *card = json_object_get(status, "notecard");
	json_t *sig = json_object_get(card, "signal");
	char pl[PL_SLOTS + 1], er[ERR_SLOTS + 1];
	const char *cerr = json_string_value(json_object_get(card, "error"));
	plugin_letters(json_object_get(status, "plugins"), pl);
	snprintf(er, sizeof(er), "%s", last_error ? last_error : cerr ? cerr : "");
	for (char *c = er; *c; c++) /* cut anywhere: keep it ASCII, so always valid UTF-8 */
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
			*c = '?';
	long long rssi = num(sig, "rssi");
	return json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:s}", "v",
	    (json_int_t)version_code(json_string_value(json_object_get(d, "version"))), "fw",
	    (json_int_t)version_code(json_string_value(json_object_get(card, "firmware"))), "up",
	    (json_int_t)cap(num(d, "uptime_s"), U32_MAX), "q",
	    (json_int_t)cap(num(st, "queued"), U24_MAX), "age",
	    (json_int_t)cap(num(st, "oldest_age_s"), U24_MAX), "dr",
	    (json_int_t)cap(num(st, "dropped"), U24_MAX), "rf",
	    (json_int_t)cap(num(st, "refused"), U24_MAX), "pl", pl, "cs",
	    (json_int_t)card_code(json_string_value(json_object_get(card, "state"))), "bars",
	    (json_int_t)cap(num(sig, "bars"), 255), "rssi",
	    (json_int_t)(rssi < -128  ? -128
	                 : rssi > 127 ? 127
	                              : rssi),
	    "df", (json_int_t)cap((long long)(disk_free >> 20), U24_MAX), "rev",
	    (json_int_t)cap(revision, U16_MAX), "er", er);
}

char *health_note_state(const json_t *body)
{
	return xasprintf("%lld/%s/%lld/%s",
	                 (long long)json_integer_value(json_object_get(body, "cs")),
	                 json_string_value(json_object_get(body, "pl")),
	                 (long long)json_integer_value(json_object_get(body, "rev")),
	                 json_string_value(json_object_get(body, "er")));
}
