/* store_fill: queue N outbound notes into a store from a process of its own, in big
 * transactions, the way the broker plugin writes the store from inside mosquitto. The
 * soak (bench/soak.py) uses it to put 10 -> 1,000,000 notes under a running notegwd
 * in minutes, so that what it measures is the daemon holding a large queue, not a
 * publisher; tests use it to write the store behind the daemon's back.
 * Usage: store_fill STORE N [NOTEFILE]   (NOTEFILE default data.qo) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define PER_COMMIT 10000

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: store_fill STORE N [NOTEFILE]\n");
		return 2;
	}
	char *end;
	errno = 0;
	long long n = strtoll(argv[2], &end, 10);
	if (errno || *end || n < 0) {
		fprintf(stderr, "store_fill: N must be a count\n");
		return 2;
	}
	const char *file = argc == 4 ? argv[3] : "data.qo";
	struct store_opts so = {.when_full = STORE_REFUSE_NEW};
	struct store *st;
	int r = store_open(argv[1], &so, &st);
	if (r < 0) {
		fprintf(stderr, "store_fill: %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	char body[96];
	for (long long i = 0; i < n && r >= 0;) {
		r = store_begin(st);
		for (long long k = 0; r >= 0 && k < PER_COMMIT && i < n; k++, i++) {
			snprintf(body, sizeof(body), "{\"seq\":%lld,\"temp\":21.5,\"unit\":\"C\"}", i);
			r = store_enqueue(st, file, body, NULL, 0, 0, NULL);
		}
		if (r >= 0)
			r = store_commit(st);
	}
	if (r < 0)
		fprintf(stderr, "store_fill: %s\n", strerror(-r));
	store_close(st);
	return r < 0 ? 1 : 0;
}
