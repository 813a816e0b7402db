/* Fuzz the control socket's request path as a client sees it: the input is written
 * to a real connection to control.c (line framing, the too-long and depth limits,
 * JSON parsing, command lookup, synchronous and deferred replies), the write side is
 * shut, and the loop runs until the server has answered everything and hung up.
 * Anything else — a hang, a reply that is not one JSON object per line — aborts.
 * Input: byte 0 is flags (0xAA: send a line over the 64 KiB limit first), the rest
 * is written as is. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "gw.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gw gw;
static struct control *ctl;
static struct sockaddr_un sa = {.sun_family = AF_UNIX};

static void h_echo(struct gw *g, json_t *args, struct control_reply *r)
{
	control_reply_ok(r, json_deep_copy(args));
}

static void h_err(struct gw *g, json_t *args, struct control_reply *r)
{
	const char *m = json_string_value(json_object_get(args, "msg"));
	control_reply_err(r, (int)json_integer_value(json_object_get(args, "code")), "%s",
	                  m ? m : "no");
}

static int on_later(sd_event_source *s, void *ud)
{
	control_reply_ok(ud, json_string("later"));
	sd_event_source_disable_unref(s);
	return 0;
}

/* Answered from the loop, after the dispatch has returned (as the link's are). */
static void h_later(struct gw *g, json_t *args, struct control_reply *r)
{
	if (sd_event_add_defer(g->loop, NULL, on_later, r) < 0)
		control_reply_err(r, ENOMEM, "defer");
}

static void h_admin(struct gw *g, json_t *args, struct control_reply *r)
{
	control_reply_ok(r, NULL);
}

static void setup(void)
{
	char dir[] = "/tmp/fuzz-control-XXXXXX";
	log_setup(LOG_ERR, false);
	if (!mkdtemp(dir) || sd_event_new(&gw.loop) < 0)
		abort();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/ctl.sock", dir);
	if (control_open(&gw, sa.sun_path, NULL, NULL, &ctl) < 0 ||
	    control_register(ctl, "echo", CONTROL_READ, h_echo) < 0 ||
	    control_register(ctl, "err", CONTROL_READ, h_err) < 0 ||
	    control_register(ctl, "later", CONTROL_READ, h_later) < 0 ||
	    control_register(ctl, "admin", CONTROL_ADMIN, h_admin) < 0)
		abort();
}

/* Every reply line the server sent must be a JSON object with a boolean "ok". */
static void check_replies(const char *buf, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		json_error_t e;
		json_t *j = json_loadb(buf + start, i - start, 0, &e);
		if (!j || !json_is_boolean(json_object_get(j, "ok"))) {
			fprintf(stderr, "bad reply: %.*s\n", (int)(i - start), buf + start);
			abort();
		}
		json_decref(j);
		start = i + 1;
	}
	if (start != len)
		abort(); /* a reply without its newline */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ctl)
		setup();
	if (size < 1)
		return 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	fcntl(fd, F_SETFL, O_NONBLOCK);
	char *out = NULL;
	size_t out_len = 0;
	if (data[0] == 0xAA) { /* one line past the limit, then the rest */
		out_len = 64 * 1024 + 100;
		out = malloc(out_len + size);
		if (!out)
			abort();
		memset(out, 'x', out_len);
	} else {
		out = malloc(size);
		if (!out)
			abort();
	}
	memcpy(out + out_len, data + 1, size - 1);
	out_len += size - 1;
	size_t sent = 0, got = 0, cap = 4096;
	char *in = malloc(cap);
	bool shut = false, eof = false;
	if (!in)
		abort();
	for (int rounds = 0; !eof; rounds++) {
		if (rounds > 100000)
			abort(); /* the server neither answered nor hung up */
		if (sent < out_len) {
			ssize_t k =
			    send(fd, out + sent, out_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0)
				sent += (size_t)k;
			else if (k < 0 && errno != EAGAIN)
				sent = out_len; /* the server hung up (too long): fine */
		}
		if (sent == out_len && !shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		sd_event_run(gw.loop, 1000);
		for (;;) {
			if (got == cap) {
				char *nb = realloc(in, cap *= 2);
				if (!nb)
					abort();
				in = nb;
			}
			ssize_t k = recv(fd, in + got, cap - got, MSG_DONTWAIT);
			if (k > 0) {
				got += (size_t)k;
				continue;
			}
			if (k == 0 || (k < 0 && errno != EAGAIN))
				eof = true;
			break;
		}
	}
	check_replies(in, got);
	close(fd);
	/* let the server notice, so clients do not pile up to its limit */
	while (sd_event_run(gw.loop, 0) > 0)
		;
	free(in);
	free(out);
	return 0;
}
