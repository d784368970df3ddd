/*
 * kafka_lag — ing_kafka_lag() (contract in kafka.h): the consumer lag of
 * queue.kafka_topic for status and the /metrics scrape, without a reader.
 *
 * It is measured against the positions stored in PostgreSQL, the ones the
 * reader (kafka.c) seeks to, with a short-lived handle of its own, built by
 * the reader's ing_kafka_build_conf() (kafka_int.h), that never joins the
 * group; the group's offsets in Kafka stay empty, so they are never
 * consulted.  Runs in the caller's thread; no state outlives the call.
 */
#include "kafka.h"
#include "kafka_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cv_log.h"
#include "cv_time.h"

#define KAFKA_COMP "kafka"

/* The probe's librdkafka log lines: whatever made it fail reaches the caller
 * as one line in err, so "connection refused" while the brokers are down is
 * debug detail here, not an error on the operator's terminal. */
static void k_probe_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)level;
	cv_log(CV_LOG_DEBUG, KAFKA_COMP, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static int left_ms(int64_t deadline)
{
	int64_t left = deadline - cv_time_mono_ms();

	return left > 0 ? (int)left : 0;
}

int64_t ing_kafka_lag(const struct cfg *cfg, ing_kafka_pos_fn pos_fn, void *pos_arg,
		      int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = cv_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	const char *topic = cfg->queue.kafka_topic ? cfg->queue.kafka_topic : "";
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_t *rkt = NULL;
	const struct rd_kafka_metadata *md = NULL;
	const rd_kafka_metadata_topic_t *mt;
	rd_kafka_resp_err_t e;
	char rkerr[512], *source = NULL;
	int64_t lag = -1, sum = 0;

	err[0] = '\0';
	if (!pos_fn) {
		snprintf(err, errlen, "kafka: lag needs a position lookup");
		return -1;
	}
	if (asprintf(&source, "kafka:%s", topic) < 0) {
		source = NULL;
		snprintf(err, errlen, "kafka: out of memory");
		return -1;
	}
	/* The reader's configuration (brokers, security, consumer.*), so the
	 * probe reaches the cluster exactly as ingest does. */
	if (ing_kafka_build_conf(cfg, ING_KAFKA_CONSUMER, &conf, err, errlen) != 0)
		goto out;
	rd_kafka_conf_set_log_cb(conf, k_probe_log_cb);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
	if (!rk) {
		snprintf(err, errlen, "kafka: consumer: %s", rkerr);
		goto out;
	}
	conf = NULL; /* rd_kafka_new() succeeded: conf ownership transferred to rk */
	/* No subscribe, no assign: the handle never joins the group, so the
	 * running ingest sees no rebalance. */
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (!rkt) {
		snprintf(err, errlen, "kafka: topic %s: %s", topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		goto out;
	}
	e = rd_kafka_metadata(rk, 0, rkt, &md, left_ms(deadline));
	if (e) {
		md = NULL;
		snprintf(err, errlen, "kafka: metadata of topic %s within %d ms: %s", topic,
			 timeout_ms, rd_kafka_err2str(e));
		goto out;
	}
	if (md->topic_cnt != 1) {
		snprintf(err, errlen, "kafka: metadata of topic %s: %d topics in the answer", topic,
			 md->topic_cnt);
		goto out;
	}
	mt = &md->topics[0];
	if (mt->err || mt->partition_cnt <= 0) {
		snprintf(err, errlen, "kafka: topic %s: %s", topic,
			 mt->err ? rd_kafka_err2str(mt->err) : "no partitions");
		goto out;
	}
	for (int i = 0; i < mt->partition_cnt; i++) {
		int32_t p = mt->partitions[i].id;
		int64_t pos = -1, next, lo = -1, hi = -1;
		int rc;

		/* The stored position first, the watermarks after: the high
		 * watermark then is at least the stored position + 1 unless
		 * records were deleted, so the difference is not understated. */
		rc = pos_fn(pos_arg, source, p, &pos);
		if (rc < 0) {
			snprintf(err, errlen, "%s [%" PRId32 "]: stored position unavailable",
				 source, p);
			goto out;
		}
		if (left_ms(deadline) <= 0) {
			snprintf(err, errlen, "kafka: lag of topic %s: no answer within %d ms", topic,
				 timeout_ms);
			goto out;
		}
		e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, left_ms(deadline));
		if (e) {
			snprintf(err, errlen, "kafka: watermarks of %s [%" PRId32 "]: %s", topic, p,
				 rd_kafka_err2str(e));
			goto out;
		}
		/* Nothing stored: ingest starts at the beginning.  Stored below
		 * the low watermark: those records are gone (kr_note_gap says
		 * so when the reader meets the jump) and no longer wait. */
		next = rc == 0 ? pos + 1 : lo;
		if (next < lo)
			next = lo;
		if (hi > next)
			sum += hi - next;
	}
	lag = sum;
out:
	if (md)
		rd_kafka_metadata_destroy(md);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	if (rk)
		/* Never subscribed: nothing to leave, and no waiting for a
		 * coordinator that may be unreachable. */
		rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (conf)
		rd_kafka_conf_destroy(conf);
	free(source);
	return lag;
}
