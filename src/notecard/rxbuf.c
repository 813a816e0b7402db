/* The receive buffer shared by the transports (see rxbuf.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "notecard/rxbuf.h"

int rxbuf_append(struct rxbuf *b, const void *p, size_t n, size_t limit)
{
	if (n > limit || b->len > limit - n)
		return -EMSGSIZE;
	if (n == 0)
		return 0; /* nothing to copy, and buf may still be NULL */
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		char *nb = realloc(b->buf, cap);
		if (!nb)
			return -ENOMEM;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	return 0;
}

int rxbuf_take_line(struct rxbuf *b, char *out, size_t cap, size_t *len)
{
	char *nl = b->len ? memchr(b->buf, '\n', b->len) : NULL;
	if (!nl)
		return 0;
	size_t used = (size_t)(nl - b->buf) + 1;
	size_t n = used - 1;
	if (n && b->buf[n - 1] == '\r')
		n--;
	int r = 1;
	if (n + 1 > cap) {
		r = -EMSGSIZE;
	} else {
		memcpy(out, b->buf, n);
		out[n] = '\0';
		*len = n;
	}
	memmove(b->buf, b->buf + used, b->len - used);
	b->len -= used;
	return r;
}

void rxbuf_clear(struct rxbuf *b)
{
	b->len = 0;
}

void rxbuf_free(struct rxbuf *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = b->cap = 0;
}

int rxbuf_only_control(const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '\r' && s[i] != '\n')
			return 0;
	return 1;
}
