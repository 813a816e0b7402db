/* ATTN through libgpiod: v1 (Debian 12, Raspberry Pi OS bookworm) and v2 behind
 * the one small interface in attn.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notecard/attn.h"

#if defined(HAVE_GPIOD_V1) || defined(HAVE_GPIOD_V2)
#include <gpiod.h>
#endif

#define CONSUMER "notegwd-attn"

int attn_parse(const char *spec, char *chip, size_t cap, unsigned *line)
{
	if (!spec)
		return -EINVAL;
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || !colon[1])
		return -EINVAL;
	size_t n = (size_t)(colon - spec);
	if (n + 1 > cap)
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long v = strtoul(colon + 1, &end, 10);
	if (errno || *end || v > 4095 || colon[1] == '-' || colon[1] == '+')
		return -EINVAL;
	memcpy(chip, spec, n);
	chip[n] = '\0';
	*line = (unsigned)v;
	return 0;
}

#if defined(HAVE_GPIOD_V1)
struct attn {
	struct gpiod_chip *chip;
	struct gpiod_line *line;
	int fd;
};

int attn_open(const char *spec, struct attn **out)
{
	char name[128];
	unsigned off;
	if (attn_parse(spec, name, sizeof(name), &off) < 0)
		return -EINVAL;
	struct attn *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	int r;
	a->chip = gpiod_chip_open_lookup(name);
	if (!a->chip) {
		r = errno ? -errno : -ENODEV;
		goto fail;
	}
	a->line = gpiod_chip_get_line(a->chip, off);
	if (!a->line) {
		r = errno ? -errno : -EINVAL;
		goto fail;
	}
	if (gpiod_line_request_rising_edge_events(a->line, CONSUMER) < 0) {
		r = errno ? -errno : -EBUSY;
		a->line = NULL;
		goto fail;
	}
	a->fd = gpiod_line_event_get_fd(a->line);
	if (a->fd < 0) {
		r = -EIO;
		goto fail;
	}
	*out = a;
	return 0;
fail:
	attn_close(a);
	return r;
}

int attn_read(struct attn *a)
{
	/* Only the count is used. struct gpiod_line_event holds a struct timespec, and
	 * the library may have been built with another time_t than notegw (Debian 12
	 * armhf: 32-bit, notegw 64-bit), so its events may be larger or smaller than
	 * ours: room for 16 of either, and the fields are never read. */
	struct gpiod_line_event ev[32];
	int n = gpiod_line_event_read_multiple(a->line, ev, 16);
	return n < 0 ? (errno ? -errno : -EIO) : n;
}

void attn_close(struct attn *a)
{
	if (!a)
		return;
	if (a->line)
		gpiod_line_release(a->line);
	if (a->chip)
		gpiod_chip_close(a->chip);
	free(a);
}

int attn_fd(const struct attn *a)
{
	return a->fd;
}

#elif defined(HAVE_GPIOD_V2)
struct attn {
	struct gpiod_chip *chip;
	struct gpiod_line_request *req;
	struct gpiod_edge_event_buffer *buf;
	int fd;
};

int attn_open(const char *spec, struct attn **out)
{
	char name[128], path[160];
	unsigned off;
	if (attn_parse(spec, name, sizeof(name), &off) < 0)
		return -EINVAL;
	/* v2 opens chips by path only */
	if (snprintf(path, sizeof(path), "%s%s", name[0] == '/' ? "" : "/dev/", name) >=
	    (int)sizeof(path))
		return -EINVAL;
	struct attn *a = calloc(1, sizeof(*a));
	struct gpiod_line_settings *ls = NULL;
	struct gpiod_line_config *lc = NULL;
	struct gpiod_request_config *rc = NULL;
	int r = -ENOMEM;
	if (!a)
		return -ENOMEM;
	a->chip = gpiod_chip_open(path);
	if (!a->chip) {
		r = errno ? -errno : -ENODEV;
		goto fail;
	}
	ls = gpiod_line_settings_new();
	lc = gpiod_line_config_new();
	rc = gpiod_request_config_new();
	a->buf = gpiod_edge_event_buffer_new(16);
	if (!ls || !lc || !rc || !a->buf)
		goto fail;
	gpiod_line_settings_set_direction(ls, GPIOD_LINE_DIRECTION_INPUT);
	gpiod_line_settings_set_edge_detection(ls, GPIOD_LINE_EDGE_RISING);
	unsigned int offs[1] = {off};
	if (gpiod_line_config_add_line_settings(lc, offs, 1, ls) < 0) {
		r = errno ? -errno : -EINVAL;
		goto fail;
	}
	gpiod_request_config_set_consumer(rc, CONSUMER);
	a->req = gpiod_chip_request_lines(a->chip, rc, lc);
	if (!a->req) {
		r = errno ? -errno : -EBUSY;
		goto fail;
	}
	a->fd = gpiod_line_request_get_fd(a->req);
	gpiod_line_settings_free(ls);
	gpiod_line_config_free(lc);
	gpiod_request_config_free(rc);
	*out = a;
	return 0;
fail:
	gpiod_line_settings_free(ls);
	gpiod_line_config_free(lc);
	gpiod_request_config_free(rc);
	attn_close(a);
	return r;
}

int attn_read(struct attn *a)
{
	int n = gpiod_line_request_read_edge_events(a->req, a->buf, 16);
	return n < 0 ? (errno ? -errno : -EIO) : n;
}

void attn_close(struct attn *a)
{
	if (!a)
		return;
	if (a->req)
		gpiod_line_request_release(a->req);
	if (a->buf)
		gpiod_edge_event_buffer_free(a->buf);
	if (a->chip)
		gpiod_chip_close(a->chip);
	free(a);
}

int attn_fd(const struct attn *a)
{
	return a->fd;
}

#else
struct attn {
	int fd;
};

int attn_open(const char *spec, struct attn **out)
{
	char name[128];
	unsigned off;
	if (attn_parse(spec, name, sizeof(name), &off) < 0)
		return -EINVAL;
	return -ENOTSUP;
}

int attn_read(struct attn *a)
{
	return -ENOTSUP;
}

void attn_close(struct attn *a)
{
	free(a);
}

int attn_fd(const struct attn *a)
{
	return -1;
}
#endif
