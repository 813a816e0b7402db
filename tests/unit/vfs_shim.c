/* vfs_shim.c: see vfs_shim.h. The undo log holds, for every unsynced write to a
 * database or WAL file, the bytes it overwrote and the file's size before it; a
 * power cut puts them back newest first, as if the writes never reached the disk. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfs_shim.h"

struct shim_ctl shim;

struct undo {
	char *path;
	sqlite3_int64 off;
	int len;
	unsigned char *old; /* len bytes that were there (zeros past the old end) */
	sqlite3_int64 old_size;
};

static struct undo *log_v;
static size_t log_n, log_cap;

struct shim_file {
	sqlite3_file base;
	sqlite3_file *real;
	char *path;
	bool tracked; /* main database or WAL: writes are logged and counted */
};

static sqlite3_vfs *unix_vfs;
static sqlite3_vfs shim_vfs;

#define REAL(f) (((struct shim_file *)(f))->real)
#define RM(f)   (REAL(f)->pMethods)

static void undo_free(struct undo *u)
{
	free(u->path);
	free(u->old);
}

/* The file was fsynced: its logged writes are durable now. */
static void forget(const char *path)
{
	size_t k = 0;
	for (size_t i = 0; i < log_n; i++) {
		if (strcmp(log_v[i].path, path) == 0)
			undo_free(&log_v[i]);
		else
			log_v[k++] = log_v[i];
	}
	log_n = k;
}

static int remember(struct shim_file *f, sqlite3_int64 off, int len, sqlite3_int64 size)
{
	if (log_n == log_cap) {
		size_t nc = log_cap ? log_cap * 2 : 256;
		struct undo *nv = realloc(log_v, nc * sizeof(*nv));
		if (!nv)
			return SQLITE_NOMEM;
		log_v = nv;
		log_cap = nc;
	}
	struct undo *u = &log_v[log_n];
	u->path = strdup(f->path);
	u->old = calloc(1, len > 0 ? (size_t)len : 1);
	if (!u->path || !u->old) {
		undo_free(u);
		return SQLITE_NOMEM;
	}
	u->off = off;
	u->len = len;
	u->old_size = size;
	if (off < size) {
		int rc = RM(f)->xRead(f->real, u->old, len, off);
		if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) {
			undo_free(u);
			return rc;
		}
	}
	log_n++;
	return SQLITE_OK;
}

static int x_close(sqlite3_file *file)
{
	struct shim_file *f = (struct shim_file *)file;
	int rc = RM(f)->xClose(f->real);
	free(f->path);
	f->path = NULL;
	return rc;
}

static int x_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return RM(f)->xRead(REAL(f), buf, amt, off);
}

static int x_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	struct shim_file *f = (struct shim_file *)file;
	if (shim.dead)
		return SQLITE_IOERR_WRITE;
	if (shim.fail_writes)
		return shim.fail_writes;
	if (f->tracked) {
		shim.writes++;
		if (shim.record && f->path) {
			sqlite3_int64 size = 0;
			int rc = RM(f)->xFileSize(f->real, &size);
			if (rc == SQLITE_OK)
				rc = remember(f, off, amt, size);
			if (rc != SQLITE_OK)
				return rc;
		}
	}
	int rc = RM(f)->xWrite(f->real, buf, amt, off);
	if (f->tracked && shim.cut_at_write && shim.writes >= shim.cut_at_write)
		shim.dead = true;
	return rc;
}

static int x_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct shim_file *f = (struct shim_file *)file;
	if (shim.dead)
		return SQLITE_IOERR_TRUNCATE;
	if (f->tracked && shim.record && f->path) {
		/* Log the cut-off tail like a write, so a power cut brings it back. */
		sqlite3_int64 cur = 0;
		int rc = RM(f)->xFileSize(f->real, &cur);
		if (rc == SQLITE_OK && cur > size)
			rc = remember(f, size, (int)(cur - size), cur);
		if (rc != SQLITE_OK)
			return rc;
	}
	return RM(f)->xTruncate(f->real, size);
}

static int x_sync(sqlite3_file *file, int flags)
{
	struct shim_file *f = (struct shim_file *)file;
	if (shim.dead)
		return SQLITE_IOERR_FSYNC;
	if (f->tracked) {
		shim.syncs++;
		if (shim.fail_sync_at && shim.syncs == shim.fail_sync_at) {
			shim.sync_failed = true;
			shim.dead = true;
			return SQLITE_IOERR_FSYNC;
		}
		if (f->path)
			forget(f->path);
	}
	return shim.real_sync ? RM(f)->xSync(f->real, flags) : SQLITE_OK;
}

static int x_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return RM(f)->xFileSize(REAL(f), size);
}
static int x_lock(sqlite3_file *f, int l)
{
	return RM(f)->xLock(REAL(f), l);
}
static int x_unlock(sqlite3_file *f, int l)
{
	return RM(f)->xUnlock(REAL(f), l);
}
static int x_check_reserved(sqlite3_file *f, int *out)
{
	return RM(f)->xCheckReservedLock(REAL(f), out);
}
static int x_file_control(sqlite3_file *f, int op, void *arg)
{
	return RM(f)->xFileControl(REAL(f), op, arg);
}
static int x_sector_size(sqlite3_file *f)
{
	return RM(f)->xSectorSize(REAL(f));
}
static int x_device_chars(sqlite3_file *f)
{
	return RM(f)->xDeviceCharacteristics(REAL(f));
}
static int x_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
	return RM(f)->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int x_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return RM(f)->xShmLock(REAL(f), off, n, flags);
}
static void x_shm_barrier(sqlite3_file *f)
{
	RM(f)->xShmBarrier(REAL(f));
}
static int x_shm_unmap(sqlite3_file *f, int del)
{
	return RM(f)->xShmUnmap(REAL(f), del);
}
static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	return RM(f)->xFetch(REAL(f), off, amt, pp);
}
static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return RM(f)->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shim_io = {
    3,
    x_close,
    x_read,
    x_write,
    x_truncate,
    x_sync,
    x_file_size,
    x_lock,
    x_unlock,
    x_check_reserved,
    x_file_control,
    x_sector_size,
    x_device_chars,
    x_shm_map,
    x_shm_lock,
    x_shm_barrier,
    x_shm_unmap,
    x_fetch,
    x_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
	struct shim_file *f = (struct shim_file *)file;
	memset(f, 0, sizeof(*f));
	/* The real file sits after ours, at the next multiple of 16 (szOsFile leaves room):
	 * aligned for it on every ABI, which the cast through void * tells -Wcast-align. */
	f->real = (sqlite3_file *)(void *)((char *)f + ((sizeof(*f) + 15) & ~(size_t)15));
	int rc = unix_vfs->xOpen(unix_vfs, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		f->base.pMethods = NULL;
		return rc;
	}
	f->tracked = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
	if (name && !(f->path = strdup(name))) {
		RM(f)->xClose(f->real);
		f->base.pMethods = NULL;
		return SQLITE_NOMEM;
	}
	f->base.pMethods = &shim_io;
	return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	if (shim.dead)
		return SQLITE_IOERR_DELETE;
	return unix_vfs->xDelete(unix_vfs, name, sync_dir);
}
static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return unix_vfs->xAccess(unix_vfs, name, flags, out);
}
static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return unix_vfs->xFullPathname(unix_vfs, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *vfs, const char *name)
{
	return unix_vfs->xDlOpen(unix_vfs, name);
}
static void v_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	unix_vfs->xDlError(unix_vfs, n, msg);
}
static void (*v_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return unix_vfs->xDlSym(unix_vfs, h, sym);
}
static void v_dlclose(sqlite3_vfs *vfs, void *h)
{
	unix_vfs->xDlClose(unix_vfs, h);
}
static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return unix_vfs->xRandomness(unix_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *vfs, int us)
{
	return unix_vfs->xSleep(unix_vfs, us);
}
static int v_current_time(sqlite3_vfs *vfs, double *t)
{
	return unix_vfs->xCurrentTime(unix_vfs, t);
}
static int v_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	return unix_vfs->xGetLastError(unix_vfs, n, msg);
}
static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	return unix_vfs->xCurrentTimeInt64(unix_vfs, t);
}

int shim_register(void)
{
	if (!unix_vfs) {
		unix_vfs = sqlite3_vfs_find("unix");
		if (!unix_vfs)
			return SQLITE_ERROR;
		shim_vfs = (sqlite3_vfs){
		    .iVersion = 2,
		    .szOsFile = (int)(((sizeof(struct shim_file) + 15) & ~(size_t)15) +
		                      (size_t)unix_vfs->szOsFile),
		    .mxPathname = unix_vfs->mxPathname,
		    .zName = "shim",
		    .xOpen = v_open,
		    .xDelete = v_delete,
		    .xAccess = v_access,
		    .xFullPathname = v_full_pathname,
		    .xDlOpen = v_dlopen,
		    .xDlError = v_dlerror,
		    .xDlSym = v_dlsym,
		    .xDlClose = v_dlclose,
		    .xRandomness = v_randomness,
		    .xSleep = v_sleep,
		    .xCurrentTime = v_current_time,
		    .xGetLastError = v_last_error,
		    .xCurrentTimeInt64 = v_current_time64,
		};
	}
	return sqlite3_vfs_register(&shim_vfs, 1);
}

void shim_unregister(void)
{
	if (unix_vfs)
		sqlite3_vfs_register(unix_vfs, 1);
}

static void clear_log(void)
{
	for (size_t i = 0; i < log_n; i++)
		undo_free(&log_v[i]);
	free(log_v);
	log_v = NULL;
	log_n = log_cap = 0;
}

void shim_reset(void)
{
	clear_log();
	bool rec = shim.record, rs = shim.real_sync;
	memset(&shim, 0, sizeof(shim));
	shim.record = rec;
	shim.real_sync = rs;
}

/* Put back u's old bytes from offset `keep` of the write on (a torn write keeps
 * its first `keep` bytes), then its old size. */
static void restore(const struct undo *u, int keep)
{
	int fd = open(u->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return; /* deleted after a sync: that was durable */
	sqlite3_int64 end = u->off + u->len;
	if (end > u->old_size)
		end = u->old_size;
	sqlite3_int64 from = u->off + keep;
	if (from < end) {
		ssize_t n = pwrite(fd, u->old + keep, (size_t)(end - from), from);
		(void)n;
	}
	sqlite3_int64 size = u->old_size;
	if (u->off + keep > size)
		size = u->off + keep;
	off_t cur = lseek(fd, 0, SEEK_END);
	if (cur != (off_t)size) {
		int r = ftruncate(fd, (off_t)size);
		(void)r;
	}
	close(fd);
}

uint64_t shim_power_cut(uint64_t (*rnd)(void), bool subset)
{
	uint64_t undone = 0;
	size_t torn = log_n ? (size_t)(rnd() % log_n) : 0;
	for (size_t i = log_n; i-- > 0;) {
		const struct undo *u = &log_v[i];
		if (i == torn) {
			restore(u, u->len > 0 ? (int)(rnd() % (uint64_t)u->len) : 0);
			undone++;
		} else if (subset && rnd() % 2) {
			continue; /* this one made it to the platter */
		} else {
			restore(u, 0);
			undone++;
		}
	}
	bool rec = shim.record, rs = shim.real_sync;
	clear_log();
	memset(&shim, 0, sizeof(shim));
	shim.record = rec;
	shim.real_sync = rs;
	return undone;
}
