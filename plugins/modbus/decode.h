/* Modbus value codec: register words <-> numbers for every point type and word
 * order, and scaling. Pure functions, no I/O, so every case is unit-tested. */
#ifndef NOTEGW_MODBUS_DECODE_H
#define NOTEGW_MODBUS_DECODE_H
#include <stdbool.h>
#include <stdint.h>

/* Which Modbus table a point lives in. */
enum mb_kind { MB_HOLDING, MB_INPUT, MB_COIL, MB_DISCRETE, MB_KIND_COUNT };

enum mb_type { MB_U16, MB_I16, MB_U32, MB_I32, MB_F32, MB_BOOL };

/* Word order of 32-bit values. Bytes inside a register are always big-endian (the
 * protocol says so). BE = high word first at the lower address ("ABCD"), the
 * default; LE = low word first ("CDAB"), common on PLCs with little-endian CPUs. */
enum mb_order { MB_ORDER_BE, MB_ORDER_LE };

/* "holding" -> MB_HOLDING; -1 if unknown. */
int mb_kind_parse(const char *s, size_t len);
const char *mb_kind_name(enum mb_kind k);
static inline bool mb_kind_is_bits(enum mb_kind k)
{
	return k == MB_COIL || k == MB_DISCRETE;
}

/* "i32_le" -> type I32, order LE. 0, or -EINVAL for an unknown name and for a word
 * order on a type that has only one word. */
int mb_type_parse(const char *s, enum mb_type *type, enum mb_order *order);
const char *mb_type_name(enum mb_type t);

/* Registers (or bits) one value of this type occupies: 1 or 2. */
unsigned mb_type_width(enum mb_type t);

/* The raw value of a register point: w has mb_type_width() words. f32 NaN stays NaN;
 * bool is "word != 0". */
double mb_decode(enum mb_type t, enum mb_order o, const uint16_t *w);

/* Engineering value = raw * scale + offset. */
double mb_scale(double raw, double scale, double offset);

/* The inverse for writes: the raw value for an engineering value, checked against
 * the type. Integer types must come out whole (within rounding) and in range.
 * Returns 0 and fills w (width words), or -ERANGE (out of the type's range),
 * -EDOM (not a whole number of raw units), -EINVAL (NaN/inf, or scale 0). */
int mb_encode(enum mb_type t, enum mb_order o, double value, double scale, double offset,
              uint16_t *w);

/* The shortest decimal that reads back as the same float, as a double (so f32
 * 0.1f prints 0.1, not 0.10000000149011612). */
double mb_f32_tidy(float f);
#endif
