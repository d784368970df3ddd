/*
 * test_kafka — ingest/kafka.c against the contract in ingest/kafka.h and
 * queue.h, on librdkafka's built-in mock cluster (real protocol, in memory,
 * three brokers; design.md §5).
 *
 * Every record encodes its own sequence number and room, so a record that is
 * lost, doubled or reordered within its room is caught by content.  The
 * consumer's PostgreSQL positions are played by an in-memory map the test
 * "commits" after each batch, as the ingest consumer does.
 *
 * The mock keeps only about 5 MiB per partition, so writing and reading are
 * interleaved in chunks; its consumer group waits 3 s for the first member,
 * which dominates the runtime of each test that opens a reader.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cv_log.h"
#include "kafka.h"

#define TOPIC "chatvault.events"
#define NPART 4
#define NROOMS 50
#define REC_LEN 150          /* bytes per test event */
#define BATCH 1000
#define MIB (1024 * 1024)
#define MOCK_PRODUCE_APIKEY 0 /* Kafka protocol ApiKey of Produce */
#define PM_ANY (-2)           /* posmap.fail_part: whichever partition comes next */

/* ---- the batch helpers queue.c provides (weak: the real ones win when the
 * test is linked against the library) ---------------------------------------- */

/*
 * Same contract as queue.c: copy data to the end of the arena and append a
 * message whose data points into the arena.  The arena is filled
 * contiguously, so after growing it the messages are re-pointed by walking
 * their lengths: every msgs[i].data is valid after every call.
 */
__attribute__((weak)) int ing_qbatch_add(struct ing_qbatch *b, int32_t partition,
					 int64_t position, const void *data, size_t len)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct ing_qmsg *m = realloc(b->msgs, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		b->msgs = m;
		b->cap = cap;
	}
	if (len > b->arena_cap - b->arena_len) {
		size_t cap = b->arena_cap ? b->arena_cap : 65536, off = 0;
		char *a;

		while (cap - b->arena_len < len)
			cap *= 2;
		a = realloc(b->arena, cap);
		if (!a)
			return -ENOMEM;
		b->arena = a;
		b->arena_cap = cap;
		for (size_t i = 0; i < b->n; i++) {
			b->msgs[i].data = a + off;
			off += b->msgs[i].len;
		}
	}
	if (len)
		memcpy(b->arena + b->arena_len, data, len);
	b->msgs[b->n].partition = partition;
	b->msgs[b->n].position = position;
	b->msgs[b->n].data = b->arena ? b->arena + b->arena_len : NULL;
	b->msgs[b->n].len = len;
	b->n++;
	b->arena_len += len;
	return 0;
}

__attribute__((weak)) void ing_qbatch_free(struct ing_qbatch *b)
{
	if (!b)
		return;
	free(b->msgs);
	free(b->arena);
	memset(b, 0, sizeof(*b));
}

/* ---- fixture --------------------------------------------------------------- */

/* The consumer's stored positions (PostgreSQL in production). */
struct posmap {
	int64_t pos[NPART];
	bool set[NPART];
	int32_t fail_part;   /* lookups of this partition (PM_ANY: any) fail ... */
	int fail_left;       /* ... this many times */
	int lookups;
};

struct tracker {
	size_t cap;
	uint8_t *cnt;        /* times each seq was read */
	size_t distinct, dups;
	size_t room_next[NROOMS];
	bool check_order;
};

struct fx {
	rd_kafka_t *mock_rk;
	rd_kafka_mock_cluster_t *mc;
	char brokers[512];
	char topic[64];
	char group[64];
	const char *assignor;     /* NULL: librdkafka's default (eager) */
	char keys[NROOMS][24];
	struct cfg cfg;
	struct cfg_opt props[16];
	struct posmap pm;
	struct tracker tr;
	struct ing_qbatch batch;
	double write_s, read_s;   /* time in write / record-returning read calls */
	size_t write_n, read_n;
	double t_phase;           /* start of the current phase */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* TEST_KAFKA_TIMING=1 prints how long each phase of a test took. */
static void phase(struct fx *f, const char *what)
{
	double now = now_s();

	if (getenv("TEST_KAFKA_TIMING"))
		print_message("      %6.2f s  %s\n", now - f->t_phase, what);
	f->t_phase = now;
}

static void add_prop(struct fx *f, const char *key, const char *val)
{
	struct cfg_opt *o;

	assert_true(f->cfg.queue.nkafka_props < sizeof(f->props) / sizeof(f->props[0]));
	o = &f->props[f->cfg.queue.nkafka_props++];
	memset(o, 0, sizeof(*o));
	o->key = strdup(key);
	o->str = strdup(val);
	assert_non_null(o->key);
	assert_non_null(o->str);
	o->type = CFG_OPT_STRING;
	o->file = "test.conf";
	o->line = (int)f->cfg.queue.nkafka_props;
}

static void drop_last_prop(struct fx *f)
{
	struct cfg_opt *o = &f->props[--f->cfg.queue.nkafka_props];

	free(o->key);
	free(o->str);
	memset(o, 0, sizeof(*o));
}

/* state: NULL, or the partition.assignment.strategy to test. */
static int setup(void **state)
{
	const char *assignor = *state;
	struct fx *f = calloc(1, sizeof(*f));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[256];

	if (!f || !conf)
		return -1;
	/* The mock cluster needs a handle to live in; it is otherwise unused
	 * (and quiet: it has no brokers of its own to complain about). */
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		return -1;
	if (getenv("TEST_KAFKA_DEBUG") &&
	    (rd_kafka_conf_set(conf, "debug", "mock", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
	     rd_kafka_conf_set(conf, "log_level", "7", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK))
		return -1;
	f->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!f->mock_rk)
		return -1;
	snprintf(f->group, sizeof(f->group), "chatvault-test");
	f->mc = rd_kafka_mock_cluster_new(f->mock_rk, 3);
	if (!f->mc || rd_kafka_mock_topic_create(f->mc, TOPIC, NPART, 3) != 0)
		return -1;
	/* A group coordinator that stays up when test_broker_down_up takes
	 * broker 1 down. */
	if (rd_kafka_mock_coordinator_set(f->mc, "group", f->group, 2) != 0)
		return -1;
	/* The mock picks leaders at random; pin them so every broker leads a
	 * partition (test_broker_down_up relies on broker 1 leading one). */
	for (int32_t p = 0; p < NPART; p++)
		if (rd_kafka_mock_partition_set_leader(f->mc, TOPIC, p, p % 3 + 1) != 0)
			return -1;
	snprintf(f->brokers, sizeof(f->brokers), "%s", rd_kafka_mock_cluster_bootstraps(f->mc));
	snprintf(f->topic, sizeof(f->topic), "%s", TOPIC);
	for (int i = 0; i < NROOMS; i++)
		snprintf(f->keys[i], sizeof(f->keys[i]), "room-%02d", i);

	f->cfg.queue.backend = CFG_QUEUE_KAFKA;
	f->cfg.queue.kafka_brokers = f->brokers;
	f->cfg.queue.kafka_topic = f->topic;
	f->cfg.queue.kafka_group = f->group;
	f->cfg.queue.kafka_props = f->props;
	f->cfg.producer.linger_ms = 2;
	f->cfg.producer.busy_timeout_ms = 1000;
	f->cfg.ingest.max_event_size = MIB;
	/* Short group timers: the mock holds every rebalance for
	 * session.timeout.ms - 1 s, and the first join for 3 s (during which a
	 * joining member sends no heartbeats, so the session must outlast it). */
	add_prop(f, "consumer.session.timeout.ms", "3600");
	add_prop(f, "consumer.heartbeat.interval.ms", "500");
	add_prop(f, "consumer.fetch.wait.max.ms", "20");
	add_prop(f, "reconnect.backoff.ms", "20");
	add_prop(f, "reconnect.backoff.max.ms", "200");
	add_prop(f, "producer.retry.backoff.ms", "20");
	if (assignor)
		add_prop(f, "consumer.partition.assignment.strategy", assignor);
	/* TEST_KAFKA_DEBUG=cgrp,fetch,… turns on librdkafka's debug contexts. */
	if (getenv("TEST_KAFKA_DEBUG")) {
		add_prop(f, "debug", getenv("TEST_KAFKA_DEBUG"));
		cv_log_set_level(CV_LOG_DEBUG);
	}
	f->assignor = assignor;
	f->t_phase = now_s();
	f->pm.fail_part = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (!f)
		return 0;
	while (f->cfg.queue.nkafka_props)
		drop_last_prop(f);
	ing_qbatch_free(&f->batch);
	free(f->tr.cnt);
	if (f->mc)
		rd_kafka_mock_cluster_destroy(f->mc);
	if (f->mock_rk)
		rd_kafka_destroy(f->mock_rk);
	free(f);
	return 0;
}

static void tr_init(struct fx *f, size_t cap, bool check_order)
{
	free(f->tr.cnt);
	memset(&f->tr, 0, sizeof(f->tr));
	f->tr.cap = cap;
	f->tr.cnt = calloc(cap, 1);
	assert_non_null(f->tr.cnt);
	f->tr.check_order = check_order;
	for (size_t r = 0; r < NROOMS; r++)
		f->tr.room_next[r] = r;
}

/* ---- records ----------------------------------------------------------------- */

/* {"seq":0000000042,"room":"room-42","text":"xxx…"} padded to REC_LEN. */
static void rec_make(char *buf, size_t seq)
{
	int n = snprintf(buf, REC_LEN, "{\"seq\":%010zu,\"room\":\"room-%02zu\",\"text\":\"", seq,
			 seq % NROOMS);

	memset(buf + n, 'x', (size_t)(REC_LEN - n - 2));
	buf[REC_LEN - 2] = '"';
	buf[REC_LEN - 1] = '}';
}

static size_t rec_seq(const struct ing_qmsg *m)
{
	char digits[11];

	assert_int_equal(m->len, REC_LEN);
	assert_memory_equal(m->data, "{\"seq\":", 7);
	memcpy(digits, m->data + 7, 10);
	digits[10] = '\0';
	return (size_t)strtoull(digits, NULL, 10);
}

/*
 * Write seqs[0..n) (key = room) and return the write's result; per-record
 * statuses go to st[] when given.
 */
static int write_seqs(struct fx *f, struct ing_kafka_w *w, const size_t *seqs, size_t n,
		      int timeout_ms, int *st)
{
	struct ing_qrec *recs = calloc(n, sizeof(*recs));
	char *buf = malloc(n * REC_LEN);
	double t0;
	int rc;

	assert_non_null(recs);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		rec_make(buf + i * REC_LEN, seqs[i]);
		recs[i].data = buf + i * REC_LEN;
		recs[i].len = REC_LEN;
		recs[i].key = f->keys[seqs[i] % NROOMS];
		recs[i].status = 12345;
	}
	t0 = now_s();
	rc = ing_kafka_w_write(w, recs, n, timeout_ms);
	f->write_s += now_s() - t0;
	f->write_n += n;
	for (size_t i = 0; i < n; i++) {
		assert_int_not_equal(recs[i].status, 12345);
		if (rc == 0)
			assert_int_equal(recs[i].status, 0);
		if (st)
			st[i] = recs[i].status;
	}
	free(buf);
	free(recs);
	return rc;
}

static void write_range(struct fx *f, struct ing_kafka_w *w, size_t from, size_t n)
{
	size_t *seqs = malloc(n * sizeof(*seqs));
	int rc;

	assert_non_null(seqs);
	for (size_t i = 0; i < n; i++)
		seqs[i] = from + i;
	rc = write_seqs(f, w, seqs, n, 15000, NULL);
	if (rc != 0)
		fail_msg("write [%zu, %zu): %s: %s", from, from + n, strerror(-rc),
			 ing_kafka_w_errstr(w));
	free(seqs);
}

/* ---- reading ------------------------------------------------------------------ */

static int pos_lookup(void *arg, const char *source, int32_t partition, int64_t *pos)
{
	struct posmap *pm = arg;

	assert_string_equal(source, "kafka:" TOPIC);
	assert_true(partition >= 0 && partition < NPART);
	pm->lookups++;
	if ((partition == pm->fail_part || pm->fail_part == PM_ANY) && pm->fail_left > 0) {
		pm->fail_left--;
		return -EIO;
	}
	if (!pm->set[partition])
		return 1;
	*pos = pm->pos[partition];
	return 0;
}

static struct ing_kafka_r *reader_open(struct fx *f)
{
	struct ing_kafka_r *r = NULL;
	char err[512];

	if (ing_kafka_r_open(&f->cfg, pos_lookup, &f->pm, &r, err, sizeof(err)) != 0)
		fail_msg("ing_kafka_r_open: %s", err);
	assert_string_equal(ing_kafka_r_source(r), "kafka:" TOPIC);
	return r;
}

/*
 * One read; check and "commit" what came back (positions strictly increase
 * per partition, as the consumer's PostgreSQL row would).  Returns the
 * number of records, adding them to *count when given.
 */
static size_t read_once(struct fx *f, struct ing_kafka_r *r, size_t max_records, int wait_ms,
			size_t *count)
{
	char err[512];
	double t0 = now_s();
	enum cv_result res = ing_kafka_r_read(r, &f->batch, max_records, 8 * MIB, wait_ms, err,
					      sizeof(err));
	double dt = now_s() - t0;

	if (res == CV_RETRY) {
		assert_true(err[0] != '\0');
		return 0;
	}
	if (res != CV_OK)
		fail_msg("read: %s: %s", cv_result_name(res), err);
	assert_true(f->batch.n <= max_records);
	if (f->batch.n) {
		f->read_s += dt;
		f->read_n += f->batch.n;
	}
	for (size_t i = 0; i < f->batch.n; i++) {
		const struct ing_qmsg *m = &f->batch.msgs[i];
		size_t seq = rec_seq(m);
		int32_t p = m->partition;

		assert_true(p >= 0 && p < NPART);
		if (f->pm.set[p] && m->position <= f->pm.pos[p])
			fail_msg("partition %d: position %" PRId64 " after stored %" PRId64, p,
				 m->position, f->pm.pos[p]);
		f->pm.pos[p] = m->position;
		f->pm.set[p] = true;

		assert_true(seq < f->tr.cap);
		if (f->tr.cnt[seq]++) {
			f->tr.dups++;
			continue;
		}
		f->tr.distinct++;
		if (f->tr.check_order) {
			size_t room = seq % NROOMS;

			if (seq != f->tr.room_next[room])
				fail_msg("room %zu: read seq %zu, expected %zu", room, seq,
					 f->tr.room_next[room]);
			f->tr.room_next[room] += NROOMS;
		}
	}
	if (count)
		*count += f->batch.n;
	return f->batch.n;
}

/* Read from the readers in turn until `target` distinct records were seen.
 * The callers give 60 s: a hang fails, a slow shared machine does not. */
static void drain(struct fx *f, struct ing_kafka_r **rs, size_t nr, size_t *counts, size_t target,
		  double timeout_s)
{
	double end = now_s() + timeout_s;

	while (f->tr.distinct < target) {
		if (now_s() > end)
			fail_msg("drain: %zu of %zu records after %.0f s", f->tr.distinct, target,
				 timeout_s);
		for (size_t i = 0; i < nr; i++)
			read_once(f, rs[i], 10000, nr > 1 ? 50 : 200, counts ? &counts[i] : NULL);
	}
}

/* Keep reading until the readers are quiet: catches late duplicates. */
static void read_quiet(struct fx *f, struct ing_kafka_r **rs, size_t nr, size_t *counts)
{
	for (int quiet = 0; quiet < 2;) {
		size_t got = 0;

		for (size_t i = 0; i < nr; i++)
			got += read_once(f, rs[i], 10000, 200, counts ? &counts[i] : NULL);
		quiet = got ? 0 : quiet + 1;
	}
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_classify(void **state)
{
	static const struct {
		rd_kafka_resp_err_t err;
		enum cv_result want;
	} table[] = {
		{ RD_KAFKA_RESP_ERR_NO_ERROR, CV_OK },
		{ RD_KAFKA_RESP_ERR__PARTITION_EOF, CV_OK },
		{ RD_KAFKA_RESP_ERR__TRANSPORT, CV_RETRY },
		{ RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, CV_RETRY },
		{ RD_KAFKA_RESP_ERR__TIMED_OUT, CV_RETRY },
		{ RD_KAFKA_RESP_ERR__QUEUE_FULL, CV_RETRY },
		{ RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, CV_RETRY },
		{ RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, CV_RETRY },
		{ RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, CV_RETRY },
		{ RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, CV_RETRY },
		{ RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, CV_RETRY },
		{ RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, CV_RETRY },
		{ RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, CV_RETRY },
		{ RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, CV_RETRY },
		{ RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED, CV_RETRY },
		/* librdkafka 2.0 has no local _MSG_SIZE_TOO_LARGE: it reports a
		 * too-large message with the broker code, tested here. */
		{ RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, CV_FAIL },
		{ RD_KAFKA_RESP_ERR_INVALID_MSG, CV_FAIL },
		{ RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, CV_FAIL },
		{ RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, CV_FAIL },
		/* Transient only during auto-creation, which librdkafka waits
		 * out before reporting it (kafka.c explains). */
		{ RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, CV_FAIL },
		{ RD_KAFKA_RESP_ERR__INVALID_ARG, CV_FAIL },
		{ RD_KAFKA_RESP_ERR__AUTHENTICATION, CV_FAIL },
		{ RD_KAFKA_RESP_ERR__FATAL, CV_FAIL },
		{ RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET, CV_FAIL },
		{ (rd_kafka_resp_err_t)12345, CV_FAIL },   /* unknown: a human looks */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		enum cv_result got = ing_kafka_classify(table[i].err);

		if (got != table[i].want)
			fail_msg("%s (%d): got %s, want %s", rd_kafka_err2name(table[i].err),
				 (int)table[i].err, cv_result_name(got), cv_result_name(table[i].want));
	}
}

/* Properties that would break a guarantee are refused, naming file:line and
 * key; secrets never reach the error text. */
static void test_config_guards(void **state)
{
	static const struct {
		const char *key, *val;
	} bad[] = {
		{ "enable.idempotence", "false" },
		{ "producer.enable.idempotence", "0" },
		{ "acks", "1" },
		{ "producer.request.required.acks", "0" },
		{ "enable.auto.commit", "true" },
		{ "consumer.enable.auto.commit", "t" },
		{ "consumer.enable.auto.offset.store", "true" },
		{ "auto.offset.reset", "latest" },
		{ "group.id", "other" },
		{ "bootstrap.servers", "elsewhere:9092" },
		{ "transactional.id", "x" },
		{ "no.such.property", "1" },
	};
	struct fx *f = *state;
	struct ing_kafka_w *w = NULL;
	struct ing_kafka_r *r = NULL;
	char err[512], want[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		add_prop(f, bad[i].key, bad[i].val);
		snprintf(want, sizeof(want), "test.conf:%zu: queue.kafka_props: %s:",
			 f->cfg.queue.nkafka_props, bad[i].key);
		err[0] = '\0';
		assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), -EINVAL);
		assert_null(w);
		if (!strstr(err, want))
			fail_msg("writer: \"%s\" does not contain \"%s\"", err, want);
		err[0] = '\0';
		assert_int_equal(ing_kafka_r_open(&f->cfg, pos_lookup, &f->pm, &r, err, sizeof(err)),
				 -EINVAL);
		assert_null(r);
		if (!strstr(err, want))
			fail_msg("reader: \"%s\" does not contain \"%s\"", err, want);
		drop_last_prop(f);
	}

	/* The allowed spellings pass. */
	add_prop(f, "enable.idempotence", "true");
	add_prop(f, "acks", "-1");
	add_prop(f, "consumer.enable.auto.commit", "false");
	add_prop(f, "auto.offset.reset", "error");
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	ing_kafka_w_close(w);
	assert_int_equal(ing_kafka_r_open(&f->cfg, pos_lookup, &f->pm, &r, err, sizeof(err)), 0);
	ing_kafka_r_close(r);
	for (int i = 0; i < 4; i++)
		drop_last_prop(f);

	/* A rejected secret-looking property names the key, not the value. */
	add_prop(f, "sasl.mechanisms", "PLAIN");
	add_prop(f, "consumer.sasl.password.typo", "hunter2");
	assert_int_equal(ing_kafka_r_open(&f->cfg, pos_lookup, &f->pm, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "sasl.password.typo"));
	assert_null(strstr(err, "hunter2"));
	/* ... and a consumer-only property does not reach the writer. */
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	ing_kafka_w_close(w);
	drop_last_prop(f);
	drop_last_prop(f);

	/* Missing brokers is a configuration error naming the key. */
	f->cfg.queue.kafka_brokers = NULL;
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "queue.kafka_brokers"));
	f->cfg.queue.kafka_brokers = f->brokers;
}

/* Per-record statuses: an event over ingest.max_event_size is refused
 * (-EMSGSIZE) without holding back the rest; a record without key is fine. */
static void test_oversize_and_null_key(void **state)
{
	struct fx *f = *state;
	struct ing_kafka_w *w = NULL;
	char err[512], small[100], *big = malloc(4096);
	struct ing_qrec recs[3];

	assert_non_null(big);
	memset(small, 's', sizeof(small));
	memset(big, 'b', 4096);
	f->cfg.ingest.max_event_size = 1024;
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	recs[0] = (struct ing_qrec){ .data = small, .len = sizeof(small), .key = "room-01" };
	recs[1] = (struct ing_qrec){ .data = big, .len = 4096, .key = "room-01" };
	recs[2] = (struct ing_qrec){ .data = small, .len = sizeof(small), .key = NULL };
	assert_int_equal(ing_kafka_w_write(w, recs, 3, 10000), -EMSGSIZE);
	assert_int_equal(recs[0].status, 0);
	assert_int_equal(recs[1].status, -EMSGSIZE);
	assert_int_equal(recs[2].status, 0);
	assert_true(ing_kafka_w_errstr(w)[0] != '\0');
	assert_int_equal(ing_kafka_w_write(w, recs, 0, 10000), 0);
	ing_kafka_w_close(w);
	free(big);
}

/* 200k events, 50 rooms, interleaved with reads; the reader is restarted
 * half-way from the stored positions: exactly 200k distinct, rooms ordered. */
static void test_stream_200k_with_restart(void **state)
{
	const size_t total = 200000, chunk = 5 * BATCH;
	struct fx *f = *state;
	struct ing_kafka_w *w = NULL;
	struct ing_kafka_r *r;
	char err[512];
	int64_t lag = -1;

	tr_init(f, total, true);
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	r = reader_open(f);
	for (size_t done = 0; done < total;) {
		for (size_t end = done + chunk; done < end; done += BATCH)
			write_range(f, w, done, BATCH);
		drain(f, &r, 1, NULL, done, 20);
		if (done == total / 2) {
			phase(f, "first half written and read");
			ing_kafka_r_close(r);
			r = reader_open(f);
		}
	}
	phase(f, "second half (after restart)");
	read_quiet(f, &r, 1, NULL);
	assert_int_equal(f->tr.distinct, total);
	assert_int_equal(f->tr.dups, 0);

	/* Everything consumed: the lag says so. */
	for (double end = now_s() + 5; now_s() < end && lag != 0; usleep(50000))
		lag = ing_kafka_r_lag(r);
	assert_int_equal(lag, 0);

	print_message("      kafka mock: write %.0f rec/s (sync batches of %d), read %.0f rec/s\n",
		      (double)f->write_n / f->write_s, BATCH, (double)f->read_n / f->read_s);
	ing_kafka_r_close(r);
	ing_kafka_w_close(w);
}

/* A second reader joins the group mid-stream and later leaves; with the
 * shared position map, the union of what both read is exactly what was
 * written.  Runs eager (default assignors) and cooperative-sticky. */
static void test_rebalance(void **state)
{
	const size_t total = 40000;
	struct fx *f = *state;
	struct ing_kafka_w *w = NULL;
	struct ing_kafka_r *rs[2];
	size_t counts[2] = { 0, 0 }, done = 0;
	char err[512];

	tr_init(f, total, true);
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	rs[0] = reader_open(f);
	for (; done < 10000; done += BATCH) {
		write_range(f, w, done, BATCH);
		if ((done + BATCH) % 5000 == 0)
			drain(f, rs, 1, counts, done + BATCH, 60);
	}

	phase(f, "phase 1 (one reader)");
	/* The first lookup of the coming rebalance fails: that partition
	 * waits paused, whichever reader takes it, under either protocol. */
	f->pm.fail_part = PM_ANY;
	f->pm.fail_left = 1;
	rs[1] = reader_open(f);
	/* Records in flight while the group rebalances. */
	for (; done < 12000; done += BATCH)
		write_range(f, w, done, BATCH);
	/* Until the newcomer holds partitions (lag is -1 while it has none). */
	for (double end = now_s() + 60; ing_kafka_r_lag(rs[1]) < 0;) {
		if (now_s() > end)
			fail_msg("second reader got no partitions");
		read_once(f, rs[0], 10000, 50, &counts[0]);
		read_once(f, rs[1], 10000, 50, &counts[1]);
	}
	phase(f, "second reader assigned");
	for (; done < 30000; done += BATCH) {
		write_range(f, w, done, BATCH);
		if ((done + BATCH) % 5000 == 0)
			drain(f, rs, 2, counts, done + BATCH, 60);
	}
	assert_true(counts[1] > 0);
	assert_int_equal(f->pm.fail_left, 0);
	/* The leaver's partitions have unread records when it goes. */
	for (; done < 32000; done += BATCH)
		write_range(f, w, done, BATCH);

	phase(f, "phase 2 (two readers)");
	ing_kafka_r_close(rs[1]);
	phase(f, "second reader closed");
	for (; done < total; done += BATCH) {
		write_range(f, w, done, BATCH);
		if ((done + BATCH) % 5000 == 0)
			drain(f, rs, 1, counts, done + BATCH, 60);
	}
	phase(f, "phase 3 (one reader)");
	read_quiet(f, rs, 1, counts);
	phase(f, "quiet");
	assert_int_equal(f->tr.distinct, total);
	assert_int_equal(f->tr.dups, 0);
	assert_int_equal(counts[0] + counts[1], total);
	print_message("      %s: reader 1 read %zu, reader 2 read %zu\n",
		      f->assignor ? f->assignor : "eager (range,roundrobin)",
		      counts[0], counts[1]);
	ing_kafka_r_close(rs[0]);
	ing_kafka_w_close(w);
}

/* A broker goes down during writing: writes come back within their timeout
 * with -EBUSY for what was not acknowledged, never 0 for it; after it comes
 * back, every acknowledged record is there, and only records the test
 * re-submitted may appear twice. */
static void test_broker_down_up(void **state)
{
	const size_t first = 2000, outage = 4000, total = first + outage;
	struct fx *f = *state;
	struct ing_kafka_w *w = NULL;
	struct ing_kafka_r *r;
	uint8_t *acked = calloc(total, 1), *subs = calloc(total, 1);
	size_t *seqs = malloc(total * sizeof(*seqs)), nbusy = 0, rounds = 0;
	int *st = malloc(total * sizeof(*st));
	char err[512];

	assert_true(acked && subs && seqs && st);
	tr_init(f, total, false);
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	/* Opened now so its group join overlaps the outage; it reads later. */
	r = reader_open(f);
	write_range(f, w, 0, first);
	memset(acked, 1, first);
	memset(subs, 1, first);

	assert_int_equal(rd_kafka_mock_broker_set_down(f->mc, 1), 0);
	for (size_t from = first; from < total; from += BATCH) {
		double t0 = now_s();
		int rc;

		for (size_t i = 0; i < BATCH; i++)
			seqs[i] = from + i;
		rc = write_seqs(f, w, seqs, BATCH, 500, st);
		assert_true(now_s() - t0 < 2.0);   /* bounded by the timeout */
		assert_true(rc == 0 || rc == -EBUSY);
		for (size_t i = 0; i < BATCH; i++) {
			assert_true(st[i] == 0 || st[i] == -EBUSY);
			subs[from + i]++;
			if (st[i] == 0)
				acked[from + i] = 1;
			else
				nbusy++;
		}
		if (rc)
			assert_true(ing_kafka_w_errstr(w)[0] != '\0');
	}
	assert_true(nbusy > 0);   /* the partitions led by broker 1 were unreachable */
	phase(f, "written during the outage");
	assert_int_equal(rd_kafka_mock_broker_set_up(f->mc, 1), 0);

	/* The caller retries what was answered BUSY. */
	for (;;) {
		size_t n = 0;

		for (size_t s = 0; s < total; s++)
			if (!acked[s])
				seqs[n++] = s;
		if (n == 0)
			break;
		assert_true(++rounds <= 5);
		(void)write_seqs(f, w, seqs, n, 15000, st);
		for (size_t i = 0; i < n; i++) {
			subs[seqs[i]]++;
			if (st[i] == 0)
				acked[seqs[i]] = 1;
		}
	}
	ing_kafka_w_close(w);
	phase(f, "BUSY records re-sent");

	drain(f, &r, 1, NULL, total, 20);
	read_quiet(f, &r, 1, NULL);
	phase(f, "read back");
	for (size_t s = 0; s < total; s++) {
		if (f->tr.cnt[s] < 1 || f->tr.cnt[s] > subs[s])
			fail_msg("seq %zu read %u times, submitted %u times", s, f->tr.cnt[s], subs[s]);
	}
	print_message("      outage: %zu records answered BUSY, %zu extra copies after retry\n",
		      nbusy, f->tr.dups);
	ing_kafka_r_close(r);
	free(acked);
	free(subs);
	free(seqs);
	free(st);
}

/*
 * Write seqs [from, from+n) as a producer would: re-submit what was answered
 * BUSY until everything is durable.  Returns how many were answered BUSY.
 */
static size_t write_until_durable(struct fx *f, struct ing_kafka_w *w, size_t from, size_t n)
{
	size_t *seqs = malloc(n * sizeof(*seqs)), left = n, busy = 0;
	int *st = malloc(n * sizeof(*st));

	assert_true(seqs && st);
	for (size_t i = 0; i < n; i++)
		seqs[i] = from + i;
	for (int round = 0; left > 0; round++) {
		size_t k = 0;

		assert_true(round < 10);
		(void)write_seqs(f, w, seqs, left, 15000, st);
		for (size_t i = 0; i < left; i++) {
			assert_true(st[i] == 0 || st[i] == -EBUSY);
			if (st[i] != 0)
				seqs[k++] = seqs[i];
		}
		busy += k;
		left = k;
	}
	free(seqs);
	free(st);
	return busy;
}

/*
 * Produce requests fail: with the retriable errors librdkafka retries itself
 * the idempotent producer resends and the write succeeds; errors it gives up
 * on (librdkafka 2.0 treats NETWORK_EXCEPTION on Produce as permanent) come
 * back as -EBUSY, never as durable.  Either way nothing is lost or doubled.
 */
static void test_produce_request_errors(void **state)
{
	const size_t total = 10000;
	struct fx *f = *state;
	struct ing_kafka_w *w = NULL;
	struct ing_kafka_r *r;
	size_t busy = 0;
	char err[512];

	tr_init(f, total, true);
	/* librdkafka 2.0's mock checks idempotent sequence numbers only for
	 * transactional producers, so a failed request overtaken by the next
	 * in-flight one would be reordered there (a real broker answers
	 * OUT_OF_ORDER_SEQUENCE and the producer resends in order): one
	 * request in flight keeps the mock honest about room order. */
	add_prop(f, "producer.max.in.flight.requests.per.connection", "1");
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	for (size_t done = 0; done < total / 2; done += BATCH) {
		if (done % 2000 == 0)
			rd_kafka_mock_push_request_errors(
				f->mc, MOCK_PRODUCE_APIKEY, 5,
				RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
				RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
				RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
				RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
				RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
		write_range(f, w, done, BATCH);
	}
	phase(f, "retried errors written");
	for (size_t done = total / 2; done < total; done += BATCH) {
		if (done % 2000 == 0)
			rd_kafka_mock_push_request_errors(
				f->mc, MOCK_PRODUCE_APIKEY, 3,
				RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
				RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
				RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION);
		busy += write_until_durable(f, w, done, BATCH);
	}
	ing_kafka_w_close(w);
	phase(f, "permanent errors written");

	r = reader_open(f);
	drain(f, &r, 1, NULL, total, 20);
	phase(f, "drained");
	read_quiet(f, &r, 1, NULL);
	phase(f, "quiet");
	assert_int_equal(f->tr.distinct, total);
	assert_int_equal(f->tr.dups, 0);
	print_message("      injected errors: %zu records answered BUSY and re-sent\n", busy);
	ing_kafka_r_close(r);
}

/* The stored position of one partition cannot be read at first: that
 * partition is held back (nothing read from it, nothing lost), the others
 * flow, and it joins once the lookup works.  Then the lag. */
static void test_position_lookup_failure_and_lag(void **state)
{
	const size_t first = 4000, second = 2000;
	struct fx *f = *state;
	struct ing_kafka_w *w = NULL;
	struct ing_kafka_r *r;
	size_t got = 0;
	int64_t lag = -1;
	char err[512];

	tr_init(f, first + second, true);
	f->pm.fail_part = 2;
	f->pm.fail_left = 1;
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	write_range(f, w, 0, first);
	r = reader_open(f);
	drain(f, &r, 1, NULL, first, 20);
	assert_int_equal(f->pm.fail_left, 0);
	phase(f, "drained with a late position");
	read_quiet(f, &r, 1, NULL);
	assert_int_equal(f->tr.dups, 0);

	/* Lag: write more, read a part, the rest is the lag. */
	write_range(f, w, first, second);
	while (got == 0)
		read_once(f, r, 500, 1000, &got);
	for (double end = now_s() + 5; now_s() < end; usleep(50000)) {
		lag = ing_kafka_r_lag(r);
		if (lag == (int64_t)(second - got))
			break;
	}
	assert_int_equal(lag, (int64_t)(second - got));
	drain(f, &r, 1, NULL, first + second, 20);
	assert_int_equal(f->tr.dups, 0);
	ing_kafka_r_close(r);
	ing_kafka_w_close(w);
}

/* ing_kafka_lag() for one posmap; fails the test with err when unknown. */
static int64_t probe_lag(struct fx *f, struct posmap *pm)
{
	char err[512];
	int64_t lag = ing_kafka_lag(&f->cfg, pos_lookup, pm, 2000, err, sizeof(err));

	if (lag < 0)
		fail_msg("ing_kafka_lag: %s", err);
	return lag;
}

/*
 * The lag status and /metrics report (ing_kafka_lag: no reader, positions
 * from the stored map as from PostgreSQL): the whole topic before ingest, 0
 * after, the new records after more writes; the probe never joins the group
 * (the running reader sees no rebalance, so it looks up no position again);
 * a failing lookup and unreachable brokers give -1 with a reason, the
 * latter within the budget.
 */
static void test_lag_probe(void **state)
{
	const size_t first = 1000, second = 300;
	struct fx *f = *state;
	struct ing_kafka_w *w = NULL;
	struct ing_kafka_r *r;
	struct posmap pm;
	char err[512], closed[] = "127.0.0.1:1", *brokers;
	int lookups;
	int64_t lag;
	double t0;

	tr_init(f, first + second, false);
	assert_int_equal(ing_kafka_w_open(&f->cfg, &w, err, sizeof(err)), 0);
	assert_int_equal(probe_lag(f, &f->pm), 0);
	write_range(f, w, 0, first);
	assert_int_equal(probe_lag(f, &f->pm), (int64_t)first);

	r = reader_open(f);
	drain(f, &r, 1, NULL, first, 60);
	read_quiet(f, &r, 1, NULL);
	assert_int_equal(probe_lag(f, &f->pm), 0);

	/* Probes while the reader is in the group: a rebalance would make the
	 * reader look its positions up again. */
	write_range(f, w, first, second);
	lookups = f->pm.lookups;
	pm = f->pm;
	assert_int_equal(probe_lag(f, &pm), (int64_t)second);
	drain(f, &r, 1, NULL, first + second, 60);
	for (int i = 0; i < 3; i++)
		read_once(f, r, 1000, 1000, NULL);
	assert_int_equal(f->pm.lookups, lookups);
	pm = f->pm;
	assert_int_equal(probe_lag(f, &pm), 0);
	assert_int_equal(f->tr.dups, 0);
	ing_kafka_r_close(r);

	/* A stored position the probe cannot read. */
	pm.fail_part = PM_ANY;
	pm.fail_left = 1;
	assert_int_equal(ing_kafka_lag(&f->cfg, pos_lookup, &pm, 2000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "stored position unavailable"));

	/* Nobody listens: -1 within the 2 s budget (and teardown), with a reason. */
	brokers = f->cfg.queue.kafka_brokers;
	f->cfg.queue.kafka_brokers = closed;
	t0 = now_s();
	lag = ing_kafka_lag(&f->cfg, pos_lookup, &pm, 2000, err, sizeof(err));
	print_message("      unreachable brokers: %.2f s: %s\n", now_s() - t0, err);
	assert_int_equal(lag, -1);
	assert_true(now_s() - t0 < 3.0);
	assert_non_null(strstr(err, "metadata"));
	f->cfg.queue.kafka_brokers = brokers;
	ing_kafka_w_close(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test_setup_teardown(test_config_guards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_and_null_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_200k_with_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebalance, setup, teardown),
		cmocka_unit_test_prestate_setup_teardown(test_rebalance, setup, teardown,
							 (void *)"cooperative-sticky"),
		cmocka_unit_test_setup_teardown(test_broker_down_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_produce_request_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_position_lookup_failure_and_lag, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lag_probe, setup, teardown),
	};
	int failed;

	/* TEST_KAFKA_FILTER=test_rebalance runs only the matching tests. */
	if (getenv("TEST_KAFKA_FILTER"))
		cmocka_set_test_filter(getenv("TEST_KAFKA_FILTER"));
	/* TEST_KAFKA_SKIP=test_produce_request_errors skips the matching tests
	 * (make valgrind: see the Makefile). */
	if (getenv("TEST_KAFKA_SKIP"))
		cmocka_set_skip_filter(getenv("TEST_KAFKA_SKIP"));
	failed = cmocka_run_group_tests_name("kafka", tests, NULL, NULL);

	/* Every handle destroyed: librdkafka's threads are gone. */
	if (rd_kafka_wait_destroyed(5000) != 0) {
		fprintf(stderr, "test_kafka: librdkafka handles still alive at exit\n");
		return 1;
	}
	return failed;
}
