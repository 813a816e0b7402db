/* End-to-end encryption of note bodies on the gateway (see docs/encryption.md).
 * Keys are held in OpenSSL EVP_PKEY objects only; plaintext buffers are wiped. */
#ifndef NOTEGW_CRYPTO_H
#define NOTEGW_CRYPTO_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct crypto_key;

/* Load a PEM public key (P-384 or RSA >= 2048) for uplink. */
int crypto_key_load_public(const char *path, struct crypto_key **out);
/* Load a PEM private key; refuses a file readable by group or others (-EPERM). */
int crypto_key_load_private(const char *path, struct crypto_key **out);
void crypto_key_free(struct crypto_key *k);

/* Seal a plaintext body (JSON text) into the envelope body object that goes into
 * note.add instead of it. *env caller decrefs. */
int crypto_seal(const struct crypto_key *pub, const char *plaintext, size_t len, json_t **env);
/* Open an envelope body (borrowed). *pt is caller-freed (wipe with OPENSSL_cleanse
 * before free if it matters); *why a static reason on failure (-EBADMSG tampered or
 * wrong key, -EINVAL not an envelope, -ENOTSUP unknown version/algorithm). */
int crypto_open(const struct crypto_key *priv, json_t *env, char **pt, size_t *len,
                const char **why);
/* Wipe and keep the compiler from dropping it (OPENSSL_cleanse). */
void crypto_wipe(void *p, size_t len);
/* Is this body an envelope? */
int crypto_is_envelope(json_t *body);
#endif
