/*
 * A host built on Blues' note-c, unchanged, for the interoperability test
 * (tests/integration/test_blues_notec.py), which compiles it at test time together with note-c's
 * sources from $NOTEGW_BLUES_HOSTS/note-c. The platform hooks are what a Linux application
 * supplies: a raw 9600-baud tty, or i2c-dev with I2C_RDWR (under tests/lib/i2c_shim.c, the
 * simulator). One request per line on stdin, one answer per line on stdout: JSON requests go
 * through NoteRequestResponse (note-c's CRC, retries and resync), anything else through
 * NoteRequestResponseJSON as raw text, as a garbled line would.
 *
 * usage: blues_notec_host serial TTY | i2c DEVICE MAX_TRANSFER
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "note.h"

static int fd = -1;

static void delay_ms(uint32_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint32_t millis(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* ---- serial hooks ---- */
static bool serial_reset(void)
{
	return tcflush(fd, TCIOFLUSH) == 0;
}

static void serial_transmit(uint8_t *buf, size_t n, bool flush)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
	if (flush)
		tcdrain(fd);
}

static bool serial_available(void)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

static char serial_receive(void)
{
	char c = 0;
	return read(fd, &c, 1) == 1 ? c : '\0';
}

static int open_serial(const char *tty)
{
	struct termios tio;
	fd = open(tty, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || tcgetattr(fd, &tio) < 0)
		return -1;
	cfmakeraw(&tio);
	cfsetispeed(&tio, B9600);
	cfsetospeed(&tio, B9600);
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		return -1;
	NoteSetFnSerial(serial_reset, serial_transmit, serial_available, serial_receive);
	return 0;
}

/* ---- I2C hooks (what note-arduino does with Wire, on i2c-dev) ---- */
static bool i2c_reset(uint16_t address)
{
	(void)address;
	return true;
}

static const char *i2c_transmit(uint16_t address, uint8_t *buf, uint16_t size)
{
	uint8_t frame[256];
	if (size > 255)
		return "i2c: chunk too long {io}";
	frame[0] = (uint8_t)size;
	memcpy(frame + 1, buf, size);
	struct i2c_msg m = {.addr = address, .flags = 0, .len = (uint16_t)(size + 1), .buf = frame};
	struct i2c_rdwr_ioctl_data d = {.msgs = &m, .nmsgs = 1};
	return ioctl(fd, I2C_RDWR, &d) < 0 ? "i2c: write failed {io}" : NULL;
}

static const char *i2c_receive(uint16_t address, uint8_t *buf, uint16_t size, uint32_t *available)
{
	uint8_t ask[2] = {0, (uint8_t)size};
	uint8_t frame[257];
	if (size > 255)
		return "i2c: read too long {io}";
	struct i2c_msg m[2] = {
	    {.addr = address, .flags = 0, .len = 2, .buf = ask},
	    {.addr = address, .flags = I2C_M_RD, .len = (uint16_t)(size + 2), .buf = frame},
	};
	struct i2c_rdwr_ioctl_data d = {.msgs = m, .nmsgs = 2};
	if (ioctl(fd, I2C_RDWR, &d) < 0)
		return "i2c: read failed {io}";
	if (frame[1] != size || frame[0] > 253)
		return "i2c: bad read header {io}";
	memcpy(buf, frame + 2, size);
	*available = frame[0];
	return NULL;
}

static int open_i2c(const char *dev, unsigned max)
{
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	NoteSetFnI2C(NOTE_I2C_ADDR_DEFAULT, max, i2c_reset, i2c_transmit, i2c_receive);
	return 0;
}

static void answer(char *line)
{
	J *req = JParse(line);
	if (req) {
		J *rsp = NoteRequestResponse(req);
		char *text = rsp ? JPrintUnformatted(rsp) : NULL;
		printf("%s\n", text ? text : "ERROR no response");
		JFree(text);
		JDelete(rsp);
	} else {
		char *text = NoteRequestResponseJSON(line);
		if (text)
			text[strcspn(text, "\r\n")] = '\0';
		printf("%s\n", text ? text : "ERROR no response");
		JFree(text);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s serial TTY | i2c DEVICE MAX_TRANSFER\n", argv[0]);
		return 2;
	}
	NoteSetFnDefault(malloc, free, delay_ms, millis);
	if (strcmp(argv[1], "serial") == 0)
		r = open_serial(argv[2]);
	else
		r = open_i2c(argv[2], argc > 3 ? (unsigned)atoi(argv[3]) : 0);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while ((n = getline(&line, &cap, stdin)) > 0) {
		line[strcspn(line, "\n")] = '\0';
		answer(line);
	}
	free(line);
	return 0;
}
