/* The Notecard's network time as a chrony SOCK reference clock: a Raspberry Pi has
 * no RTC, and TLS fails while its clock is wrong. card.time is read every 64 s
 * whether or not chrony is configured (`notegw status` shows the offset); with a
 * socket configured each reading goes to chrony as one sample datagram. */
#ifndef NOTEGW_CHRONY_H
#define NOTEGW_CHRONY_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct link;
struct chrony;

/* chrony's refclock_sock.c reads a struct sock_sample { struct timeval tv; double
 * offset; int pulse, leap, _pad, magic; } as chrony itself was compiled, so the
 * layout follows the chrony on the target, not notegw's own time_t. Two layouts
 * exist, each with every field naturally aligned and no padding on any ABI:
 * 32-bit tv_sec/tv_usec (32 bytes: Debian 12 armhf, i386) and 64-bit (40 bytes:
 * amd64, arm64, and 32-bit targets whose chrony uses 64-bit time_t). configure
 * picks one (--with-chrony-time-bits); see docs/architectures.md. */
struct chrony_sample32 {
	int32_t tv_sec;  /* offset 0 */
	int32_t tv_usec; /* 4 */
	double offset;   /* 8: reference minus system time, seconds */
	int32_t pulse;   /* 16 */
	int32_t leap;    /* 20 */
	int32_t pad;     /* 24 */
	int32_t magic;   /* 28: CHRONY_SOCK_MAGIC; 32 bytes in all */
};
struct chrony_sample64 {
	int64_t tv_sec;  /* offset 0 */
	int64_t tv_usec; /* 8 */
	double offset;   /* 16 */
	int32_t pulse;   /* 24 */
	int32_t leap;    /* 28 */
	int32_t pad;     /* 32 */
	int32_t magic;   /* 36; 40 bytes in all */
};
#define CHRONY_SOCK_MAGIC 0x534f434b
#define CHRONY_SAMPLE_MAX sizeof(struct chrony_sample64)

/* Encode one sample taken at system time at_real_us (microseconds since the epoch)
 * in the layout for a chrony whose tv_sec is time_bits (32 or 64) wide, in host byte
 * order, into buf (at least CHRONY_SAMPLE_MAX bytes). Returns its size, or 0 when
 * the time does not fit that layout (after 2038 in the 32-bit one) or time_bits is
 * neither width. */
size_t chrony_sample_encode(void *buf, int time_bits, uint64_t at_real_us, double offset_s);

/* Start reading the card's time through link (borrowed until chrony_free) on loop.
 * socket is chrony's SOCK path, or NULL for the status alone (copied). sampled, if
 * set, runs on the loop after each good reading (e.g. to rewrite the metrics). */
int chrony_new(sd_event *loop, struct link *link, const char *socket, void (*sampled)(void *ud),
               void *ud, struct chrony **out);
void chrony_free(struct chrony *c);
/* Clock state for `notegw status` (caller decrefs); NULL before the first reading. */
json_t *chrony_status(const struct chrony *c);
#endif
