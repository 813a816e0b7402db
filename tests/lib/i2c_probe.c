/*
 * i2c_probe: a tiny host that speaks the Notecard's serial-over-I2C protocol through the real
 * Linux i2c-dev interface (open, ioctl I2C_SLAVE / I2C_RDWR, write, read), so tests can drive
 * notecard-sim through the LD_PRELOAD shim exactly as the daemon would.
 *
 * usage: i2c_probe [-d DEV] [-a ADDR] [-c CHUNK] COMMAND...
 *   w HEX        one write transfer of these bytes         -> "ok" | "err ERRNO"
 *   z            a zero-length write (probe)               -> "ok" | "err ERRNO"
 *   r N          write [0][N], then read(N+2) (plain)      -> "hex BYTES" | "err ERRNO"
 *   R N          the same as one I2C_RDWR transaction      -> "hex BYTES" | "err ERRNO"
 *   b N          a bare read(N), no [0][n] request first   -> "hex BYTES" | "err ERRNO"
 *   q JSON       a whole transaction: JSON + "\n" in CHUNK-byte writes, then poll and read the
 *                response line in 253-byte reads           -> "rsp LINE" | "err ERRNO"
 *   s MS         sleep MS milliseconds                     -> (nothing)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int addr = 0x17;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void print_hex(const unsigned char *b, size_t n)
{
	printf("hex ");
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int do_read_rdwr(int fd, unsigned n, unsigned char *out)
{
	unsigned char req[2] = {0, (unsigned char)n};
	struct i2c_msg msgs[2] = {
	    {.addr = (unsigned short)addr, .flags = 0, .len = 2, .buf = req},
	    {.addr = (unsigned short)addr,
	     .flags = I2C_M_RD,
	     .len = (unsigned short)(n + 2),
	     .buf = out},
	};
	struct i2c_rdwr_ioctl_data d = {.msgs = msgs, .nmsgs = 2};
	return ioctl(fd, I2C_RDWR, &d) < 0 ? -1 : 0;
}

static int transaction(int fd, const char *json, size_t chunk)
{
	size_t len = strlen(json);
	char *line = malloc(len + 2);
	unsigned char buf[256];
	char *rsp = NULL;
	size_t rlen = 0;
	int rc = -1;

	if (!line)
		return -1;
	memcpy(line, json, len);
	line[len++] = '\n';
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		buf[0] = (unsigned char)n;
		memcpy(buf + 1, line + off, n);
		if (write(fd, buf, n + 1) != (ssize_t)(n + 1))
			goto out;
		sleep_ms(1);
	}
	/* poll with n = 0 until the card has something, then read it out */
	for (int tries = 0; tries < 2000; tries++) {
		unsigned want = 0;
		if (do_read_rdwr(fd, 0, buf) < 0)
			goto out;
		want = buf[0];
		while (want > 0) {
			unsigned n = want > 253 ? 253 : want;
			if (do_read_rdwr(fd, n, buf) < 0)
				goto out;
			if (buf[1] > n) {
				errno = EPROTO;
				goto out;
			}
			char *grown = realloc(rsp, rlen + buf[1] + 1);
			if (!grown)
				goto out;
			rsp = grown;
			memcpy(rsp + rlen, buf + 2, buf[1]);
			rlen += buf[1];
			want = buf[0];
		}
		if (rlen > 0 && rsp[rlen - 1] == '\n') {
			rsp[rlen] = '\0';
			while (rlen > 0 && (rsp[rlen - 1] == '\n' || rsp[rlen - 1] == '\r'))
				rsp[--rlen] = '\0';
			printf("rsp %s\n", rsp);
			rc = 0;
			goto out;
		}
		sleep_ms(5);
	}
	errno = ETIMEDOUT;
out:
	free(line);
	free(rsp);
	return rc;
}

int main(int argc, char **argv)
{
	const char *dev = "/dev/i2c-1";
	size_t chunk = 253;
	int opt, fd;

	while ((opt = getopt(argc, argv, "d:a:c:")) != -1) {
		switch (opt) {
		case 'd':
			dev = optarg;
			break;
		case 'a':
			addr = (int)strtol(optarg, NULL, 0);
			break;
		case 'c':
			chunk = (size_t)strtoul(optarg, NULL, 0);
			if (chunk < 1 || chunk > 253)
				chunk = 253;
			break;
		default:
			fprintf(stderr, "usage: i2c_probe [-d DEV] [-a ADDR] [-c CHUNK] CMD...\n");
			return 2;
		}
	}
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("open-err %d\n", errno);
		return 1;
	}
	unsigned long funcs = 0;
	if (ioctl(fd, I2C_FUNCS, &funcs) < 0 || !(funcs & I2C_FUNC_I2C)) {
		printf("funcs-err %d\n", errno);
		return 1;
	}
	if (ioctl(fd, I2C_SLAVE, addr) < 0) {
		printf("slave-err %d\n", errno);
		return 1;
	}
	for (int i = optind; i < argc; i++) {
		const char *cmd = argv[i];
		const char *arg = i + 1 < argc ? argv[i + 1] : "";
		unsigned char buf[600];
		if (strcmp(cmd, "w") == 0) {
			size_t n = 0;
			for (const char *p = arg; p[0] && p[1] && n < sizeof(buf); p += 2)
				buf[n++] = (unsigned char)(hexval(p[0]) * 16 + hexval(p[1]));
			if (write(fd, buf, n) == (ssize_t)n)
				printf("ok\n");
			else
				printf("err %d\n", errno);
			i++;
		} else if (strcmp(cmd, "z") == 0) {
			if (write(fd, buf, 0) == 0)
				printf("ok\n");
			else
				printf("err %d\n", errno);
		} else if (strcmp(cmd, "r") == 0 || strcmp(cmd, "R") == 0) {
			unsigned n = (unsigned)strtoul(arg, NULL, 0) & 0xff;
			if (cmd[0] == 'R') {
				if (do_read_rdwr(fd, n, buf) == 0)
					print_hex(buf, n + 2);
				else
					printf("err %d\n", errno);
			} else {
				unsigned char req[2] = {0, (unsigned char)n};
				ssize_t got;
				if (write(fd, req, 2) != 2)
					printf("err %d\n", errno);
				else if ((got = read(fd, buf, n + 2)) < 0)
					printf("err %d\n", errno);
				else
					print_hex(buf, (size_t)got);
			}
			i++;
		} else if (strcmp(cmd, "b") == 0) {
			size_t n = strtoul(arg, NULL, 0);
			ssize_t got = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));
			if (got < 0)
				printf("err %d\n", errno);
			else
				print_hex(buf, (size_t)got);
			i++;
		} else if (strcmp(cmd, "q") == 0) {
			if (transaction(fd, arg, chunk) < 0)
				printf("err %d\n", errno);
			i++;
		} else if (strcmp(cmd, "s") == 0) {
			sleep_ms(strtol(arg, NULL, 0));
			i++;
		} else {
			fprintf(stderr, "i2c_probe: unknown command %s\n", cmd);
			return 2;
		}
		fflush(stdout);
	}
	close(fd);
	return 0;
}
