/*
 * kafka — the Kafka backend of ingest/queue.h, through librdkafka (see
 * kafka.h for the contract, design.md §1/§3 for why).
 *
 * Ownership and threads: a struct ing_kafka_w / ing_kafka_r owns one
 * rd_kafka_t.  Each is used by one application thread at a time; every
 * callback we register (delivery report, rebalance, producer error) runs in
 * that thread, from inside rd_kafka_poll/flush/consumer_poll/consumer_close,
 * so the callbacks touch our structs without locks.  Only the log callback
 * runs on librdkafka's own threads, and it touches nothing of ours.
 *
 * Configuration: our defaults first, then cfg->queue.kafka_props.  A property
 * key may carry a "producer." or "consumer." prefix to apply to the writer or
 * the reader only (no librdkafka property starts with either); an unprefixed
 * key applies to both.  Properties that would break a guarantee are refused
 * with an error naming the key: enable.idempotence and acks (durability,
 * §3.1), enable.auto.commit / enable.auto.offset.store (positions live in
 * PostgreSQL, §1 ingest), auto.offset.reset=latest (would silently skip
 * records), and the keys queue.* already owns (bootstrap.servers, group.id)
 * or that would change the producer's kind (transactional.id).
 * Secrets: values are never logged nor put into error text for keys that
 * look secret (password, secret, key — the same rule as cfg_print()).
 *
 * Delivery semantics (writer): 0 means "a delivery report said persisted with
 * acks=all".  A record reported -EBUSY (timeout, queue full, broker down)
 * may still be delivered later by librdkafka (it was in flight, or the
 * broker came back before message.timeout.ms, which we default to
 * producer.busy_timeout_ms); the caller also re-sends it, so Kafka is
 * at-least-once on that path and staging deduplicates by event id
 * (design.md §3.2).  We never purge queued messages on timeout: with the
 * idempotent producer that would punch a hole in the sequence numbers the
 * broker expects.  Records of one room keep their order: once the local
 * queue stays full past the deadline, the rest of the batch is not produced.
 *
 * Positions (reader): librdkafka never commits.  On every assignment the
 * rebalance callback asks pos_fn for the stored position and assigns at
 * pos + 1; a partition whose lookup fails is assigned paused and is sought
 * and resumed once the lookup succeeds.  The reader also remembers, per
 * partition, the offset after the last record it returned and drops
 * anything below it, so no fetch race can hand the caller a record twice.
 *
 * Lag without a reader (status, /metrics): ing_kafka_lag(), kafka_lag.c,
 * built with this file's ing_kafka_build_conf() (kafka_int.h).
 */
#include "kafka.h"
#include "kafka_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cv_log.h"
#include "cv_time.h"

#define KAFKA_COMP "kafka"

/* Headroom over ingest.max_event_size for the key, record and batch framing,
 * so an event of exactly max_event_size is still accepted by the client. */
#define KAFKA_MSG_OVERHEAD 65536
/* How often a partition whose stored position could not be read is retried. */
#define KR_PENDING_RETRY_MS 1000
/* Bound on the synchronous seek that un-pauses such a partition. */
#define KR_SEEK_TIMEOUT_MS 2000
/* Bound on a watermark query for the lag (a status call, not the hot path). */
#define KR_WMARK_TIMEOUT_MS 1000
/* Poll slice while the producer queue is full or old records are in flight. */
#define KW_POLL_SLICE_MS 10

/* ---- classification -------------------------------------------------------- */

/*
 * RETRY is what a later identical attempt can cure without anyone touching
 * the data or the configuration: the client could not reach or hear from the
 * cluster, or the cluster is between states (leader moving, ISR shrunk,
 * coordinator loading).  The broker-side list follows Kafka's own
 * RetriableException subclasses.  Everything else, including codes this
 * table does not know, is FAIL: retrying an unknown error forever is the
 * fluent-bit mistake style.md warns about, and FAIL gets a human to look.
 *
 * UNKNOWN_TOPIC_OR_PART is FAIL although Kafka calls it retriable: with topic
 * auto-creation it is transient for a moment, but librdkafka already waits
 * that moment out (topic.metadata.propagation.max.ms) before reporting it to
 * us, so when we see it the topic really is missing — a deployment error.
 * Deployments create the topic (partitions, replication 3, min.insync 2)
 * rather than rely on auto-creation.
 *
 * _FATAL is FAIL: the handle is unusable.  The writer re-creates its handle
 * on the next write and reports such records -EBUSY (see kw_errno()); the
 * reader reports FAIL and the caller re-opens it.
 */
enum cv_result ing_kafka_classify(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
	case RD_KAFKA_RESP_ERR__PARTITION_EOF:
		return CV_OK;

	/* Local: reachability, timeouts, back-pressure, client in transition. */
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
	case RD_KAFKA_RESP_ERR__RESOLVE:
	case RD_KAFKA_RESP_ERR__WAIT_COORD:
	case RD_KAFKA_RESP_ERR__WAIT_CACHE:
	case RD_KAFKA_RESP_ERR__IN_PROGRESS:
	case RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR__RETRY:
	case RD_KAFKA_RESP_ERR__ISR_INSUFF:
	case RD_KAFKA_RESP_ERR__OUTDATED:
	case RD_KAFKA_RESP_ERR__NODE_UPDATE:
	case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
	case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
	case RD_KAFKA_RESP_ERR__DESTROY:
	case RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE:
	case RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED:
	case RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST:
	/* Broker: Kafka's retriable set. */
	case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
	case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
	case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
	case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
	case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
	case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
	case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
	case RD_KAFKA_RESP_ERR_LISTENER_NOT_FOUND:
	case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
	case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
	case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
	case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
	case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
		return CV_RETRY;

	default:
		return CV_FAIL;
	}
}

/* ---- configuration --------------------------------------------------------- */

static bool val_true(const char *v)
{
	/* librdkafka's own boolean spellings. */
	return strcasecmp(v, "true") == 0 || strcasecmp(v, "t") == 0 || strcmp(v, "1") == 0;
}

static bool val_false(const char *v)
{
	return strcasecmp(v, "false") == 0 || strcasecmp(v, "f") == 0 || strcmp(v, "0") == 0;
}

static bool val_acks_all(const char *v)
{
	return strcasecmp(v, "all") == 0 || strcmp(v, "-1") == 0;
}

static bool val_reset_ok(const char *v)
{
	/* "error" is allowed: it turns a retention gap into a loud FAIL. */
	return strcmp(v, "earliest") == 0 || strcmp(v, "smallest") == 0 ||
	       strcmp(v, "beginning") == 0 || strcmp(v, "error") == 0;
}

static bool val_never(const char *v)
{
	(void)v;
	return false;
}

/* The properties a deployment may not override, and why. */
static const struct k_guard {
	const char *key;
	bool (*ok)(const char *val);
	const char *why;
} k_guards[] = {
	{ "enable.idempotence", val_true,
	  "must stay true (records are durable only through the idempotent producer)" },
	{ "acks", val_acks_all, "must stay all (a record is durable only when all in-sync replicas have it)" },
	{ "request.required.acks", val_acks_all,
	  "must stay all (a record is durable only when all in-sync replicas have it)" },
	{ "enable.auto.commit", val_false,
	  "must stay false (positions are committed in PostgreSQL with the staged rows)" },
	{ "auto.commit.enable", val_false,
	  "must stay false (positions are committed in PostgreSQL with the staged rows)" },
	{ "enable.auto.offset.store", val_false,
	  "must stay false (positions are committed in PostgreSQL with the staged rows)" },
	{ "auto.offset.reset", val_reset_ok, "must be earliest or error (latest would skip records)" },
	{ "bootstrap.servers", val_never, "set queue.kafka_brokers instead" },
	{ "metadata.broker.list", val_never, "set queue.kafka_brokers instead" },
	{ "group.id", val_never, "set queue.kafka_group instead" },
	{ "transactional.id", val_never, "not supported (chatvault uses the idempotent producer)" },
};

static bool key_is_secret(const char *key)
{
	return strstr(key, "password") || strstr(key, "secret") || strstr(key, "key");
}

/* "file:line: " when the option came from a file, else "". */
static void opt_where(const struct cfg_opt *o, char *buf, size_t len)
{
	if (o && o->file && o->line > 0)
		snprintf(buf, len, "%s:%d: ", o->file, o->line);
	else if (len)
		buf[0] = '\0';
}

/*
 * Strip the role prefix: returns the librdkafka key for this role, or NULL
 * when the property belongs to the other role only.
 */
static const char *prop_key_for(const char *key, enum ing_kafka_role role)
{
	static const char pp[] = "producer.", cp[] = "consumer.";

	if (strncmp(key, pp, sizeof(pp) - 1) == 0)
		return role == ING_KAFKA_PRODUCER ? key + sizeof(pp) - 1 : NULL;
	if (strncmp(key, cp, sizeof(cp) - 1) == 0)
		return role == ING_KAFKA_CONSUMER ? key + sizeof(cp) - 1 : NULL;
	return key;
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val,
		    const struct cfg_opt *o, char *err, size_t errlen)
{
	char rkerr[512], where[256];

	if (rd_kafka_conf_set(conf, key, val, rkerr, sizeof(rkerr)) == RD_KAFKA_CONF_OK)
		return 0;
	opt_where(o, where, sizeof(where));
	/* librdkafka quotes a rejected value in its message: keep secrets out. */
	if (key_is_secret(key) && *val && strstr(rkerr, val))
		snprintf(err, errlen, "%squeue.kafka_props: %s: invalid value (not shown)", where,
			 o ? o->key : key);
	else
		snprintf(err, errlen, "%s%s%s: %s", where, o ? "queue.kafka_props: " : "",
			 o ? o->key : key, rkerr);
	return -EINVAL;
}

/* Refuse every property that would break a guarantee, whatever its role. */
static int check_props(const struct cfg *cfg, char *err, size_t errlen)
{
	char where[256];

	for (size_t i = 0; i < cfg->queue.nkafka_props; i++) {
		const struct cfg_opt *o = &cfg->queue.kafka_props[i];
		const char *key = o->key ? o->key : "";
		const char *val = o->str ? o->str : "";

		opt_where(o, where, sizeof(where));
		if (strcmp(key, "producer.") == 0 || strcmp(key, "consumer.") == 0 || !*key) {
			snprintf(err, errlen, "%squeue.kafka_props: \"%s\": empty property name",
				 where, key);
			return -EINVAL;
		}
		if (!prop_key_for(key, ING_KAFKA_PRODUCER))
			key += strlen("consumer.");
		else if (!prop_key_for(key, ING_KAFKA_CONSUMER))
			key += strlen("producer.");
		for (size_t g = 0; g < sizeof(k_guards) / sizeof(k_guards[0]); g++) {
			if (strcmp(key, k_guards[g].key) != 0 || k_guards[g].ok(val))
				continue;
			snprintf(err, errlen, "%squeue.kafka_props: %s: %s", where, o->key,
				 k_guards[g].why);
			return -EINVAL;
		}
	}
	return 0;
}

/* librdkafka's syslog levels → ours; runs on librdkafka's threads. */
static void k_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	enum cv_log_level l = level <= 2 ? CV_LOG_ERROR :
			      level <= 4 ? CV_LOG_WARN :
			      level <= 6 ? CV_LOG_INFO : CV_LOG_DEBUG;

	cv_log(l, KAFKA_COMP, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

/* Defaults, then the deployment's properties (kafka_int.h). */
int ing_kafka_build_conf(const struct cfg *cfg, enum ing_kafka_role role, rd_kafka_conf_t **out,
			 char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = NULL;
	char num[32];
	int64_t mmb;
	int rc;

	*out = NULL;
	if (!cfg->queue.kafka_brokers || !*cfg->queue.kafka_brokers) {
		snprintf(err, errlen, "queue.kafka_brokers: required with the kafka backend");
		return -EINVAL;
	}
	if (!cfg->queue.kafka_topic || !*cfg->queue.kafka_topic) {
		snprintf(err, errlen, "queue.kafka_topic: must not be empty");
		return -EINVAL;
	}
	if (role == ING_KAFKA_CONSUMER && (!cfg->queue.kafka_group || !*cfg->queue.kafka_group)) {
		snprintf(err, errlen, "queue.kafka_group: must not be empty");
		return -EINVAL;
	}
	rc = check_props(cfg, err, errlen);
	if (rc)
		return rc;

	conf = rd_kafka_conf_new();
	if (!conf) {
		snprintf(err, errlen, "kafka: out of memory");
		return -ENOMEM;
	}
	rd_kafka_conf_set_log_cb(conf, k_log_cb);

	/* Room for an event of ingest.max_event_size plus framing; larger
	 * events are refused per record (-EMSGSIZE) before they are produced. */
	mmb = (cfg->ingest.max_event_size > 0 ? cfg->ingest.max_event_size : 1048576) +
	      KAFKA_MSG_OVERHEAD;
	if (mmb > 1000000000)
		mmb = 1000000000;
	snprintf(num, sizeof(num), "%" PRId64, mmb);

	rc = conf_set(conf, "bootstrap.servers", cfg->queue.kafka_brokers, NULL, err, errlen);
	if (!rc)
		rc = conf_set(conf, "message.max.bytes", num, NULL, err, errlen);
	if (!rc && role == ING_KAFKA_PRODUCER) {
		rc = conf_set(conf, "client.id", "chatvault-producer", NULL, err, errlen);
		if (!rc)
			rc = conf_set(conf, "enable.idempotence", "true", NULL, err, errlen);
		if (!rc)
			rc = conf_set(conf, "acks", "all", NULL, err, errlen);
		if (!rc) {
			/* A record not delivered by the time the write gives up
			 * was answered BUSY and will be re-sent by the caller;
			 * letting librdkafka deliver the old copy minutes later
			 * would only double it.  So expire queued records about
			 * when the caller's wait (producer.busy_timeout_ms) ends.
			 * In-flight ones still finish or time out with their
			 * request, so this narrows, not closes, the window. */
			int mt = cfg->producer.busy_timeout_ms > 1000 ? cfg->producer.busy_timeout_ms
								      : 1000;

			snprintf(num, sizeof(num), "%d", mt);
			rc = conf_set(conf, "message.timeout.ms", num, NULL, err, errlen);
		}
		if (!rc && cfg->producer.linger_ms >= 0) {
			/* The write waits for delivery reports with rd_kafka_flush(),
			 * which ignores linger, so this only shapes batches of
			 * concurrent writers. */
			snprintf(num, sizeof(num), "%d", cfg->producer.linger_ms);
			rc = conf_set(conf, "linger.ms", num, NULL, err, errlen);
		}
	}
	if (!rc && role == ING_KAFKA_CONSUMER) {
		rc = conf_set(conf, "client.id", "chatvault-ingest", NULL, err, errlen);
		if (!rc)
			rc = conf_set(conf, "group.id", cfg->queue.kafka_group, NULL, err, errlen);
		if (!rc)
			rc = conf_set(conf, "enable.auto.commit", "false", NULL, err, errlen);
		if (!rc)
			rc = conf_set(conf, "enable.auto.offset.store", "false", NULL, err, errlen);
		if (!rc)
			rc = conf_set(conf, "auto.offset.reset", "earliest", NULL, err, errlen);
		if (!rc)
			rc = conf_set(conf, "enable.partition.eof", "false", NULL, err, errlen);
	}
	for (size_t i = 0; !rc && i < cfg->queue.nkafka_props; i++) {
		const struct cfg_opt *o = &cfg->queue.kafka_props[i];
		const char *key = prop_key_for(o->key, role);

		if (key)
			rc = conf_set(conf, key, o->str ? o->str : "", o, err, errlen);
	}
	if (rc) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	*out = conf;
	return 0;
}

/* ---- writer ---------------------------------------------------------------- */

/*
 * One write call's records.  Each produced message's opaque points at its
 * slot, not at the caller's ing_qrec: if the write times out, the caller's
 * array may be gone before the delivery report arrives, so the batch
 * outlives the call ("orphan") until its last report or the handle's end.
 */
struct kw_batch;

struct kw_slot {
	struct kw_batch *batch;
	int status;            /* 0 persisted; negative errno; -EBUSY until reported */
};

struct kw_batch {
	struct kw_batch *prev, *next;   /* on w->orphans once orphaned */
	size_t pending;                 /* produced, no delivery report yet */
	bool orphan;
	rd_kafka_resp_err_t first_err;  /* first failed report, for the message */
	struct kw_slot slot[];
};

struct ing_kafka_w {
	rd_kafka_conf_t *tmpl;      /* kept to re-create rk after a fatal error */
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	char *topic;
	int64_t max_event_size;
	bool fatal;                 /* rk hit a fatal error: re-create before use */
	struct kw_batch *orphans;
	char lasterr[512];
};

static int kw_errno(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return 0;
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
		return -EMSGSIZE;
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		return -EACCES;
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
		return -ENOENT;
	case RD_KAFKA_RESP_ERR_INVALID_MSG:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
	case RD_KAFKA_RESP_ERR__BAD_MSG:
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
		return -EINVAL;
	case RD_KAFKA_RESP_ERR__FATAL:
		/* Not durable, and a fresh producer (next write) can take the
		 * very same record: the caller should answer BUSY and retry. */
		return -EBUSY;
	default:
		return ing_kafka_classify(err) == CV_RETRY ? -EBUSY : -EIO;
	}
}

static void kw_unlink(struct ing_kafka_w *w, struct kw_batch *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		w->orphans = b->next;
	if (b->next)
		b->next->prev = b->prev;
}

/* Runs inside rd_kafka_poll()/flush() in the writer's thread. */
static void kw_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct ing_kafka_w *w = opaque;
	struct kw_slot *s = m->_private;
	struct kw_batch *b;

	(void)rk;
	if (!s)
		return;
	b = s->batch;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_PERSISTED) {
		s->status = 0;
	} else {
		s->status = m->err ? kw_errno(m->err) : -EBUSY;
		if (!b->first_err)
			b->first_err = m->err ? m->err : RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
	}
	if (--b->pending == 0 && b->orphan) {
		kw_unlink(w, b);
		free(b);
	}
}

/* Producer-level errors arrive here from rd_kafka_poll(); the per-message
 * truth is in the delivery reports, so this only records and logs. */
static void kw_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct ing_kafka_w *w = opaque;

	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		w->fatal = true;
		cv_err(KAFKA_COMP, "producer: fatal error, re-creating the producer: %s", reason);
	} else {
		cv_info(KAFKA_COMP, "producer: %s", reason);
	}
	snprintf(w->lasterr, sizeof(w->lasterr), "%s", reason);
}

static int kw_handle_open(struct ing_kafka_w *w, char *err, size_t errlen)
{
	char rkerr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_dup(w->tmpl);

	if (!conf) {
		snprintf(err, errlen, "kafka: out of memory");
		return -ENOMEM;
	}
	w->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
	if (!w->rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, errlen, "kafka: producer: %s", rkerr);
		return -EINVAL;
	}
	/* rd_kafka_new() succeeded: conf ownership transferred to rk. */
	w->rkt = rd_kafka_topic_new(w->rk, w->topic, NULL);
	if (!w->rkt) {
		snprintf(err, errlen, "kafka: topic %s: %s", w->topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		rd_kafka_destroy(w->rk);
		w->rk = NULL;
		return -EINVAL;
	}
	w->fatal = false;
	return 0;
}

/*
 * Drop the handle.  Every record a caller was told is durable already has
 * its report; what is still queued was answered -EBUSY, so purging it loses
 * nothing acknowledged and makes close fast even with the brokers down.
 */
static void kw_handle_close(struct ing_kafka_w *w)
{
	if (w->rkt)
		rd_kafka_topic_destroy(w->rkt);
	w->rkt = NULL;
	if (w->rk) {
		rd_kafka_purge(w->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		(void)rd_kafka_flush(w->rk, 1000);
		rd_kafka_destroy(w->rk);
		w->rk = NULL;
	}
	/* No callback can run any more: free what never got its reports. */
	while (w->orphans) {
		struct kw_batch *b = w->orphans;

		w->orphans = b->next;
		free(b);
	}
}

int ing_kafka_w_open(const struct cfg *cfg, struct ing_kafka_w **out, char *err, size_t errlen)
{
	struct ing_kafka_w *w = NULL;
	int rc;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w || !(w->topic = strdup(cfg->queue.kafka_topic ? cfg->queue.kafka_topic : ""))) {
		snprintf(err, errlen, "kafka: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	w->max_event_size = cfg->ingest.max_event_size > 0 ? cfg->ingest.max_event_size : 1048576;
	rc = ing_kafka_build_conf(cfg, ING_KAFKA_PRODUCER, &w->tmpl, err, errlen);
	if (rc)
		goto out;
	rd_kafka_conf_set_opaque(w->tmpl, w);
	rd_kafka_conf_set_dr_msg_cb(w->tmpl, kw_dr_cb);
	rd_kafka_conf_set_error_cb(w->tmpl, kw_error_cb);
	rc = kw_handle_open(w, err, errlen);
	if (rc)
		goto out;
	*out = w;
	w = NULL;
out:
	ing_kafka_w_close(w);
	return rc;
}

void ing_kafka_w_close(struct ing_kafka_w *w)
{
	if (!w)
		return;
	kw_handle_close(w);
	if (w->tmpl)
		rd_kafka_conf_destroy(w->tmpl);
	free(w->topic);
	free(w);
}

const char *ing_kafka_w_errstr(const struct ing_kafka_w *w)
{
	return w && w->lasterr[0] ? w->lasterr : "";
}

/* Produce one record, waiting out a full local queue until the deadline. */
static rd_kafka_resp_err_t kw_produce(struct ing_kafka_w *w, const struct ing_qrec *r,
				      struct kw_slot *slot, int64_t deadline)
{
	rd_kafka_resp_err_t e;

	for (;;) {
		e = rd_kafka_producev(w->rk, RD_KAFKA_V_RKT(w->rkt),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				      RD_KAFKA_V_VALUE((void *)r->data, r->len),
				      RD_KAFKA_V_KEY(r->key, r->key ? strlen(r->key) : 0),
				      RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return e;
		int64_t left = deadline - cv_time_mono_ms();
		if (left <= 0)
			return e;
		/* Serving delivery reports is what frees queue space. */
		rd_kafka_poll(w->rk, (int)(left < KW_POLL_SLICE_MS ? left : KW_POLL_SLICE_MS));
	}
}

int ing_kafka_w_write(struct ing_kafka_w *w, struct ing_qrec *recs, size_t n, int timeout_ms)
{
	int64_t deadline = cv_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct kw_batch *b = NULL;
	size_t i, nfail = 0;
	int rc = 0, first_other = 0;
	bool stop = false;

	if (!w || (n && !recs))
		return -EINVAL;
	if (n == 0)
		return 0;
	if (w->fatal) {
		char e[512];

		kw_handle_close(w);
		if (kw_handle_open(w, e, sizeof(e)) != 0) {
			snprintf(w->lasterr, sizeof(w->lasterr), "%s", e);
			for (i = 0; i < n; i++)
				recs[i].status = -EBUSY;
			return -EBUSY;
		}
	}
	b = calloc(1, sizeof(*b) + n * sizeof(b->slot[0]));
	if (!b) {
		for (i = 0; i < n; i++)
			recs[i].status = -ENOMEM;
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		b->slot[i].batch = b;
		b->slot[i].status = -EBUSY;
	}

	for (i = 0; i < n && !stop; i++) {
		const struct ing_qrec *r = &recs[i];
		rd_kafka_resp_err_t e;

		if (!r->data && r->len) {
			b->slot[i].status = -EINVAL;
			continue;
		}
		if ((int64_t)r->len > w->max_event_size) {
			b->slot[i].status = -EMSGSIZE;
			continue;
		}
		e = kw_produce(w, r, &b->slot[i], deadline);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			b->pending++;
			continue;
		}
		b->slot[i].status = kw_errno(e);
		if (!b->first_err)
			b->first_err = e;
		/* Still full at the deadline: leave the rest unproduced (-EBUSY)
		 * so a later record of a room never overtakes an earlier one. */
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			stop = true;
	}

	/* Wait for every report (flush ignores linger.ms).  Older orphans keep
	 * the out-queue non-empty, so then poll in slices and check ours. */
	while (b->pending > 0) {
		int64_t left = deadline - cv_time_mono_ms();

		if (left <= 0)
			break;
		if (w->orphans && left > KW_POLL_SLICE_MS)
			left = KW_POLL_SLICE_MS;
		(void)rd_kafka_flush(w->rk, (int)left);
	}
	if (b->pending > 0)
		rd_kafka_poll(w->rk, 0);
	if (!w->fatal) {
		char fe[512];

		if (rd_kafka_fatal_error(w->rk, fe, sizeof(fe)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			w->fatal = true;
			cv_err(KAFKA_COMP, "producer: fatal error, re-creating the producer: %s", fe);
		}
	}

	for (i = 0; i < n; i++) {
		int st = b->slot[i].status;

		recs[i].status = st;
		if (st == 0)
			continue;
		nfail++;
		if (st != -EBUSY && !first_other)
			first_other = st;
	}
	if (!nfail)
		w->lasterr[0] = '\0';
	if (nfail) {
		rc = first_other ? first_other : -EBUSY;
		if (b->pending)
			snprintf(w->lasterr, sizeof(w->lasterr),
				 "%zu of %zu records not durable: %zu delivery reports outstanding after %d ms%s%s",
				 nfail, n, b->pending, timeout_ms, b->first_err ? "; " : "",
				 b->first_err ? rd_kafka_err2str(b->first_err) : "");
		else
			snprintf(w->lasterr, sizeof(w->lasterr), "%zu of %zu records not durable: %s",
				 nfail, n,
				 b->first_err ? rd_kafka_err2str(b->first_err) : strerror(-rc));
		cv_debug(KAFKA_COMP, "producer: %s", w->lasterr);
	}

	if (b->pending > 0) {
		b->orphan = true;
		b->next = w->orphans;
		if (w->orphans)
			w->orphans->prev = b;
		w->orphans = b;
	} else {
		free(b);
	}
	return rc;
}

/* ---- reader ---------------------------------------------------------------- */

enum kr_pstate {
	KR_NONE = 0,     /* not assigned to us */
	KR_ACTIVE,       /* assigned at its stored position */
	KR_PENDING,      /* assigned but paused: stored position not known yet */
};

struct kr_part {
	enum kr_pstate state;
	int64_t next;    /* offset after the last record returned; -1 = any */
};

struct ing_kafka_r {
	rd_kafka_t *rk;
	char *topic;
	char *source;                /* "kafka:<topic>" */
	ing_kafka_pos_fn pos_fn;
	void *pos_arg;
	struct kr_part *parts;       /* indexed by partition id */
	size_t nparts;
	size_t npending;
	int64_t retry_at;            /* next lookup for PENDING partitions */
	rd_kafka_message_t *carry;   /* polled but did not fit the last batch */
	enum cv_result pend_res;     /* a FAIL seen while returning records */
	char pend_err[512];
};

static struct kr_part *kr_part(struct ing_kafka_r *r, int32_t p, bool grow)
{
	if (p < 0)
		return NULL;
	if ((size_t)p >= r->nparts) {
		size_t n = r->nparts ? r->nparts : 16;
		struct kr_part *np;

		if (!grow)
			return NULL;
		while (n <= (size_t)p)
			n *= 2;
		np = realloc(r->parts, n * sizeof(*np));
		if (!np)
			return NULL;
		memset(np + r->nparts, 0, (n - r->nparts) * sizeof(*np));
		r->parts = np;
		r->nparts = n;
	}
	return &r->parts[p];
}

static void kr_set_state(struct ing_kafka_r *r, struct kr_part *kp, enum kr_pstate st)
{
	if (kp->state == KR_PENDING)
		r->npending--;
	if (st == KR_PENDING)
		r->npending++;
	kp->state = st;
}

static void kr_drop_carry(struct ing_kafka_r *r)
{
	if (r->carry)
		rd_kafka_message_destroy(r->carry);
	r->carry = NULL;
}

/*
 * Look up where partition p resumes: 0 with *offset set, or -1 when the
 * stored position is unavailable right now.
 */
static int kr_lookup(struct ing_kafka_r *r, int32_t p, int64_t *offset)
{
	int64_t pos = -1;
	int rc = r->pos_fn(r->pos_arg, r->source, p, &pos);

	if (rc < 0) {
		cv_warn(KAFKA_COMP, "%s [%" PRId32 "]: stored position unavailable (%s), "
			"partition paused", r->source, p, strerror(-rc));
		return -1;
	}
	*offset = rc == 0 ? pos + 1 : RD_KAFKA_OFFSET_BEGINNING;
	return 0;
}

/*
 * Out of memory while taking an assignment: still answer the protocol (the
 * group must not wait on us) but keep every partition paused.  kr_accept()
 * drops records of partitions we do not track, so nothing is read twice or
 * skipped; the partitions are looked up again on the next rebalance.
 */
static void kr_assign_paused(struct ing_kafka_r *r, rd_kafka_t *rk,
			     rd_kafka_topic_partition_list_t *given, bool coop)
{
	rd_kafka_error_t *error = NULL;

	cv_err(KAFKA_COMP, "%s: out of memory taking %d partition(s): holding them paused",
	       r->source, given->cnt);
	if (coop)
		error = rd_kafka_incremental_assign(rk, given);
	else
		(void)rd_kafka_assign(rk, given);
	if (error)
		rd_kafka_error_destroy(error);
	(void)rd_kafka_pause_partitions(rk, given);
}

static void kr_on_assign(struct ing_kafka_r *r, rd_kafka_t *rk,
			 rd_kafka_topic_partition_list_t *given, bool coop)
{
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_copy(given);
	rd_kafka_topic_partition_list_t *paused = rd_kafka_topic_partition_list_new(4);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_error_t *error = NULL;
	int32_t maxp = -1;

	for (int i = 0; i < given->cnt; i++)
		if (given->elems[i].partition > maxp)
			maxp = given->elems[i].partition;
	/* Grow the table before touching any state, so OOM leaves none half-set. */
	if (!parts || !paused || (maxp >= 0 && !kr_part(r, maxp, true))) {
		kr_assign_paused(r, rk, given, coop);
		goto out;
	}
	if (!coop) {
		/* Eager: this list is the whole assignment. */
		for (size_t p = 0; p < r->nparts; p++)
			kr_set_state(r, &r->parts[p], KR_NONE);
	}
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &parts->elems[i];
		struct kr_part *kp = kr_part(r, tp->partition, false);
		int64_t off;

		if (kp && strcmp(tp->topic, r->topic) == 0 &&
		    kr_lookup(r, tp->partition, &off) == 0) {
			tp->offset = off;
			kp->next = off >= 0 ? off : -1;
			kr_set_state(r, kp, KR_ACTIVE);
		} else {
			/* Fetch from the end (cheapest) while paused; records
			 * that slip through are dropped in read, and the real
			 * position is sought before resuming. */
			tp->offset = RD_KAFKA_OFFSET_END;
			if (kp) {
				kp->next = -1;
				kr_set_state(r, kp, KR_PENDING);
			}
			rd_kafka_topic_partition_list_add(paused, tp->topic, tp->partition);
			r->retry_at = cv_time_mono_ms() + KR_PENDING_RETRY_MS;
		}
	}
	if (coop)
		error = rd_kafka_incremental_assign(rk, parts);
	else
		e = rd_kafka_assign(rk, parts);
	if (error) {
		cv_err(KAFKA_COMP, "%s: incremental assign: %s", r->source, rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	} else if (e) {
		cv_err(KAFKA_COMP, "%s: assign: %s", r->source, rd_kafka_err2str(e));
	}
	if (paused->cnt > 0)
		(void)rd_kafka_pause_partitions(rk, paused);
	cv_info(KAFKA_COMP, "%s: assigned %d partition(s) (%s), %d waiting for stored position",
		r->source, parts->cnt, coop ? "cooperative" : "eager", paused->cnt);
out:
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	if (paused)
		rd_kafka_topic_partition_list_destroy(paused);
}

static void kr_on_revoke(struct ing_kafka_r *r, rd_kafka_t *rk,
			 const rd_kafka_topic_partition_list_t *parts, bool coop)
{
	rd_kafka_error_t *error = NULL;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

	if (rd_kafka_assignment_lost(rk))
		cv_warn(KAFKA_COMP, "%s: assignment lost (session timed out?)", r->source);
	if (coop) {
		for (int i = 0; i < parts->cnt; i++) {
			struct kr_part *kp = kr_part(r, parts->elems[i].partition, false);

			if (kp)
				kr_set_state(r, kp, KR_NONE);
		}
		error = rd_kafka_incremental_unassign(rk, parts);
	} else {
		for (size_t i = 0; i < r->nparts; i++)
			kr_set_state(r, &r->parts[i], KR_NONE);
		e = rd_kafka_assign(rk, NULL);
	}
	if (error) {
		cv_err(KAFKA_COMP, "%s: incremental unassign: %s", r->source,
		       rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	} else if (e) {
		cv_err(KAFKA_COMP, "%s: unassign: %s", r->source, rd_kafka_err2str(e));
	}
}

/*
 * Runs inside rd_kafka_consumer_poll()/consumer_close() in the reader's
 * thread.  The caller commits a batch before it reads again (queue.h), so
 * when a partition is revoked here everything returned from it is already
 * stored and its next owner starts right after it.
 */
static void kr_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct ing_kafka_r *r = opaque;
	bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

	/* The carried record may now belong to another member. */
	kr_drop_carry(r);
	switch (err) {
	case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
		kr_on_assign(r, rk, parts, coop);
		break;
	case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
		kr_on_revoke(r, rk, parts, coop);
		break;
	default:
		cv_err(KAFKA_COMP, "%s: rebalance: %s", r->source, rd_kafka_err2str(err));
		kr_on_revoke(r, rk, parts, false);
		break;
	}
}

/* Retry the stored-position lookup of paused partitions; seek and resume
 * those that now have one. */
static void kr_retry_pending(struct ing_kafka_r *r)
{
	rd_kafka_topic_partition_list_t *seek = NULL, *resume = NULL;
	rd_kafka_error_t *error;

	if (r->npending == 0 || cv_time_mono_ms() < r->retry_at)
		return;
	r->retry_at = cv_time_mono_ms() + KR_PENDING_RETRY_MS;
	seek = rd_kafka_topic_partition_list_new((int)r->npending);
	resume = rd_kafka_topic_partition_list_new((int)r->npending);
	if (!seek || !resume)
		goto out;
	for (size_t p = 0; p < r->nparts; p++) {
		int64_t off;

		if (r->parts[p].state != KR_PENDING || kr_lookup(r, (int32_t)p, &off) != 0)
			continue;
		rd_kafka_topic_partition_list_add(seek, r->topic, (int32_t)p)->offset = off;
	}
	if (seek->cnt == 0)
		goto out;
	/* Synchronous: the position must be in place before the resume. */
	error = rd_kafka_seek_partitions(r->rk, seek, KR_SEEK_TIMEOUT_MS);
	if (error) {
		cv_warn(KAFKA_COMP, "%s: seek: %s", r->source, rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		goto out;
	}
	for (int i = 0; i < seek->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &seek->elems[i];
		struct kr_part *kp = kr_part(r, tp->partition, false);

		if (tp->err || !kp || kp->state != KR_PENDING) {
			if (tp->err)
				cv_warn(KAFKA_COMP, "%s [%" PRId32 "]: seek: %s", r->source,
					tp->partition, rd_kafka_err2str(tp->err));
			continue;
		}
		kp->next = tp->offset >= 0 ? tp->offset : -1;
		kr_set_state(r, kp, KR_ACTIVE);
		rd_kafka_topic_partition_list_add(resume, r->topic, tp->partition);
	}
	if (resume->cnt > 0)
		(void)rd_kafka_resume_partitions(r->rk, resume);
out:
	if (seek)
		rd_kafka_topic_partition_list_destroy(seek);
	if (resume)
		rd_kafka_topic_partition_list_destroy(resume);
}

int ing_kafka_r_open(const struct cfg *cfg, ing_kafka_pos_fn pos_fn, void *pos_arg,
		     struct ing_kafka_r **out, char *err, size_t errlen)
{
	struct ing_kafka_r *r = NULL;
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *sub = NULL;
	rd_kafka_resp_err_t e;
	char rkerr[512];
	int rc;

	*out = NULL;
	if (!pos_fn) {
		snprintf(err, errlen, "kafka: reader needs a position lookup");
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r || !(r->topic = strdup(cfg->queue.kafka_topic ? cfg->queue.kafka_topic : "")) ||
	    asprintf(&r->source, "kafka:%s", r->topic) < 0) {
		if (r)
			r->source = NULL;
		snprintf(err, errlen, "kafka: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	r->pos_fn = pos_fn;
	r->pos_arg = pos_arg;
	rc = ing_kafka_build_conf(cfg, ING_KAFKA_CONSUMER, &conf, err, errlen);
	if (rc)
		goto out;
	rd_kafka_conf_set_opaque(conf, r);
	rd_kafka_conf_set_rebalance_cb(conf, kr_rebalance_cb);
	/* No error_cb: consumer errors then reach rd_kafka_consumer_poll() as
	 * messages, where read() classifies them. */
	r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
	if (!r->rk) {
		snprintf(err, errlen, "kafka: consumer: %s", rkerr);
		rc = -EINVAL;
		goto out;
	}
	conf = NULL; /* rd_kafka_new() succeeded: conf ownership transferred to rk */
	rd_kafka_poll_set_consumer(r->rk);
	sub = rd_kafka_topic_partition_list_new(1);
	if (!sub) {
		snprintf(err, errlen, "kafka: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	rd_kafka_topic_partition_list_add(sub, r->topic, RD_KAFKA_PARTITION_UA);
	e = rd_kafka_subscribe(r->rk, sub);
	if (e) {
		snprintf(err, errlen, "kafka: subscribe %s: %s", r->topic, rd_kafka_err2str(e));
		rc = -EINVAL;
		goto out;
	}
	*out = r;
	r = NULL;
out:
	if (sub)
		rd_kafka_topic_partition_list_destroy(sub);
	if (conf)
		rd_kafka_conf_destroy(conf);
	ing_kafka_r_close(r);
	return rc;
}

void ing_kafka_r_close(struct ing_kafka_r *r)
{
	if (!r)
		return;
	/* A message holds a reference on rk: destroy it first or
	 * rd_kafka_destroy() waits for it forever. */
	kr_drop_carry(r);
	if (r->rk) {
		/* Leaves the group now (revoke runs our callback), so the
		 * partitions move without waiting for the session timeout. */
		rd_kafka_resp_err_t e = rd_kafka_consumer_close(r->rk);

		if (e)
			cv_warn(KAFKA_COMP, "%s: close: %s", r->source, rd_kafka_err2str(e));
		kr_drop_carry(r);
		rd_kafka_destroy(r->rk);
	}
	free(r->parts);
	free(r->source);
	free(r->topic);
	free(r);
}

const char *ing_kafka_r_source(const struct ing_kafka_r *r)
{
	return r->source;
}

/* Returns true when rkm is a record the caller has not seen and may take. */
static bool kr_accept(struct ing_kafka_r *r, const rd_kafka_message_t *rkm)
{
	struct kr_part *kp = kr_part(r, rkm->partition, false);

	if (!kp || kp->state != KR_ACTIVE)
		return false;    /* revoked, or paused awaiting its position */
	if (kp->next >= 0 && rkm->offset < kp->next)
		return false;    /* already returned: a fetch raced a seek */
	return true;
}

/*
 * Our topic has no compaction and no transactions, so offsets are
 * contiguous: a jump means records were deleted (retention, or
 * auto.offset.reset moved us) before they were staged.  Nothing can bring
 * them back here; say so loudly, once per jump.
 */
static void kr_note_gap(const struct ing_kafka_r *r, const rd_kafka_message_t *rkm)
{
	int64_t next = r->parts[rkm->partition].next;

	if (next >= 0 && rkm->offset > next)
		cv_err(KAFKA_COMP, "%s [%" PRId32 "]: offsets %" PRId64 "..%" PRId64
		       " are gone from the broker (retention?) and were never staged", r->source,
		       rkm->partition, next, rkm->offset - 1);
}

enum cv_result ing_kafka_r_read(struct ing_kafka_r *r, struct ing_qbatch *b, size_t max_records,
				size_t max_bytes, int max_wait_ms, char *err, size_t errlen)
{
	int64_t deadline = cv_time_mono_ms() + (max_wait_ms > 0 ? max_wait_ms : 0);
	size_t bytes = 0;

	b->n = 0;
	b->arena_len = 0;
	if (err && errlen)
		err[0] = '\0';
	if (r->pend_res != CV_OK) {
		enum cv_result res = r->pend_res;

		r->pend_res = CV_OK;
		if (err)
			snprintf(err, errlen, "%s", r->pend_err);
		return res;
	}
	kr_retry_pending(r);

	while (b->n < max_records) {
		rd_kafka_message_t *rkm;
		int64_t left = deadline - cv_time_mono_ms();

		if (r->carry) {
			rkm = r->carry;
			r->carry = NULL;
		} else {
			/* Wait only for the first record; then take what is
			 * already fetched. */
			rkm = rd_kafka_consumer_poll(r->rk, b->n ? 0 : (int)(left > 0 ? left : 0));
		}
		if (!rkm) {
			if (b->n || left <= 0)
				break;
			continue;
		}
		if (rkm->err) {
			rd_kafka_resp_err_t e = rkm->err;
			enum cv_result res;
			char msg[512];

			if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				rd_kafka_message_destroy(rkm);
				continue;
			}
			res = ing_kafka_classify(e);
			if (res == CV_OK)
				res = CV_RETRY;
			if (rkm->rkt)
				snprintf(msg, sizeof(msg), "%s [%" PRId32 "]: %s", r->source,
					 rkm->partition, rd_kafka_message_errstr(rkm));
			else
				snprintf(msg, sizeof(msg), "%s: %s", r->source,
					 rd_kafka_message_errstr(rkm));
			rd_kafka_message_destroy(rkm);
			if (b->n) {
				/* The records in hand must reach the caller; a
				 * permanent error is reported on the next read,
				 * a transient one will show again if it lasts. */
				if (res == CV_FAIL) {
					r->pend_res = res;
					snprintf(r->pend_err, sizeof(r->pend_err), "%s", msg);
				}
				break;
			}
			if (err)
				snprintf(err, errlen, "%s", msg);
			return res;
		}
		if (!kr_accept(r, rkm)) {
			rd_kafka_message_destroy(rkm);
			continue;
		}
		if (b->n && bytes + rkm->len > max_bytes) {
			r->carry = rkm;
			break;
		}
		if (ing_qbatch_add(b, rkm->partition, rkm->offset, rkm->payload, rkm->len) != 0) {
			r->carry = rkm;
			if (b->n)
				break;
			if (err)
				snprintf(err, errlen, "%s: out of memory for a batch", r->source);
			return CV_RETRY;
		}
		bytes += rkm->len;
		kr_note_gap(r, rkm);
		r->parts[rkm->partition].next = rkm->offset + 1;
		rd_kafka_message_destroy(rkm);
	}
	if (b->n == 0 && r->npending > 0) {
		if (err)
			snprintf(err, errlen, "%s: %zu partition(s) paused: stored position unavailable",
				 r->source, r->npending);
		return CV_RETRY;
	}
	return CV_OK;
}

int64_t ing_kafka_r_lag(struct ing_kafka_r *r)
{
	int64_t lag = 0;
	size_t nact = 0;

	if (!r || r->npending > 0)
		return -1;
	for (size_t p = 0; p < r->nparts; p++) {
		const struct kr_part *kp = &r->parts[p];
		int64_t lo = -1, hi = -1, pos;

		if (kp->state != KR_ACTIVE)
			continue;
		nact++;
		/* Cached from fetch responses; ask the leader only when the
		 * cache has nothing yet. */
		if (rd_kafka_get_watermark_offsets(r->rk, r->topic, (int32_t)p, &lo, &hi) != 0 ||
		    lo < 0 || hi < 0) {
			if (rd_kafka_query_watermark_offsets(r->rk, r->topic, (int32_t)p, &lo, &hi,
							     KR_WMARK_TIMEOUT_MS) != 0)
				return -1;
		}
		pos = kp->next >= 0 ? kp->next : lo;
		if (pos < lo)
			pos = lo;
		if (hi > pos)
			lag += hi - pos;
	}
	return nact ? lag : -1;
}
