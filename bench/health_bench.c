/* Bytes on the air per health note (src/health_note.c), next to the baseline of the
 * same facts sent as `notegw status` JSON, with the accounting the simulator uses
 * (notecard/template.c): compact JSON, templated with the template shipped as
 * etc/health-template.json (the card's 16 bytes of time and location included),
 * and templated compact (as on a [notefile.*] ntn = true notefile). The "_id" the
 * link adds is counted, in its two integer slots when templated.
 * Usage: health_bench [TEMPLATE.json] (default: $top_srcdir/etc/health-template.json) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "health_note.h"
#include "notecard/template.h"

/* A gateway as `notegw status` shows it after a day with a little trouble. */
static const char *const status_text =
    "{\"daemon\":{\"version\":\"0.1.0\",\"pid\":812,\"uptime_s\":86400,\"reloads\":2},"
    "\"notecard\":{\"state\":\"ready\",\"firmware\":\"notecard-8.1.3.17184\","
    "\"signal\":{\"bars\":3,\"rssi\":-71,\"rat\":\"lte\"}},"
    "\"store\":{\"queued\":12,\"oldest_age_s\":60,\"dropped\":0,\"refused\":3},"
    "\"plugins\":{\"modbus\":{\"state\":\"running\"},\"mqtt\":{\"state\":\"running\"}}}";

int main(int argc, char **argv)
{
	char path[4096];
	const char *top = getenv("top_srcdir");
	snprintf(path, sizeof(path), "%s/etc/health-template.json", top ? top : ".");
	const char *tpl = argc > 1 ? argv[1] : path;
	json_t *hints = NULL, *status = json_loads(status_text, 0, NULL);
	char err[512];
	if (!status || tmpl_load_file(tpl, &hints, err, sizeof(err)) < 0) {
		fprintf(stderr, "health_bench: %s\n", status ? err : "bad status text");
		return 1;
	}
	json_t *body = health_note_body(status, 20ULL << 30, 3, "link: timed out");
	char why[256];
	if (!body || !tmpl_fits(hints, body, why, sizeof(why))) {
		fprintf(stderr, "health_bench: the body does not fit %s: %s\n", tpl, why);
		return 1;
	}
	/* the link's "_id", as a gateway id and sequence number */
	json_object_set_new(body, "_id", json_string("3f9a1c0e5b7d2468:1234"));
	json_object_set_new(status, "_id", json_string("3f9a1c0e5b7d2468:1234"));
	size_t base = tmpl_json_size(status, 0), json = tmpl_json_size(body, 0);
	if (tmpl_id_hints(hints) < 0)
		return 1;
	size_t air = tmpl_air_size(hints, false, 0), compact = tmpl_air_size(hints, true, 0);
	printf("health note bytes on the air\n");
	printf("  baseline: status as JSON   %4zu B\n", base);
	printf("  health note as JSON        %4zu B\n", json);
	printf("  templated                  %4zu B (with the card's %d B of time and location)\n",
	       air, TMPL_META_BYTES);
	printf("  templated compact          %4zu B (goal: under 60)\n", compact);
	json_decref(body);
	json_decref(status);
	json_decref(hints);
	return compact < 60 ? 0 : 1;
}
