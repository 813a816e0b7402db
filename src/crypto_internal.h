/* The primitives crypto.c builds its envelope from, exposed so the unit tests can
 * run published known-answer vectors through exactly the code path the envelope
 * uses. Not for other modules: use crypto.h. */
#ifndef NOTEGW_CRYPTO_INTERNAL_H
#define NOTEGW_CRYPTO_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_GCM_KEY_LEN   32
#define CRYPTO_GCM_NONCE_LEN 12
#define CRYPTO_GCM_TAG_LEN   16

/* RFC 5869 HKDF with the named digest ("SHA256", "SHA384"). An empty salt means
 * HashLen zero bytes, as the RFC says. 0 or -errno. */
int crypto_hkdf_extract(const char *md, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                        size_t ikm_len, uint8_t *prk, size_t prk_len);
int crypto_hkdf_expand(const char *md, const uint8_t *prk, size_t prk_len, const uint8_t *info,
                       size_t info_len, uint8_t *okm, size_t okm_len);
int crypto_hkdf(const char *md, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len);

/* AES-256-GCM with a 96-bit nonce and a 128-bit tag. ct/pt may not overlap the
 * input. open returns -EBADMSG when the tag does not verify, and then leaves pt
 * zeroed (never a partial plaintext). */
int crypto_gcm_seal(const uint8_t key[CRYPTO_GCM_KEY_LEN],
                    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                    const uint8_t *pt, size_t pt_len, uint8_t *ct, uint8_t tag[CRYPTO_GCM_TAG_LEN]);
int crypto_gcm_open(const uint8_t key[CRYPTO_GCM_KEY_LEN],
                    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                    const uint8_t *ct, size_t ct_len, const uint8_t tag[CRYPTO_GCM_TAG_LEN],
                    uint8_t *pt);

/* The HPKE (RFC 9180) base-mode key schedule for DHKEM(P-384, HKDF-SHA384),
 * HKDF-SHA384, AES-256-GCM: from the DH output and the two uncompressed public
 * keys (97 bytes each) to the AEAD key and base nonce. Exposed so a test can pin
 * it to fixed inputs. */
int crypto_hpke_p384_schedule(const uint8_t dh[48], const uint8_t enc[97], const uint8_t pkr[97],
                              const uint8_t *info, size_t info_len, uint8_t key[CRYPTO_GCM_KEY_LEN],
                              uint8_t nonce[CRYPTO_GCM_NONCE_LEN]);

/* The P-384 key agreement exactly as the envelope runs it (peer point decoded and
 * checked from SEC1, compressed or not; X coordinate out), with the private key
 * given as a raw 48-byte scalar so a test can pin it to NIST CAVP vectors. */
int crypto_p384_dh_scalar(const uint8_t d[48], const uint8_t *peer, size_t peer_len,
                          uint8_t dh[48]);
#endif
