/*
 * producer — the C API a chat or IM server links to emit compliance events.
 *
 *   p = ing_producer_new(cfg, err, sizeof err);
 *   ing_producer_emit(p, &ev, done_cb, opaque, err, sizeof err);  // many threads
 *   ing_producer_flush(p, 5000);
 *   ing_producer_free(p);
 *
 * emit() stamps what the event lacks (a UUIDv7 id, ts = now, source.server
 * = cfg->producer.server, source.seq = the next number of this server's
 * sequence, which survives restarts because it is stored with the events),
 * serialises it and hands it to a writer thread that makes many events
 * durable in one write (group commit: up to producer.batch_max events, or
 * whatever arrived within producer.linger_ms).  done_cb then fires, on the
 * writer thread, with status 0 when the event is durable in the queue, or a
 * negative errno (-EBUSY: queue full or unreachable) when it is not; only
 * after status 0 may a chat server acknowledge the client.
 *
 * Backpressure: emit() never blocks and never drops.  It answers
 * ING_EMIT_BUSY at once when the queue has been full or unreachable for
 * longer than producer.busy_timeout_ms, or when the in-memory backlog
 * (8 × batch_max events) is full; the chat server turns that into 503 with
 * Retry-After.  A sequence number taken by an event that then failed stays
 * a visible gap downstream: the attempt is on record.
 *
 * Threading: emit() and flush() are safe from any number of threads; the
 * callback runs on the producer's writer thread and must not call back into
 * the producer's flush() or free().  free() flushes what is pending first.
 */
#ifndef ING_PRODUCER_H
#define ING_PRODUCER_H

#include <stddef.h>

#include "cfg.h"
#include "event.h"

enum ing_emit_result {
	ING_EMIT_OK = 0,        /* accepted; the callback will say durable or not */
	ING_EMIT_BUSY = 1,      /* refused now; retry later (503) */
	ING_EMIT_INVALID = 2,   /* the event is not valid; err says why */
	ING_EMIT_ERROR = 3,     /* producer shut down or out of memory */
};

/* status: 0 durable, or negative errno; id is the event id. */
typedef void (*ing_producer_cb)(void *opaque, const char *id, int status);

struct ing_producer;

struct ing_producer *ing_producer_new(const struct cfg *cfg, char *err, size_t errlen);

/*
 * Stamp (ev is modified: id, ts, source filled in) and enqueue ev.  The
 * producer copies what it needs; the caller keeps ownership of ev.
 */
enum ing_emit_result ing_producer_emit(struct ing_producer *p, struct ing_event *ev,
				       ing_producer_cb cb, void *opaque, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Wait until every accepted event's callback has fired, or timeout_ms.
 * Returns 0, or -ETIMEDOUT. */
int ing_producer_flush(struct ing_producer *p, int timeout_ms);

/* Events accepted but not yet reported. */
size_t ing_producer_pending(struct ing_producer *p);

void ing_producer_free(struct ing_producer *p);

#endif
