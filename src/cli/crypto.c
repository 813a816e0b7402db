/* notegw keys / notegw decrypt: the key pair for end-to-end encryption, and the
 * cloud side's reader of sealed notes. Neither needs the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crypto.h"
#include "util.h"

#define EVENT_MAX (16u * 1024u * 1024u)

/* Own printer rather than cli_print_json: these commands run without the daemon
 * and the output shape is theirs (indent 2, one document per line group). */
static void print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

static int usage(const char *prog, const char *what)
{
	fprintf(stderr, "usage: %s %s\n", prog ? prog : "notegw", what);
	return CLI_USAGE;
}

/* ---- keys generate ---- */

#define KEYS_USAGE "keys generate [--type p384|rsa3072] [--name NAME] DIR"

static int open_new(const char *path, mode_t mode)
{
	/* O_EXCL|O_CREAT with the final mode: the file never exists with wider
	 * permissions, and an existing file (or a symlink planted there) is refused. */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	/* umask may only have narrowed the mode; the public key must stay readable. */
	if (fchmod(fd, mode) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int write_key_file(const struct crypto_key *k, bool priv, int fd)
{
	int r = priv ? crypto_key_write_private(k, fd) : crypto_key_write_public(k, fd);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}

static int keys_generate(struct cli *cli, int argc, char **argv)
{
	enum crypto_key_type type = CRYPTO_KEY_P384;
	const char *name = "uplink", *dir = NULL;
	char priv_path[4096], pub_path[4096];
	struct crypto_key *k = NULL;
	int pfd = -1, ufd = -1, r, ret = CLI_REFUSED;
	bool created = false;
	struct stat st;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
			const char *t = argv[++i];
			if (strcmp(t, "p384") == 0)
				type = CRYPTO_KEY_P384;
			else if (strcmp(t, "rsa3072") == 0 || strcmp(t, "rsa") == 0)
				type = CRYPTO_KEY_RSA;
			else
				return usage(cli->prog, KEYS_USAGE);
		} else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
			name = argv[++i];
			if (!*name || strchr(name, '/'))
				return usage(cli->prog, KEYS_USAGE);
		} else if (strcmp(argv[i], "--json") == 0) {
			cli->json = true;
		} else if (argv[i][0] == '-' || dir) {
			return usage(cli->prog, KEYS_USAGE);
		} else {
			dir = argv[i];
		}
	}
	if (!dir)
		return usage(cli->prog, KEYS_USAGE);
	if (xsnprintf(priv_path, sizeof(priv_path), "%s/%s.key.pem", dir, name) < 0 ||
	    xsnprintf(pub_path, sizeof(pub_path), "%s/%s.pub.pem", dir, name) < 0) {
		fprintf(stderr, "notegw: keys: directory name too long\n");
		return CLI_USAGE;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "notegw: keys: cannot create %s: %s\n", dir, strerror(errno));
		return CLI_REFUSED;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "notegw: keys: %s is not a directory\n", dir);
		return CLI_REFUSED;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		fprintf(stderr,
		        "notegw: keys: warning: %s is writable by group or others; "
		        "a 0700 directory is safer for keys\n",
		        dir);

	pfd = open_new(priv_path, 0600);
	if (pfd < 0) {
		fprintf(stderr, "notegw: keys: %s: %s%s\n", priv_path, strerror(-pfd),
		        pfd == -EEXIST ? " (refusing to overwrite a key)" : "");
		goto out;
	}
	created = true;
	ufd = open_new(pub_path, 0644);
	if (ufd < 0) {
		fprintf(stderr, "notegw: keys: %s: %s%s\n", pub_path, strerror(-ufd),
		        ufd == -EEXIST ? " (refusing to overwrite a key)" : "");
		goto out;
	}
	crypto_secure_heap_init();
	if ((r = crypto_key_generate(type, 3072, &k)) < 0) {
		fprintf(stderr, "notegw: keys: key generation failed: %s\n", strerror(-r));
		goto out;
	}
	if ((r = write_key_file(k, true, pfd)) < 0 || (r = write_key_file(k, false, ufd)) < 0) {
		fprintf(stderr, "notegw: keys: writing the key files failed: %s\n", strerror(-r));
		goto out;
	}
	if (cli->json) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "type", crypto_key_describe(k), "private",
		                      priv_path, "public", pub_path);
		if (o)
			print_json(o);
		json_decref(o);
	} else {
		printf("%s key pair written:\n"
		       "  %s  private, mode 0600: keep it where the notes are read (the cloud "
		       "side for uplink), never on the gateway it encrypts for\n"
		       "  %s  public: [crypto] public_key on the gateway\n",
		       crypto_key_describe(k), priv_path, pub_path);
	}
	ret = CLI_OK;
out:
	if (pfd >= 0)
		close(pfd);
	if (ufd >= 0)
		close(ufd);
	if (ret != CLI_OK && created) {
		unlink(priv_path);
		if (ufd >= 0)
			unlink(pub_path);
	}
	crypto_key_free(k);
	return ret;
}

static int run_keys(struct cli *cli, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "generate") != 0)
		return usage(cli->prog, KEYS_USAGE);
	return keys_generate(cli, argc, argv);
}

/* ---- decrypt ---- */

#define DECRYPT_USAGE "decrypt [--key FILE] [--json] [EVENT or FILE or -]"

struct opened {
	json_t *event; /* the routed event, or NULL for a bare envelope */
	char *pt;
	size_t len;
};

/* The body of a routed event ({"event":..., "file":..., "body":{...}}), or the
 * object itself when it is a bare envelope body. Borrowed from obj. */
static json_t *envelope_of(json_t *obj, bool *is_event)
{
	json_t *body = json_object_get(obj, "body");

	*is_event = json_is_object(body) && !json_object_get(obj, "alg");
	return *is_event ? body : obj;
}

static int load_decrypt_key(const char *key_path, struct crypto_key **key)
{
	int r;

	crypto_secure_heap_init(); /* best effort: the key is wiped on free anyway */
	if ((r = crypto_key_load_private(key_path, key)) == 0)
		return 0;
	fprintf(stderr, "notegw: decrypt: cannot use private key %s: %s\n", key_path,
	        r == -EINVAL    ? "not a PEM private key (or a passphrase-protected one)"
	        : r == -ENOTSUP ? "not a P-384 or RSA (>= 2048 bits) key"
	        : r == -EPERM   ? "group or others may access it (chmod 600 it)"
	                        : strerror(-r));
	return r;
}

/* The input: src itself when it is an event's text, else the file (or stdin, "-").
 * *in is the caller's to free. 0, or <0 reported. */
static int read_decrypt_input(const char *src, char **in, size_t *len)
{
	int r;

	if (src[0] == '{') {
		*in = strdup(src);
		*len = *in ? strlen(*in) : 0;
		r = *in ? 0 : -ENOMEM;
	} else {
		r = read_file(strcmp(src, "-") == 0 ? "/dev/stdin" : src, EVENT_MAX, in, len);
	}
	if (r < 0)
		fprintf(stderr, "notegw: decrypt: cannot read %s: %s\n",
		        strcmp(src, "-") == 0 ? "standard input" : src, strerror(-r));
	return r;
}

/* Open one event (or bare envelope) into *o, which takes obj (stolen) on success.
 * 0, or <0 reported (obj is then the caller's). */
static int open_one(struct crypto_key *key, json_t *obj, struct opened *o)
{
	bool is_event;
	const char *why = "";
	json_t *envl = envelope_of(obj, &is_event);

	*o = (struct opened){0};
	if (crypto_open(key, envl, &o->pt, &o->len, &why) < 0) {
		json_t *file = json_object_get(obj, "file");
		fprintf(stderr, "notegw: decrypt: %s%s%s\n",
		        json_is_string(file) ? json_string_value(file) : "",
		        json_is_string(file) ? ": " : "", why);
		return -EBADMSG;
	}
	o->event = obj;
	return 0;
}

/* One event, or several as JSON lines (the simulator's hub file), all opened into
 * *got (n_got of them, the caller frees with free_opened even on failure). 0, or <0
 * reported. */
static int open_all(struct crypto_key *key, const char *in, size_t len, struct opened **got,
                    size_t *n_got)
{
	size_t off = 0;

	for (;;) {
		json_error_t jerr;
		while (off < len && strchr(" \t\r\n", in[off]))
			off++;
		if (off >= len)
			break;
		json_t *obj = json_loadb(in + off, len - off, JSON_DISABLE_EOF_CHECK, &jerr);
		if (!obj) {
			fprintf(stderr,
			        "notegw: decrypt: input is not valid JSON (truncated?): %s at "
			        "byte %zu\n",
			        jerr.text, off + (size_t)jerr.position);
			return -EINVAL;
		}
		off += (size_t)jerr.position;
		struct opened *ng = realloc(*got, (*n_got + 1) * sizeof(**got));
		if (!ng || open_one(key, obj, &ng[*n_got]) < 0) {
			if (ng)
				*got = ng;
			json_decref(obj);
			return -EBADMSG;
		}
		*got = ng;
		(*n_got)++;
	}
	if (*n_got == 0) {
		fprintf(stderr, "notegw: decrypt: no event on input\n");
		return -ENODATA;
	}
	return 0;
}

/* Each plaintext on a line, or with --json the event as routed with the plaintext
 * body in place. 0, or <0 reported. */
static int print_opened(const struct cli *cli, struct opened *got, size_t n_got)
{
	for (size_t i = 0; i < n_got; i++) {
		bool is_event;
		if (!cli->json) {
			fwrite(got[i].pt, 1, got[i].len, stdout);
			fputc('\n', stdout);
			continue;
		}
		json_error_t jerr;
		json_t *body = json_loadb(got[i].pt, got[i].len, 0, &jerr);
		if (!body) {
			fprintf(stderr, "notegw: decrypt: the plaintext is not JSON: %s\n",
			        jerr.text);
			return -EINVAL;
		}
		envelope_of(got[i].event, &is_event);
		if (is_event) {
			json_object_set_new(got[i].event, "body", body);
			print_json(got[i].event);
		} else {
			print_json(body);
			json_decref(body);
		}
	}
	return fflush(stdout) == 0 ? 0 : -EIO;
}

static void free_opened(struct opened *got, size_t n_got)
{
	for (size_t i = 0; i < n_got; i++) {
		crypto_free_plaintext(got[i].pt, got[i].len);
		json_decref(got[i].event);
	}
	free(got);
}

static int run_decrypt(struct cli *cli, int argc, char **argv)
{
	const char *key_path = "uplink.key.pem", *src = "-";
	struct crypto_key *key = NULL;
	struct opened *got = NULL;
	size_t n_got = 0, len = 0;
	char *in = NULL;
	bool have_src = false;
	int ret = CLI_REFUSED;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key_path = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			cli->json = true;
		else if ((strcmp(argv[i], "-") != 0 && argv[i][0] == '-') || have_src)
			return usage(cli->prog, DECRYPT_USAGE);
		else {
			src = argv[i];
			have_src = true;
		}
	}
	if (load_decrypt_key(key_path, &key) < 0)
		return CLI_REFUSED;
	/* Everything is opened before anything is printed: a failure prints no plaintext. */
	if (read_decrypt_input(src, &in, &len) == 0 && open_all(key, in, len, &got, &n_got) == 0 &&
	    print_opened(cli, got, n_got) == 0)
		ret = CLI_OK;
	free_opened(got, n_got);
	free(in); /* ciphertext only */
	crypto_key_free(key);
	return ret;
}

const struct cli_cmd cli_cmds_crypto[] = {
    {"keys", "generate [--type p384|rsa3072] [--name NAME] DIR",
     "make a P-384 (or --type rsa3072) key pair for end-to-end encryption", run_keys},
    {"decrypt", "[--key FILE] [EVENT or FILE or -]",
     "cloud side: print the plaintext body of a sealed note as Notehub routes it", run_decrypt},
    {0},
};
