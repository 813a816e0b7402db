/* End-to-end encryption of note bodies on the gateway (format: docs/encryption.md).
 * Keys are held in OpenSSL EVP_PKEY objects only; plaintext and key buffers are
 * wiped with OPENSSL_cleanse before they are freed. Nothing here logs a secret. */
#ifndef NOTEGW_CRYPTO_H
#define NOTEGW_CRYPTO_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct crypto_key;

/* Once per process, before any key is loaded: give OpenSSL a secure heap (mlocked,
 * excluded from core dumps, cleared on free) for private key material and the PEM
 * buffers this module writes. 0, or -ENOMEM when the arena cannot be set up (keys
 * then live on the ordinary heap, still wiped on free). Idempotent. */
int crypto_secure_heap_init(void);

enum crypto_key_type {
	CRYPTO_KEY_P384 = 1, /* default: ephemeral ECDH, HPKE-shaped */
	CRYPTO_KEY_RSA = 2,  /* RSA-OAEP-SHA256 key wrap, >= 2048 bits */
};

/* The "alg" values of envelope format version 1. */
#define CRYPTO_ALG_P384 "ngw1-p384-aes256gcm"
#define CRYPTO_ALG_RSA  "ngw1-rsa-aes256gcm"

/* Largest plaintext body crypto_seal accepts and crypto_open returns. */
#define CRYPTO_MAX_PLAINTEXT (64u * 1024u)

/* Load a PEM public key (P-384 or RSA >= 2048). *out caller frees with
 * crypto_key_free. -ENOENT/-EACCES (file), -EINVAL (not a PEM public key),
 * -ENOTSUP (another curve, RSA < 2048, another algorithm). */
int crypto_key_load_public(const char *path, struct crypto_key **out);
/* Load a PEM private key (unencrypted PKCS#8 or traditional). Refuses a file that
 * group or others may access at all (-EPERM; the reason, naming the path and the
 * mode, is logged at err level -- never any key material). */
int crypto_key_load_private(const char *path, struct crypto_key **out);
/* Generate a fresh key pair: P-384, or RSA of rsa_bits (>= 2048; 0 means 3072). */
int crypto_key_generate(enum crypto_key_type type, unsigned rsa_bits, struct crypto_key **out);
/* Write the key as PEM to fd: the private key as unencrypted PKCS#8 (the caller
 * chose the file's mode), the public key as SubjectPublicKeyInfo. The PEM text
 * passes through a wiped memory buffer only. */
int crypto_key_write_private(const struct crypto_key *k, int fd);
int crypto_key_write_public(const struct crypto_key *k, int fd);
enum crypto_key_type crypto_key_type(const struct crypto_key *k);
bool crypto_key_is_private(const struct crypto_key *k);
/* "P-384" or "RSA-3072"; static or in k (valid while k lives). */
const char *crypto_key_describe(const struct crypto_key *k);
void crypto_key_free(struct crypto_key *k);

/* Seal a plaintext body (JSON text, len bytes) for the holder of pub's private key
 * into the envelope body object that goes into note.add instead of it:
 * {"alg":..., "data":base64}. *env caller decrefs. -E2BIG above
 * CRYPTO_MAX_PLAINTEXT. A private key works too (its public half is used). */
int crypto_seal(const struct crypto_key *pub, const char *plaintext, size_t len, json_t **env);
/* Open an envelope body (borrowed). On success *pt is a NUL-terminated plaintext
 * of *len bytes, caller frees with crypto_free_plaintext. On failure *pt is NULL,
 * no plaintext byte was released, and *why is a static reason fit for a user:
 * -EINVAL not an envelope / malformed, -ENOTSUP unknown version or algorithm,
 * -EBADMSG truncated, tampered or sealed to another key. */
int crypto_open(const struct crypto_key *priv, json_t *env, char **pt, size_t *len,
                const char **why);
/* Sealed payloads, format v2 (P-384 only): the note's binary payload is
 *   kind (1 byte, CRYPTO_PAYLOAD_P384) || enc (49, compressed point) || seq (2, big
 *   endian) || ciphertext || tag (16)
 * HPKE base mode with one sender context per batch of CRYPTO_PAYLOAD_BATCH notes
 * (RFC 9180 section 5.2 sequence numbers), a new ephemeral key per batch and per
 * process start. Adds CRYPTO_PAYLOAD_OVERHEAD bytes to the plaintext. */
#define CRYPTO_PAYLOAD_P384     0x02
#define CRYPTO_PAYLOAD_HDR_LEN  (1 + 49 + 2)
#define CRYPTO_PAYLOAD_OVERHEAD (CRYPTO_PAYLOAD_HDR_LEN + 16)
#define CRYPTO_PAYLOAD_BATCH    1024u
/* Seal plaintext into *out (*out_len bytes, caller frees). Thread-safe on one key.
 * -ENOTSUP for an RSA key (use crypto_seal), -E2BIG above CRYPTO_MAX_PLAINTEXT. */
int crypto_seal_payload(const struct crypto_key *pub, const char *plaintext, size_t len,
                        uint8_t **out, size_t *out_len);
/* Open a sealed payload (borrowed); as crypto_open for *pt, *len, *why and errors. */
int crypto_open_payload(const struct crypto_key *priv, const uint8_t *p, size_t n, char **pt,
                        size_t *len, const char **why);
/* Does this payload start as a sealed payload does? 1 or 0; nothing of authenticity. */
int crypto_is_sealed_payload(const uint8_t *p, size_t n);
/* Wipe memory so the compiler cannot drop it (OPENSSL_cleanse). */
void crypto_wipe(void *p, size_t len);
/* Wipe and free a plaintext from crypto_open (NULL is fine). */
void crypto_free_plaintext(char *pt, size_t len);
/* Does this body look like a notegw envelope (an object whose "alg" starts with
 * "ngw" and that has a string "data")? 1 or 0; it says nothing of authenticity. */
int crypto_is_envelope(json_t *body);
#endif
