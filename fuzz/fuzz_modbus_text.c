/* Fuzz the Modbus plugin's text inputs: write requests from the cloud (JSON) against
 * a fixed configuration, and the url, register, server and type syntaxes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "values.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char n_sp[] = "sp", n_f[] = "f", n_u[] = "u", n_c[] = "c", n_dev[] = "m";

static struct mb_point pts[] = {
    {.name = n_sp,
     .kind = MB_HOLDING,
     .addr = 0,
     .type = MB_I16,
     .scale = 0.1,
     .writable = true,
     .has_min = true,
     .min = -50,
     .has_max = true,
     .max = 50},
    {.name = n_f,
     .kind = MB_HOLDING,
     .addr = 1,
     .type = MB_F32,
     .order = MB_ORDER_LE,
     .scale = 2,
     .offset = 1,
     .writable = true},
    {.name = n_u, .kind = MB_HOLDING, .addr = 3, .type = MB_U32, .scale = 1, .writable = true},
    {.name = n_c, .kind = MB_COIL, .addr = 0, .type = MB_BOOL, .scale = 1, .writable = true},
};
static struct mb_device dev = {.name = n_dev, .points = pts, .n_points = 4};
static struct mb_conf conf = {.devices = &dev, .n_devices = 1, .n_points = 4};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[256], host[256], port[8];
	struct mb_write w;
	struct mb_url u;
	enum mb_kind k;
	enum mb_type t;
	enum mb_order o;
	uint16_t a;
	bool on;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (mb_write_parse(&conf, text, &w, err, sizeof(err)) == 0 && w.point->type != MB_BOOL) {
		/* an accepted value decodes back to itself */
		double v = mb_scale(mb_decode(w.point->type, w.point->order, w.words),
		                    w.point->scale, w.point->offset);
		if (w.point->type != MB_F32 && (v - w.value > 1e-6 * (1 + (v < 0 ? -v : v)) ||
		                                w.value - v > 1e-6 * (1 + (v < 0 ? -v : v))))
			abort();
	}
	mb_url_parse(text, &u, err, sizeof(err));
	mb_register_parse(text, &k, &a, err, sizeof(err));
	mb_server_parse(text, &on, host, sizeof(host), port, sizeof(port), err, sizeof(err));
	mb_type_parse(text, &t, &o);
	free(text);
	return 0;
}
