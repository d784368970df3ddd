/*
 * queue — the one interface over the two durable queues: the embedded
 * spool (ingest/spool.c, the default) and Kafka (ingest/kafka.c).
 *
 * Writer side (producers): ing_qw_write() makes a batch durable and says,
 * per record, whether it is: for the spool one fsynced LMDB transaction; for
 * Kafka the delivery reports of an idempotent, acks=all producer (never
 * merely "queued").  Records carry a key (the room, or for IM the
 * conversation) so Kafka keeps a room's events ordered in one partition.
 *
 * Reader side (the consumer): records come with (partition, position); the
 * consumer stores the last position per partition in PostgreSQL in the same
 * transaction as the staged rows, and the reader starts after those stored
 * positions (spool: on open; Kafka: on every partition assignment), so a
 * crash anywhere neither loses nor doubles a record.  ing_qr_committed()
 * tells the backend the positions are safe in PostgreSQL (the spool then
 * trims what was consumed).
 *
 * Threading: a writer and a reader are each used by one thread at a time.
 */
#ifndef ING_QUEUE_H
#define ING_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "cv_result.h"

struct sto_db;

/* ---- writer --------------------------------------------------------------- */

struct ing_qw;

struct ing_qrec {
	const char *data;   /* canonical event line */
	size_t len;
	const char *key;    /* partitioning key; may be NULL */
	int status;         /* out: 0 durable, -EBUSY full, other negative errno */
};

int ing_qw_open(const struct cfg *cfg, struct ing_qw **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void ing_qw_close(struct ing_qw *w);

/* The producer's next source.seq as stored durably by this backend
 * (spool: in the spool; Kafka: in <data_dir>/producer/<server>.seq). */
int ing_qw_load_seq(struct ing_qw *w, const char *server, int64_t *next_seq)
	__attribute__((warn_unused_result));

/*
 * Make recs[0..n) durable; next_seq is stored with them (spool: same
 * transaction).  Returns 0 when every record is durable; -EBUSY when the
 * queue is full or unreachable (records' status says which; for the spool
 * all or none); another negative errno on failure.  Blocks at most about
 * timeout_ms.
 */
int ing_qw_write(struct ing_qw *w, struct ing_qrec *recs, size_t n, const char *server,
		 int64_t next_seq, int timeout_ms) __attribute__((warn_unused_result));

/* ---- reader --------------------------------------------------------------- */

struct ing_qr;

struct ing_qmsg {
	int32_t partition;
	int64_t position;   /* spool position or Kafka offset */
	const char *data;   /* owned by the batch until the next read */
	size_t len;
};

struct ing_qbatch {
	struct ing_qmsg *msgs;
	size_t n, cap;
	char *arena;        /* storage for data */
	size_t arena_len, arena_cap;
};

void ing_qbatch_free(struct ing_qbatch *b);

/*
 * Open the reader.  db is used to load the stored positions (the reader
 * keeps no other database state).  *source receives the name under which
 * the consumer stores positions ("spool:<uuid>" or "kafka:<topic>").
 */
int ing_qr_open(const struct cfg *cfg, struct sto_db *db, struct ing_qr **out, char *err,
		size_t errlen) __attribute__((warn_unused_result));
void ing_qr_close(struct ing_qr *r);
const char *ing_qr_source(const struct ing_qr *r);

/*
 * Fill b (cleared first) with up to max_records records, waiting up to
 * max_wait_ms for the first one and a little longer for a fuller batch.
 * Returns CV_OK (b->n may be 0), CV_RETRY (broker down, …: err says why).
 */
enum cv_result ing_qr_read(struct ing_qr *r, struct ing_qbatch *b, size_t max_records,
			   size_t max_bytes, int max_wait_ms, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The batch's positions are committed in PostgreSQL. */
void ing_qr_committed(struct ing_qr *r, const struct ing_qbatch *b);

/* After a failed staging transaction: read again from the positions stored
 * in PostgreSQL.  0 or negative errno. */
int ing_qr_rewind(struct ing_qr *r, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Records waiting (spool: exact; Kafka: lag, -1 if unknown). */
int64_t ing_qr_depth(struct ing_qr *r);

/* Bound on the Kafka part of ing_queue_depth(): status and the /metrics
 * scrape must answer even when every broker is down. */
#define ING_QUEUE_DEPTH_TIMEOUT_MS 2000

/*
 * Records waiting for ingest, without opening a reader (status, /metrics);
 * -1 with one line in err when unknown.
 *   spool: records in the spool (db unused, may be NULL);
 *   Kafka: the consumer lag against the positions stored in PostgreSQL —
 *          the authoritative ones, see ing_kafka_lag() — read through db;
 *          the broker part takes at most ING_QUEUE_DEPTH_TIMEOUT_MS.
 */
int64_t ing_queue_depth(const struct cfg *cfg, struct sto_db *db, char *err, size_t errlen);

#endif
