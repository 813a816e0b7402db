/* Fuzz crypto_open and crypto_open_payload, the boundary where cloud-made bytes
 * meet a private key (inbound notes, notegw decrypt). First byte 0: the input is
 * the body's JSON text; 2: the rest is a sealed payload (format v2); otherwise the
 * rest is the decoded "data" of a P-384 (odd) or RSA (even) envelope, so the fuzzer
 * reaches the point decoding, OAEP and GCM paths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct crypto_key *p384, *rsa;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *env = NULL;
	char *pt = NULL;
	size_t len = 0;
	const char *why = NULL;

	if (!p384 && (crypto_key_generate(CRYPTO_KEY_P384, 0, &p384) < 0 ||
	              crypto_key_generate(CRYPTO_KEY_RSA, 2048, &rsa) < 0))
		abort();
	if (size < 1)
		return 0;
	if (data[0] == 2) {
		if (crypto_open_payload(p384, data + 1, size - 1, &pt, &len, &why) == 0) {
			if (strlen(pt) > len)
				abort();
			crypto_free_plaintext(pt, len);
		}
		return 0;
	}
	if (data[0] == 0) {
		env = json_loadb((const char *)data + 1, size - 1, 0, NULL);
	} else {
		char *b64 = b64_encode(data + 1, size - 1);
		if (!b64)
			return 0;
		env = json_pack("{s:s, s:s}", "alg",
		                (data[0] & 1) ? CRYPTO_ALG_P384 : CRYPTO_ALG_RSA, "data", b64);
		free(b64);
	}
	if (!env)
		return 0;
	if (crypto_open((data[0] & 1) ? p384 : rsa, env, &pt, &len, &why) == 0) {
		if (strlen(pt) > len) /* NUL-terminated at len */
			abort();
		crypto_free_plaintext(pt, len);
	}
	json_decref(env);
	return 0;
}
