/*
 * kafka — the Kafka backend of ingest/queue.h, through librdkafka.
 *
 * Writer: idempotent producer (enable.idempotence=true, acks=all), records
 * keyed by room/conversation so a room stays ordered in one partition; a
 * batch is durable only when every delivery report said so.
 * Reader: a consumer group with enable.auto.commit=false and
 * enable.auto.offset.store=false; positions live in PostgreSQL (committed
 * with the staged rows) and the reader seeks to them on every partition
 * assignment (rebalance callback), so rebalances and broker outages neither
 * lose nor double a record.
 *
 * Error classes (style.md): transport, all brokers down, timed out, queue
 * full, not leader, … → CV_RETRY; message too large, invalid/unknown topic,
 * authorization, … → CV_FAIL.
 */
#ifndef ING_KAFKA_H
#define ING_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "cfg.h"
#include "cv_result.h"
#include "queue.h"

enum cv_result ing_kafka_classify(rd_kafka_resp_err_t err);

struct ing_kafka_w;
int ing_kafka_w_open(const struct cfg *cfg, struct ing_kafka_w **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void ing_kafka_w_close(struct ing_kafka_w *w);
/* Same contract as ing_qw_write (without the seq, see queue.c). */
int ing_kafka_w_write(struct ing_kafka_w *w, struct ing_qrec *recs, size_t n, int timeout_ms)
	__attribute__((warn_unused_result));
/* Why the last write failed (or what the producer last reported), for the
 * caller's one-line error; "" after a write that succeeded.  Valid until the
 * next call on w. */
const char *ing_kafka_w_errstr(const struct ing_kafka_w *w);

/*
 * Stored-position lookup used on partition assignment: return 0 and set
 * *pos to the last consumed offset (the reader starts at *pos + 1), 1 when
 * nothing is stored (start at the beginning), negative on error (the
 * assignment is retried).
 */
typedef int (*ing_kafka_pos_fn)(void *arg, const char *source, int32_t partition, int64_t *pos);

struct ing_kafka_r;
int ing_kafka_r_open(const struct cfg *cfg, ing_kafka_pos_fn pos_fn, void *pos_arg,
		     struct ing_kafka_r **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void ing_kafka_r_close(struct ing_kafka_r *r);
/* "kafka:<topic>" */
const char *ing_kafka_r_source(const struct ing_kafka_r *r);
enum cv_result ing_kafka_r_read(struct ing_kafka_r *r, struct ing_qbatch *b, size_t max_records,
				size_t max_bytes, int max_wait_ms, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Sum of lag over assigned partitions, -1 if unknown. */
int64_t ing_kafka_r_lag(struct ing_kafka_r *r);

/*
 * The consumer lag of queue.kafka_topic without a reader (kafka_lag.c; status, the
 * /metrics scrape): the sum over every partition of the high watermark
 * minus the next offset ingest will stage.
 *
 * Which position: the one stored in PostgreSQL (chatvault.ingest_positions,
 * source "kafka:<topic>"), read through pos_fn — the same lookup the reader
 * seeks to on every assignment — and NOT the group's committed offsets in
 * Kafka.  The reader never commits to Kafka (enable.auto.commit and
 * enable.auto.offset.store are false and guarded, nothing calls
 * rd_kafka_commit): the position commits in the transaction that stages the
 * rows, which is what makes ingest exactly-once.  The group's Kafka offsets
 * are therefore absent, and a lag computed from them would be the whole
 * topic forever.  Per partition: stored position p → next = p + 1; nothing
 * stored → the low watermark (the reader starts at the beginning); a next
 * below the low watermark (records deleted by retention before they were
 * staged) counts from the low watermark; a negative difference is 0.
 *
 * How: a short-lived consumer handle built like the reader's (same brokers,
 * security and consumer.* properties, group.id) that never subscribes nor
 * assigns, so it never joins the group and never makes the running ingest
 * rebalance; metadata for the topic's partitions, then per partition the
 * stored position and the watermarks from the partition's leader.  The
 * librdkafka calls together are bounded by timeout_ms (pos_fn is not: bound
 * it at its source, e.g. a statement timeout).
 *
 * Returns the lag (>= 0), or -1 with one line in err saying why (brokers
 * unreachable within timeout_ms, unknown topic, position lookup failed, …;
 * never a property value).
 */
int64_t ing_kafka_lag(const struct cfg *cfg, ing_kafka_pos_fn pos_fn, void *pos_arg,
		      int timeout_ms, char *err, size_t errlen);

/* Append one message to a batch (copies data into the arena); used by both
 * backends' readers.  Implemented in queue.c. */
int ing_qbatch_add(struct ing_qbatch *b, int32_t partition, int64_t position,
		   const void *data, size_t len) __attribute__((warn_unused_result));

#endif
