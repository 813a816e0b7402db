/* Fuzz the Modbus value codec: what a device (or anyone on the bus) puts in the
 * registers, decoded for every point type and word order, scaled by a point's
 * scale/offset and encoded back as a write would be. Oracles besides the sanitizers:
 * an integer or finite float read back with scale 1 must encode to the same words,
 * and a type name must parse to a type whose name parses back to it.
 * Input: type byte, order byte, 4 register words (8 bytes), scale and offset (8-byte
 * doubles), then a type name as text. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../plugins/modbus/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 + 8 + 16)
		return 0;
	enum mb_type t = (enum mb_type)(data[0] % (MB_BOOL + 1));
	enum mb_order o = data[1] & 1 ? MB_ORDER_LE : MB_ORDER_BE;
	uint16_t w[4], back[2] = {0, 0};
	for (int i = 0; i < 4; i++)
		w[i] = (uint16_t)(data[2 + 2 * i] << 8 | data[3 + 2 * i]);
	double scale, offset;
	memcpy(&scale, data + 10, sizeof(scale));
	memcpy(&offset, data + 18, sizeof(offset));

	unsigned width = mb_type_width(t);
	if (width < 1 || width > 2)
		abort();
	double raw = mb_decode(t, o, w);
	/* read back with scale 1 encodes to the same words (bool: to 0 or 1) */
	int r = mb_encode(t, o, raw, 1, 0, back);
	if (t == MB_F32) {
		float f = (float)raw;
		if (isfinite(f) && (r != 0 || memcmp(back, w, 2 * sizeof(w[0])) != 0))
			abort();
	} else if (t == MB_BOOL) {
		if (r != 0 || back[0] != (w[0] != 0))
			abort();
	} else if (r != 0 || memcmp(back, w, width * sizeof(w[0])) != 0) {
		abort();
	}
	/* an engineering value through a point's scale and offset, and back */
	double v = mb_scale(raw, scale, offset);
	(void)mb_encode(t, o, v, scale, offset, back);
	(void)mb_encode(t, o, raw, scale, offset, back); /* a write with any scale/offset */
	if (t == MB_F32)
		(void)mb_f32_tidy((float)raw);

	/* type names */
	size_t n = size - 26;
	char name[32];
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	memcpy(name, data + 26, n);
	name[n] = '\0';
	enum mb_type pt;
	enum mb_order po;
	if (mb_type_parse(name, &pt, &po) == 0) {
		enum mb_type pt2;
		enum mb_order po2;
		if (mb_type_parse(mb_type_name(pt), &pt2, &po2) != 0 || pt2 != pt)
			abort();
	}
	(void)mb_kind_parse(name, n);
	return 0;
}
