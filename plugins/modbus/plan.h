/* Read planning: merge a device's points into as few Modbus reads as the protocol
 * allows. Pure function, unit-tested. */
#ifndef NOTEGW_MODBUS_PLAN_H
#define NOTEGW_MODBUS_PLAN_H
#include <stddef.h>
#include <stdint.h>

#include "decode.h"

#define MB_MAX_REGS 125  /* registers per read (FC 3/4), Modbus spec */
#define MB_MAX_BITS 2000 /* coils/inputs per read (FC 1/2)             */

/* What one point needs read. */
struct mb_span {
	enum mb_kind kind;
	uint16_t addr;
	uint16_t width; /* 1 or 2 */
};

/* One read request. */
struct mb_block {
	enum mb_kind kind;
	uint16_t addr;
	uint16_t count;
};

/* Where a span's data ends up: block index and offset inside it. */
struct mb_where {
	uint16_t block;
	uint16_t offset;
};

/* Plan the reads for n spans. gap: how many unconfigured registers/bits a read may
 * cover to join two points (0 = only adjacent or overlapping ones). Blocks go to
 * out[cap] in (kind, addr) order, one mb_where per span to where[n].
 * Returns the number of blocks, or -EINVAL (a span past 65535), -ENOBUFS (cap). */
int mb_plan(const struct mb_span *spans, size_t n, unsigned gap, struct mb_block *out, size_t cap,
            struct mb_where *where);
#endif
