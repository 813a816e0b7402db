/* The Notecard's ATTN pin as a file descriptor that becomes readable on a rising
 * edge, over libgpiod v1 or v2 (chosen by configure), so the link thread can poll()
 * it next to its wakeup eventfd. Without libgpiod attn_open says -ENOTSUP and the
 * link polls file.changes instead. */
#ifndef NOTEGW_NOTECARD_ATTN_H
#define NOTEGW_NOTECARD_ATTN_H
#include <stddef.h>

struct attn;

/* "gpiochip0:17" (chip name, path or label, then the line offset) → chip, line.
 * 0 or -EINVAL. */
int attn_parse(const char *spec, char *chip, size_t cap, unsigned *line);
/* Request the line for rising-edge events. 0 or -errno (-ENOTSUP: no libgpiod). */
int attn_open(const char *spec, struct attn **out);
int attn_fd(const struct attn *a);
/* Consume the pending edge events (call when attn_fd is readable). Returns how
 * many were read (>= 0) or -errno. */
int attn_read(struct attn *a);
void attn_close(struct attn *a);
#endif
