/* Group commit: producers' notes collected on the sd-event loop and committed to the
 * store together in one transaction, each producer told after that commit. */
#ifndef NOTEGW_BATCH_H
#define NOTEGW_BATCH_H
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct batch;
struct store;

/* Commit when this many notes are pending, without waiting for the delay. */
#define BATCH_MAX 64

/* A batch over st (borrowed until batch_free) on loop: puts are committed delay_ms
 * after the first one of a batch (0: on the next loop iteration), or as soon as the
 * loop runs once BATCH_MAX are pending. committed(ud) (may be NULL) runs after every
 * commit that accepted at least one note: the daemon kicks the link there. */
int batch_new(sd_event *loop, struct store *st, uint64_t delay_ms, void (*committed)(void *ud),
              void *ud, struct batch **out);
/* Queue a note (file, body, payload are copied). Returns 0: cb(ud, err, why) will run
 * on the loop — never inside batch_put — with err 0 once the note is durable, or a
 * negative errno and a static reason when it was not accepted (-EAGAIN "disk full":
 * try again later; the commit failed: "store error"; or it was refused inside the
 * transaction). Returns
 * -EINVAL ("invalid notefile"), -ENOSPC ("store full") or -ENOMEM with *why (may be
 * NULL) set when refused at once; cb is then never called. */
int batch_put(struct batch *b, const char *file, const char *body, const void *payload, size_t len,
              int prio, void (*cb)(void *ud, int err, const char *why), void *ud, const char **why);
/* Commit what is pending now (callbacks run before it returns). */
void batch_flush(struct batch *b);
/* How many notes wait for the next commit. */
size_t batch_pending(struct batch *b);
/* Flush, then free. NULL ok. Not from inside one of its own callbacks. */
void batch_free(struct batch *b);
#endif
