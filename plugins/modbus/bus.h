/* A bus: one Modbus connection (a TCP peer or a serial line shared by the devices on
 * it) with its own worker thread, because libmodbus blocks. Jobs go in through
 * mb_bus_submit(); finished jobs come back on a completion queue whose eventfd the
 * plugin watches in the daemon's loop. Nothing else crosses threads: a job owns its
 * data, and the configuration it points to is immutable while the bus runs. */
#ifndef NOTEGW_MODBUS_BUS_H
#define NOTEGW_MODBUS_BUS_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

enum mb_fault {
	MB_OK,
	MB_TIMEOUT,      /* no (complete) answer within the timeout       */
	MB_EXCEPTION,    /* the device answered with an exception code     */
	MB_BAD_RESPONSE, /* CRC, length, count, unit or id did not check out */
	MB_CONNECT,      /* could not connect / open the port               */
	MB_IO,           /* connection reset, write error, ...              */
	MB_FAULT_COUNT
};
const char *mb_fault_name(enum mb_fault f);

enum mb_job_type { MB_JOB_POLL, MB_JOB_WRITE };

struct mb_job {
	struct mb_job *next;
	enum mb_job_type type;
	const struct mb_device *dev;  /* borrowed: immutable config            */
	const struct mb_point *point; /* MB_JOB_WRITE: the point to write      */
	uint16_t words[2];            /* MB_JOB_WRITE: raw value (bit: 0/1)    */
	void *userdata;               /* the submitter's, untouched            */
	/* results, filled by the worker */
	enum mb_fault fault;
	int exception;  /* MB_EXCEPTION: Modbus exception code   */
	char msg[160];  /* readable reason when fault != MB_OK   */
	uint16_t *data; /* MB_JOB_POLL: blocks back to back, one
	                   word per register or bit (owned)      */
	size_t n_data;
	uint64_t started_ms, done_ms; /* CLOCK_MONOTONIC                       */
	int requests;                 /* Modbus requests this job made         */
	bool rs485_unsupported;       /* rs485=1 asked for, the port has no RS-485 mode */
};

/* Allocate a job (data sized for the device's blocks when it is a poll). Caller
 * frees with mb_job_free(). */
struct mb_job *mb_job_new(enum mb_job_type type, const struct mb_device *dev);
void mb_job_free(struct mb_job *j);
/* Offset of block b's words in job->data. */
size_t mb_block_offset(const struct mb_device *dev, size_t b);

/* Finished jobs, handed from the workers to the loop. */
struct mb_doneq {
	pthread_mutex_t mu;
	struct mb_job *head, *tail;
	int efd; /* eventfd, readable when head != NULL */
};
int mb_doneq_init(struct mb_doneq *q);
void mb_doneq_destroy(struct mb_doneq *q); /* frees jobs still queued */
/* Take every finished job (a list through ->next; caller frees each). */
struct mb_job *mb_doneq_take(struct mb_doneq *q);

struct mb_bus;
/* A bus for the device's url; done is borrowed for the bus's life. The worker
 * starts at once; an RTU line is opened right away so its fd stays low. */
int mb_bus_new(const struct mb_device *first, struct mb_doneq *done, struct mb_bus **out);
/* rs485=1 was asked for and the port refused TIOCSRS485 when opened at start. */
bool mb_bus_rs485_unsupported(const struct mb_bus *b);
/* Does dev talk over this bus (same serial line)? */
int mb_bus_matches(const struct mb_bus *b, const struct mb_device *dev);
/* Queue a job; the bus owns it until it comes back on the done queue. */
int mb_bus_submit(struct mb_bus *b, struct mb_job *j);
/* Stop the worker (waits out at most the request in progress) and free the bus.
 * Returns the jobs it never ran (a list through ->next), for the caller to answer
 * or free: they may carry the submitter's userdata. */
struct mb_job *mb_bus_free(struct mb_bus *b);

/* Run one job synchronously on a libmodbus context (what the worker does); for
 * the bench and tests. ctx must be connected or connectable. */
struct _modbus;
void mb_run_job(struct _modbus *ctx, int *connected, struct mb_job *j);
#endif
