/* Bytes on the air per note for a realistic sensor body (eight numeric readings and
 * a status string, plus the "_id" the link adds), as compact JSON and templated
 * (where the link puts the id in two integer slots, tmpl_id_compact),
 * with the accounting the simulator uses (notecard/template.c mirrors
 * sim/notecard_sim/template.py). The template is learned from the first notes the
 * way the link learns it; later notes that do not fit count as JSON.
 * Usage: template_bench [NOTES] [LEARN] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "notecard/template.h"

/* a small LCG: the same figures on every run */
static unsigned rnd_next(unsigned *rnd, unsigned n)
{
	*rnd = *rnd * 1103515245u + 12345u;
	return (*rnd >> 16) % n;
}

static json_t *sensor_body(unsigned k, unsigned *rnd)
{
	static const char *const states[] = {"ok", "ok", "ok", "warn", "alarm"};
	char id[64];
	snprintf(id, sizeof(id), "3f9a1c0e5b7d2468:%u", k);
	double t_in = 20.0 + rnd_next(rnd, 100) / 20.0, t_out = -5.0 + rnd_next(rnd, 400) / 16.0;
	int hum = 30 + (int)rnd_next(rnd, 50), pres = 990 + (int)rnd_next(rnd, 40);
	double vbat = 11.5 + rnd_next(rnd, 20) / 10.0;
	int cur = 200 + (int)rnd_next(rnd, 300), co2 = 400 + (int)rnd_next(rnd, 600);
	int lux = (int)rnd_next(rnd, 2000);
	const char *st = states[rnd_next(rnd, 5)];
	return json_pack("{s:f,s:f,s:i,s:i,s:f,s:i,s:i,s:i,s:s,s:s}", "temp_in", t_in, "temp_out",
	                 t_out, "humidity", hum, "pressure", pres, "battery_v", vbat, "current_ma",
	                 cur, "co2_ppm", co2, "lux", lux, "status", st, "_id", id);
}

int main(int argc, char **argv)
{
	unsigned notes = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
	unsigned learn = argc > 2 ? (unsigned)atoi(argv[2]) : 10;
	if (notes == 0 || learn == 0 || learn > notes) {
		fprintf(stderr, "usage: %s [NOTES] [LEARN<=NOTES]\n", argv[0]);
		return 2;
	}
	struct tmpl_nf t;
	if (tmpl_nf_init(&t, TMPL_AUTO, learn, NULL) < 0)
		return 1;
	unsigned rnd = 1;
	unsigned long long json = 0, air = 0, air_compact = 0, json_tmpl = 0, air_t = 0;
	unsigned templated = 0;
	for (unsigned k = 1; k <= notes; k++) {
		json_t *b = sensor_body(k, &rnd);
		bool changed;
		size_t j = tmpl_json_size(b, 0);
		json += j;
		if (tmpl_id_compact(b) < 0)
			return 1;
		if (tmpl_nf_decide(&t, b, &changed)) {
			templated++;
			json_tmpl += j;
			air_t += tmpl_air_size(t.hints, false, 0);
			air += tmpl_air_size(t.hints, false, 0);
			air_compact += tmpl_air_size(t.hints, true, 0);
		} else {
			air += j;
			air_compact += j;
		}
		json_decref(b);
	}
	char *h = json_dumps(t.hints, JSON_COMPACT | JSON_SORT_KEYS);
	printf("template_bench: %u notes, learned from %u, %u templated\n", notes, learn,
	       templated);
	printf("  template      %s\n", h ? h : "(none)");
	printf("  record        %zu bytes (+%d metadata unless compact)\n",
	       t.hints ? tmpl_record_size(t.hints, true) : 0, TMPL_META_BYTES);
	printf("  JSON          %.1f bytes/note\n", (double)json / notes);
	printf("  templated     %.1f bytes/note  ratio JSON/templated %.2f  templated/JSON %.3f\n",
	       (double)air / notes, (double)json / (double)air, (double)air / (double)json);
	printf("  compact       %.1f bytes/note  ratio JSON/compact   %.2f  compact/JSON   %.3f\n",
	       (double)air_compact / notes, (double)json / (double)air_compact,
	       (double)air_compact / (double)json);
	if (templated)
		printf("  templated notes alone (learning aside): templated/JSON %.3f\n",
		       (double)air_t / (double)json_tmpl);
	free(h);
	tmpl_nf_clear(&t);
	return 0;
}
