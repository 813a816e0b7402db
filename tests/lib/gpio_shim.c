/*
 * LD_PRELOAD shim: a fake GPIO chip for the daemon's ATTN code path (src/notecard/attn.c, libgpiod
 * v1), so a test can run the real poll-on-the-edge-fd path without gpio-sim or gpio-mockup in the
 * kernel. The pin is notecard-sim's --attn-file ("1" high, "0" low, replaced by rename on every
 * change), named by $NOTEGW_GPIO_SIM; any chip name and line offset open it.
 *
 * The line's event fd is an inotify descriptor on the file's directory: it becomes readable when
 * a file there is replaced, and gpiod_line_event_read_multiple() drains it, reads the level and
 * reports one rising edge when the pin went from low to high since the last read. No thread and
 * no timer: a pin that does not change never wakes the program, as with a real chip.
 *
 * Without $NOTEGW_GPIO_SIM the chip does not open (ENODEV).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <gpiod.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

struct gpiod_chip {
	char path[PATH_MAX];
	struct gpiod_line *line;
};

struct gpiod_line {
	struct gpiod_chip *chip;
	int fd;   /* inotify on the pin file's directory, -1 until requested */
	int high; /* the level last read */
};

static int pin_level(const char *path)
{
	char c = '0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t k = read(fd, &c, 1);
	close(fd);
	return k == 1 && c == '1';
}

struct gpiod_chip *gpiod_chip_open_lookup(const char *descr)
{
	const char *path = getenv("NOTEGW_GPIO_SIM");
	(void)descr;
	if (!path || !*path || strlen(path) >= PATH_MAX) {
		errno = ENODEV;
		return NULL;
	}
	struct gpiod_chip *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	memcpy(c->path, path, strlen(path) + 1);
	return c;
}

struct gpiod_line *gpiod_chip_get_line(struct gpiod_chip *chip, unsigned int offset)
{
	(void)offset;
	if (!chip->line) {
		chip->line = calloc(1, sizeof(*chip->line));
		if (!chip->line)
			return NULL;
		chip->line->chip = chip;
		chip->line->fd = -1;
	}
	return chip->line;
}

int gpiod_line_request_rising_edge_events(struct gpiod_line *line, const char *consumer)
{
	(void)consumer;
	char dir[PATH_MAX];
	memcpy(dir, line->chip->path, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		memcpy(dir, ".", 2);
	line->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (line->fd < 0)
		return -1;
	if (inotify_add_watch(line->fd, dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		int e = errno;
		close(line->fd);
		line->fd = -1;
		errno = e;
		return -1;
	}
	line->high = pin_level(line->chip->path);
	return 0;
}

int gpiod_line_event_get_fd(struct gpiod_line *line)
{
	return line->fd;
}

int gpiod_line_event_read_multiple(struct gpiod_line *line, struct gpiod_line_event *events,
                                   unsigned int num_events)
{
	char buf[4096];
	while (read(line->fd, buf, sizeof(buf)) > 0)
		;
	int high = pin_level(line->chip->path);
	int rose = high && !line->high;
	line->high = high;
	if (!rose || num_events == 0)
		return 0;
	memset(&events[0], 0, sizeof(events[0]));
	events[0].event_type = GPIOD_LINE_EVENT_RISING_EDGE;
	return 1;
}

void gpiod_line_release(struct gpiod_line *line)
{
	if (line && line->fd >= 0) {
		close(line->fd);
		line->fd = -1;
	}
}

void gpiod_chip_close(struct gpiod_chip *chip)
{
	if (!chip)
		return;
	if (chip->line)
		gpiod_line_release(chip->line);
	free(chip->line);
	free(chip);
}
