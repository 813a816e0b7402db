/* store_state.c: what the store knows about itself outside its database, and what
 * it does with that at open. Damage that SQLite takes silently (a database file that
 * is gone or empty, a WAL that was deleted, cut short or has a flipped byte) would
 * otherwise start a fresh, empty store under a new gateway id; with the state file
 * it is logged, audited and counted (status, metrics), and the gateway id and the
 * sequence carry on, so every note keeps a unique _id.
 *
 * <path>.state holds three lines, "gateway_id <hex>", "seq_limit <n>" (no note gets a
 * seq >= seq_limit before the file says so: sequence numbers are reserved in blocks
 * of STATE_SEQ_BLOCK, so the file is rewritten once per block, not per note: flash
 * wear) and "open <0|1>" (1 while a writer may have committed rows that are still
 * only in the WAL; 0 after the last connection closed, which checkpoints and removes
 * the WAL). It is replaced atomically (write, fsync, rename, fsync the directory),
 * always under the database's write lock or before any connection is open. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store-private.h"
#include "util.h"

#define STATE_SEQ_BLOCK 1024

/* line is "<key><decimal>\n": 0 and *n, or -EINVAL */
static int state_number(const char *line, const char *key, long long *n)
{
	size_t kl = strlen(key);
	if (strncmp(line, key, kl) != 0)
		return -EINVAL;
	char *end = NULL;
	errno = 0;
	*n = strtoll(line + kl, &end, 10);
	if (errno || end == line + kl || (*end && *end != '\n'))
		return -EINVAL;
	return 0;
}

int store_state_read(const char *path, struct store_state *ss)
{
	char p[PATH_MAX], line[128];
	memset(ss, 0, sizeof(*ss));
	if (xsnprintf(p, sizeof(p), "%s.state", path) < 0)
		return -ENAMETOOLONG;
	FILE *f = fopen(p, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char hex[17];
		long long n;
		if (sscanf(line, "gateway_id %16[0-9a-f]", hex) == 1 && strlen(hex) == 16)
			memcpy(ss->gateway_id, hex, sizeof(hex));
		else if (state_number(line, "seq_limit ", &n) == 0 && n > 0)
			ss->seq_limit = n;
		else if (state_number(line, "open ", &n) == 0)
			ss->open = n != 0;
	}
	fclose(f);
	ss->known = ss->gateway_id[0] && ss->seq_limit > 0;
	if (!ss->known) {
		log_warn("store: %s: unreadable, ignored", p);
		return -EBADMSG;
	}
	return 0;
}

int store_state_write(const char *path, const struct store_state *ss)
{
	char p[PATH_MAX], tmp[PATH_MAX], dir[PATH_MAX];
	if (xsnprintf(p, sizeof(p), "%s.state", path) < 0 ||
	    xsnprintf(tmp, sizeof(tmp), "%s.state.tmp", path) < 0 ||
	    xsnprintf(dir, sizeof(dir), "%s", path) < 0)
		return -ENAMETOOLONG;
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		slash[slash == dir ? 1 : 0] = '\0';
	struct stat db;
	mode_t mode = stat(path, &db) == 0 ? (db.st_mode & 0666) : 0600;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		goto fail;
	char text[96];
	int len = snprintf(text, sizeof(text), "gateway_id %s\nseq_limit %lld\nopen %d\n",
	                   ss->gateway_id, (long long)ss->seq_limit, ss->open ? 1 : 0);
	if (len < 0 || (size_t)len >= sizeof(text)) {
		close(fd);
		unlink(tmp);
		return -EOVERFLOW;
	}
	if (write(fd, text, (size_t)len) != len || fsync(fd) < 0) {
		int e = errno ? errno : EIO;
		close(fd);
		unlink(tmp);
		errno = e;
		goto fail;
	}
	close(fd);
	if (rename(tmp, p) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		goto fail;
	}
	store_share_files(p);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:;
	int r = -errno;
	log_err("store: cannot write %s: %s", p, strerror(errno));
	return r;
}

int store_state_reserve(struct store *st, int64_t seq)
{
	struct store_state ss;
	/* another process may have reserved further: take the larger */
	if (store_state_read(st->path, &ss) < 0 || strcmp(ss.gateway_id, st->gateway_id) != 0) {
		memset(&ss, 0, sizeof(ss));
		xsnprintf(ss.gateway_id, sizeof(ss.gateway_id), "%s", st->gateway_id);
	}
	ss.open = true;
	if (ss.seq_limit <= seq)
		ss.seq_limit = seq + STATE_SEQ_BLOCK;
	int err = store_state_write(st->path, &ss);
	if (err == 0)
		st->seq_limit = ss.seq_limit;
	if (err == -ENOSPC || err == -EDQUOT || err == -EFBIG) {
		store_disk_full(st); /* a full disk: try again later, as for the database */
		err = -EAGAIN;
	}
	return err;
}

/* ---- the WAL, read before SQLite replays (and then overwrites) it ------------------ */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* SQLite's WAL checksum over n bytes (a multiple of 8), continuing from s. */
static void wal_sum(bool big, const unsigned char *p, size_t n, uint32_t s[2])
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint32_t x0, x1;
		if (big) {
			x0 = be32(p + i);
			x1 = be32(p + i + 4);
		} else {
			x0 = (uint32_t)p[i + 3] << 24 | (uint32_t)p[i + 2] << 16 |
			     (uint32_t)p[i + 1] << 8 | p[i];
			x1 = (uint32_t)p[i + 7] << 24 | (uint32_t)p[i + 6] << 16 |
			     (uint32_t)p[i + 5] << 8 | p[i + 4];
		}
		s[0] += x0 + s[1];
		s[1] += x1 + s[0];
	}
}

/* Does frame f (24-byte header + page) check out when its checksum continues from
 * seed? On success seed becomes its checksum. */
static bool frame_ok(bool big, const unsigned char *f, size_t page, uint32_t seed[2])
{
	uint32_t s[2] = {seed[0], seed[1]};
	wal_sum(big, f, 8, s);
	wal_sum(big, f + 24, page, s);
	if (s[0] != be32(f + 16) || s[1] != be32(f + 20))
		return false;
	seed[0] = s[0];
	seed[1] = s[1];
	return true;
}

/* Look through the WAL at wal for committed frames that SQLite would not replay: a
 * damaged header, a frame of the current generation that fails its checksum while a
 * later one of the same generation is intact (a flipped byte), or a file that ends
 * inside a frame of the current generation (cut short; a write that a power cut
 * interrupted looks the same, and is reported too). Frames of an older generation
 * after the current ones are the normal leftovers of a reused WAL. Returns NULL or
 * a static description of the damage. */
static const char *wal_damage(const char *wal)
{
	static const char *const header = "its WAL header is damaged (SQLite ignores the "
	                                  "whole WAL)";
	static const char *const flipped = "its WAL has a damaged frame (SQLite ignores "
	                                   "the frames from there on)";
	static const char *const cut = "its WAL is cut short inside a frame (committed "
	                               "notes at its end are lost, or a write was cut by "
	                               "a power loss)";
	const char *why = NULL;
	unsigned char h[32];
	unsigned char *fr = NULL;
	int fd = open(wal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size == 0)
		goto out;
	if (sb.st_size < 32 || pread(fd, h, 32, 0) != 32) {
		why = header;
		goto out;
	}
	uint32_t magic = be32(h);
	bool big = magic == 0x377f0683;
	uint32_t page = be32(h + 8);
	if (page == 1)
		page = 65536;
	uint32_t s[2] = {0, 0};
	wal_sum(big, h, 24, s);
	if ((magic & ~1u) != 0x377f0682 || page < 512 || page > 65536 || (page & (page - 1)) ||
	    s[0] != be32(h + 24) || s[1] != be32(h + 28)) {
		why = header;
		goto out;
	}
	size_t fsz = 24 + (size_t)page;
	if (!(fr = malloc(fsz)))
		goto out;
	bool bad = false; /* met a current frame that fails the chain */
	for (off_t off = 32; off < sb.st_size; off += (off_t)fsz) {
		ssize_t got = pread(fd, fr, fsz, off);
		if (got < 16)
			break; /* too little left to tell whose frame it is */
		if (memcmp(fr + 8, h + 16, 8) != 0) {
			/* an older generation's frame: the end of this one; unless the next
			 * frame is of this generation and follows on from it (a flipped salt) */
			uint32_t seed[2] = {be32(fr + 16), be32(fr + 20)};
			if ((size_t)got == fsz &&
			    pread(fd, fr, fsz, off + (off_t)fsz) == (ssize_t)fsz &&
			    memcmp(fr + 8, h + 16, 8) == 0 && frame_ok(big, fr, page, seed))
				why = flipped;
			break;
		}
		if ((size_t)got < fsz) {
			why = bad ? flipped : cut;
			break;
		}
		if (!bad) {
			if (!frame_ok(big, fr, page, s))
				bad = true;
		} else if (frame_ok(big, fr, page, s)) {
			why = flipped; /* intact after a bad one: not a torn tail */
			break;
		}
		/* from a bad frame on, check each against its predecessor's checksum */
		if (bad) {
			s[0] = be32(fr + 16);
			s[1] = be32(fr + 20);
		}
	}
out:
	free(fr);
	if (fd >= 0)
		close(fd);
	return why;
}

/* Keep a copy of a damaged WAL for recovery by hand: opening the store replays what
 * is intact and the next write reuses the file. */
static void keep_copy(const char *wal, char *copy, size_t cap)
{
	copy[0] = 0;
	if (xsnprintf(copy, cap, "%s.damaged-%lld", wal, (long long)time(NULL)) < 0)
		goto fail;
	int in = open(wal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		goto fail;
	int out = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		goto fail;
	}
	char buf[65536];
	ssize_t n;
	bool ok = true;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			ok = false;
	if (n < 0 || fsync(out) < 0)
		ok = false;
	close(in);
	close(out);
	if (ok)
		return;
	unlink(copy);
fail:
	log_warn("store: cannot keep a copy of %s: %s", wal, strerror(errno));
	copy[0] = 0;
}

const char *store_state_check(const char *path, const struct store_state *ss, char *copy,
                              size_t cap)
{
	char wal[PATH_MAX];
	struct stat sb;
	copy[0] = 0;
	if (xsnprintf(wal, sizeof(wal), "%s-wal", path) < 0)
		return NULL;
	bool have_db = stat(path, &sb) == 0 && sb.st_size > 0;
	if (ss->known && !have_db)
		return "its database file was missing or empty";
	if (!have_db)
		return NULL;
	if (stat(wal, &sb) < 0) {
		if (errno == ENOENT && ss->known && ss->open)
			return "its WAL was missing after an unclean stop (notes committed "
			       "since the last checkpoint are lost)";
		return NULL;
	}
	const char *why = wal_damage(wal);
	if (why)
		keep_copy(wal, copy, cap);
	return why;
}
