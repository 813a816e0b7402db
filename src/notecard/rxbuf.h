/* Bytes received from the card but not yet handed up as a line. Both transports
 * keep one, so a line is only ever handed up whole and whatever follows it (a
 * second line read in the same chunk) waits for the next call. */
#ifndef NOTEGW_NOTECARD_RXBUF_H
#define NOTEGW_NOTECARD_RXBUF_H
#include <stddef.h>
#include <stdint.h>

struct rxbuf {
	char *buf;
	size_t len, cap;
};

/* Append n bytes; grows up to limit bytes in all. -EMSGSIZE past it, -ENOMEM. */
int rxbuf_append(struct rxbuf *b, const void *p, size_t n, size_t limit);
/* If a whole line is held, move it (without "\r\n", NUL-terminated) into out and
 * return 1; -EMSGSIZE if it does not fit in cap (the line is dropped); 0 if no
 * line yet. */
int rxbuf_take_line(struct rxbuf *b, char *out, size_t cap, size_t *len);
void rxbuf_clear(struct rxbuf *b);
void rxbuf_free(struct rxbuf *b);
/* Is every held byte a line end (what a resync may see)? */
int rxbuf_only_control(const void *p, size_t n);
#endif
