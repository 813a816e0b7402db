/* Small helpers every module needs: clocks, checked formatting, file reading. */
#ifndef NOTEGW_UTIL_H
#define NOTEGW_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notegw/notefile.h"

uint64_t now_ms(void);      /* CLOCK_MONOTONIC */
uint64_t now_real_ms(void); /* CLOCK_REALTIME  */
/* snprintf that reports truncation: 0 or -ENAMETOOLONG. */
int xsnprintf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* malloc'd formatted string or NULL. Caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read a whole file up to max bytes, NUL-terminated. Caller frees. -errno on error. */
int read_file(const char *path, size_t max, char **out, size_t *len);
/* Write all bytes, retrying on EINTR/short writes. */
int write_all(int fd, const void *buf, size_t len);
/* Base64 (standard alphabet, padded). Caller frees. */
char *b64_encode(const void *buf, size_t len);
int b64_decode(const char *s, void **out, size_t *len);
/* Is s a notefile a producer may queue notes for? The rule is
 * include/notegw/notefile.h's, shared with the plugins. */
static inline bool notefile_is_outbound(const char *s)
{
	return ngw_notefile_is_out(s);
}
#endif
