/* Signed host update images. Layout (docs/update-image.md has the whole format):
 *   "NGWUPD1\n" | header: one compact JSON line ending '\n' | payload (length bytes)
 *   | signature (siglen bytes) | siglen as 2 bytes big-endian
 * The signature (Ed25519, or ECDSA P-384 over SHA-384) covers everything before it,
 * so the header's name, version, length and digest are authenticated too. There is
 * no way to skip the check: every path that installs goes through update_verify. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "update.h"
#include "util.h"

#define IMAGE_MAX (256u * 1024 * 1024)

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return -EIO;
	hex(md, 32, out);
	return 0;
}

static int key_id(EVP_PKEY *k, char out[65])
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k, &der);
	if (n <= 0)
		return -EINVAL;
	int r = sha256_hex(der, (size_t)n, out);
	OPENSSL_free(der);
	return r;
}

static const char *key_alg(EVP_PKEY *k)
{
	if (EVP_PKEY_is_a(k, "ED25519"))
		return "ed25519";
	if (EVP_PKEY_is_a(k, "EC")) {
		char group[32] = "";
		size_t gl = 0;
		if (EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &gl) &&
		    strcmp(group, "secp384r1") == 0)
			return "ecdsa-p384";
	}
	return NULL;
}

/* md for EVP_DigestSign/Verify: none for Ed25519 (it hashes itself). */
static const EVP_MD *alg_md(const char *alg)
{
	return strcmp(alg, "ecdsa-p384") == 0 ? EVP_sha384() : NULL;
}

int update_parse(const uint8_t *buf, size_t len, struct update_info *info, const char **why)
{
	memset(info, 0, sizeof(*info));
	size_t ml = strlen(UPDATE_MAGIC);
	if (len < ml || memcmp(buf, UPDATE_MAGIC, ml) != 0) {
		*why = "not a notegw update image (bad magic)";
		return -EINVAL;
	}
	const uint8_t *h = buf + ml;
	size_t room = len - ml < UPDATE_HEADER_MAX ? len - ml : UPDATE_HEADER_MAX;
	const uint8_t *nl = memchr(h, '\n', room);
	if (!nl) {
		*why = "image header missing or too long (truncated image?)";
		return -EINVAL;
	}
	json_error_t e;
	json_t *o = json_loadb((const char *)h, (size_t)(nl - h), JSON_REJECT_DUPLICATES, &e);
	const char *name = NULL, *version = NULL, *kind = NULL, *alg = NULL, *kid = NULL,
		   *sha = NULL;
	json_int_t length = -1, v = 0;
	int r = -EINVAL;
	if (!o || json_unpack(o, "{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "v", &v, "name", &name,
	                      "version", &version, "kind", &kind, "alg", &alg, "key", &kid,
	                      "sha256", &sha, "length", &length) < 0) {
		*why = "image header is not the expected JSON";
		goto out;
	}
	if (v != 1) {
		*why = "image format version not supported";
		goto out;
	}
	if (length < 0 || strlen(name) >= sizeof(info->name) ||
	    strlen(version) >= sizeof(info->version) || strlen(kind) >= sizeof(info->kind) ||
	    strlen(alg) >= sizeof(info->alg) || strlen(kid) != 64 || strlen(sha) != 64) {
		*why = "image header has a field out of range";
		goto out;
	}
	snprintf(info->name, sizeof(info->name), "%s", name);
	snprintf(info->version, sizeof(info->version), "%s", version);
	snprintf(info->kind, sizeof(info->kind), "%s", kind);
	snprintf(info->alg, sizeof(info->alg), "%s", alg);
	snprintf(info->key_id, sizeof(info->key_id), "%s", kid);
	snprintf(info->sha256, sizeof(info->sha256), "%s", sha);
	info->length = (uint64_t)length;
	info->payload_off = (size_t)(nl + 1 - buf);
	r = 0;
out:
	json_decref(o);
	return r;
}

static EVP_PKEY *load_pub(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

/* The trusted key whose id matches, or NULL. Caller frees. */
static EVP_PKEY *find_trusted(const char *dir, const char *want)
{
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	EVP_PKEY *found = NULL;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char path[4096], id[65];
		if (n < 5 || strcmp(e->d_name + n - 4, ".pem") != 0 ||
		    xsnprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < 0)
			continue;
		EVP_PKEY *k = load_pub(path);
		if (k && key_id(k, id) == 0 && strcmp(id, want) == 0)
			found = k;
		else
			EVP_PKEY_free(k);
	}
	closedir(d);
	return found;
}

int update_verify_buf(const char *trusted_dir, const uint8_t *buf, size_t len,
                      struct update_info *info, const char **why)
{
	int r = update_parse(buf, len, info, why);
	if (r < 0)
		return r;
	if (len < info->payload_off + 2) {
		*why = "image truncated";
		return -EBADMSG;
	}
	size_t siglen = ((size_t)buf[len - 2] << 8) | buf[len - 1];
	if (siglen == 0 || siglen > UPDATE_SIG_MAX || siglen + 2 > len - info->payload_off ||
	    info->length != len - 2 - siglen - info->payload_off) {
		*why = "image truncated or padded (length does not match its header)";
		return -EBADMSG;
	}
	size_t signed_len = len - 2 - siglen;
	char sha[65];
	if (sha256_hex(buf + info->payload_off, info->length, sha) < 0)
		return -EIO;
	if (strcmp(sha, info->sha256) != 0) {
		*why = "payload digest does not match the header (corrupted or altered)";
		return -EBADMSG;
	}
	if (strcmp(info->alg, "ed25519") != 0 && strcmp(info->alg, "ecdsa-p384") != 0) {
		*why = "signature algorithm not supported";
		return -EBADMSG;
	}
	EVP_PKEY *k = find_trusted(trusted_dir, info->key_id);
	if (!k) {
		*why = "signed by a key that is not in the trusted directory";
		return -ENOKEY;
	}
	const char *kalg = key_alg(k);
	r = -EBADMSG;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!kalg || strcmp(kalg, info->alg) != 0) {
		*why = "signature algorithm does not match the trusted key";
	} else if (!ctx || EVP_DigestVerifyInit(ctx, NULL, alg_md(info->alg), NULL, k) != 1 ||
	           EVP_DigestVerify(ctx, buf + signed_len, siglen, buf, signed_len) != 1) {
		*why = "bad signature (image altered or not signed by this key)";
	} else {
		r = 0;
	}
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return r;
}

int update_verify(const char *trusted_dir, const char *image, struct update_info *info,
                  const char **why)
{
	char *buf = NULL;
	size_t len = 0;
	int r = read_file(image, IMAGE_MAX, &buf, &len);
	if (r < 0) {
		*why = "cannot read the image";
		return r;
	}
	r = update_verify_buf(trusted_dir, (const uint8_t *)buf, len, info, why);
	free(buf);
	return r;
}

int update_sign(const char *key_pem, const char *in, const char *out, const char *name,
                const char *version, const char **why)
{
	char *payload = NULL, *header = NULL, sha[65], kid[65];
	size_t plen = 0, siglen = 0;
	unsigned char *img = NULL;
	EVP_PKEY *k = NULL;
	EVP_MD_CTX *ctx = NULL;
	json_t *h = NULL;
	int fd = -1, r = read_file(in, IMAGE_MAX, &payload, &plen);
	if (r < 0) {
		*why = "cannot read the payload";
		return r;
	}
	FILE *f = fopen(key_pem, "re");
	if (f) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	r = -EINVAL;
	const char *alg = k ? key_alg(k) : NULL;
	if (!alg) {
		*why = "the signing key must be a PEM Ed25519 or P-384 private key";
		goto out;
	}
	if (sha256_hex(payload, plen, sha) < 0 || key_id(k, kid) < 0)
		goto out;
	h = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "v", 1, "name", name, "version",
	              version, "kind", "deb", "alg", alg, "key", kid, "sha256", sha, "length",
	              (json_int_t)plen);
	header = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!header) {
		*why = "bad name or version";
		goto out;
	}
	size_t ml = strlen(UPDATE_MAGIC), hl = strlen(header);
	size_t signed_len = ml + hl + 1 + plen;
	img = malloc(signed_len + UPDATE_SIG_MAX + 2);
	if (!img) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(img, UPDATE_MAGIC, ml);
	memcpy(img + ml, header, hl);
	img[ml + hl] = '\n';
	memcpy(img + ml + hl + 1, payload, plen);
	siglen = UPDATE_SIG_MAX;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestSignInit(ctx, NULL, alg_md(alg), NULL, k) != 1 ||
	    EVP_DigestSign(ctx, img + signed_len, &siglen, img, signed_len) != 1 ||
	    siglen > UPDATE_SIG_MAX) {
		*why = "signing failed";
		r = -EIO;
		goto out;
	}
	img[signed_len + siglen] = (unsigned char)(siglen >> 8);
	img[signed_len + siglen + 1] = (unsigned char)(siglen & 0xff);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, img, signed_len + siglen + 2) < 0 || fsync(fd) < 0) {
		*why = "cannot write the image";
		r = -errno;
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	json_decref(h);
	free(header);
	free(payload);
	free(img);
	return r;
}

int update_extract(const char *image, const struct update_info *info, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	int r = read_file(image, IMAGE_MAX, &buf, &len);
	if (r < 0)
		return r;
	if (info->payload_off + info->length > len) {
		free(buf);
		return -EBADMSG;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
	} else {
		r = write_all(fd, buf + info->payload_off, info->length);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
	}
	free(buf);
	return r;
}

int update_parse_file_quiet(const char *image, struct update_info *info)
{
	char *buf = NULL;
	size_t len = 0;
	const char *why;
	int r = read_file(image, IMAGE_MAX, &buf, &len);
	if (r < 0)
		return r;
	r = update_parse((const uint8_t *)buf, len, info, &why);
	free(buf);
	return r;
}
