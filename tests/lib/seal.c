/* Test helper: seal a plaintext with the project's own crypto_seal or
 * crypto_seal_payload, so the interop test can hand gateway output to an
 * independent implementation; and run the CLI's crypto commands (the same table
 * notegw dispatches) by name.
 *   seal PUBKEY.pem [PLAINTEXT or -]   print the envelope body, one JSON line
 *   seal --payload N PUBKEY.pem [PLAINTEXT or -]
 *                                      print N sealed payloads of it in base64, one a
 *                                      line, as the link seals consecutive notes
 *   seal cli keys|decrypt ARGS...      run that command of cli_cmds_crypto */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "crypto.h"
#include "util.h"

/* N sealed payloads of pt, base64, one a line. 0 or -errno. */
static int print_payloads(const struct crypto_key *k, const char *pt, size_t len, long n)
{
	for (long i = 0; i < n; i++) {
		uint8_t *p = NULL;
		size_t plen = 0;
		int r = crypto_seal_payload(k, pt, len, &p, &plen);
		if (r < 0)
			return r;
		char *b64 = b64_encode(p, plen);
		free(p);
		if (!b64)
			return -ENOMEM;
		puts(b64);
		free(b64);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct crypto_key *k = NULL;
	json_t *env = NULL;
	char *pt = NULL;
	size_t len = 0;
	long n_payloads = 0;
	int r;

	if (argc >= 3 && strcmp(argv[1], "cli") == 0) {
		struct cli cli = {.prog = "notegw"};
		for (const struct cli_cmd *c = cli_cmds_crypto; c->name; c++)
			if (strcmp(c->name, argv[2]) == 0)
				return c->run(&cli, argc - 2, argv + 2);
		fprintf(stderr, "seal: no crypto command %s\n", argv[2]);
		return 2;
	}
	if (argc >= 3 && strcmp(argv[1], "--payload") == 0) {
		n_payloads = strtol(argv[2], NULL, 10);
		argc -= 2;
		argv += 2;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: seal PUBKEY.pem [PLAINTEXT or -] | seal cli CMD ARGS\n");
		return 2;
	}
	if ((r = crypto_key_load_public(argv[1], &k)) < 0) {
		fprintf(stderr, "seal: %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	if (argc == 3 && strcmp(argv[2], "-") != 0) {
		pt = strdup(argv[2]);
		len = pt ? strlen(pt) : 0;
	} else if (read_file("/dev/stdin", CRYPTO_MAX_PLAINTEXT, &pt, &len) < 0) {
		pt = NULL;
	}
	if (!pt) {
		fprintf(stderr, "seal: cannot read the plaintext\n");
		crypto_key_free(k);
		return 1;
	}
	if (n_payloads > 0)
		r = print_payloads(k, pt, len, n_payloads);
	else
		r = crypto_seal(k, pt, len, &env);
	if (r == 0 && env) {
		char *s = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
	} else if (r < 0) {
		fprintf(stderr, "seal: %s\n", strerror(-r));
	}
	json_decref(env);
	free(pt);
	crypto_key_free(k);
	return r == 0 ? 0 : 1;
}
