/*
 * queue — see queue.h.  Dispatches to the spool or to Kafka; the spool
 * half lives here because it is small.
 */
#include "queue.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_log.h"
#include "cv_time.h"
#include "cv_util.h"
#include "kafka.h"
#include "spool.h"
#include "sto_stage.h"

struct ing_qw {
	enum cfg_queue_backend backend;
	struct ing_spool *sp;
	struct ing_kafka_w *kw;
	char *seq_dir;     /* Kafka: where <server>.seq lives */
};

struct ing_qr {
	enum cfg_queue_backend backend;
	struct ing_spool *sp;
	struct ing_kafka_r *kr;
	struct sto_db *db;
	const struct cfg *cfg;
	char source[64];
	uint64_t after;    /* spool: last position committed in PostgreSQL */
	uint64_t read_to;  /* spool: last position handed out */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- writer --------------------------------------------------------------- */

int ing_qw_open(const struct cfg *cfg, struct ing_qw **out, char *err, size_t errlen)
{
	struct ing_qw *w = calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->backend = cfg->queue.backend;
	if (w->backend == CFG_QUEUE_SPOOL) {
		rc = ing_spool_open(cfg->queue.spool_path, cfg->queue.spool_max_bytes, &w->sp, err,
				    errlen);
	} else {
		if (asprintf(&w->seq_dir, "%s/producer", cfg->data_dir) < 0) {
			w->seq_dir = NULL;
			rc = -ENOMEM;
		} else if ((rc = cv_mkdir_p(w->seq_dir, 0700)) != 0) {
			snprintf(err, errlen, "%s: %s", w->seq_dir, strerror(-rc));
		} else {
			rc = ing_kafka_w_open(cfg, &w->kw, err, errlen);
		}
	}
	if (rc) {
		ing_qw_close(w);
		return rc;
	}
	*out = w;
	return 0;
}

void ing_qw_close(struct ing_qw *w)
{
	if (!w)
		return;
	ing_spool_close(w->sp);
	ing_kafka_w_close(w->kw);
	free(w->seq_dir);
	free(w);
}

static int seq_path(const struct ing_qw *w, const char *server, char *path, size_t len)
{
	if (snprintf(path, len, "%s/%s.seq", w->seq_dir, server) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

int ing_qw_load_seq(struct ing_qw *w, const char *server, int64_t *next_seq)
{
	char path[PATH_MAX], buf[32] = "";
	FILE *f;
	int rc;

	if (w->backend == CFG_QUEUE_SPOOL)
		return ing_spool_get_seq(w->sp, server, next_seq);
	if ((rc = seq_path(w, server, path, sizeof(path))) != 0)
		return rc;
	*next_seq = 1;
	f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	if (fgets(buf, sizeof(buf), f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
	if (cv_parse_i64(buf, next_seq) != 0 || *next_seq < 1) {
		cv_err("producer", "%s: corrupt sequence file", path);
		return -EINVAL;
	}
	return 0;
}

int ing_qw_write(struct ing_qw *w, struct ing_qrec *recs, size_t n, const char *server,
		 int64_t next_seq, int timeout_ms)
{
	int rc;

	if (w->backend == CFG_QUEUE_SPOOL) {
		struct iovec stack[64] = { 0 }, *iov = n <= 64 ? stack : malloc(n * sizeof(*iov));

		if (!iov)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			iov[i] = (struct iovec){ (void *)recs[i].data, recs[i].len };
		rc = ing_spool_append(w->sp, iov, n, server, next_seq, NULL);
		if (iov != stack)
			free(iov);
		for (size_t i = 0; i < n; i++)
			recs[i].status = rc;
		return rc;
	}
	/* Kafka: persist the sequence high-water mark first, so a crash after
	 * the broker took the batch never reuses a number. */
	{
		char path[PATH_MAX], buf[32];
		int len = snprintf(buf, sizeof(buf), "%" PRId64 "\n", next_seq);

		if ((rc = seq_path(w, server, path, sizeof(path))) != 0 ||
		    (rc = cv_write_file_atomic(path, buf, (size_t)len, 0600)) != 0) {
			for (size_t i = 0; i < n; i++)
				recs[i].status = rc;
			return rc;
		}
	}
	return ing_kafka_w_write(w->kw, recs, n, timeout_ms);
}

/* ---- reader --------------------------------------------------------------- */

void ing_qbatch_free(struct ing_qbatch *b)
{
	free(b->msgs);
	free(b->arena);
	memset(b, 0, sizeof(*b));
}

int ing_qbatch_add(struct ing_qbatch *b, int32_t partition, int64_t position, const void *data,
		   size_t len)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct ing_qmsg *m = realloc(b->msgs, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		b->msgs = m;
		b->cap = cap;
	}
	if (b->arena_len + len + 1 > b->arena_cap) {
		size_t cap = b->arena_cap ? b->arena_cap : 1 << 16;
		char *a;

		while (cap < b->arena_len + len + 1)
			cap *= 2;
		/* Messages point into the arena: turn them into offsets while it
		 * may move, then back into pointers. */
		for (size_t i = 0; i < b->n; i++)
			b->msgs[i].data = (const char *)(uintptr_t)(b->msgs[i].data - b->arena);
		a = realloc(b->arena, cap);
		if (!a) {
			for (size_t i = 0; i < b->n; i++)
				b->msgs[i].data = b->arena + (uintptr_t)b->msgs[i].data;
			return -ENOMEM;
		}
		for (size_t i = 0; i < b->n; i++)
			b->msgs[i].data = a + (uintptr_t)b->msgs[i].data;
		b->arena = a;
		b->arena_cap = cap;
	}
	memcpy(b->arena + b->arena_len, data, len);
	b->arena[b->arena_len + len] = '\0';
	b->msgs[b->n++] = (struct ing_qmsg){ partition, position, b->arena + b->arena_len, len };
	b->arena_len += len + 1;
	return 0;
}

static void qbatch_clear(struct ing_qbatch *b)
{
	b->n = 0;
	b->arena_len = 0;
}

static int kafka_pos(void *arg, const char *source, int32_t partition, int64_t *pos)
{
	struct ing_qr *r = arg;
	char err[STO_ERRLEN];
	int rc = sto_stage_position(r->db, source, partition, pos, err, sizeof(err));

	if (rc < 0)
		cv_err("ingest", "%s", err);
	return rc;
}

int ing_qr_open(const struct cfg *cfg, struct sto_db *db, struct ing_qr **out, char *err,
		size_t errlen)
{
	struct ing_qr *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->backend = cfg->queue.backend;
	r->db = db;
	r->cfg = cfg;
	if (r->backend == CFG_QUEUE_SPOOL) {
		int64_t pos = 0;

		rc = ing_spool_open(cfg->queue.spool_path, cfg->queue.spool_max_bytes, &r->sp, err,
				    errlen);
		if (rc)
			goto fail;
		snprintf(r->source, sizeof(r->source), "spool:%s", ing_spool_id(r->sp));
		rc = sto_stage_position(db, r->source, 0, &pos, err, errlen);
		if (rc < 0) {
			rc = -EIO;
			goto fail;
		}
		r->after = r->read_to = rc == 0 ? (uint64_t)pos : 0;
		/* Whatever PostgreSQL holds is safe: finish an interrupted trim. */
		if (r->after > 0 && (rc = ing_spool_trim(r->sp, r->after)) != 0) {
			snprintf(err, errlen, "spool trim: %s", strerror(-rc));
			goto fail;
		}
	} else {
		rc = ing_kafka_r_open(cfg, kafka_pos, r, &r->kr, err, errlen);
		if (rc)
			goto fail;
		snprintf(r->source, sizeof(r->source), "%s", ing_kafka_r_source(r->kr));
	}
	*out = r;
	return 0;
fail:
	ing_qr_close(r);
	return rc;
}

void ing_qr_close(struct ing_qr *r)
{
	if (!r)
		return;
	ing_spool_close(r->sp);
	ing_kafka_r_close(r->kr);
	free(r);
}

const char *ing_qr_source(const struct ing_qr *r)
{
	return r->source;
}

struct spool_fill {
	struct ing_qbatch *b;
	int rc;
};

static int spool_fill_cb(void *arg, uint64_t pos, const void *data, size_t len)
{
	struct spool_fill *f = arg;

	f->rc = ing_qbatch_add(f->b, 0, (int64_t)pos, data, len);
	return f->rc ? -1 : 0;
}

enum cv_result ing_qr_read(struct ing_qr *r, struct ing_qbatch *b, size_t max_records,
			   size_t max_bytes, int max_wait_ms, char *err, size_t errlen)
{
	int64_t deadline = cv_time_mono_ms() + max_wait_ms;

	qbatch_clear(b);
	if (r->backend == CFG_QUEUE_KAFKA)
		return ing_kafka_r_read(r->kr, b, max_records, max_bytes, max_wait_ms, err, errlen);

	/* The spool is shared with producers in other processes and has no
	 * cross-process wake-up, so poll: every 5 ms while waiting for the
	 * first record, then once more for a fuller batch. */
	for (;;) {
		struct spool_fill f = { b, 0 };
		int n = ing_spool_read(r->sp, r->read_to, max_records - b->n,
				       max_bytes > b->arena_len ? max_bytes - b->arena_len : 1,
				       spool_fill_cb, &f);

		if (n < 0) {
			snprintf(err, errlen, "spool read: %s", strerror(f.rc ? -f.rc : -n));
			return CV_RETRY;
		}
		if (n > 0)
			r->read_to = (uint64_t)b->msgs[b->n - 1].position;
		if (b->n >= max_records || b->arena_len >= max_bytes ||
		    cv_time_mono_ms() >= deadline)
			return CV_OK;
		sleep_ms(b->n ? 2 : 5);
	}
}

void ing_qr_committed(struct ing_qr *r, const struct ing_qbatch *b)
{
	int rc;

	if (r->backend != CFG_QUEUE_SPOOL || b->n == 0)
		return;
	r->after = (uint64_t)b->msgs[b->n - 1].position;
	/* A failed trim only delays space reuse: PostgreSQL has the position
	 * and the next open (or the next commit) trims again. */
	rc = ing_spool_trim(r->sp, r->after);
	if (rc)
		cv_warn("ingest", "spool trim up to %" PRIu64 ": %s", r->after, strerror(-rc));
}

int ing_qr_rewind(struct ing_qr *r, char *err, size_t errlen)
{
	if (r->backend == CFG_QUEUE_SPOOL) {
		int64_t pos = 0;
		int rc;

		/* Back to the position PostgreSQL holds, not to the last commit
		 * this process saw: a COMMIT whose answer was lost (the server
		 * restarted right after it) did advance it, and retrying those
		 * records from r->after would be refused forever ("already at
		 * or past"). */
		rc = sto_stage_position(r->db, r->source, 0, &pos, err, errlen);
		if (rc < 0)
			return -EIO;
		r->after = r->read_to = rc == 0 ? (uint64_t)pos : 0;
		if (r->after > 0 && (rc = ing_spool_trim(r->sp, r->after)) != 0)
			cv_warn("ingest", "spool trim up to %" PRIu64 ": %s", r->after,
				strerror(-rc));
		return 0;
	}
	/* Kafka: leave and rejoin the group; the assignment seeks every
	 * partition to the position stored in PostgreSQL. */
	ing_kafka_r_close(r->kr);
	r->kr = NULL;
	return ing_kafka_r_open(r->cfg, kafka_pos, r, &r->kr, err, errlen);
}

int64_t ing_qr_depth(struct ing_qr *r)
{
	struct ing_spool_stats st;

	if (r->backend == CFG_QUEUE_KAFKA)
		return ing_kafka_r_lag(r->kr);
	if (ing_spool_stats(r->sp, &st) != 0)
		return -1;
	return st.last_pos > r->after ? (int64_t)(st.last_pos - r->after) : 0;
}

/* ing_queue_depth()'s position lookup: PostgreSQL, keeping the reason. */
struct depth_pos {
	struct sto_db *db;
	char err[STO_ERRLEN];
};

static int depth_pos_fn(void *arg, const char *source, int32_t partition, int64_t *pos)
{
	struct depth_pos *d = arg;
	int rc = sto_stage_position(d->db, source, partition, pos, d->err, sizeof(d->err));

	return rc < 0 ? -EIO : rc;
}

static int64_t kafka_depth(const struct cfg *cfg, struct sto_db *db, char *err, size_t errlen)
{
	struct depth_pos d = { .db = db };
	int64_t lag;

	if (!db) {
		snprintf(err, errlen, "kafka: lag needs the stored positions (no database)");
		return -1;
	}
	lag = ing_kafka_lag(cfg, depth_pos_fn, &d, ING_QUEUE_DEPTH_TIMEOUT_MS, err, errlen);
	if (lag < 0 && d.err[0])
		snprintf(err, errlen, "stored position: %s", d.err);
	return lag;
}

int64_t ing_queue_depth(const struct cfg *cfg, struct sto_db *db, char *err, size_t errlen)
{
	struct ing_spool *sp;
	struct ing_spool_stats st;
	int64_t depth = -1;
	int rc;

	err[0] = '\0';
	if (cfg->queue.backend == CFG_QUEUE_KAFKA)
		return kafka_depth(cfg, db, err, errlen);
	if (ing_spool_open(cfg->queue.spool_path, cfg->queue.spool_max_bytes, &sp, err, errlen))
		return -1;
	if ((rc = ing_spool_stats(sp, &st)) == 0)
		depth = (int64_t)st.count;
	else
		snprintf(err, errlen, "spool statistics: %s", strerror(-rc));
	ing_spool_close(sp);
	return depth;
}
