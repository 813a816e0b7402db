/* The request layer over a transport: one compact JSON line per request, the
 * "crc":"SSSS:CCCCCCCC" field on every req, its check on the answer, and note-c's
 * retry policy — only transport faults, CRC/sequence mismatches, unparseable
 * answers and {io} errors are retried, with a channel reset after a transport
 * fault. One transaction at a time: only the link thread calls in here. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "notecard/card.h"

#define CARD_LINE_MAX (256u * 1024u) /* largest answer accepted (dfu.get pieces are ~11 KB) */
#define CRC_FIELD_LEN 22             /* ,"crc":"SSSS:CCCCCCCC" */

struct card {
	struct card_transport *t;
	bool open;
	bool need_reset;
	bool crc_seen; /* the card answered with a crc once: from now on it must */
	uint16_t seq;
	char *line;      /* CARD_LINE_MAX receive buffer */
	size_t line_len; /* of the last answer line, crc field removed */
	struct card_counters cnt;
};

/* ---- CRC ------------------------------------------------------------------------ */
static uint32_t crc_table[256];
static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t card_crc32(const void *buf, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, crc_init);
	const unsigned char *p = buf;
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < len; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

size_t card_crc_append(const char *req, size_t len, uint16_t seq, char *out, size_t cap)
{
	if (len < 2 || req[0] != '{' || req[len - 1] != '}' || cap < len + CRC_FIELD_LEN + 1)
		return 0;
	/* an empty object gets no leading comma */
	bool empty = memchr(req, ':', len) == NULL;
	uint32_t crc = card_crc32(req, len);
	memcpy(out, req, len - 1);
	int n = snprintf(out + len - 1, cap - (len - 1), "%s\"crc\":\"%04X:%08X\"}",
	                 empty ? "" : ",", (unsigned)seq, (unsigned)crc);
	if (n < 0 || (size_t)n >= cap - (len - 1))
		return 0;
	return len - 1 + (size_t)n;
}

static int hexval(const char *s, size_t n, uint32_t *v)
{
	uint32_t x = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (d < 0)
			return -1;
		x = x << 4 | (uint32_t)d;
	}
	*v = x;
	return 0;
}

int card_crc_check(char *rsp, size_t *len, uint16_t seq)
{
	size_t n = *len;
	while (n > 0 && (unsigned char)rsp[n - 1] <= ' ')
		n--;
	/* "crc":"SSSS:CCCCCCCC"} closes the object: 21 bytes + '}' */
	if (n < 23 || rsp[n - 1] != '}')
		return 1;
	size_t f = n - 22; /* where "crc" starts */
	if (memcmp(rsp + f, "\"crc\":\"", 7) != 0 || rsp[f + 11] != ':' || rsp[f + 20] != '"')
		return 1;
	uint32_t s, c;
	if (hexval(rsp + f + 7, 4, &s) < 0 || hexval(rsp + f + 12, 8, &c) < 0)
		return -EBADMSG;
	char before = rsp[f - 1];
	size_t cut;
	if (before == ',' || before == ' ')
		cut = f - 1;
	else if (before == '{')
		cut = f;
	else
		return -EBADMSG;
	rsp[cut] = '}';
	rsp[cut + 1] = '\0';
	*len = cut + 1;
	if (card_crc32(rsp, cut + 1) != c)
		return -EBADMSG;
	if ((uint16_t)s != seq)
		return -ERANGE;
	return 0;
}

/* ---- requests --------------------------------------------------------------------- */
int card_new(struct card_transport *t, struct card **out)
{
	struct card *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->line = malloc(CARD_LINE_MAX);
	if (!c->line) {
		free(c);
		return -ENOMEM;
	}
	c->t = t;
	c->need_reset = true;
	*out = c;
	return 0;
}

void card_free(struct card *c)
{
	if (!c)
		return;
	card_transport_free(c->t);
	free(c->line);
	free(c);
}

struct card_transport *card_transport(struct card *c)
{
	return c->t;
}

void card_counters(struct card *c, struct card_counters *out)
{
	*out = c->cnt;
}

void card_close(struct card *c)
{
	if (c->open)
		c->t->ops->close(c->t);
	c->open = false;
	c->need_reset = true;
}

int card_err_has(json_t *rsp, const char *token)
{
	const char *err = json_string_value(json_object_get(rsp, "err"));
	return err && strstr(err, token) != NULL;
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* How long to wait for the answer to start. */
static unsigned request_timeout(const struct card_timing *tm, const char *name, json_t *req)
{
	unsigned ms = tm->response_timeout_ms;
	if (has_prefix(name, "web.") || has_prefix(name, "card.binary") ||
	    strcmp(name, "hub.sync") == 0 || strcmp(name, "dfu.get") == 0)
		ms = tm->long_timeout_ms;
	json_t *v;
	long long given = -1;
	if ((v = json_object_get(req, "milliseconds")) && json_is_number(v))
		given = (long long)json_number_value(v);
	else if ((v = json_object_get(req, "seconds")) && json_is_number(v))
		given = (long long)(json_number_value(v) * 1000.0);
	if (given > 0 && given < 24LL * 3600 * 1000) {
		/* the card works for that long, then answers: leave room for the answer */
		unsigned long long t = (unsigned long long)given + tm->byte_timeout_ms;
		ms = t > ms ? (unsigned)t : ms;
	}
	return ms;
}

static void pause_ms(struct card *c, unsigned ms)
{
	if (ms)
		c->t->clock->sleep_us(c->t->clock->ctx, (uint64_t)ms * 1000u);
}

static int ensure_open(struct card *c)
{
	if (c->open)
		return 0;
	int r = c->t->ops->open(c->t);
	if (r < 0)
		return r;
	c->open = true;
	c->need_reset = true;
	return 0;
}

/* Receive the answer to seq. 0 with *rsp, or a retryable -errno (-ETIMEDOUT,
 * -EBADMSG crc, -ERANGE seq, -EPROTO not a JSON object we accept: garbled, or the
 * answer itself), or -ENODEV. */
static int read_answer(struct card *c, uint16_t seq, unsigned first_ms, json_t **rsp)
{
	c->line_len = 0;
	for (;;) {
		size_t len = 0;
		int r = c->t->ops->recv_line(c->t, c->line, CARD_LINE_MAX, &len, first_ms);
		if (r < 0)
			return r;
		if (len == 0)
			continue; /* a stray line end from a resync */
		r = card_crc_check(c->line, &len, seq);
		if (r < 0)
			return r;
		bool crc_missing = r == 1;
		if (r == 0)
			c->crc_seen = true;
		json_error_t jerr;
		c->line_len = len;
		json_t *o = json_loadb(c->line, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!o || !json_is_object(o)) {
			json_decref(o);
			if (crc_missing && c->crc_seen)
				return -EBADMSG;
			/* with its crc checked the line is what the card said: asking again
			 * gets the same answer */
			return r == 0 ? -EPROTO : -EIO;
		}
		/* A card that does CRC may still answer an error without one; note-c
		 * skips the check for any answer carrying "err" (n_request.c, _crcError),
		 * so the caller sees the card's own error rather than a retried "CRC
		 * failure". A crc that is present is still checked. */
		if (crc_missing && c->crc_seen && !json_is_string(json_object_get(o, "err"))) {
			json_decref(o);
			return -EBADMSG;
		}
		if (card_err_has(o, "{heartbeat}")) {
			/* progress of a long operation: the answer is still to come */
			json_decref(o);
			continue;
		}
		*rsp = o;
		return 0;
	}
}

/* The request as it goes on the wire: compact JSON, the layer's own crc with seq (a
 * "cmd" goes without: no answer to match) and a newline. *wire caller frees. */
static int frame(json_t *req, bool is_cmd, uint16_t seq, char **wire, size_t *wlen)
{
	/* a caller's own crc field would be stale: the layer owns it */
	json_t *copy = NULL;
	if (json_object_get(req, "crc")) {
		copy = json_copy(req);
		if (!copy)
			return -ENOMEM;
		json_object_del(copy, "crc");
		req = copy;
	}
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(copy);
	if (!text)
		return -ENOMEM;
	size_t tlen = strlen(text);
	size_t cap = tlen + CRC_FIELD_LEN + 2;
	char *w = malloc(cap);
	if (!w) {
		free(text);
		return -ENOMEM;
	}
	size_t n;
	if (is_cmd) {
		/* length-counted, sent by length: no NUL needed */
		memcpy(w, text, tlen); // NOLINT(bugprone-not-null-terminated-result)
		n = tlen;
	} else {
		n = card_crc_append(text, tlen, seq, w, cap);
	}
	free(text);
	if (!n) {
		free(w);
		return -EIO;
	}
	w[n++] = '\n';
	*wire = w;
	*wlen = n;
	return 0;
}

/* A framed request and what its attempts need to know. */
struct wire_req {
	char *wire;
	size_t len;
	uint16_t seq;
	const char *name;
	unsigned first_ms; /* how long the answer may take */
	bool is_cmd;       /* no answer comes */
};

/* What one attempt leaves: done (answered, or a final error), or worth another. */
enum attempt_end { ATTEMPT_DONE, ATTEMPT_AGAIN };

static enum attempt_end gone(struct card *c, int *err)
{
	card_close(c);
	*err = -ENODEV;
	return ATTEMPT_DONE;
}

/* One attempt: open, resync when due, send, read the answer. *err is 0 with *rsp
 * set (left alone for a cmd), or the error: final with ATTEMPT_DONE, the reason for
 * trying again with ATTEMPT_AGAIN. */
static enum attempt_end attempt(struct card *c, const struct wire_req *q, unsigned a, json_t **rsp,
                                int *err)
{
	int r = ensure_open(c);
	*err = r;
	if (r < 0)
		return ATTEMPT_DONE; /* -ENODEV and friends: the link backs off */
	if (c->need_reset) {
		c->cnt.resets++;
		r = c->t->ops->reset(c->t);
		if (r == -ENODEV)
			return gone(c, err);
		if (r < 0) {
			log_debug("card: resync failed (%s)", strerror(-r));
			*err = r;
			return ATTEMPT_AGAIN;
		}
		c->need_reset = false;
	}
	r = c->t->ops->send(c->t, q->wire, q->len);
	*err = r;
	if (r == -ENODEV)
		return gone(c, err);
	if (r < 0) {
		c->need_reset = true;
		return ATTEMPT_AGAIN;
	}
	if (q->is_cmd)
		return ATTEMPT_DONE;
	json_t *o = NULL;
	r = read_answer(c, q->seq, q->first_ms, &o);
	*err = r;
	if (r == -ENODEV)
		return gone(c, err);
	if (r == -EPROTO || r == -EMSGSIZE) {
		/* the answer is the problem: asking again gets it again (and a
		 * retried note.get delete:true would take the next note) */
		c->need_reset = r == -EMSGSIZE; /* the rest of that line is still coming */
		return ATTEMPT_DONE;
	}
	if (r == -ECANCELED) {
		c->need_reset = true;
		return ATTEMPT_DONE;
	}
	if (r < 0) {
		if (r == -ETIMEDOUT)
			c->cnt.timeouts++;
		else if (r == -EBADMSG || r == -ERANGE)
			c->cnt.crc_errors++;
		log_debug("card: %s attempt %u: %s", q->name, a + 1, strerror(-r));
		c->need_reset = true;
		return ATTEMPT_AGAIN;
	}
	if (card_err_has(o, "{io}") && !card_err_has(o, "{not-supported}") &&
	    !card_err_has(o, "{bad-bin}")) {
		/* the card's own I/O trouble; the channel is in sync. A bad binary
		 * buffer stays bad however often it is asked: not retried. */
		c->cnt.io_errors++;
		log_debug("card: %s attempt %u: %s", q->name, a + 1,
		          json_string_value(json_object_get(o, "err")));
		json_decref(o);
		*err = -EIO;
		return ATTEMPT_AGAIN;
	}
	*rsp = o;
	*err = 0;
	return ATTEMPT_DONE;
}

int card_request(struct card *c, json_t *req, json_t **rsp)
{
	const struct card_timing *tm = c->t->timing;
	if (rsp)
		*rsp = NULL;
	if (!json_is_object(req))
		return -EINVAL;
	struct wire_req q = {.name = json_string_value(json_object_get(req, "req"))};
	if (!q.name) {
		q.name = json_string_value(json_object_get(req, "cmd"));
		q.is_cmd = true;
	}
	if (!q.name || !*q.name || (!q.is_cmd && !rsp))
		return -EINVAL;
	q.seq = c->seq;
	int r = frame(req, q.is_cmd, q.seq, &q.wire, &q.len);
	if (r != -ENOMEM)
		c->seq++; /* spent once framing got as far as the crc */
	if (r < 0)
		return r;
	q.first_ms = request_timeout(tm, q.name, req);
	unsigned attempts = tm->retries ? tm->retries : 1;
	c->cnt.requests++;
	for (unsigned a = 0; a < attempts; a++) {
		if (card_transport_cancelled(c->t)) {
			r = -ECANCELED; /* stopping: no more attempts */
			goto out;
		}
		if (a) {
			c->cnt.retries++;
			pause_ms(c, tm->retry_delay_ms);
		}
		if (attempt(c, &q, a, rsp, &r) == ATTEMPT_DONE)
			goto out;
	}
	if (r != -ETIMEDOUT && r != -EMSGSIZE)
		r = -EIO;
out:
	free(q.wire);
	return r;
}

const char *card_last_answer(struct card *c, size_t *len)
{
	*len = c->line_len;
	return c->line;
}

int card_request_text(struct card *c, const char *req_text, char **rsp_text)
{
	json_error_t jerr;
	json_t *req = json_loads(req_text, JSON_REJECT_DUPLICATES, &jerr);
	if (!req)
		return -EINVAL;
	json_t *rsp = NULL;
	bool is_cmd = json_object_get(req, "req") == NULL;
	int r = card_request(c, req, is_cmd ? NULL : &rsp);
	json_decref(req);
	if (r < 0)
		return r;
	*rsp_text = rsp ? json_dumps(rsp, JSON_COMPACT) : strdup("{}");
	json_decref(rsp);
	return *rsp_text ? 0 : -ENOMEM;
}
