/*
 * test_producer — ingest/producer.c over the embedded spool, against the
 * contract in ingest/producer.h.
 *
 * Everything is judged from the outside, as a chat server and the consumer
 * would see it: what emit() answered, what each callback said, and what a
 * separate spool handle reads back, parsed as strictly as the consumer
 * parses it (ing_event_parse with no flags: id, ts and source required).
 * The spool lives in a mkdtemp directory on the real filesystem, so
 * "durable" means fsynced.  No PostgreSQL, no Kafka.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "cv_log.h"
#include "cv_time.h"
#include "event.h"
#include "producer.h"
#include "spool.h"

#define SERVER "chat-test-01"

/* ---- fixtures ------------------------------------------------------------ */

/*
 * One emitted event.  The emitting thread writes the first group, the
 * callback (on the producer's writer thread, possibly before emit returns)
 * only the second: no field is written by both.
 */
struct slot {
	char id[ING_EVENT_ID_LEN + 1];
	int64_t seq;
	bool accepted;

	int calls;
	int status;
	char cb_id[ING_EVENT_ID_LEN + 1];
};

struct fx {
	char tmp[64];          /* mkdtemp data_dir, removed afterwards */
	struct cfg *cfg;       /* built-in defaults under tmp, adjusted per test */
	/*
	 * Owned by the fixture, not the test, so that a failed assertion never
	 * leaves a writer thread calling back into a dead stack frame: teardown
	 * frees the producer (whose callbacks still land in slots) first.
	 */
	struct ing_producer *p;
	struct slot *slots;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[CFG_ERRLEN];

	if (!f)
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/cv_producer_XXXXXX");
	if (!mkdtemp(f->tmp)) {
		free(f);
		return -1;
	}
	if (cfg_load(NULL, f->tmp, &f->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "cfg_load: %s\n", err);
		rmdir(f->tmp);
		free(f);
		return -1;
	}
	free(f->cfg->producer.server);
	f->cfg->producer.server = strdup(SERVER);
	if (!f->cfg->producer.server) {
		cfg_free(f->cfg);
		rmdir(f->tmp);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ing_producer_free(f->p);
	free(f->slots);
	cfg_free(f->cfg);
	nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct ing_producer *producer_start(struct fx *f)
{
	char err[256] = "";

	assert_null(f->p);
	f->p = ing_producer_new(f->cfg, err, sizeof(err));
	if (!f->p)
		fail_msg("ing_producer_new: %s", err);
	return f->p;
}

static void producer_stop(struct fx *f)
{
	ing_producer_free(f->p);
	f->p = NULL;
}

static struct slot *slots_new(struct fx *f, size_t n)
{
	assert_null(f->slots);
	f->slots = calloc(n, sizeof(*f->slots));
	assert_non_null(f->slots);
	return f->slots;
}

/* ---- events and callbacks ------------------------------------------------ */

/* An unstamped chat.post: no id, no ts, no source. */
static void make_post(struct ing_event *ev, int room, const char *text)
{
	char uri[96];

	ing_event_init(ev);
	ev->type = ING_EV_CHAT_POST;
	snprintf(uri, sizeof(uri), "ma-chan://contoso.com/room-%d", room);
	ev->room = strdup(uri);
	ev->user = strdup("sip:alice@contoso.com");
	ev->text = strdup(text);
	if (!ev->room || !ev->user || !ev->text)
		fail_msg("out of memory building an event");
}

static void on_done(void *opaque, const char *id, int status)
{
	struct slot *s = opaque;

	s->calls++;
	s->status = status;
	snprintf(s->cb_id, sizeof(s->cb_id), "%s", id ? id : "(null)");
}

/* Emit a fresh unstamped post; on ING_EMIT_OK remember the stamped id and seq. */
static enum ing_emit_result emit_post(struct ing_producer *p, int room, const char *text,
				      struct slot *s, char *err, size_t errlen)
{
	struct ing_event ev;
	enum ing_emit_result r;

	make_post(&ev, room, text);
	err[0] = '\0';
	r = ing_producer_emit(p, &ev, on_done, s, err, errlen);
	if (r == ING_EMIT_OK) {
		memcpy(s->id, ev.id, sizeof(s->id));
		s->seq = ev.source_server ? ev.source_seq : -1;
		s->accepted = true;
	}
	ing_event_clear(&ev);
	return r;
}

/* Every accepted slot reported exactly once, with its own id. */
static void assert_reported_once(const struct slot *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!s[i].accepted)
			continue;
		if (s[i].calls != 1)
			fail_msg("event %zu (%s): callback fired %d times, want exactly 1", i, s[i].id,
				 s[i].calls);
		if (strcmp(s[i].cb_id, s[i].id) != 0)
			fail_msg("event %zu: callback reported id %s, emit stamped %s", i,
				 s[i].cb_id, s[i].id);
	}
}

static void assert_uuid_v7(const char *id)
{
	bool ok = strlen(id) == ING_EVENT_ID_LEN;

	for (size_t i = 0; ok && i < ING_EVENT_ID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			ok = id[i] == '-';
		else
			ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
	}
	if (!ok || id[14] != '7' || !strchr("89ab", id[19]))
		fail_msg("event id \"%s\" is not a lower-case RFC 9562 UUIDv7", id);
}

/* ---- reading the spool back ---------------------------------------------- */

struct rec {
	uint64_t pos;
	struct ing_event ev;
};

struct recs {
	struct rec *v;
	size_t n, cap;
	size_t max_size;
	char why[ING_EVENT_ERRLEN + 64];  /* first unparsable record, if any */
};

static int collect_cb(void *arg, uint64_t pos, const void *data, size_t len)
{
	struct recs *r = arg;
	char err[ING_EVENT_ERRLEN];

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct rec *v = realloc(r->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	if (ing_event_parse(data, len, r->max_size, 0, &r->v[r->n].ev, err, sizeof(err)) != 0) {
		snprintf(r->why, sizeof(r->why), "position %" PRIu64 ": %s", pos, err);
		return -EBADMSG;
	}
	r->v[r->n++].pos = pos;
	return 0;
}

static void recs_free(struct recs *r)
{
	for (size_t i = 0; i < r->n; i++)
		ing_event_clear(&r->v[i].ev);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* Everything the spool holds, in position order, each a fully stamped event. */
static void read_spool(const struct cfg *cfg, struct recs *r)
{
	struct ing_spool *sp = NULL;
	char err[256] = "";
	uint64_t after = 0;
	int n;

	memset(r, 0, sizeof(*r));
	r->max_size = (size_t)cfg->ingest.max_event_size;
	if (ing_spool_open(cfg->queue.spool_path, cfg->queue.spool_max_bytes, &sp, err,
			   sizeof(err)) != 0)
		fail_msg("open spool %s: %s", cfg->queue.spool_path, err);
	do {
		n = ing_spool_read(sp, after, 4096, SIZE_MAX, collect_cb, r);
		if (n < 0) {
			ing_spool_close(sp);
			fail_msg("spool holds a record the consumer would reject (%s): %s",
				 strerror(-n), r->why);
		}
		if (r->n > 0)
			after = r->v[r->n - 1].pos;
	} while (n > 0);
	ing_spool_close(sp);
	for (size_t i = 1; i < r->n; i++)
		if (r->v[i].pos <= r->v[i - 1].pos)
			fail_msg("spool positions out of order at record %zu", i);
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * The id of the last committed LMDB write transaction of the spool.  Only
 * called while no spool handle of this process is open (LMDB forbids two
 * environments on one file in one process); MDB_NOLOCK keeps the lock file
 * out of it entirely.
 */
static size_t spool_last_txnid(const char *dir)
{
	MDB_env *env;
	MDB_envinfo info;
	int rc;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK, 0600);
	if (rc) {
		mdb_env_close(env);
		fail_msg("open %s read-only: %s", dir, mdb_strerror(rc));
	}
	assert_int_equal(mdb_env_info(env, &info), 0);
	mdb_env_close(env);
	return info.me_last_txnid;
}

/* ---- 1. stamping ----------------------------------------------------------- */

static void test_stamping(void **state)
{
	struct fx *f = *state;
	enum { N = 50 };
	static const char preset_id[] = "0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11";
	const int64_t preset_ts = INT64_C(1795082400123);
	struct slot *slots = slots_new(f, N + 1);
	char err[256];
	char (*ids)[ING_EVENT_ID_LEN + 1];
	struct ing_producer *p;
	struct ing_event ev;
	struct recs r;
	int64_t t0, t1;

	t0 = cv_time_now_ms();
	p = producer_start(f);
	for (int i = 0; i < N; i++) {
		enum ing_emit_result res = emit_post(p, i % 3, "hello", &slots[i], err,
						     sizeof(err));

		if (res != ING_EMIT_OK)
			fail_msg("emit %d: result %d: %s", i, res, err);
		assert_int_equal(slots[i].seq, i + 1);
	}
	/* An event that brings its own id and ts keeps them; source is still ours. */
	make_post(&ev, 9, "pre-stamped");
	memcpy(ev.id, preset_id, sizeof(preset_id));
	ev.ts_ms = preset_ts;
	assert_int_equal(ing_producer_emit(p, &ev, on_done, &slots[N], err, sizeof(err)),
			 ING_EMIT_OK);
	memcpy(slots[N].id, ev.id, sizeof(slots[N].id));
	slots[N].accepted = true;
	assert_string_equal(ev.id, preset_id);
	assert_int_equal(ev.ts_ms, preset_ts);
	assert_non_null(ev.source_server);
	assert_string_equal(ev.source_server, SERVER);
	assert_int_equal(ev.source_seq, N + 1);
	ing_event_clear(&ev);

	assert_int_equal(ing_producer_flush(p, 10000), 0);
	assert_int_equal(ing_producer_pending(p), 0);
	t1 = cv_time_now_ms();
	assert_reported_once(slots, N + 1);
	for (int i = 0; i <= N; i++)
		assert_int_equal(slots[i].status, 0);

	read_spool(f->cfg, &r);
	assert_int_equal(r.n, N + 1);
	ids = calloc(r.n, sizeof(*ids));
	assert_non_null(ids);
	for (size_t i = 0; i < r.n; i++) {
		const struct ing_event *e = &r.v[i].ev;

		/* One emitting thread: spool order is emit order. */
		assert_string_equal(e->id, slots[i].id);
		assert_non_null(e->source_server);
		assert_string_equal(e->source_server, SERVER);
		if (e->source_seq != (int64_t)i + 1)
			fail_msg("record %zu has source.seq %" PRId64 ", want %zu", i, e->source_seq,
				 i + 1);
		if (i > 0)
			assert_int_equal(r.v[i].pos, r.v[i - 1].pos + 1);
		if (i < N) {
			assert_uuid_v7(e->id);
			if (e->ts_ms < t0 || e->ts_ms > t1)
				fail_msg("record %zu: ts %" PRId64 " outside the emit window [%" PRId64
					 ", %" PRId64 "]", i, e->ts_ms, t0, t1);
			assert_string_equal(e->text, "hello");
		} else {
			assert_string_equal(e->id, preset_id);
			assert_int_equal(e->ts_ms, preset_ts);
		}
		memcpy(ids[i], e->id, sizeof(ids[i]));
	}
	qsort(ids, r.n, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < r.n; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			fail_msg("event id %s stamped twice", ids[i]);
	free(ids);
	recs_free(&r);
	producer_stop(f);
}

/* ---- 2. the sequence survives a restart ----------------------------------- */

static void test_seq_restart(void **state)
{
	struct fx *f = *state;
	enum { N = 30 };
	struct slot *slots = slots_new(f, 2 * N);
	struct ing_spool *sp = NULL;
	char err[256];
	int64_t next = 0;
	struct recs r;

	for (int round = 0; round < 2; round++) {
		struct ing_producer *p = producer_start(f);

		for (int i = round * N; i < (round + 1) * N; i++) {
			if (emit_post(p, i % 2, "restart", &slots[i], err, sizeof(err)) != ING_EMIT_OK)
				fail_msg("emit %d: %s", i, err);
			if (slots[i].seq != i + 1)
				fail_msg("after %d restart(s) event %d got source.seq %" PRId64
					 ", want %d", round, i, slots[i].seq, i + 1);
		}
		assert_int_equal(ing_producer_flush(p, 10000), 0);
		producer_stop(f);
	}
	assert_reported_once(slots, 2 * N);
	for (int i = 0; i < 2 * N; i++)
		assert_int_equal(slots[i].status, 0);

	read_spool(f->cfg, &r);
	assert_int_equal(r.n, 2 * N);
	for (size_t i = 0; i < r.n; i++) {
		assert_string_equal(r.v[i].ev.id, slots[i].id);
		assert_int_equal(r.v[i].ev.source_seq, (int64_t)i + 1);
	}
	recs_free(&r);

	/* The stored high-water mark is the next number: nothing reused next time. */
	assert_int_equal(ing_spool_open(f->cfg->queue.spool_path, f->cfg->queue.spool_max_bytes,
					&sp, err, sizeof(err)), 0);
	assert_int_equal(ing_spool_get_seq(sp, SERVER, &next), 0);
	assert_int_equal(next, 2 * N + 1);
	ing_spool_close(sp);
}

/* ---- 3. group commit under concurrent emitters ---------------------------- */

#define GC_THREADS 4
#define GC_PER_THREAD 2500
#define GC_TOTAL (GC_THREADS * GC_PER_THREAD)
#define GC_BATCH_MAX 256

struct gc_thread {
	pthread_t tid;
	struct ing_producer *p;
	struct slot *slots;      /* GC_PER_THREAD of them */
	int index;
	int busy;                /* ING_EMIT_BUSY answers, retried like a 503 */
	int failed;              /* non-OK final result, 0 if none */
	char err[256];
};

static void *gc_main(void *arg)
{
	struct gc_thread *t = arg;

	for (int i = 0; i < GC_PER_THREAD; i++) {
		int64_t give_up = cv_time_mono_ms() + 10000;
		enum ing_emit_result r;

		for (;;) {
			r = emit_post(t->p, t->index * 10 + i % 10, "group commit", &t->slots[i],
				      t->err, sizeof(t->err));
			if (r != ING_EMIT_BUSY || cv_time_mono_ms() > give_up)
				break;
			t->busy++;
			sleep_ms(1);
		}
		if (r != ING_EMIT_OK) {
			t->failed = (int)r;
			return NULL;
		}
	}
	return NULL;
}

static void test_group_commit(void **state)
{
	struct fx *f = *state;
	struct gc_thread th[GC_THREADS];
	struct slot *slots = slots_new(f, GC_TOTAL);
	char (*want)[ING_EVENT_ID_LEN + 1] = calloc(GC_TOTAL, sizeof(*want));
	char (*got)[ING_EVENT_ID_LEN + 1] = calloc(GC_TOTAL, sizeof(*got));
	struct ing_producer *p;
	struct recs r;
	size_t txn0, txns;
	int64_t t0, ms;
	int busy = 0;

	assert_true(want && got);
	f->cfg->producer.batch_max = GC_BATCH_MAX;
	f->cfg->producer.linger_ms = 2;

	/* Create the spool first so its set-up transactions are not counted. */
	producer_start(f);
	producer_stop(f);
	txn0 = spool_last_txnid(f->cfg->queue.spool_path);

	t0 = cv_time_mono_ms();
	p = producer_start(f);
	for (int i = 0; i < GC_THREADS; i++) {
		th[i] = (struct gc_thread){ .p = p, .slots = slots + i * GC_PER_THREAD, .index = i };
		assert_int_equal(pthread_create(&th[i].tid, NULL, gc_main, &th[i]), 0);
	}
	for (int i = 0; i < GC_THREADS; i++)
		assert_int_equal(pthread_join(th[i].tid, NULL), 0);
	for (int i = 0; i < GC_THREADS; i++) {
		if (th[i].failed)
			fail_msg("thread %d: emit answered %d: %s", i, th[i].failed, th[i].err);
		busy += th[i].busy;
	}
	assert_int_equal(ing_producer_flush(p, 20000), 0);
	assert_int_equal(ing_producer_pending(p), 0);
	ms = cv_time_mono_ms() - t0;
	producer_stop(f);

	assert_reported_once(slots, GC_TOTAL);
	for (int i = 0; i < GC_TOTAL; i++)
		if (slots[i].status != 0)
			fail_msg("event %d (%s): callback status %d, want 0 (durable)", i,
				 slots[i].id, slots[i].status);
	/* One caller's events keep their order in the sequence. */
	for (int t = 0; t < GC_THREADS; t++)
		for (int i = 1; i < GC_PER_THREAD; i++)
			if (slots[t * GC_PER_THREAD + i].seq <= slots[t * GC_PER_THREAD + i - 1].seq)
				fail_msg("thread %d: event %d got seq %" PRId64 " after %" PRId64, t,
					 i, slots[t * GC_PER_THREAD + i].seq,
					 slots[t * GC_PER_THREAD + i - 1].seq);

	read_spool(f->cfg, &r);
	assert_int_equal(r.n, GC_TOTAL);
	for (size_t i = 0; i < r.n; i++) {
		if (r.v[i].ev.source_seq != (int64_t)i + 1)
			fail_msg("spool record %zu has source.seq %" PRId64 ": seq order is not "
				 "spool order", i, r.v[i].ev.source_seq);
		memcpy(got[i], r.v[i].ev.id, sizeof(got[i]));
	}
	for (int i = 0; i < GC_TOTAL; i++)
		memcpy(want[i], slots[i].id, sizeof(want[i]));
	qsort(want, GC_TOTAL, sizeof(*want), cmp_id);
	qsort(got, GC_TOTAL, sizeof(*got), cmp_id);
	for (int i = 0; i < GC_TOTAL; i++) {
		if (i > 0 && strcmp(got[i - 1], got[i]) == 0)
			fail_msg("event %s is in the spool twice", got[i]);
		if (strcmp(want[i], got[i]) != 0)
			fail_msg("spool ids differ from emitted ids (first difference: emitted "
				 "%s, spool %s)", want[i], got[i]);
	}
	recs_free(&r);

	/*
	 * Group commit: every spool append is one LMDB write transaction.  No
	 * transaction may hold more than batch_max events, and there must be
	 * far fewer than one per event.
	 */
	txns = spool_last_txnid(f->cfg->queue.spool_path) - txn0;
	print_message("%d events from %d threads: %zu transactions (%.1f events each), "
		      "%" PRId64 " ms, %d busy answers\n", GC_TOTAL, GC_THREADS, txns,
		      txns ? (double)GC_TOTAL / (double)txns : 0.0, ms, busy);
	assert_true(txns >= (GC_TOTAL + GC_BATCH_MAX - 1) / GC_BATCH_MAX);
	if (txns > GC_TOTAL / 10)
		fail_msg("%zu spool transactions for %d events: no group commit", txns, GC_TOTAL);
	free(want);
	free(got);
}

/* ---- 4. backpressure ------------------------------------------------------- */

#define BP_MAX_EMITS 4096

static void test_backpressure(void **state)
{
	struct fx *f = *state;
	struct slot *slots = slots_new(f, BP_MAX_EMITS + 6);
	struct slot *again = slots + BP_MAX_EMITS;
	char big[1001], err[256];
	struct ing_producer *p;
	struct ing_spool *sp = NULL;
	struct ing_spool_stats st;
	enum ing_emit_result res = ING_EMIT_OK;
	struct recs r;
	size_t n = 0, nok = 0, nfail = 0, j = 0;
	int64_t deadline;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	f->cfg->queue.spool_max_bytes = 64 * 1024;
	f->cfg->producer.busy_timeout_ms = 200;
	f->cfg->producer.batch_max = 128;
	p = producer_start(f);

	/* No consumer: the spool fills, writes fail, and emit must say BUSY. */
	deadline = cv_time_mono_ms() + 10000;
	for (n = 0; n < BP_MAX_EMITS && cv_time_mono_ms() < deadline; n++) {
		res = emit_post(p, 1, big, &slots[n], err, sizeof(err));
		if (res != ING_EMIT_OK)
			break;
		sleep_ms(1);
	}
	if (res != ING_EMIT_BUSY)
		fail_msg("emit never answered BUSY on a full spool (%zu accepted, last result %d)",
			 n, res);
	assert_true(err[0] != '\0');
	print_message("BUSY after %zu accepted events: %s\n", n, err);

	assert_int_equal(ing_producer_flush(p, 30000), 0);
	assert_int_equal(ing_producer_pending(p), 0);
	assert_reported_once(slots, n);
	for (size_t i = 0; i < n; i++) {
		assert_true(slots[i].accepted);
		assert_int_equal(slots[i].seq, (int64_t)i + 1);
		if (slots[i].status == 0)
			nok++;
		else if (slots[i].status == -EBUSY)
			nfail++;
		else
			fail_msg("event %zu: callback status %d, want 0 or -EBUSY", i,
				 slots[i].status);
	}
	assert_true(nok > 0);
	assert_true(nfail > 0);

	/* Exactly the events reported durable are there, in order, nothing else. */
	read_spool(f->cfg, &r);
	for (size_t i = 0; i < n; i++) {
		if (slots[i].status != 0)
			continue;
		if (j >= r.n)
			fail_msg("event %zu (%s) was reported durable but is not in the spool", i,
				 slots[i].id);
		if (strcmp(r.v[j].ev.id, slots[i].id) != 0)
			fail_msg("spool record %zu is %s, want durable event %zu (%s)", j,
				 r.v[j].ev.id, i, slots[i].id);
		assert_int_equal(r.v[j].ev.source_seq, slots[i].seq);
		j++;
	}
	if (j != r.n)
		fail_msg("the spool holds %zu records beyond the %zu reported durable "
			 "(failed events were written)", r.n - j, j);
	recs_free(&r);

	/* The consumer catches up: the spool is trimmed, the queue has room. */
	assert_int_equal(ing_spool_open(f->cfg->queue.spool_path, f->cfg->queue.spool_max_bytes,
					&sp, err, sizeof(err)), 0);
	assert_int_equal(ing_spool_stats(sp, &st), 0);
	assert_true(st.bytes <= (uint64_t)f->cfg->queue.spool_max_bytes);
	assert_int_equal(ing_spool_trim(sp, st.last_pos), 0);
	ing_spool_close(sp);
	sleep_ms(f->cfg->producer.busy_timeout_ms + 150);

	/* emit is accepted again and becomes durable; numbering goes on. */
	res = emit_post(p, 1, "back again", &again[0], err, sizeof(err));
	if (res != ING_EMIT_OK)
		fail_msg("emit after the spool drained: result %d (%s), want accepted", res, err);
	assert_int_equal(ing_producer_flush(p, 10000), 0);
	assert_int_equal(again[0].status, 0);
	for (int i = 1; i < 6; i++)
		if ((res = emit_post(p, 1, "back again", &again[i], err, sizeof(err))) !=
		    ING_EMIT_OK)
			fail_msg("emit %d after recovery: result %d (%s)", i, res, err);
	assert_int_equal(ing_producer_flush(p, 10000), 0);
	assert_reported_once(again, 6);
	read_spool(f->cfg, &r);
	assert_int_equal(r.n, 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(again[i].status, 0);
		assert_string_equal(r.v[i].ev.id, again[i].id);
		/* The failed events' numbers stay visible gaps, never reused. */
		assert_int_equal(r.v[i].ev.source_seq, (int64_t)n + 1 + i);
	}
	recs_free(&r);
	producer_stop(f);
}

/* ---- 5. invalid and oversized events ------------------------------------- */

static void test_invalid(void **state)
{
	struct fx *f = *state;
	struct slot *s = slots_new(f, 4);
	struct slot *s_big = &s[0], *s_nouser = &s[1], *s_ok = &s[2], *s_retry = &s[3];
	char *huge = malloc(8001);
	char err[256] = "";
	struct ing_producer *p;
	struct ing_event big, nouser;
	struct recs r;

	assert_non_null(huge);
	memset(huge, 'y', 8000);
	huge[8000] = '\0';
	f->cfg->ingest.max_event_size = 4096;
	p = producer_start(f);

	/* Larger than ingest.max_event_size: refused with the limit named. */
	make_post(&big, 1, huge);
	assert_int_equal(ing_producer_emit(p, &big, on_done, s_big, err, sizeof(err)),
			 ING_EMIT_INVALID);
	print_message("oversized: %s\n", err);
	if (!strstr(err, "4096"))
		fail_msg("reason for an oversized event does not name the limit: \"%s\"", err);

	/* Missing a required field: refused with the field named. */
	make_post(&nouser, 1, "who said this?");
	free(nouser.user);
	nouser.user = NULL;
	err[0] = '\0';
	assert_int_equal(ing_producer_emit(p, &nouser, on_done, s_nouser, err, sizeof(err)),
			 ING_EMIT_INVALID);
	print_message("no user: %s\n", err);
	if (!strstr(err, "user"))
		fail_msg("reason for an event without a user does not say so: \"%s\"", err);
	ing_event_clear(&nouser);

	assert_int_equal(ing_producer_flush(p, 5000), 0);
	assert_int_equal(ing_producer_pending(p), 0);
	assert_int_equal(s_big->calls, 0);
	assert_int_equal(s_nouser->calls, 0);
	read_spool(f->cfg, &r);
	assert_int_equal(r.n, 0);
	recs_free(&r);

	/* Rejected events took no sequence number ... */
	assert_int_equal(emit_post(p, 1, "fine", s_ok, err, sizeof(err)), ING_EMIT_OK);
	assert_int_equal(s_ok->seq, 1);
	/* ... and keep none: the rejected struct, fixed, gets a fresh one. */
	free(big.text);
	big.text = strdup("fixed");
	assert_non_null(big.text);
	if (ing_producer_emit(p, &big, on_done, s_retry, err, sizeof(err)) != ING_EMIT_OK)
		fail_msg("emit of the corrected event: %s", err);
	memcpy(s_retry->id, big.id, sizeof(s_retry->id));
	s_retry->accepted = true;
	assert_non_null(big.source_server);
	assert_int_equal(big.source_seq, 2);
	ing_event_clear(&big);
	assert_int_equal(ing_producer_flush(p, 5000), 0);
	assert_int_equal(s_ok->status, 0);
	assert_int_equal(s_retry->status, 0);
	assert_int_equal(s_retry->calls, 1);

	read_spool(f->cfg, &r);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.v[0].ev.id, s_ok->id);
	assert_int_equal(r.v[0].ev.source_seq, 1);
	assert_string_equal(r.v[1].ev.id, s_retry->id);
	assert_string_equal(r.v[1].ev.text, "fixed");
	assert_int_equal(r.v[1].ev.source_seq, 2);
	recs_free(&r);
	producer_stop(f);
	free(huge);
}

/* ---- 6. free() flushes ----------------------------------------------------- */

static void test_free_flushes(void **state)
{
	struct fx *f = *state;
	enum { N = 100 };
	struct slot *slots = slots_new(f, N);
	char err[256];
	struct ing_producer *p;
	struct recs r;
	int64_t t0, ms;
	size_t pending;

	/* A long linger keeps the events waiting in the producer. */
	f->cfg->producer.linger_ms = 3000;
	p = producer_start(f);
	for (int i = 0; i < N; i++)
		if (emit_post(p, i % 4, "pending at free", &slots[i], err, sizeof(err)) !=
		    ING_EMIT_OK)
			fail_msg("emit %d: %s", i, err);
	pending = ing_producer_pending(p);
	assert_true(pending > 0);

	t0 = cv_time_mono_ms();
	producer_stop(f);
	ms = cv_time_mono_ms() - t0;
	print_message("free() with %zu pending took %" PRId64 " ms\n", pending, ms);

	/* Every callback fired before free() returned, all durable. */
	assert_reported_once(slots, N);
	for (int i = 0; i < N; i++)
		if (slots[i].calls != 1 || slots[i].status != 0)
			fail_msg("event %d: %d callback(s), status %d after free()", i,
				 slots[i].calls, slots[i].status);
	/* It did not sit out the linger. */
	if (ms >= 2000)
		fail_msg("free() took %" PRId64 " ms: it waited for linger_ms", ms);

	read_spool(f->cfg, &r);
	assert_int_equal(r.n, N);
	for (int i = 0; i < N; i++) {
		assert_string_equal(r.v[i].ev.id, slots[i].id);
		assert_int_equal(r.v[i].ev.source_seq, i + 1);
	}
	recs_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stamping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_flushes, setup, teardown),
	};

	/* The spool and producer warn about the full spool test 4 provokes. */
	cv_log_set_level(CV_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
