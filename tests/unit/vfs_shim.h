/* A test-only SQLite VFS layered over "unix" that counts writes and syncs, injects
 * failures (a failed fsync, a full disk) and simulates a power cut: every write not
 * yet fsynced is undone, except a torn prefix of one of them (and, on request, a
 * random subset kept, since a disk may persist unsynced writes in any order).
 * Real fsyncs are skipped — durability is what the undo log says it is — so hundreds
 * of cuts run in seconds. Not thread-safe: tests drive it from one thread. */
#ifndef NOTEGW_TEST_VFS_SHIM_H
#define NOTEGW_TEST_VFS_SHIM_H
#include <stdbool.h>
#include <stdint.h>

struct shim_ctl {
	uint64_t writes;       /* xWrite calls on database and WAL files */
	uint64_t syncs;        /* xSync calls on them */
	uint64_t cut_at_write; /* power fails right after this write (0: never) */
	uint64_t fail_sync_at; /* this sync fails with SQLITE_IOERR_FSYNC, then power fails */
	int fail_writes;       /* nonzero: every write returns this SQLite code, unwritten */
	bool dead;             /* power is off: writes, syncs, truncates, deletes fail */
	bool sync_failed;      /* fail_sync_at was hit */
	bool record;           /* keep the undo log (power-cut tests) */
	bool real_sync;        /* pass fsyncs through (default: skip them) */
};

extern struct shim_ctl shim;

/* Register "shim" over "unix" as the default VFS (idempotent). 0 or SQLite code. */
int shim_register(void);
/* Make "unix" the default again ("shim" stays registered but unused). */
void shim_unregister(void);
/* Undo unsynced writes as a power cut would. rnd: a random number source.
 * subset: keep each unsynced write with probability 1/2 (else drop all but a torn
 * prefix of one). Clears the log, dead, and the injection points. Returns how many
 * writes were undone. */
uint64_t shim_power_cut(uint64_t (*rnd)(void), bool subset);
/* Forget the undo log and reset counters and injections. */
void shim_reset(void);
#endif
