/* store_reserve.c: the disk reserve beside the store and the disk-full state.
 *
 * A store on a full disk must still be able to take notes *out*: marking a note
 * sent (a delete) and checkpointing the WAL both write. So every writable store
 * keeps <path>.reserve, a preallocated file (1/8 of the file system, between
 * 64 KiB and 1 MiB), the way CockroachDB keeps its EMERGENCY_BALLAST. When a write
 * fails for want of space the reserve is deleted, which gives its blocks back;
 * from then on producers are refused ("disk full", -EAGAIN: try again later) before
 * they write anything, so the freed room goes to the link's "sent" marks and to the
 * checkpoint. Producers are accepted again once the reserve could be made anew
 * with as much room again left over. Meanwhile the WAL is checkpointed and truncated
 * now and then (store_relieve): on a small disk the WAL itself is what filled it. SQLite's own
 * reserve_bytes is not such a thing (it is per-page room for extensions), and a preallocated WAL
 * would be reset and truncated by SQLite itself (journal_size_limit), so a separate file is the one
 * reserve that SQLite never touches.
 *
 * Where the reserve cannot exist at all (the file system refuses fallocate, the
 * directory is not writable) there is none: disk full then refuses producers only
 * when their own write fails, as before. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "store-private.h"
#include "util.h"

#define RESERVE_MIN (64u << 10)
#define RESERVE_MAX (1u << 20)

static int reserve_path(const struct store *st, char *buf, size_t cap)
{
	return xsnprintf(buf, cap, "%s.reserve", st->path);
}

/* The reserve's size for the file system holding path, 0 when unknown. */
static uint64_t reserve_size(const char *file, uint64_t *avail)
{
	struct statvfs vfs;
	*avail = 0;
	if (statvfs(file, &vfs) < 0)
		return 0;
	uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	*avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	uint64_t r = total / 8;
	if (r < RESERVE_MIN)
		r = RESERVE_MIN;
	if (r > RESERVE_MAX)
		r = RESERVE_MAX;
	return r;
}

/* EFBIG is left out: a file size limit on this process says nothing of the disk */
static bool is_full_errno(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

/* Make the reserve when it is missing. 0 when it exists (or there can be none),
 * -EAGAIN when the disk has no room for it and as much again. */
static int reserve_make(struct store *st)
{
	char path[PATH_MAX];
	struct stat sb;
	if (st->reserve_off || reserve_path(st, path, sizeof(path)) < 0)
		return 0;
	if (stat(path, &sb) == 0)
		return 0;
	uint64_t avail;
	uint64_t size = reserve_size(st->path, &avail);
	if (!size)
		return 0;
	if (avail < 2 * size)
		return -EAGAIN;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0; /* another connection made it just now */
		if (is_full_errno(errno))
			return -EAGAIN;
		log_warn("store: cannot make the disk reserve %s: %s; running without one", path,
		         strerror(errno));
		st->reserve_off = true;
		return 0;
	}
	int e = posix_fallocate(fd, 0, (off_t)size);
	if (e == 0)
		e = fsync(fd) < 0 ? errno : 0;
	close(fd);
	if (e == 0)
		return 0;
	unlink(path);
	if (is_full_errno(e))
		return -EAGAIN;
	log_warn("store: cannot fill the disk reserve %s: %s; running without one", path,
	         strerror(e));
	st->reserve_off = true;
	return 0;
}

/* Checkpoint the WAL once it holds the reserve's worth of pages (at most SQLite's
 * default 1000, at least 16): what a checkpoint adds to the database then fits in the
 * released reserve, and on a small disk the WAL never grows to fill it. */
static void wal_pace(struct store *st)
{
	uint64_t avail;
	uint64_t size = reserve_size(st->path, &avail);
	uint64_t pages = size && st->page_size > 0 ? size / (uint64_t)st->page_size : 256;
	if (pages < 16)
		pages = 16;
	if (pages > 1000)
		pages = 1000;
	char q[64];
	if (xsnprintf(q, sizeof(q), "PRAGMA wal_autocheckpoint = %llu", (unsigned long long)pages) <
	    0)
		return;
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, q, -1, &s, NULL) == SQLITE_OK)
		(void)sqlite3_step(s);
	sqlite3_finalize(s);
}

void store_reserve_init(struct store *st)
{
	if (st->readonly)
		return;
	wal_pace(st);
	(void)reserve_make(st);
}

void store_disk_full(struct store *st)
{
	char path[PATH_MAX];
	if (!st->disk_full)
		log_err("store: %s: the disk is full; producers are refused (try again later) "
		        "until space returns",
		        st->path);
	st->disk_full = true;
	if (st->reserve_off || reserve_path(st, path, sizeof(path)) < 0)
		return;
	if (unlink(path) == 0)
		log_warn("store: released the disk reserve %s so that queued notes can still be "
		         "marked sent",
		         path);
}

void store_disk_ok(struct store *st)
{
	st->disk_full = false;
}

/* What copying the WAL into the database would add to the database file, in bytes. */
static int checkpoint_need(struct store *st, uint64_t *need)
{
	sqlite3_stmt *s = NULL;
	struct stat sb;
	*need = 0;
	if (sqlite3_prepare_v2(st->db, "PRAGMA page_count", -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	int rc = sqlite3_step(s);
	int64_t pages = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	sqlite3_finalize(s);
	if (pages < 0 || stat(st->path, &sb) < 0)
		return -EIO;
	uint64_t want = (uint64_t)pages * (uint64_t)st->page_size;
	*need = want > (uint64_t)sb.st_size ? want - (uint64_t)sb.st_size : 0;
	return 0;
}

int store_checkpoint(struct store *st)
{
	if (st->in_txn || st->readonly)
		return -EBUSY;
	/* A checkpoint that runs out of room half way has used the room the "sent"
	 * marks need, and freed nothing: only start one that fits. */
	uint64_t need, avail;
	if (checkpoint_need(st, &need) < 0)
		return -EIO;
	(void)reserve_size(st->path, &avail);
	if (need + 4096 > avail)
		return -EAGAIN;
	/* TRUNCATE waits for writers through the busy handler: briefly, on the loop */
	sqlite3_busy_timeout(st->db, 200);
	int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(st->db, st->busy_ms);
	return rc == SQLITE_OK ? 0 : store_errno(st, rc);
}

void store_relieve(struct store *st)
{
	if (!st->gated && !st->disk_full)
		return;
	uint64_t now = now_ms();
	if (st->in_txn || now < st->relieve_at)
		return;
	st->relieve_at = now + 1000;
	(void)store_checkpoint(st);
}

int store_reserve_gate(struct store *st)
{
	store_relieve(st);
	if (reserve_make(st) < 0) {
		if (!st->gated)
			store_disk_full(st);
		st->gated = true;
		return -EAGAIN;
	}
	if (st->gated)
		log_notice("store: %s: space is back; accepting notes again", st->path);
	st->gated = false;
	return 0;
}

bool store_is_disk_full(struct store *st)
{
	return st->disk_full;
}
