/* Signed update images: a good image verifies; a wrong signer, a flipped bit
 * anywhere, truncation, padding and a forged header are each refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "update.h"
#include "util.h"

static char dir[256];

static void write_key(EVP_PKEY *k, const char *priv, const char *pub)
{
	FILE *f = fopen(priv, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	f = fopen(pub, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, k), 1);
	fclose(f);
}

static void path(char *out, const char *name)
{
	snprintf(out, 512, "%s/%s", dir, name);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test-update-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char p1[512], p2[512];
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(ed);
	assert_non_null(ec);
	assert_non_null(other);
	path(p1, "trusted");
	mkdir(p1, 0755);
	path(p1, "untrusted");
	mkdir(p1, 0755);
	path(p1, "ed.key");
	path(p2, "trusted/ed.pem");
	write_key(ed, p1, p2);
	path(p1, "ec.key");
	path(p2, "trusted/ec.pem");
	write_key(ec, p1, p2);
	path(p1, "other.key");
	path(p2, "untrusted/other.pem");
	write_key(other, p1, p2);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(other);
	path(p1, "payload.deb");
	FILE *f = fopen(p1, "w");
	for (int i = 0; i < 5000; i++)
		fputc((i * 7) & 0xff, f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void sign(const char *key, const char *out)
{
	char k[512], in[512], o[512];
	const char *why = NULL;
	path(k, key);
	path(in, "payload.deb");
	path(o, out);
	assert_int_equal(update_sign(k, in, o, "notegw", "1.2.3", &why), 0);
}

static void t_roundtrip(void **state)
{
	char img[512], trusted[512];
	struct update_info info;
	const char *why = NULL;
	path(trusted, "trusted");
	for (int i = 0; i < 2; i++) {
		sign(i ? "ec.key" : "ed.key", "img");
		path(img, "img");
		assert_int_equal(update_verify(trusted, img, &info, &why), 0);
		assert_string_equal(info.version, "1.2.3");
		assert_string_equal(info.alg, i ? "ecdsa-p384" : "ed25519");
		assert_int_equal(info.length, 5000);
	}
}

static void t_wrong_signer(void **state)
{
	char img[512], trusted[512];
	struct update_info info;
	const char *why = NULL;
	sign("other.key", "img-other");
	path(img, "img-other");
	path(trusted, "trusted");
	assert_int_equal(update_verify(trusted, img, &info, &why), -ENOKEY);
	assert_non_null(strstr(why, "trusted"));
}

static void t_every_bit_matters(void **state)
{
	char img[512], trusted[512];
	char *buf = NULL;
	size_t len = 0;
	struct update_info info;
	const char *why = NULL;
	sign("ed.key", "img-flip");
	path(img, "img-flip");
	path(trusted, "trusted");
	assert_int_equal(read_file(img, 1 << 20, &buf, &len), 0);
	/* Flip one bit at many places across magic, header, payload, signature, trailer. */
	for (size_t pos = 0; pos < len; pos += (pos < 400 ? 1 : 37)) {
		buf[pos] ^= 0x04;
		int r = update_verify_buf(trusted, (uint8_t *)buf, len, &info, &why);
		if (r == 0)
			fail_msg("a flipped bit at offset %zu was accepted", pos);
		buf[pos] ^= 0x04;
	}
	buf[len - 3] ^= 1; /* last signature byte */
	assert_true(update_verify_buf(trusted, (uint8_t *)buf, len, &info, &why) < 0);
	buf[len - 3] ^= 1;
	assert_int_equal(update_verify_buf(trusted, (uint8_t *)buf, len, &info, &why), 0);
	/* Truncated anywhere, or padded. */
	for (size_t cut = 0; cut < len; cut += 97)
		assert_true(update_verify_buf(trusted, (uint8_t *)buf, cut, &info, &why) < 0);
	char *padded = malloc(len + 1);
	memcpy(padded, buf, len - 2);
	padded[len - 2] = 0;
	memcpy(padded + len - 1, buf + len - 2, 2);
	assert_true(update_verify_buf(trusted, (uint8_t *)padded, len + 1, &info, &why) < 0);
	free(padded);
	free(buf);
}

static void t_not_an_image(void **state)
{
	struct update_info info;
	const char *why = NULL;
	const char *junk = "NGWUPD1\n{\"v\":2}\n";
	assert_int_equal(update_verify_buf(dir, (const uint8_t *)junk, strlen(junk), &info, &why),
	                 -EINVAL);
	assert_int_equal(update_verify_buf(dir, (const uint8_t *)"hello", 5, &info, &why), -EINVAL);
	assert_non_null(strstr(why, "magic"));
}

static void t_extract(void **state)
{
	char img[512], trusted[512], out[512], in[512];
	struct update_info info;
	const char *why = NULL;
	char *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	sign("ed.key", "img-x");
	path(img, "img-x");
	path(trusted, "trusted");
	path(out, "out.deb");
	path(in, "payload.deb");
	assert_int_equal(update_verify(trusted, img, &info, &why), 0);
	assert_int_equal(update_extract(img, &info, out), 0);
	assert_int_equal(read_file(out, 1 << 20, &a, &la), 0);
	assert_int_equal(read_file(in, 1 << 20, &b, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_roundtrip),       cmocka_unit_test(t_wrong_signer),
		cmocka_unit_test(t_every_bit_matters), cmocka_unit_test(t_not_an_image),
		cmocka_unit_test(t_extract),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
