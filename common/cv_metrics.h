/*
 * cv_metrics — a process's counters, gauges and histograms, rendered in the
 * Prometheus text exposition format 0.0.4.
 *
 * A registry is an object, never a global: `chatvault run` creates one with
 * cv_metrics_new_chatvault() and hands it to its workers through their
 * option structs (dlv_opts.metrics, ing_consume_opts.metrics); NULL there
 * means "no metrics" and every update function is then a no-op.
 *
 * A family (one metric name) has at most one label, whose values come from a
 * small set fixed by the deployment (adapter instance names, ingest|deliver,
 * db|ingest|…): at most CV_METRICS_MAX_SERIES values per family; updates for
 * further values are dropped, with one warning per family in the log.
 *
 * Threading: any thread may update any family at any time; updates are
 * lock-free atomics once a label value's series exists (the first update for
 * a new label value takes the family's mutex).  Rendering reads the atomics
 * while workers update them: each sample is exact at the moment it is read;
 * a histogram's _count is the sum of the bucket counts read, so its buckets
 * are always consistent with it (the _sum may be one observation ahead).
 */
#ifndef CV_METRICS_H
#define CV_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "cv_util.h"

#define CV_METRICS_MAX_FAMILIES 32
#define CV_METRICS_MAX_SERIES 32
#define CV_METRICS_MAX_BUCKETS 16
#define CV_METRICS_LABEL_MAX 64   /* longer label values are cut */

enum cv_metric_type { CV_METRIC_COUNTER, CV_METRIC_GAUGE, CV_METRIC_HISTOGRAM };

struct cv_metrics;

/* An empty registry; NULL when out of memory. */
struct cv_metrics *cv_metrics_new(void);
void cv_metrics_free(struct cv_metrics *m);

/*
 * Register a family; returns its id (0, 1, … in registration order) or
 * negative (-EINVAL bad name, label or buckets, -ENOSPC too many families,
 * -ENOMEM).  name and label follow [a-zA-Z_:][a-zA-Z0-9_:]* (label: no ':');
 * label NULL means unlabelled.  Histograms take 1..CV_METRICS_MAX_BUCKETS
 * strictly increasing upper bounds (+Inf is implicit).  Not thread-safe
 * against itself: register everything before handing the registry out.
 */
int cv_metrics_register(struct cv_metrics *m, enum cv_metric_type type, const char *name,
			const char *help, const char *label, const double *bounds, size_t nbounds)
	__attribute__((warn_unused_result));

/* Updates; m NULL, a bad id, a type mismatch or a full family: no-op.
 * label_value is ignored for unlabelled families (NULL is fine there). */
void cv_metrics_add(struct cv_metrics *m, int id, const char *label_value, uint64_t n);
void cv_metrics_set(struct cv_metrics *m, int id, const char *label_value, double v);
void cv_metrics_observe(struct cv_metrics *m, int id, const char *label_value, double v);

/* Create the series for label_value at 0 if it does not exist yet, so it is
 * rendered before its first update (e.g. every configured adapter). */
void cv_metrics_touch(struct cv_metrics *m, int id, const char *label_value);

/* Current value of a counter or gauge series (0 when absent); for tests. */
double cv_metrics_value(struct cv_metrics *m, int id, const char *label_value);

/* Append every family in registration order; 0 or -ENOMEM. */
int cv_metrics_render(struct cv_metrics *m, struct cv_buf *out)
	__attribute__((warn_unused_result));

/* Helpers for samples computed at scrape time and not kept in a registry:
 * the # HELP / # TYPE header, and one sample (label NULL: unlabelled). */
int cv_metrics_render_header(struct cv_buf *out, const char *name, const char *help,
			     enum cv_metric_type type) __attribute__((warn_unused_result));
int cv_metrics_render_sample(struct cv_buf *out, const char *name, const char *label,
			     const char *label_value, double v) __attribute__((warn_unused_result));

/* ---- chatvault's catalogue ------------------------------------------------- */

/* The families every chatvault process registers, ids in this order. */
enum cv_mid {
	CV_M_INGESTED,        /* counter: events staged by ingest (duplicates excluded) */
	CV_M_DUPLICATES,      /* counter: valid events already staged before */
	CV_M_QUARANTINED,     /* counter{stage=ingest|deliver}: events quarantined */
	CV_M_GAPS,            /* counter: new source.seq gaps recorded */
	CV_M_INGEST_RETRIES,  /* counter: batches read again after a transient failure */
	CV_M_DELIVERED,       /* counter{adapter}: events acknowledged by an adapter */
	CV_M_RETRIES,         /* counter{adapter}: batches put back (adapter RETRY, db error) */
	CV_M_BATCH_SECONDS,   /* histogram{stage=ingest|deliver}: one batch, start to commit */
	CV_M__COUNT
};

/* A registry holding the catalogue (every unlabelled or fixed-label series
 * present at 0 from the start); NULL when out of memory. */
struct cv_metrics *cv_metrics_new_chatvault(void);

#endif
