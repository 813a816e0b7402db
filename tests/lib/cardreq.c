/* cardreq: the link's request layer and transports as a filter, for integration
 * tests against notecard-sim: one JSON request per stdin line, one result per
 * stdout line {"rc":0,"rsp":{...}} (rc a negative errno when no answer came).
 * At EOF the counters go to stdout as {"counters":{...}}.
 *   cardreq serial|i2c DEVICE [TIMING_PCT] */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notecard/card.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: cardreq serial|i2c DEVICE [TIMING_PCT]\n");
		return 2;
	}
	struct card_timing tm;
	card_timing_scaled(&tm, argc > 3 ? (unsigned)atoi(argv[3]) : 100);
	struct card_transport *t;
	int r = strcmp(argv[1], "i2c") == 0
	                ? card_transport_i2c_new(argv[2], 0x17, &tm, &card_clock_real, &t)
	                : card_transport_serial_new(argv[2], 9600, &tm, &card_clock_real, &t);
	struct card *c;
	if (r < 0 || card_new(t, &c) < 0) {
		fprintf(stderr, "cardreq: %s\n", strerror(-r));
		return 1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = 0;
		if (!*line)
			continue;
		char *rsp = NULL;
		r = card_request_text(c, line, &rsp);
		json_t *rj = rsp ? json_loads(rsp, 0, NULL) : NULL;
		json_t *out = json_pack("{s:i,s:o?}", "rc", r, "rsp", rj);
		char *text = json_dumps(out, JSON_COMPACT);
		printf("%s\n", text);
		fflush(stdout);
		free(text);
		json_decref(out);
		free(rsp);
	}
	free(line);
	struct card_counters cc;
	card_counters(c, &cc);
	printf("{\"counters\":{\"requests\":%llu,\"retries\":%llu,\"resets\":%llu,\"timeouts\":%llu,"
	       "\"crc_errors\":%llu,\"io_errors\":%llu}}\n",
	       (unsigned long long)cc.requests, (unsigned long long)cc.retries,
	       (unsigned long long)cc.resets, (unsigned long long)cc.timeouts,
	       (unsigned long long)cc.crc_errors, (unsigned long long)cc.io_errors);
	card_free(c);
	return 0;
}
