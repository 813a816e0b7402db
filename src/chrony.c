/* The card's clock as a chrony SOCK refclock; see chrony.h. The sample is card.time
 * (whole seconds) against the midpoint of the request, so it is good to about a
 * second: enough to get TLS working after a boot without an RTC, and chrony is told
 * so (precision 1 in its refclock line). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "chrony.h"
#include "link.h"
#include "log.h"

#define CLOCK_PERIOD_US (64 * 1000000ULL)
/* Without chrony the offset is only shown (status, metrics): it moves over hours, and
 * an idle gateway should not wake the card every minute for it. */
#define SHOW_PERIOD_US (3600 * 1000000ULL)

/* The layouts in chrony.h, checked on every build for the target's ABI. */
_Static_assert(sizeof(struct chrony_sample32) == 32, "chrony 32-bit sample is 32 bytes");
_Static_assert(offsetof(struct chrony_sample32, offset) == 8, "offset at 8");
_Static_assert(offsetof(struct chrony_sample32, magic) == 28, "magic at 28");
_Static_assert(sizeof(struct chrony_sample64) == 40, "chrony 64-bit sample is 40 bytes");
_Static_assert(offsetof(struct chrony_sample64, offset) == 16, "offset at 16");
_Static_assert(offsetof(struct chrony_sample64, magic) == 36, "magic at 36");

struct chrony {
	struct link *link;
	char *socket;
	void (*sampled)(void *ud);
	void *ud;
	sd_event_source *timer;
	bool asking;
	uint64_t asked_real_us;
	bool have_sample;
	double offset_s;
	int64_t card_time;
	uint64_t samples, sent;
};

static uint64_t real_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

size_t chrony_sample_encode(void *buf, int time_bits, uint64_t at_real_us, double offset_s)
{
	uint64_t sec = at_real_us / 1000000u, usec = at_real_us % 1000000u;
	if (time_bits == 32) {
		if (sec > INT32_MAX)
			return 0; /* 2038: that chrony cannot take it */
		struct chrony_sample32 s = {.tv_sec = (int32_t)sec,
		                            .tv_usec = (int32_t)usec,
		                            .offset = offset_s,
		                            .magic = CHRONY_SOCK_MAGIC};
		memcpy(buf, &s, sizeof(s));
		return sizeof(s);
	}
	if (time_bits == 64) {
		struct chrony_sample64 s = {.tv_sec = (int64_t)sec,
		                            .tv_usec = (int64_t)usec,
		                            .offset = offset_s,
		                            .magic = CHRONY_SOCK_MAGIC};
		memcpy(buf, &s, sizeof(s));
		return sizeof(s);
	}
	return 0;
}

static void send_sample(struct chrony *c, uint64_t at_real_us)
{
	unsigned char buf[CHRONY_SAMPLE_MAX];
	size_t n = chrony_sample_encode(buf, NOTEGW_CHRONY_TIME_BITS, at_real_us, c->offset_s);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(c->socket);
	if (n == 0 || len >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, c->socket, len + 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, buf, n, 0, (struct sockaddr *)&sa, sizeof(sa)) == (ssize_t)n)
		c->sent++;
	else
		log_debug("time: chrony socket %s: %m", c->socket);
	close(fd);
}

static void on_time(void *ud, int err, const char *rsp)
{
	struct chrony *c = ud;
	c->asking = false;
	uint64_t now_real = real_us();
	json_t *o = err < 0 ? NULL : json_loads(rsp, 0, NULL);
	json_int_t t = json_integer_value(json_object_get(o, "time"));
	bool bad = !o || json_object_get(o, "err") || t < 1600000000;
	json_decref(o);
	if (bad)
		return; /* no time yet: the card has not synced */
	/* The card answered somewhere in the round trip: take its middle. */
	uint64_t mid = c->asked_real_us + (now_real - c->asked_real_us) / 2;
	c->card_time = t;
	/* card.time is whole seconds: add half a second for the truncation. */
	c->offset_s = ((double)t + 0.5) - (double)mid / 1e6;
	c->have_sample = true;
	c->samples++;
	if (c->socket)
		send_sample(c, mid);
	if (c->sampled)
		c->sampled(c->ud);
}

static int on_clock(sd_event_source *s, uint64_t usec, void *ud)
{
	struct chrony *c = ud;
	if (!c->asking && c->link) {
		c->asked_real_us = real_us();
		if (link_request(c->link, "{\"req\":\"card.time\"}", on_time, c) == 0)
			c->asking = true;
	}
	sd_event_source_set_time(s, usec + (c->socket ? CLOCK_PERIOD_US : SHOW_PERIOD_US));
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

json_t *chrony_status(const struct chrony *c)
{
	if (!c || !c->have_sample)
		return NULL;
	return json_pack("{s:I,s:f,s:I,s:I,s:s?}", "card_time", (json_int_t)c->card_time,
	                 "offset_s", c->offset_s, "samples", (json_int_t)c->samples,
	                 "chrony_samples", (json_int_t)c->sent, "chrony_socket", c->socket);
}

int chrony_new(sd_event *loop, struct link *link, const char *socket, void (*sampled)(void *ud),
               void *ud, struct chrony **out)
{
	struct chrony *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->link = link;
	c->sampled = sampled;
	c->ud = ud;
	int r = -ENOMEM;
	if (socket && !(c->socket = strdup(socket)))
		goto fail;
	if ((r = sd_event_add_time_relative(loop, &c->timer, CLOCK_MONOTONIC, 3000000, 0, on_clock,
	                                    c)) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	chrony_free(c);
	return r;
}

void chrony_free(struct chrony *c)
{
	if (!c)
		return;
	sd_event_source_disable_unref(c->timer);
	free(c->socket);
	free(c);
}
