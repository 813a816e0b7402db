/* Fuzz the update image parser and verifier (signature path included: the trusted
 * directory holds one key, so a parsed header reaches the signature check). */
#include <stdint.h>
#include <stdlib.h>

#include "update.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct update_info info;
	const char *why = NULL;
	const char *dir = getenv("FUZZ_TRUSTED_DIR");
	update_verify_buf(dir ? dir : "/nonexistent", data, size, &info, &why);
	return 0;
}
