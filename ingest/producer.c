/*
 * producer — see producer.h.
 *
 * Threads: any number of callers in ing_producer_emit() (they only take
 * the mutex, stamp, serialise and append to a FIFO), and one writer thread
 * that owns the queue writer (struct ing_qw) and does all I/O.  The
 * sequence number is taken and the entry appended under one lock, so FIFO
 * order, queue order and source.seq order are the same.
 */
#include "producer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_log.h"
#include "cv_time.h"
#include "queue.h"

struct pending {
	char *json;
	size_t len;
	char *key;
	char id[ING_EVENT_ID_LEN + 1];
	ing_producer_cb cb;
	void *opaque;
};

struct ing_producer {
	pthread_mutex_t mu;
	pthread_cond_t work;      /* writer waits for entries */
	pthread_cond_t done;      /* flush waits for reports */
	struct pending *ring;
	size_t cap, head, count;  /* FIFO of accepted, not yet taken entries */
	size_t inflight;          /* taken by the writer, not yet reported */
	bool stopping;
	int64_t busy_since;       /* mono ms of the first failed write; 0 = healthy */
	int64_t busy_last;        /* mono ms of the latest failed write */
	int64_t next_seq;
	char *server;
	int batch_max, linger_ms, busy_timeout_ms;
	size_t max_event_size;
	struct ing_qw *w;         /* writer thread only */
	pthread_t thread;
	bool thread_started;
};

static int64_t deadline_in(int ms)
{
	return cv_time_mono_ms() + ms;
}

static void abstime_after_ms(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void pending_clear(struct pending *p)
{
	free(p->json);
	free(p->key);
	memset(p, 0, sizeof(*p));
}

/* Partition key: the room; for IM the conversation (both URIs, sorted), so
 * a conversation's messages stay in order. */
static char *event_key(const struct ing_event *ev)
{
	char *key = NULL;

	if (ev->room)
		return strdup(ev->room);
	if (ev->to) {
		const char *a = ev->user, *b = ev->to;

		if (strcmp(a, b) > 0) {
			const char *t = a;
			a = b;
			b = t;
		}
		if (asprintf(&key, "%s;%s", a, b) < 0)
			return NULL;
		return key;
	}
	return strdup(ev->user);
}

/* Take up to batch_max entries; called with the lock held. */
static size_t take_batch(struct ing_producer *p, struct pending *out)
{
	size_t k = p->count < (size_t)p->batch_max ? p->count : (size_t)p->batch_max;

	for (size_t i = 0; i < k; i++) {
		out[i] = p->ring[(p->head + i) % p->cap];
		memset(&p->ring[(p->head + i) % p->cap], 0, sizeof(struct pending));
	}
	p->head = (p->head + k) % p->cap;
	p->count -= k;
	p->inflight += k;
	return k;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Write one batch, retrying transient failures for up to busy_timeout_ms. */
static void write_batch(struct ing_producer *p, struct pending *batch, struct ing_qrec *recs,
			size_t k, int64_t next_seq)
{
	int64_t give_up = deadline_in(p->busy_timeout_ms);
	int rc;

	for (size_t i = 0; i < k; i++)
		recs[i] = (struct ing_qrec){ batch[i].json, batch[i].len, batch[i].key, 0 };
	for (;;) {
		rc = ing_qw_write(p->w, recs, k, p->server, next_seq,
				  p->busy_timeout_ms > 0 ? p->busy_timeout_ms : 1000);
		pthread_mutex_lock(&p->mu);
		if (rc == 0) {
			p->busy_since = 0;
		} else {
			p->busy_last = cv_time_mono_ms();
			if (p->busy_since == 0)
				p->busy_since = p->busy_last;
		}
		pthread_mutex_unlock(&p->mu);
		if (rc == 0 || cv_time_mono_ms() >= give_up || (rc != -EBUSY && rc != -EAGAIN &&
		    rc != -ETIMEDOUT && rc != -EIO && rc != -ENOSPC))
			break;
		sleep_ms(20);
	}
	if (rc)
		cv_warn("producer", "%zu events not durable: %s", k, strerror(-rc));
	for (size_t i = 0; i < k; i++) {
		int st = recs[i].status;

		if (rc == 0)
			st = 0;
		else if (st == 0)
			st = rc;
		if (batch[i].cb)
			batch[i].cb(batch[i].opaque, batch[i].id, st);
		pending_clear(&batch[i]);
	}
}

static void *writer_main(void *arg)
{
	struct ing_producer *p = arg;
	struct pending *batch = calloc((size_t)p->batch_max, sizeof(*batch));
	struct ing_qrec *recs = calloc((size_t)p->batch_max, sizeof(*recs));

	if (!batch || !recs) {
		cv_err("producer", "writer thread: out of memory");
		pthread_mutex_lock(&p->mu);
		p->stopping = true;
		pthread_mutex_unlock(&p->mu);
	}
	for (;;) {
		size_t k;
		int64_t next_seq;

		pthread_mutex_lock(&p->mu);
		while (p->count == 0 && !p->stopping)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->count == 0 && p->stopping) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		if (!batch || !recs) {
			/* Cannot write: fail everything accepted. */
			pthread_mutex_unlock(&p->mu);
			break;
		}
		/* Group commit: give a partial batch linger_ms to fill up. */
		if (p->count < (size_t)p->batch_max && p->linger_ms > 0 && !p->stopping) {
			struct timespec ts;

			abstime_after_ms(&ts, p->linger_ms);
			while (p->count < (size_t)p->batch_max && !p->stopping &&
			       pthread_cond_timedwait(&p->work, &p->mu, &ts) == 0)
				;
		}
		k = take_batch(p, batch);
		next_seq = p->next_seq;
		pthread_mutex_unlock(&p->mu);

		write_batch(p, batch, recs, k, next_seq);

		pthread_mutex_lock(&p->mu);
		p->inflight -= k;
		pthread_cond_broadcast(&p->done);
		pthread_mutex_unlock(&p->mu);
	}
	/* Anything still queued (only after an allocation failure) fails. */
	pthread_mutex_lock(&p->mu);
	while (p->count > 0) {
		struct pending e = p->ring[p->head];

		p->head = (p->head + 1) % p->cap;
		p->count--;
		if (e.cb)
			e.cb(e.opaque, e.id, -ENOMEM);
		pending_clear(&e);
	}
	pthread_cond_broadcast(&p->done);
	pthread_mutex_unlock(&p->mu);
	free(batch);
	free(recs);
	return NULL;
}

struct ing_producer *ing_producer_new(const struct cfg *cfg, char *err, size_t errlen)
{
	struct ing_producer *p = calloc(1, sizeof(*p));
	pthread_condattr_t ca;
	int rc;

	if (!p) {
		snprintf(err, errlen, "producer: out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->work, &ca);
	pthread_cond_init(&p->done, &ca);
	pthread_condattr_destroy(&ca);
	p->batch_max = cfg->producer.batch_max > 0 ? cfg->producer.batch_max : 1000;
	p->linger_ms = cfg->producer.linger_ms;
	p->busy_timeout_ms = cfg->producer.busy_timeout_ms;
	p->max_event_size = (size_t)cfg->ingest.max_event_size;
	p->cap = (size_t)p->batch_max * 8;
	p->ring = calloc(p->cap, sizeof(*p->ring));
	p->server = strdup(cfg->producer.server);
	if (!p->ring || !p->server) {
		snprintf(err, errlen, "producer: out of memory");
		goto fail;
	}
	if ((rc = ing_qw_open(cfg, &p->w, err, errlen)) != 0)
		goto fail;
	if ((rc = ing_qw_load_seq(p->w, p->server, &p->next_seq)) != 0) {
		snprintf(err, errlen, "producer %s: cannot load sequence: %s", p->server,
			 strerror(-rc));
		goto fail;
	}
	if (pthread_create(&p->thread, NULL, writer_main, p) != 0) {
		snprintf(err, errlen, "producer: cannot start writer thread");
		goto fail;
	}
	p->thread_started = true;
	return p;
fail:
	ing_producer_free(p);
	return NULL;
}

enum ing_emit_result ing_producer_emit(struct ing_producer *p, struct ing_event *ev,
				       ing_producer_cb cb, void *opaque, char *err, size_t errlen)
{
	struct pending e = { 0 };
	enum ing_emit_result res = ING_EMIT_OK;
	bool stamped_source = false, busy;
	int64_t now;
	int rc;

	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		snprintf(err, errlen, "producer is shutting down");
		res = ING_EMIT_ERROR;
		goto out;
	}
	now = cv_time_mono_ms();
	busy = p->busy_since && now - p->busy_since >= p->busy_timeout_ms;
	/* Only a write clears busy_since.  Once the writer has given up and sits
	 * idle nothing would ever write again, so refusing everything would
	 * outlast the outage forever: after another busy_timeout_ms let one
	 * event through (the others stay BUSY while it is pending) to probe. */
	if (busy && p->count == 0 && p->inflight == 0 && now - p->busy_last >= p->busy_timeout_ms)
		busy = false;
	if (p->count == p->cap || busy) {
		snprintf(err, errlen, "queue busy (%s)",
			 p->count == p->cap ? "producer backlog full" : "queue full or unreachable");
		res = ING_EMIT_BUSY;
		goto out;
	}
	if (ev->id[0] == '\0' && (rc = ing_uuid_v7(cv_time_now_ms(), ev->id)) != 0) {
		snprintf(err, errlen, "cannot generate event id: %s", strerror(-rc));
		res = ING_EMIT_ERROR;
		goto out;
	}
	if (ev->ts_ms < 0)
		ev->ts_ms = cv_time_now_ms();
	if (!ev->source_server) {
		ev->source_server = strdup(p->server);
		if (!ev->source_server) {
			res = ING_EMIT_ERROR;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		ev->source_seq = p->next_seq;
		stamped_source = true;
	}
	/* serialize() only says -EINVAL; validate() says why. */
	if (ing_event_validate(ev, 0, err, errlen) != 0) {
		res = ING_EMIT_INVALID;
		goto out;
	}
	rc = ing_event_serialize(ev, &e.json, &e.len);
	if (rc) {
		snprintf(err, errlen, "cannot serialise event: %s", strerror(-rc));
		res = rc == -EINVAL ? ING_EMIT_INVALID : ING_EMIT_ERROR;
		goto out;
	}
	if (e.len > p->max_event_size) {
		snprintf(err, errlen, "event is %zu bytes, limit %zu", e.len, p->max_event_size);
		res = ING_EMIT_INVALID;
		goto out;
	}
	e.key = event_key(ev);
	if (!e.key) {
		snprintf(err, errlen, "out of memory");
		res = ING_EMIT_ERROR;
		goto out;
	}
	memcpy(e.id, ev->id, sizeof(e.id));
	e.cb = cb;
	e.opaque = opaque;
	if (stamped_source)
		p->next_seq++;
	p->ring[(p->head + p->count) % p->cap] = e;
	p->count++;
	memset(&e, 0, sizeof(e));
	pthread_cond_signal(&p->work);
out:
	/* A refused event took no number and must not keep one: emitted again
	 * (corrected), it would reuse a number another event has since taken. */
	if (res != ING_EMIT_OK && stamped_source) {
		free(ev->source_server);
		ev->source_server = NULL;
		ev->source_seq = 0;
	}
	pthread_mutex_unlock(&p->mu);
	pending_clear(&e);
	return res;
}

int ing_producer_flush(struct ing_producer *p, int timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	abstime_after_ms(&ts, timeout_ms);
	pthread_mutex_lock(&p->mu);
	pthread_cond_signal(&p->work);
	while ((p->count > 0 || p->inflight > 0) && rc == 0)
		if (pthread_cond_timedwait(&p->done, &p->mu, &ts) == ETIMEDOUT)
			rc = -ETIMEDOUT;
	if (p->count == 0 && p->inflight == 0)
		rc = 0;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

size_t ing_producer_pending(struct ing_producer *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->count + p->inflight;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void ing_producer_free(struct ing_producer *p)
{
	if (!p)
		return;
	if (p->thread_started) {
		pthread_mutex_lock(&p->mu);
		p->stopping = true;
		pthread_cond_broadcast(&p->work);
		pthread_mutex_unlock(&p->mu);
		/* The writer drains what was accepted before it exits. */
		pthread_join(p->thread, NULL);
	}
	ing_qw_close(p->w);
	for (size_t i = 0; p->ring && i < p->cap; i++)
		pending_clear(&p->ring[i]);
	free(p->ring);
	free(p->server);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
