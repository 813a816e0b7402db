/*
 * LD_PRELOAD shim: puts a program's Linux i2c-dev traffic on notecard-sim's simulated bus, so the
 * daemon's real I2C code runs unchanged in tests. Everything that is not /dev/i2c-* passes
 * through to the next definition (libc, or ASan's interceptors when ASan is loaded first).
 *
 * open/open64/openat/openat64 (and the _FORTIFY_SOURCE variants __open_2, __open64_2,
 * __openat_2, __openat64_2, __read_chk) of "/dev/i2c-*" connect to the Unix socket
 * named by $NOTEGW_I2C_SIM (unset: pass through; cannot connect: ENOENT) and return that socket
 * as the device fd. ioctl I2C_SLAVE/I2C_SLAVE_FORCE (address), I2C_FUNCS, I2C_RDWR, I2C_TIMEOUT,
 * I2C_RETRIES; read/write; close.
 *
 * Framing to the simulator, little-endian (sim/notecard_sim/i2c.py):
 *   request  [op u8: 'O' open, 'W' write, 'R' read][addr u8][len u16] then len bytes for 'W'
 *   reply    [status u8: 0 ACK, 1 error][errno u8][len u16] then len bytes for 'R'
 * A reply shorter than a read asked for is a short read: read() returns the short count;
 * I2C_RDWR fills the rest with 0xff (what a released bus reads as) and succeeds.
 *
 * Under ASan built with gcc, LD_PRELOAD must list libasan.so first, then this library
 * (tests/lib/sim.py's Sim.i2c_env() does that).
 *
 * An interposer defines the C library's own symbols, and on 32-bit targets open and open64,
 * ioctl and __ioctl_time64 are different ones: this file is compiled without the large-file
 * and 64-bit time_t redirections config.h turns on for the rest of notegw (with them, open
 * would be defined twice), and defines both of each pair; the daemon, built with them,
 * calls open64 and __ioctl_time64 there.
 */
#undef _FILE_OFFSET_BITS
#undef _TIME_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SHIM_MAX_FD   4096
#define SHIM_MAX_XFER 65535

/* Address per intercepted fd; 0 = not ours, otherwise addr | 0x100 (so address 0 is valid). */
static unsigned short shim_fds[SHIM_MAX_FD];

int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);
int openat(int dirfd, const char *path, int flags, ...);
int openat64(int dirfd, const char *path, int flags, ...);
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
int ioctl(int fd, unsigned long req, ...);
ssize_t read(int fd, void *buf, size_t n);
ssize_t write(int fd, const void *buf, size_t n);
int close(int fd);

static ssize_t xfer(int fd, char op, uint8_t addr, uint8_t *buf, size_t len);

static void *next_sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p)
		abort(); /* no libc beneath us: nothing sensible to do */
	return p;
}

static int is_i2c_path(const char *path)
{
	return path && strncmp(path, "/dev/i2c-", 9) == 0 && getenv("NOTEGW_I2C_SIM");
}

static int shim_open(int flags)
{
	const char *sock = getenv("NOTEGW_I2C_SIM");
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, sock, strlen(sock));
	fd = socket(AF_UNIX, SOCK_STREAM | ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0), 0);
	if (fd < 0)
		return -1;
	if (fd >= SHIM_MAX_FD || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int (*real_close)(int) = next_sym("close");
		real_close(fd);
		errno = ENOENT; /* like an adapter that is not there */
		return -1;
	}
	shim_fds[fd] = 0x100;
	/* the simulator may refuse the open (an unplugged adapter) */
	if (xfer(fd, 'O', 0, NULL, 0) < 0) {
		int saved = errno;
		int (*real_close)(int) = next_sym("close");
		shim_fds[fd] = 0;
		real_close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int ours(int fd)
{
	return fd >= 0 && fd < SHIM_MAX_FD && shim_fds[fd] != 0;
}

static int send_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_all(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One exchange with the simulator: op 'O' (open), 'W' (write) or 'R' (read). Returns bytes
 * transferred (reads: bytes received) or -1 with errno. */
static ssize_t xfer(int fd, char op, uint8_t addr, uint8_t *buf, size_t len)
{
	uint8_t hdr[4];
	uint8_t rep[4];
	size_t got;
	int is_read = op == 'R';

	if (len > SHIM_MAX_XFER) {
		errno = EINVAL;
		return -1;
	}
	hdr[0] = (uint8_t)op;
	hdr[1] = addr;
	hdr[2] = (uint8_t)(len & 0xff);
	hdr[3] = (uint8_t)(len >> 8);
	if (send_all(fd, hdr, sizeof(hdr)) < 0 ||
	    (op == 'W' && len && send_all(fd, buf, len) < 0) ||
	    recv_all(fd, rep, sizeof(rep)) < 0) {
		errno = EIO;
		return -1;
	}
	got = (size_t)rep[2] | ((size_t)rep[3] << 8);
	if (got > len) {
		errno = EIO;
		return -1;
	}
	if (got > 0 && recv_all(fd, buf, got) < 0) {
		errno = EIO;
		return -1;
	}
	if (rep[0] != 0) {
		errno = rep[1] ? rep[1] : EIO;
		return -1;
	}
	return is_read ? (ssize_t)got : (ssize_t)len;
}

static int vopen_common(const char *path, int flags)
{
	return shim_open(flags);
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (is_i2c_path(path))
		return vopen_common(path, flags);
	int (*real)(const char *, int, ...) = next_sym("open");
	return real(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (is_i2c_path(path))
		return vopen_common(path, flags);
	int (*real)(const char *, int, ...) = next_sym("open64");
	return real(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (is_i2c_path(path))
		return vopen_common(path, flags);
	int (*real)(int, const char *, int, ...) = next_sym("openat");
	return real(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (is_i2c_path(path))
		return vopen_common(path, flags);
	int (*real)(int, const char *, int, ...) = next_sym("openat64");
	return real(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags)
{
	if (is_i2c_path(path))
		return vopen_common(path, flags);
	int (*real)(const char *, int) = next_sym("__open_2");
	return real(path, flags);
}

int __open64_2(const char *path, int flags)
{
	if (is_i2c_path(path))
		return vopen_common(path, flags);
	int (*real)(const char *, int) = next_sym("__open64_2");
	return real(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	if (is_i2c_path(path))
		return vopen_common(path, flags);
	int (*real)(int, const char *, int) = next_sym("__openat_2");
	return real(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	if (is_i2c_path(path))
		return vopen_common(path, flags);
	int (*real)(int, const char *, int) = next_sym("__openat64_2");
	return real(dirfd, path, flags);
}

static int shim_rdwr(int fd, struct i2c_rdwr_ioctl_data *d)
{
	if (!d || !d->msgs || d->nmsgs == 0 || d->nmsgs > I2C_RDWR_IOCTL_MAX_MSGS) {
		errno = EINVAL;
		return -1;
	}
	for (unsigned i = 0; i < d->nmsgs; i++) {
		struct i2c_msg *m = &d->msgs[i];
		int rd = (m->flags & I2C_M_RD) != 0;
		ssize_t r = xfer(fd, rd ? 'R' : 'W', (uint8_t)m->addr, m->buf, m->len);
		if (r < 0)
			return -1;
		if (rd && (size_t)r < m->len)
			memset(m->buf + r, 0xff, m->len - (size_t)r);
	}
	return (int)d->nmsgs;
}

/* ioctl under the name next is the C library's for it (ioctl or __ioctl_time64). */
static int shim_ioctl(const char *next, int fd, unsigned long req, void *arg)
{
	if (!ours(fd)) {
		int (*real)(int, unsigned long, ...) = next_sym(next);
		return real(fd, req, arg);
	}
	switch (req) {
	case I2C_SLAVE:
	case I2C_SLAVE_FORCE:
		if ((unsigned long)arg > 0x7f) {
			errno = EINVAL;
			return -1;
		}
		shim_fds[fd] = (unsigned short)(0x100 | (unsigned long)arg);
		return 0;
	case I2C_FUNCS:
		if (!arg) {
			errno = EFAULT;
			return -1;
		}
		*(unsigned long *)arg = I2C_FUNC_I2C | I2C_FUNC_SMBUS_EMUL;
		return 0;
	case I2C_RDWR:
		return shim_rdwr(fd, arg);
	case I2C_TIMEOUT:
	case I2C_RETRIES:
		return 0;
	default:
		errno = ENOTTY;
		return -1;
	}
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	return shim_ioctl("ioctl", fd, req, arg);
}

#if defined(__GLIBC__) && __TIMESIZE == 32
int __ioctl_time64(int fd, unsigned long req, ...);
int __ioctl_time64(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	return shim_ioctl("__ioctl_time64", fd, req, arg);
}
#endif

ssize_t read(int fd, void *buf, size_t n)
{
	if (!ours(fd)) {
		ssize_t (*real)(int, void *, size_t) = next_sym("read");
		return real(fd, buf, n);
	}
	return xfer(fd, 'R', (uint8_t)(shim_fds[fd] & 0x7f), buf, n);
}

/* _FORTIFY_SOURCE turns read() into this when the buffer's size is known */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (!ours(fd)) {
		ssize_t (*real)(int, void *, size_t, size_t) = next_sym("__read_chk");
		return real(fd, buf, n, buflen);
	}
	if (n > buflen)
		abort(); /* what glibc's check does (__chk_fail) */
	return xfer(fd, 'R', (uint8_t)(shim_fds[fd] & 0x7f), buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	if (!ours(fd)) {
		ssize_t (*real)(int, const void *, size_t) = next_sym("write");
		return real(fd, buf, n);
	}
	/* xfer does not modify the buffer for a write */
	return xfer(fd, 'W', (uint8_t)(shim_fds[fd] & 0x7f), (uint8_t *)(uintptr_t)buf, n);
}

int close(int fd)
{
	int (*real)(int) = next_sym("close");
	if (fd >= 0 && fd < SHIM_MAX_FD)
		shim_fds[fd] = 0;
	return real(fd);
}
