/* End-to-end encryption of note bodies (docs/encryption.md is the contract).
 * Sealed payloads (v2, P-384): HPKE (RFC 9180) base mode, DHKEM(P-384, HKDF-SHA384) +
 * HKDF-SHA384 + AES-256-GCM, one sender context per batch of notes with sequence
 * numbers, the ephemeral key sent compressed. Envelope bodies (v1): P-384 HPKE single
 * shot, or RSA-OAEP-SHA256 wrapping a fresh AES-256 key and nonce. Built from EVP
 * calls: OpenSSL 3.0 has no HPKE. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "crypto_internal.h"
#include "log.h"
#include "util.h"

#define P384_DH_LEN         48
#define P384_POINT_LEN      97 /* 04 || X || Y */
#define P384_COMPRESSED_LEN 49 /* 02/03 || X */
#define RSA_WRAPPED_LEN     (CRYPTO_GCM_KEY_LEN + CRYPTO_GCM_NONCE_LEN)
#define PEM_MAX             (64u * 1024u)
#define HPKE_INFO           "notegw envelope v1"
#define HPKE_INFO_V2        "notegw payload v2"
/* Upper bound of the base64 "data" text: the largest RSA modulus we accept
 * (16384 bits) plus tag plus the largest plaintext, base64-expanded. */
#define DATA_B64_MAX (((CRYPTO_MAX_PLAINTEXT + 2048u + CRYPTO_GCM_TAG_LEN) + 2u) / 3u * 4u)

/* The sender's HPKE context for sealed payloads (format v2): one SetupBaseS, then
 * Seal with sequence numbers 0 .. CRYPTO_PAYLOAD_BATCH-1 (RFC 9180 section 5.2).
 * Memory only: a restart always begins a new context with a new ephemeral key, so
 * no (key, nonce) pair is ever used twice. The ephemeral private key is freed as
 * soon as the context is derived. */
struct seal_ctx {
	pthread_mutex_t mu;
	bool live;
	uint32_t seq;                     /* next sequence number in this context */
	uint8_t enc[P384_COMPRESSED_LEN]; /* the context's ephemeral public key */
	uint8_t key[CRYPTO_GCM_KEY_LEN];
	uint8_t base_nonce[CRYPTO_GCM_NONCE_LEN];
};

struct crypto_key {
	EVP_PKEY *pk;
	struct seal_ctx *sc; /* P-384 only; mutable through a const key, under sc->mu */
	enum crypto_key_type type;
	bool priv;
	size_t rsa_len;              /* RSA: modulus bytes = wrapped key length */
	uint8_t pub[P384_POINT_LEN]; /* P-384: uncompressed public key, pkRm */
	char desc[16];
};

/* ---- HKDF (RFC 5869) through EVP_KDF "HKDF" ---- */

static int hkdf_run(const char *md, int mode, const uint8_t *salt, size_t salt_len,
                    const uint8_t *key, size_t key_len, const uint8_t *info, size_t info_len,
                    uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[6], *p = params;
	int r = -EIO;

	if (!kdf)
		return -ENOSYS;
	if (key_len == 0 || out_len == 0)
		goto inval;
	ctx = EVP_KDF_CTX_new(kdf);
	if (!ctx)
		goto out;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
	/* An absent salt is HashLen zeros inside OpenSSL, which is what RFC 5869 says
	 * an empty salt means; OpenSSL refuses a zero-length octet string instead. */
	if (salt_len)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	if (info_len)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, out_len, params) != 1)
		goto out;
	r = 0;
	goto out;
inval:
	r = -EINVAL;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return r;
}

int crypto_hkdf_extract(const char *md, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                        size_t ikm_len, uint8_t *prk, size_t prk_len)
{
	return hkdf_run(md, EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, salt_len, ikm, ikm_len, NULL, 0,
	                prk, prk_len);
}

int crypto_hkdf_expand(const char *md, const uint8_t *prk, size_t prk_len, const uint8_t *info,
                       size_t info_len, uint8_t *okm, size_t okm_len)
{
	return hkdf_run(md, EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, prk, prk_len, info, info_len,
	                okm, okm_len);
}

int crypto_hkdf(const char *md, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len)
{
	return hkdf_run(md, EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, salt, salt_len, ikm, ikm_len,
	                info, info_len, okm, okm_len);
}

/* ---- AES-256-GCM ---- */

int crypto_gcm_seal(const uint8_t key[CRYPTO_GCM_KEY_LEN],
                    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                    const uint8_t *pt, size_t pt_len, uint8_t *ct, uint8_t tag[CRYPTO_GCM_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx;
	int n, r = -EIO;

	if (pt_len > INT_MAX || aad_len > INT_MAX)
		return -E2BIG;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_GCM_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto out;
	if (aad_len && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
		goto out;
	if (pt_len && EVP_EncryptUpdate(ctx, ct, &n, pt, (int)pt_len) != 1)
		goto out;
	if (EVP_EncryptFinal_ex(ctx, ct + pt_len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_GCM_TAG_LEN, tag) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
	return r;
}

int crypto_gcm_open(const uint8_t key[CRYPTO_GCM_KEY_LEN],
                    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                    const uint8_t *ct, size_t ct_len, const uint8_t tag[CRYPTO_GCM_TAG_LEN],
                    uint8_t *pt)
{
	EVP_CIPHER_CTX *ctx;
	int n, r = -EIO;

	if (ct_len > INT_MAX || aad_len > INT_MAX)
		return -E2BIG;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_GCM_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto out;
	if (aad_len && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
		goto out;
	if (ct_len && EVP_DecryptUpdate(ctx, pt, &n, ct, (int)ct_len) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_GCM_TAG_LEN, (void *)tag) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, pt + ct_len, &n) != 1) {
		r = -EBADMSG;
		goto out;
	}
	r = 0;
out:
	if (r < 0 && ct_len)
		OPENSSL_cleanse(pt, ct_len); /* GCM decrypts before it verifies */
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

/* ---- HPKE (RFC 9180) base mode key schedule, DHKEM(P-384) suite ---- */

static const uint8_t kem_suite[] = {'K', 'E', 'M', 0x00, 0x11};
static const uint8_t hpke_suite[] = {'H', 'P', 'K', 'E', 0x00, 0x11, 0x00, 0x02, 0x00, 0x02};

/* Append n bytes at *o within buf[cap]; -ENOBUFS if it would not fit. */
static int put(uint8_t *buf, size_t cap, size_t *o, const void *p, size_t n)
{
	if (n > cap - *o)
		return -ENOBUFS;
	if (n)
		memcpy(buf + *o, p, n);
	*o += n;
	return 0;
}

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite || label || ikm) */
static int labeled_extract(const uint8_t *suite, size_t suite_len, const uint8_t *salt,
                           size_t salt_len, const char *label, const uint8_t *ikm, size_t ikm_len,
                           uint8_t out[48])
{
	uint8_t buf[512];
	size_t o = 0;
	int r;

	if ((r = put(buf, sizeof(buf), &o, "HPKE-v1", 7)) < 0 ||
	    (r = put(buf, sizeof(buf), &o, suite, suite_len)) < 0 ||
	    (r = put(buf, sizeof(buf), &o, label, strlen(label))) < 0 ||
	    (r = put(buf, sizeof(buf), &o, ikm, ikm_len)) < 0)
		goto out;
	r = crypto_hkdf_extract("SHA384", salt, salt_len, buf, o, out, 48);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

/* LabeledExpand(prk, label, info, L) =
 *   Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite || label || info, L) */
static int labeled_expand(const uint8_t *suite, size_t suite_len, const uint8_t prk[48],
                          const char *label, const uint8_t *info, size_t info_len, uint8_t *out,
                          size_t out_len)
{
	uint8_t buf[512], l2[2] = {(uint8_t)(out_len >> 8), (uint8_t)out_len};
	size_t o = 0;
	int r;

	if ((r = put(buf, sizeof(buf), &o, l2, 2)) < 0 ||
	    (r = put(buf, sizeof(buf), &o, "HPKE-v1", 7)) < 0 ||
	    (r = put(buf, sizeof(buf), &o, suite, suite_len)) < 0 ||
	    (r = put(buf, sizeof(buf), &o, label, strlen(label))) < 0 ||
	    (r = put(buf, sizeof(buf), &o, info, info_len)) < 0)
		goto out;
	r = crypto_hkdf_expand("SHA384", prk, 48, buf, o, out, out_len);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

int crypto_hpke_p384_schedule(const uint8_t dh[48], const uint8_t enc[97], const uint8_t pkr[97],
                              const uint8_t *info, size_t info_len, uint8_t key[CRYPTO_GCM_KEY_LEN],
                              uint8_t nonce[CRYPTO_GCM_NONCE_LEN])
{
	uint8_t kem_ctx[2 * P384_POINT_LEN], eae_prk[48], shared[48], secret[48];
	uint8_t ksc[1 + 48 + 48]; /* mode_base || psk_id_hash || info_hash */
	int r;

	memcpy(kem_ctx, enc, P384_POINT_LEN);
	memcpy(kem_ctx + P384_POINT_LEN, pkr, P384_POINT_LEN);
	ksc[0] = 0x00;
	/* DHKEM ExtractAndExpand, then the key schedule with psk = psk_id = "". */
	if ((r = labeled_extract(kem_suite, sizeof(kem_suite), NULL, 0, "eae_prk", dh, 48,
	                         eae_prk)) < 0 ||
	    (r = labeled_expand(kem_suite, sizeof(kem_suite), eae_prk, "shared_secret", kem_ctx,
	                        sizeof(kem_ctx), shared, sizeof(shared))) < 0 ||
	    (r = labeled_extract(hpke_suite, sizeof(hpke_suite), NULL, 0, "psk_id_hash", NULL, 0,
	                         ksc + 1)) < 0 ||
	    (r = labeled_extract(hpke_suite, sizeof(hpke_suite), NULL, 0, "info_hash", info,
	                         info_len, ksc + 1 + 48)) < 0 ||
	    (r = labeled_extract(hpke_suite, sizeof(hpke_suite), shared, sizeof(shared), "secret",
	                         NULL, 0, secret)) < 0 ||
	    (r = labeled_expand(hpke_suite, sizeof(hpke_suite), secret, "key", ksc, sizeof(ksc),
	                        key, CRYPTO_GCM_KEY_LEN)) < 0 ||
	    (r = labeled_expand(hpke_suite, sizeof(hpke_suite), secret, "base_nonce", ksc,
	                        sizeof(ksc), nonce, CRYPTO_GCM_NONCE_LEN)) < 0)
		goto out;
out:
	OPENSSL_cleanse(eae_prk, sizeof(eae_prk));
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(secret, sizeof(secret));
	return r;
}

/* ---- P-384 points ---- */

/* Re-encode a P-384 point (any SEC1 form) as compressed or uncompressed; checks it
 * is on the curve and not the point at infinity. */
static int p384_point_convert(const uint8_t *in, size_t in_len, bool compressed, uint8_t *out,
                              size_t out_len)
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp384r1);
	EC_POINT *pt = NULL;
	int r = -EBADMSG;

	if (!g)
		return -ENOMEM;
	pt = EC_POINT_new(g);
	if (!pt) {
		r = -ENOMEM;
		goto out;
	}
	if (EC_POINT_oct2point(g, pt, in, in_len, NULL) != 1 || EC_POINT_is_at_infinity(g, pt))
		goto out;
	if (EC_POINT_point2oct(
	        g, pt, compressed ? POINT_CONVERSION_COMPRESSED : POINT_CONVERSION_UNCOMPRESSED,
	        out, out_len, NULL) != out_len)
		goto out;
	r = 0;
out:
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	return r;
}

static int p384_pub_of(EVP_PKEY *pk, uint8_t out[P384_POINT_LEN])
{
	uint8_t buf[133];
	size_t n = 0;

	if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof(buf), &n) != 1)
		return -EINVAL;
	return p384_point_convert(buf, n, false, out, P384_POINT_LEN);
}

static int p384_pkey_from_point(const uint8_t pt[P384_POINT_LEN], EVP_PKEY **out)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	static char group[] = "secp384r1";
	OSSL_PARAM params[3];
	int r = -EBADMSG;

	*out = NULL;
	if (!ctx)
		return -ENOMEM;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] =
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, P384_POINT_LEN);
	params[2] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_fromdata_init(ctx) == 1 &&
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1)
		r = 0;
	EVP_PKEY_CTX_free(ctx);
	return r;
}

/* ECDH: the 48-byte x coordinate of priv * peer. */
static int p384_dh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t dh[P384_DH_LEN])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	size_t n = P384_DH_LEN;
	int r = -EBADMSG;

	if (!ctx)
		return -ENOMEM;
	if (EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
	    EVP_PKEY_derive(ctx, dh, &n) == 1 && n == P384_DH_LEN)
		r = 0;
	EVP_PKEY_CTX_free(ctx);
	if (r < 0)
		OPENSSL_cleanse(dh, P384_DH_LEN);
	return r;
}

int crypto_p384_dh_scalar(const uint8_t d[48], const uint8_t *peer, size_t peer_len, uint8_t dh[48])
{
	static char group[] = "secp384r1";
	uint8_t pt[P384_POINT_LEN];
	EVP_PKEY *me = NULL, *other = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	BIGNUM *bn = NULL;
	int r;

	if ((r = p384_point_convert(peer, peer_len, false, pt, sizeof(pt))) < 0 ||
	    (r = p384_pkey_from_point(pt, &other)) < 0)
		goto out;
	r = -EIO;
	bn = BN_secure_new();
	bld = OSSL_PARAM_BLD_new();
	if (!bn || !bld || !BN_bin2bn(d, 48, bn) ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &me, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	r = p384_dh(me, other, dh);
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params); /* the scalar went to its secure half: cleared on free */
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(bn);
	EVP_PKEY_free(me);
	EVP_PKEY_free(other);
	return r;
}

/* ---- keys ---- */

#define SECURE_HEAP_SIZE (64 * 1024) /* a few keys; must be a power of two */

int crypto_secure_heap_init(void)
{
	if (CRYPTO_secure_malloc_initialized())
		return 0;
	return CRYPTO_secure_malloc_init(SECURE_HEAP_SIZE, 16) ? 0 : -ENOMEM;
}

static int key_wrap(EVP_PKEY *pk, bool priv, struct crypto_key **out)
{
	struct crypto_key *k = calloc(1, sizeof(*k));
	char group[32];
	int r = -ENOTSUP;

	if (!k)
		return -ENOMEM;
	k->priv = priv;
	if (EVP_PKEY_is_a(pk, "EC")) {
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), NULL) != 1 ||
		    strcmp(group, "secp384r1") != 0)
			goto fail;
		if ((r = p384_pub_of(pk, k->pub)) < 0)
			goto fail;
		k->type = CRYPTO_KEY_P384;
		snprintf(k->desc, sizeof(k->desc), "P-384");
		r = -ENOMEM;
		if (!(k->sc = calloc(1, sizeof(*k->sc))))
			goto fail;
		pthread_mutex_init(&k->sc->mu, NULL);
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		int bits = EVP_PKEY_get_bits(pk);
		if (bits < 2048 || bits > 16384)
			goto fail;
		k->type = CRYPTO_KEY_RSA;
		k->rsa_len = (size_t)EVP_PKEY_get_size(pk);
		snprintf(k->desc, sizeof(k->desc), "RSA-%d", bits);
	} else {
		goto fail;
	}
	k->pk = pk;
	*out = k;
	return 0;
fail:
	if (k->sc) {
		pthread_mutex_destroy(&k->sc->mu);
		free(k->sc);
	}
	free(k);
	return r;
}

int crypto_key_load_public(const char *path, struct crypto_key **out)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *pk = NULL;
	int r;

	*out = NULL;
	if ((r = read_file(path, PEM_MAX, &pem, &len)) < 0)
		return r;
	r = -EINVAL;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		r = -ENOMEM;
		goto out;
	}
	pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pk)
		goto out;
	if ((r = key_wrap(pk, false, out)) < 0)
		goto out;
	pk = NULL;
out:
	EVP_PKEY_free(pk);
	BIO_free(bio);
	free(pem);
	return r;
}

/* Never prompt on a terminal: an encrypted private key is refused instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int crypto_key_load_private(const char *path, struct crypto_key **out)
{
	struct stat st;
	uint8_t *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *pk = NULL;
	int fd, r;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	/* Checked on the open descriptor, so the file we read is the file we judged. */
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		log_err("crypto: refusing private key %s: mode %04o lets group or others "
		        "access it (chmod 600 it)",
		        path, (unsigned)(st.st_mode & 07777));
		r = -EPERM;
		goto out;
	}
	if ((size_t)st.st_size > PEM_MAX) {
		r = -EFBIG;
		goto out;
	}
	/* One allocation, read in place, wiped after parsing: no stdio buffer or
	 * realloc leaves a copy of the key behind. */
	pem = malloc((size_t)st.st_size + 1);
	if (!pem) {
		r = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t k = read(fd, pem + len, (size_t)st.st_size - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		r = -ENOMEM;
		goto out;
	}
	pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!pk) {
		r = -EINVAL;
		goto out;
	}
	if ((r = key_wrap(pk, true, out)) < 0)
		goto out;
	pk = NULL;
out:
	EVP_PKEY_free(pk);
	BIO_free(bio);
	if (pem) {
		OPENSSL_cleanse(pem, (size_t)st.st_size + 1);
		free(pem);
	}
	close(fd);
	return r;
}

int crypto_key_generate(enum crypto_key_type type, unsigned rsa_bits, struct crypto_key **out)
{
	EVP_PKEY *pk = NULL;
	int r;

	*out = NULL;
	if (type == CRYPTO_KEY_P384) {
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	} else if (type == CRYPTO_KEY_RSA) {
		if (rsa_bits == 0)
			rsa_bits = 3072;
		if (rsa_bits < 2048 || rsa_bits > 16384)
			return -EINVAL;
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rsa_bits);
	} else {
		return -EINVAL;
	}
	if (!pk)
		return -EIO;
	if ((r = key_wrap(pk, true, out)) < 0)
		EVP_PKEY_free(pk);
	return r;
}

static int write_pem(const struct crypto_key *k, bool priv, int fd)
{
	/* secmem: the buffer comes from OpenSSL's secure heap when one is set up, and
	 * is cleared when freed in any case. */
	BIO *bio = BIO_new(BIO_s_secmem());
	char *data = NULL;
	long n;
	int r = -EIO;

	if (!bio)
		return -ENOMEM;
	if (priv ? PEM_write_bio_PrivateKey(bio, k->pk, NULL, NULL, 0, NULL, NULL) != 1
	         : PEM_write_bio_PUBKEY(bio, k->pk) != 1)
		goto out;
	n = BIO_get_mem_data(bio, &data);
	if (n <= 0)
		goto out;
	r = write_all(fd, data, (size_t)n);
	OPENSSL_cleanse(data, (size_t)n);
out:
	BIO_free(bio);
	return r;
}

int crypto_key_write_private(const struct crypto_key *k, int fd)
{
	if (!k->priv)
		return -EINVAL;
	return write_pem(k, true, fd);
}

int crypto_key_write_public(const struct crypto_key *k, int fd)
{
	return write_pem(k, false, fd);
}

enum crypto_key_type crypto_key_type(const struct crypto_key *k)
{
	return k->type;
}

bool crypto_key_is_private(const struct crypto_key *k)
{
	return k->priv;
}

const char *crypto_key_describe(const struct crypto_key *k)
{
	return k->desc;
}

void crypto_key_free(struct crypto_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pk); /* OpenSSL clears private key material as it frees */
	if (k->sc) {
		pthread_mutex_destroy(&k->sc->mu);
		OPENSSL_cleanse(k->sc, sizeof(*k->sc));
		free(k->sc);
	}
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

/* ---- strict base64: one canonical spelling per byte string ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64v(unsigned char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : NULL;
	return p ? (int)(p - b64_alphabet) : -1;
}

/* Standard alphabet, padded, length a multiple of 4, unused bits zero. The lenient
 * decoders most libraries have map several spellings to the same bytes, which
 * would let a flipped bit in the last character go unnoticed by GCM. */
static int b64_strict_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
	size_t pad = 0, o = 0;
	uint8_t *buf;

	if (n == 0 || n % 4)
		return -EINVAL;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	buf = malloc(n / 4 * 3);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		bool last = i + 4 == n;
		for (int j = 0; j < 4; j++) {
			v[j] = (last && j >= 4 - (int)pad) ? 0 : b64v((unsigned char)s[i + j]);
			if (v[j] < 0)
				goto bad;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		buf[o++] = (uint8_t)(w >> 16);
		if (last && pad == 2) {
			if (w & 0xffff)
				goto bad;
			break;
		}
		buf[o++] = (uint8_t)(w >> 8);
		if (last && pad == 1) {
			if (w & 0xff)
				goto bad;
			break;
		}
		buf[o++] = (uint8_t)w;
	}
	*out = buf;
	*out_len = o;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}

/* ---- the envelope ---- */

/* AAD = alg || 0x00 || envelope: the header is authenticated along with the body. */
static uint8_t *make_aad(const char *alg, const uint8_t *envl, size_t env_len, size_t *aad_len)
{
	size_t al = strlen(alg);
	uint8_t *aad = malloc(al + 1 + env_len);

	if (!aad)
		return NULL;
	memcpy(aad, alg, al);
	aad[al] = 0;
	memcpy(aad + al + 1, envl, env_len);
	*aad_len = al + 1 + env_len;
	return aad;
}

/* Fill envl (49 bytes) with a fresh P-384 encapsulation and derive key and base
 * nonce under info: HPKE SetupBaseS. */
static int setup_p384(const struct crypto_key *pub, const char *info, uint8_t *envl, uint8_t *key,
                      uint8_t *nonce)
{
	EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	uint8_t dh[P384_DH_LEN], enc[P384_POINT_LEN];
	int r;

	if (!eph)
		return -EIO;
	if ((r = p384_dh(eph, pub->pk, dh)) < 0 || (r = p384_pub_of(eph, enc)) < 0 ||
	    (r = p384_point_convert(enc, sizeof(enc), true, envl, P384_COMPRESSED_LEN)) < 0)
		goto out;
	r = crypto_hpke_p384_schedule(dh, enc, pub->pub, (const uint8_t *)info, strlen(info), key,
	                              nonce);
out:
	OPENSSL_cleanse(dh, sizeof(dh));
	EVP_PKEY_free(eph); /* the ephemeral private key dies here */
	return r;
}

static int seal_p384(const struct crypto_key *pub, uint8_t *envl, uint8_t *key, uint8_t *nonce)
{
	return setup_p384(pub, HPKE_INFO, envl, key, nonce);
}

static int rsa_ctx_oaep(EVP_PKEY_CTX *ctx)
{
	return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
	               EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
	               EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1
	           ? 0
	           : -EIO;
}

static int seal_rsa(const struct crypto_key *pub, uint8_t *envl, uint8_t *key, uint8_t *nonce)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub->pk, NULL);
	uint8_t kn[RSA_WRAPPED_LEN];
	size_t n = pub->rsa_len;
	int r = -EIO;

	if (!ctx)
		return -ENOMEM;
	if (RAND_priv_bytes(kn, sizeof(kn)) != 1)
		goto out;
	if (EVP_PKEY_encrypt_init(ctx) != 1 || rsa_ctx_oaep(ctx) < 0 ||
	    EVP_PKEY_encrypt(ctx, envl, &n, kn, sizeof(kn)) != 1 || n != pub->rsa_len)
		goto out;
	memcpy(key, kn, CRYPTO_GCM_KEY_LEN);
	memcpy(nonce, kn + CRYPTO_GCM_KEY_LEN, CRYPTO_GCM_NONCE_LEN);
	r = 0;
out:
	OPENSSL_cleanse(kn, sizeof(kn));
	EVP_PKEY_CTX_free(ctx);
	return r;
}

int crypto_seal(const struct crypto_key *pub, const char *plaintext, size_t len, json_t **env)
{
	const char *alg = pub->type == CRYPTO_KEY_P384 ? CRYPTO_ALG_P384 : CRYPTO_ALG_RSA;
	size_t env_len = pub->type == CRYPTO_KEY_P384 ? P384_COMPRESSED_LEN : pub->rsa_len;
	uint8_t key[CRYPTO_GCM_KEY_LEN], nonce[CRYPTO_GCM_NONCE_LEN];
	uint8_t *raw = NULL, *aad = NULL;
	size_t aad_len = 0;
	char *b64 = NULL;
	int r;

	*env = NULL;
	if (len > CRYPTO_MAX_PLAINTEXT)
		return -E2BIG;
	raw = malloc(env_len + len + CRYPTO_GCM_TAG_LEN);
	if (!raw)
		return -ENOMEM;
	r = pub->type == CRYPTO_KEY_P384 ? seal_p384(pub, raw, key, nonce)
	                                 : seal_rsa(pub, raw, key, nonce);
	if (r < 0)
		goto out;
	aad = make_aad(alg, raw, env_len, &aad_len);
	if (!aad) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = crypto_gcm_seal(key, nonce, aad, aad_len, (const uint8_t *)plaintext, len,
	                         raw + env_len, raw + env_len + len)) < 0)
		goto out;
	b64 = b64_encode(raw, env_len + len + CRYPTO_GCM_TAG_LEN);
	if (!b64) {
		r = -ENOMEM;
		goto out;
	}
	*env = json_pack("{s:s, s:s}", "alg", alg, "data", b64);
	r = *env ? 0 : -ENOMEM;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	free(b64);
	free(aad);
	free(raw);
	return r;
}

/* HPKE SetupBaseR from the compressed encapsulation envl under info. */
static int open_setup_p384(const struct crypto_key *priv, const char *info, const uint8_t *envl,
                           uint8_t *key, uint8_t *nonce, const char **why)
{
	uint8_t enc[P384_POINT_LEN], dh[P384_DH_LEN];
	EVP_PKEY *peer = NULL;
	int r;

	if (p384_point_convert(envl, P384_COMPRESSED_LEN, false, enc, sizeof(enc)) < 0 ||
	    p384_pkey_from_point(enc, &peer) < 0) {
		*why = "tampered note: the envelope's ephemeral key is not a P-384 point";
		return -EBADMSG;
	}
	if ((r = p384_dh(priv->pk, peer, dh)) < 0) {
		*why = "tampered note: key agreement with the envelope's key failed";
		goto out;
	}
	r = crypto_hpke_p384_schedule(dh, enc, priv->pub, (const uint8_t *)info, strlen(info), key,
	                              nonce);
	if (r < 0)
		*why = "internal error deriving the key";
out:
	OPENSSL_cleanse(dh, sizeof(dh));
	EVP_PKEY_free(peer);
	return r;
}

static int open_p384(const struct crypto_key *priv, const uint8_t *envl, uint8_t *key,
                     uint8_t *nonce, const char **why)
{
	return open_setup_p384(priv, HPKE_INFO, envl, key, nonce, why);
}

static int open_rsa(const struct crypto_key *priv, const uint8_t *envl, uint8_t *key,
                    uint8_t *nonce, const char **why)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv->pk, NULL);
	uint8_t kn[512];
	size_t n = sizeof(kn);
	int r = -EBADMSG;

	if (!ctx)
		return -ENOMEM;
	if (EVP_PKEY_decrypt_init(ctx) != 1 || rsa_ctx_oaep(ctx) < 0 ||
	    EVP_PKEY_decrypt(ctx, kn, &n, envl, priv->rsa_len) != 1 || n != RSA_WRAPPED_LEN) {
		*why = "wrong key or tampered note: the wrapped key does not open with this key";
		goto out;
	}
	memcpy(key, kn, CRYPTO_GCM_KEY_LEN);
	memcpy(nonce, kn + CRYPTO_GCM_KEY_LEN, CRYPTO_GCM_NONCE_LEN);
	r = 0;
out:
	OPENSSL_cleanse(kn, sizeof(kn));
	EVP_PKEY_CTX_free(ctx);
	return r;
}

/* AES-256-GCM open of the ct_len bytes at ct (their tag right after them) into a new
 * NUL-terminated text: 0 with *pt (caller frees) and *len, or -errno with *why and
 * nothing allocated. */
static int open_text(const uint8_t key[CRYPTO_GCM_KEY_LEN],
                     const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                     const uint8_t *ct, size_t ct_len, char **pt, size_t *len, const char **why)
{
	uint8_t *out = malloc(ct_len + 1);
	int r;

	if (!out) {
		*why = "out of memory";
		return -ENOMEM;
	}
	r = crypto_gcm_open(key, nonce, aad, aad_len, ct, ct_len, ct + ct_len, out);
	if (r < 0) {
		*why = r == -EBADMSG ? "wrong key, or the note was tampered with or truncated "
		                       "(authentication failed)"
		                     : "internal error decrypting";
		OPENSSL_cleanse(out, ct_len + 1);
		free(out);
		return r;
	}
	out[ct_len] = '\0';
	*pt = (char *)out;
	*len = ct_len;
	return 0;
}

int crypto_open(const struct crypto_key *priv, json_t *env, char **pt, size_t *len,
                const char **why)
{
	uint8_t key[CRYPTO_GCM_KEY_LEN], nonce[CRYPTO_GCM_NONCE_LEN];
	uint8_t *raw = NULL, *aad = NULL;
	size_t raw_len = 0, aad_len = 0, env_len, ct_len = 0;
	const char *alg, *data;
	enum crypto_key_type type;
	int r;

	*pt = NULL;
	*len = 0;
	*why = "";
	if (!priv->priv) {
		*why = "a public key cannot open an envelope";
		return -EINVAL;
	}
	/* Other fields may sit beside alg and data (the link adds "_id" for Notehub-side
	 * dedup); they are outside the envelope, so they are neither read nor trusted. */
	if (!json_is_object(env) || !json_is_string(json_object_get(env, "alg")) ||
	    !json_is_string(json_object_get(env, "data"))) {
		*why = "not an encrypted note: the body has no string \"alg\" and \"data\"";
		return -EINVAL;
	}
	alg = json_string_value(json_object_get(env, "alg"));
	if (strcmp(alg, CRYPTO_ALG_P384) == 0) {
		type = CRYPTO_KEY_P384;
	} else if (strcmp(alg, CRYPTO_ALG_RSA) == 0) {
		type = CRYPTO_KEY_RSA;
	} else if (strncmp(alg, "ngw", 3) == 0) {
		*why = "unknown envelope version or algorithm (this notegw reads ngw1 only)";
		return -ENOTSUP;
	} else {
		*why = "not a notegw envelope (notes the Notecard encrypted itself use Blues' "
		       "format)";
		return -ENOTSUP;
	}
	if (type != priv->type) {
		*why = type == CRYPTO_KEY_P384
		           ? "wrong key: the note is sealed to a P-384 key, this key is RSA"
		           : "wrong key: the note is sealed to an RSA key, this key is P-384";
		return -EBADMSG;
	}
	env_len = type == CRYPTO_KEY_P384 ? P384_COMPRESSED_LEN : priv->rsa_len;
	data = json_string_value(json_object_get(env, "data"));
	size_t dlen = json_string_length(json_object_get(env, "data"));
	if (dlen > DATA_B64_MAX) {
		*why = "envelope too large";
		return -E2BIG;
	}
	if (dlen != strlen(data) || b64_strict_decode(data, dlen, &raw, &raw_len) < 0) {
		*why = "truncated or tampered note: \"data\" is not canonical base64";
		return -EBADMSG;
	}
	if (raw_len < env_len + CRYPTO_GCM_TAG_LEN) {
		*why = "truncated note: \"data\" is shorter than the envelope and tag";
		r = -EBADMSG;
		goto out;
	}
	ct_len = raw_len - env_len - CRYPTO_GCM_TAG_LEN;
	if (ct_len > CRYPTO_MAX_PLAINTEXT) {
		*why = "envelope too large";
		r = -E2BIG;
		goto out;
	}
	r = type == CRYPTO_KEY_P384 ? open_p384(priv, raw, key, nonce, why)
	                            : open_rsa(priv, raw, key, nonce, why);
	if (r < 0)
		goto out;
	aad = make_aad(alg, raw, env_len, &aad_len);
	if (!aad) {
		*why = "out of memory";
		r = -ENOMEM;
		goto out;
	}
	r = open_text(key, nonce, aad, aad_len, raw + env_len, ct_len, pt, len, why);
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	free(aad);
	free(raw);
	return r;
}

void crypto_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

void crypto_free_plaintext(char *pt, size_t len)
{
	if (!pt)
		return;
	OPENSSL_cleanse(pt, len + 1);
	free(pt);
}

int crypto_is_envelope(json_t *body)
{
	json_t *alg = json_object_get(body, "alg");

	return json_is_object(body) && json_is_string(alg) &&
	       strncmp(json_string_value(alg), "ngw", 3) == 0 &&
	       json_is_string(json_object_get(body, "data"));
}

/* ---- sealed payloads, format v2 ---- */

/* RFC 9180 section 5.2: nonce = base_nonce XOR I2OSP(seq, Nn). */
static void seq_nonce(const uint8_t base[CRYPTO_GCM_NONCE_LEN], uint32_t seq,
                      uint8_t nonce[CRYPTO_GCM_NONCE_LEN])
{
	memcpy(nonce, base, CRYPTO_GCM_NONCE_LEN);
	for (int i = 0; i < 4; i++)
		nonce[CRYPTO_GCM_NONCE_LEN - 1 - i] ^= (uint8_t)(seq >> (8 * i));
}

/* Take the next (context, sequence number) pair, starting a new context when there
 * is none or the current one has sealed its batch. Copies out under the lock so
 * two threads never share a sequence number. */
static int next_seq(const struct crypto_key *pub, uint8_t hdr[CRYPTO_PAYLOAD_HDR_LEN],
                    uint8_t key[CRYPTO_GCM_KEY_LEN], uint8_t nonce[CRYPTO_GCM_NONCE_LEN])
{
	struct seal_ctx *c = pub->sc;
	int r = 0;

	pthread_mutex_lock(&c->mu);
	if (!c->live || c->seq >= CRYPTO_PAYLOAD_BATCH) {
		c->live = false;
		if ((r = setup_p384(pub, HPKE_INFO_V2, c->enc, c->key, c->base_nonce)) < 0)
			goto out;
		c->live = true;
		c->seq = 0;
	}
	hdr[0] = CRYPTO_PAYLOAD_P384;
	memcpy(hdr + 1, c->enc, P384_COMPRESSED_LEN);
	hdr[1 + P384_COMPRESSED_LEN] = (uint8_t)(c->seq >> 8);
	hdr[2 + P384_COMPRESSED_LEN] = (uint8_t)c->seq;
	memcpy(key, c->key, CRYPTO_GCM_KEY_LEN);
	seq_nonce(c->base_nonce, c->seq, nonce);
	c->seq++;
out:
	pthread_mutex_unlock(&c->mu);
	return r;
}

int crypto_seal_payload(const struct crypto_key *pub, const char *plaintext, size_t len,
                        uint8_t **out, size_t *out_len)
{
	uint8_t key[CRYPTO_GCM_KEY_LEN], nonce[CRYPTO_GCM_NONCE_LEN], *buf;
	int r;

	*out = NULL;
	*out_len = 0;
	if (pub->type != CRYPTO_KEY_P384 || !pub->sc)
		return -ENOTSUP;
	if (len > CRYPTO_MAX_PLAINTEXT)
		return -E2BIG;
	buf = malloc(CRYPTO_PAYLOAD_OVERHEAD + len);
	if (!buf)
		return -ENOMEM;
	if ((r = next_seq(pub, buf, key, nonce)) < 0 ||
	    (r = crypto_gcm_seal(key, nonce, buf, CRYPTO_PAYLOAD_HDR_LEN,
	                         (const uint8_t *)plaintext, len, buf + CRYPTO_PAYLOAD_HDR_LEN,
	                         buf + CRYPTO_PAYLOAD_HDR_LEN + len)) < 0) {
		free(buf);
		goto out;
	}
	*out = buf;
	*out_len = CRYPTO_PAYLOAD_OVERHEAD + len;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	return r;
}

int crypto_is_sealed_payload(const uint8_t *p, size_t n)
{
	return n >= 1 && p[0] == CRYPTO_PAYLOAD_P384;
}

int crypto_open_payload(const struct crypto_key *priv, const uint8_t *p, size_t n, char **pt,
                        size_t *len, const char **why)
{
	uint8_t key[CRYPTO_GCM_KEY_LEN], nonce[CRYPTO_GCM_NONCE_LEN], base[CRYPTO_GCM_NONCE_LEN];
	size_t ct_len = 0;
	uint32_t seq;
	int r;

	*pt = NULL;
	*len = 0;
	*why = "";
	if (!priv->priv) {
		*why = "a public key cannot open a sealed payload";
		return -EINVAL;
	}
	if (n < 1 || p[0] != CRYPTO_PAYLOAD_P384) {
		*why = "not a sealed payload, or an unknown version (this notegw reads kind 0x02)";
		return -ENOTSUP;
	}
	if (priv->type != CRYPTO_KEY_P384) {
		*why = "wrong key: the payload is sealed to a P-384 key, this key is RSA";
		return -EBADMSG;
	}
	if (n < CRYPTO_PAYLOAD_OVERHEAD) {
		*why = "truncated note: the payload is shorter than its header and tag";
		return -EBADMSG;
	}
	ct_len = n - CRYPTO_PAYLOAD_OVERHEAD;
	if (ct_len > CRYPTO_MAX_PLAINTEXT) {
		*why = "sealed payload too large";
		return -E2BIG;
	}
	seq = (uint32_t)p[1 + P384_COMPRESSED_LEN] << 8 | p[2 + P384_COMPRESSED_LEN];
	if ((r = open_setup_p384(priv, HPKE_INFO_V2, p + 1, key, base, why)) < 0)
		goto out;
	seq_nonce(base, seq, nonce);
	r = open_text(key, nonce, p, CRYPTO_PAYLOAD_HDR_LEN, p + CRYPTO_PAYLOAD_HDR_LEN, ct_len, pt,
	              len, why);
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	OPENSSL_cleanse(base, sizeof(base));
	return r;
}
