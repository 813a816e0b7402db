/* Signed host update images (see docs/update-image.md): a small header, the
 * payload (a .deb), and a signature over both by a key in the trusted directory.
 * Making and checking them needs no daemon. */
#ifndef NOTEGW_UPDATE_H
#define NOTEGW_UPDATE_H
#include <stddef.h>
#include <stdint.h>

#define UPDATE_MAGIC "NGWUPD1\n"
#define UPDATE_HEADER_MAX 4096
#define UPDATE_SIG_MAX 512

struct update_info {
	char name[64];
	char version[64];
	char kind[16];       /* "deb" */
	char alg[16];        /* "ed25519" or "ecdsa-p384" */
	char key_id[65];     /* hex SHA-256 of the signer's public key (DER SPKI) */
	char sha256[65];     /* of the payload */
	uint64_t length;     /* payload bytes */
	size_t payload_off;  /* where the payload starts in the image */
};

/* Sign payload file `in` with a PEM private key (Ed25519 or P-384) into image
 * `out`. name/version describe the payload. *why a static reason on error. */
int update_sign(const char *key_pem, const char *in, const char *out, const char *name,
                const char *version, const char **why);
/* Verify an image against every *.pem public key in trusted_dir. 0 when authentic
 * (info filled), -EBADMSG (bad signature / tampered / truncated), -ENOKEY (no
 * trusted key matches its signer), -EINVAL (not an image); *why says which. */
int update_verify(const char *trusted_dir, const char *image, struct update_info *info,
                  const char **why);
/* The same on a buffer in memory (fuzzing, tests). */
int update_verify_buf(const char *trusted_dir, const uint8_t *buf, size_t len,
                      struct update_info *info, const char **why);
/* Parse only the header (no signature check). */
int update_parse(const uint8_t *buf, size_t len, struct update_info *info, const char **why);
/* Parse the header of an image file (no check); 0 or <0. */
int update_parse_file_quiet(const char *image, struct update_info *info);
/* Copy the payload of a verified image to path (mode 0600). */
int update_extract(const char *image, const struct update_info *info, const char *path);
#endif
