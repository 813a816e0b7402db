/* Read planning. Sorted by (table, address), a greedy sweep that extends the open
 * read while the next point fits gives the fewest reads: any read that skipped a
 * point the sweep could take would only leave more for later reads. */
#include <errno.h>
#include <stdlib.h>

#include "plan.h"

struct order {
	const struct mb_span *s;
	size_t idx;
};

static int cmp_span(const void *a, const void *b)
{
	const struct order *x = a, *y = b;
	if (x->s->kind != y->s->kind)
		return x->s->kind < y->s->kind ? -1 : 1;
	if (x->s->addr != y->s->addr)
		return x->s->addr < y->s->addr ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int mb_plan(const struct mb_span *spans, size_t n, unsigned gap, struct mb_block *out, size_t cap,
            struct mb_where *where)
{
	struct order *ord;
	size_t nb = 0;
	int rc;

	if (n == 0)
		return 0;
	ord = calloc(n, sizeof(*ord));
	if (!ord)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (spans[i].width == 0 || (unsigned)spans[i].addr + spans[i].width > 65536u ||
		    (unsigned)spans[i].kind >= MB_KIND_COUNT) {
			rc = -EINVAL;
			goto out;
		}
		ord[i].s = &spans[i];
		ord[i].idx = i;
	}
	qsort(ord, n, sizeof(*ord), cmp_span);

	for (size_t i = 0; i < n; i++) {
		const struct mb_span *s = ord[i].s;
		unsigned limit = mb_kind_is_bits(s->kind) ? MB_MAX_BITS : MB_MAX_REGS;
		struct mb_block *b = nb ? &out[nb - 1] : NULL;
		unsigned end = (unsigned)s->addr + s->width; /* exclusive */

		if (b && b->kind == s->kind && s->addr <= (unsigned)b->addr + b->count + gap &&
		    end - b->addr <= limit) {
			if (end > (unsigned)b->addr + b->count)
				b->count = (uint16_t)(end - b->addr);
		} else {
			if (nb == cap) {
				rc = -ENOBUFS;
				goto out;
			}
			b = &out[nb++];
			b->kind = s->kind;
			b->addr = s->addr;
			b->count = s->width;
		}
		where[ord[i].idx].block = (uint16_t)(nb - 1);
		where[ord[i].idx].offset = (uint16_t)(s->addr - b->addr);
	}
	rc = (int)nb;
out:
	free(ord);
	return rc;
}
