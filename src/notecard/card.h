/* The request layer: compact JSON, req vs cmd, the CRC/sequence field, retries of
 * only the retryable errors with a channel reset in between, per-request timeouts.
 * One transaction at a time; blocking (link thread only). */
#ifndef NOTEGW_CARD_H
#define NOTEGW_CARD_H
#include "notecard/transport.h"
#include <jansson.h>
#include <stdint.h>

struct card;

int card_new(struct card_transport *t, struct card **out); /* takes t */
void card_free(struct card *c);
struct card_transport *card_transport(struct card *c);
/* Close the device (it is reopened and resynchronised by the next request). */
void card_close(struct card *c);

/* Send a request object (a "req" or "cmd"); borrowed. For a req, *rsp gets the
 * response object (caller decrefs) — which may carry "err": that is a semantic
 * answer, returned as 0. Returns -ETIMEDOUT, -EIO (gave up after retries),
 * -ENODEV (device gone), -EINVAL (not a request), and for an answer that came whole
 * but cannot be taken: -EPROTO (crc intact, not a JSON object we accept: a body with
 * \u0000, duplicate keys) or -EMSGSIZE (longer than the receive buffer); neither is
 * retried. */
int card_request(struct card *c, json_t *req, json_t **rsp);
/* The last answer line as received (crc field removed; for -EPROTO, what the card
 * said). Borrowed until the next request; not NUL-terminated, *len bytes. */
const char *card_last_answer(struct card *c, size_t *len);
/* The same from and to text (for `notegw req`). *rsp_text caller-freed. */
int card_request_text(struct card *c, const char *req_text, char **rsp_text);
/* Convenience: true if rsp has an err containing token (e.g. "{note-noexist}"). */
int card_err_has(json_t *rsp, const char *token);

/* CRC-32 (zlib polynomial) and the crc field, exposed for tests and the fuzzers. */
uint32_t card_crc32(const void *buf, size_t len);
/* Append ,"crc":"SSSS:CCCCCCCC" to a compact request text (without trailing
 * newline). out must hold len + 26 bytes. Returns the new length. */
size_t card_crc_append(const char *req, size_t len, uint16_t seq, char *out, size_t cap);
/* Check and strip a response's crc field in place. 0 ok, 1 no crc field,
 * -EBADMSG crc mismatch, -ERANGE wrong sequence. */
int card_crc_check(char *rsp, size_t *len, uint16_t seq);

struct card_counters {
	uint64_t requests, retries, resets, timeouts, crc_errors, io_errors;
};
void card_counters(struct card *c, struct card_counters *out);
#endif
