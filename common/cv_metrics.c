/*
 * cv_metrics — see cv_metrics.h.
 *
 * Storage: a family owns a fixed array of series; a series is published by
 * storing its label and then bumping the family's atomic series count with
 * release order, so a reader that loads the count (acquire) sees complete
 * labels and never takes a lock.  Counter values and histogram buckets are
 * atomic uint64; gauge values and histogram sums are doubles kept as their
 * bit patterns in atomic uint64 (sums updated with a compare-exchange loop).
 */
#include "cv_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_log.h"

struct series {
	char label[CV_METRICS_LABEL_MAX];
	_Atomic uint64_t value;                              /* counter; gauge: double bits */
	_Atomic uint64_t buckets[CV_METRICS_MAX_BUCKETS + 1]; /* histogram, last = +Inf */
	_Atomic uint64_t sum;                                /* histogram: double bits */
};

struct family {
	enum cv_metric_type type;
	char *name, *help, *label;     /* label NULL: unlabelled */
	double bounds[CV_METRICS_MAX_BUCKETS];
	size_t nbounds;
	atomic_size_t nseries;
	atomic_bool warned;
	pthread_mutex_t lock;          /* serialises creating series */
	struct series series[CV_METRICS_MAX_SERIES];
};

struct cv_metrics {
	struct family *fam[CV_METRICS_MAX_FAMILIES];
	size_t nfam;
};

static uint64_t dbits(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

static double bitsd(uint64_t u)
{
	double v;

	memcpy(&v, &u, sizeof(v));
	return v;
}

struct cv_metrics *cv_metrics_new(void)
{
	return calloc(1, sizeof(struct cv_metrics));
}

static void family_free(struct family *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->lock);
	free(f->name);
	free(f->help);
	free(f->label);
	free(f);
}

void cv_metrics_free(struct cv_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfam; i++)
		family_free(m->fam[i]);
	free(m);
}

static bool valid_name(const char *s, bool colon)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':')))
			return false;
	return true;
}

/* Label values are cut to CV_METRICS_LABEL_MAX - 1 bytes. */
static void label_copy(char out[CV_METRICS_LABEL_MAX], const char *v)
{
	snprintf(out, CV_METRICS_LABEL_MAX, "%s", v ? v : "");
}

/* The series for label_value; created when missing (NULL when full). */
static struct series *series_get(struct family *f, const char *label_value)
{
	char want[CV_METRICS_LABEL_MAX];
	size_t n;
	struct series *s = NULL;

	if (!f->label)
		return &f->series[0];
	label_copy(want, label_value);
	n = atomic_load_explicit(&f->nseries, memory_order_acquire);
	for (size_t i = 0; i < n; i++)
		if (strcmp(f->series[i].label, want) == 0)
			return &f->series[i];
	pthread_mutex_lock(&f->lock);
	n = atomic_load_explicit(&f->nseries, memory_order_relaxed);
	for (size_t i = 0; i < n && !s; i++)
		if (strcmp(f->series[i].label, want) == 0)
			s = &f->series[i];
	if (!s && n < CV_METRICS_MAX_SERIES) {
		s = &f->series[n];
		memcpy(s->label, want, sizeof(want));
		atomic_store_explicit(&f->nseries, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&f->lock);
	if (!s && !atomic_exchange(&f->warned, true))
		cv_warn("metrics", "%s: more than %d label values; updates for \"%s\" and later"
			" ones are dropped", f->name, CV_METRICS_MAX_SERIES, want);
	return s;
}

int cv_metrics_register(struct cv_metrics *m, enum cv_metric_type type, const char *name,
			const char *help, const char *label, const double *bounds, size_t nbounds)
{
	struct family *f;

	if (!m || !valid_name(name, true) || (label && !valid_name(label, false)) ||
	    (label && strcmp(label, "le") == 0 && type == CV_METRIC_HISTOGRAM))
		return -EINVAL;
	if (type == CV_METRIC_HISTOGRAM) {
		if (nbounds == 0 || nbounds > CV_METRICS_MAX_BUCKETS)
			return -EINVAL;
		for (size_t i = 0; i < nbounds; i++)
			if (isnan(bounds[i]) || isinf(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
				return -EINVAL;
	}
	if (m->nfam >= CV_METRICS_MAX_FAMILIES)
		return -ENOSPC;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	f->label = label ? strdup(label) : NULL;
	if (!f->name || !f->help || (label && !f->label)) {
		family_free(f);
		return -ENOMEM;
	}
	if (type == CV_METRIC_HISTOGRAM) {
		memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
		f->nbounds = nbounds;
	}
	if (!label)
		atomic_store(&f->nseries, 1);   /* the one series, label "" */
	m->fam[m->nfam] = f;
	return (int)m->nfam++;
}

static struct family *family(struct cv_metrics *m, int id, enum cv_metric_type type)
{
	if (!m || id < 0 || (size_t)id >= m->nfam || m->fam[id]->type != type)
		return NULL;
	return m->fam[id];
}

void cv_metrics_add(struct cv_metrics *m, int id, const char *label_value, uint64_t n)
{
	struct family *f = family(m, id, CV_METRIC_COUNTER);
	struct series *s = f ? series_get(f, label_value) : NULL;

	if (s)
		atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void cv_metrics_set(struct cv_metrics *m, int id, const char *label_value, double v)
{
	struct family *f = family(m, id, CV_METRIC_GAUGE);
	struct series *s = f ? series_get(f, label_value) : NULL;

	if (s)
		atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

void cv_metrics_observe(struct cv_metrics *m, int id, const char *label_value, double v)
{
	struct family *f = family(m, id, CV_METRIC_HISTOGRAM);
	struct series *s;
	uint64_t old;
	size_t b = 0;

	if (!f || isnan(v) || !(s = series_get(f, label_value)))
		return;
	while (b < f->nbounds && v > f->bounds[b])
		b++;
	old = atomic_load_explicit(&s->sum, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&s->sum, &old, dbits(bitsd(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
	atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
}

void cv_metrics_touch(struct cv_metrics *m, int id, const char *label_value)
{
	if (m && id >= 0 && (size_t)id < m->nfam)
		(void)series_get(m->fam[id], label_value);
}

double cv_metrics_value(struct cv_metrics *m, int id, const char *label_value)
{
	char want[CV_METRICS_LABEL_MAX];
	struct family *f;
	size_t n;

	if (!m || id < 0 || (size_t)id >= m->nfam)
		return 0;
	f = m->fam[id];
	label_copy(want, f->label ? label_value : "");
	n = atomic_load_explicit(&f->nseries, memory_order_acquire);
	for (size_t i = 0; i < n; i++) {
		uint64_t v = atomic_load(&f->series[i].value);

		if (strcmp(f->series[i].label, want) != 0)
			continue;
		return f->type == CV_METRIC_GAUGE ? bitsd(v) : (double)v;
	}
	return 0;
}

/* ---- rendering ---------------------------------------------------------------- */

static const char *type_name(enum cv_metric_type t)
{
	return t == CV_METRIC_COUNTER ? "counter" : t == CV_METRIC_GAUGE ? "gauge" : "histogram";
}

/* Text format 0.0.4 numbers: integers without exponent, NaN, +Inf, -Inf. */
static int put_double(struct cv_buf *b, double v)
{
	if (isnan(v))
		return cv_buf_printf(b, "NaN");
	if (isinf(v))
		return cv_buf_printf(b, "%s", v > 0 ? "+Inf" : "-Inf");
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		return cv_buf_printf(b, "%.0f", v);
	return cv_buf_printf(b, "%.15g", v);
}

/* HELP text: \\ and \n escaped; label values also \". */
static int put_escaped(struct cv_buf *b, const char *s, bool quote)
{
	for (; s && *s; s++) {
		int rc;

		if (*s == '\\')
			rc = cv_buf_append(b, "\\\\", 2);
		else if (*s == '\n')
			rc = cv_buf_append(b, "\\n", 2);
		else if (quote && *s == '"')
			rc = cv_buf_append(b, "\\\"", 2);
		else
			rc = cv_buf_append(b, s, 1);
		if (rc)
			return rc;
	}
	return 0;
}

int cv_metrics_render_header(struct cv_buf *out, const char *name, const char *help,
			     enum cv_metric_type type)
{
	if (cv_buf_printf(out, "# HELP %s ", name) || put_escaped(out, help, false) ||
	    cv_buf_printf(out, "\n# TYPE %s %s\n", name, type_name(type)))
		return -ENOMEM;
	return 0;
}

/* name{label="value"[,le="x"]} — extra is an already formatted le value. */
static int put_series_name(struct cv_buf *b, const char *name, const char *suffix,
			   const char *label, const char *value, const char *le)
{
	if (cv_buf_printf(b, "%s%s", name, suffix))
		return -ENOMEM;
	if (!label && !le)
		return 0;
	if (cv_buf_append(b, "{", 1))
		return -ENOMEM;
	if (label && (cv_buf_printf(b, "%s=\"", label) || put_escaped(b, value, true) ||
		      cv_buf_append(b, "\"", 1)))
		return -ENOMEM;
	if (le && cv_buf_printf(b, "%sle=\"%s\"", label ? "," : "", le))
		return -ENOMEM;
	return cv_buf_append(b, "}", 1) ? -ENOMEM : 0;
}

int cv_metrics_render_sample(struct cv_buf *out, const char *name, const char *label,
			     const char *label_value, double v)
{
	if (put_series_name(out, name, "", label, label_value, NULL) || cv_buf_append(out, " ", 1) ||
	    put_double(out, v) || cv_buf_append(out, "\n", 1))
		return -ENOMEM;
	return 0;
}

static int render_histogram(struct cv_buf *b, const struct family *f, struct series *s)
{
	uint64_t cum = 0;
	char le[40];

	for (size_t i = 0; i <= f->nbounds; i++) {
		cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
		if (i < f->nbounds)
			snprintf(le, sizeof(le), "%.15g", f->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		if (put_series_name(b, f->name, "_bucket", f->label, s->label, le) ||
		    cv_buf_printf(b, " %" PRIu64 "\n", cum))
			return -ENOMEM;
	}
	if (put_series_name(b, f->name, "_sum", f->label, s->label, NULL) ||
	    cv_buf_append(b, " ", 1) ||
	    put_double(b, bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed))) ||
	    cv_buf_append(b, "\n", 1) ||
	    put_series_name(b, f->name, "_count", f->label, s->label, NULL) ||
	    cv_buf_printf(b, " %" PRIu64 "\n", cum))
		return -ENOMEM;
	return 0;
}

int cv_metrics_render(struct cv_metrics *m, struct cv_buf *out)
{
	for (size_t i = 0; m && i < m->nfam; i++) {
		struct family *f = m->fam[i];
		size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);

		if (cv_metrics_render_header(out, f->name, f->help, f->type))
			return -ENOMEM;
		for (size_t k = 0; k < n; k++) {
			struct series *s = &f->series[k];
			uint64_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
			int rc;

			if (f->type == CV_METRIC_HISTOGRAM)
				rc = render_histogram(out, f, s);
			else if (f->type == CV_METRIC_GAUGE)
				rc = cv_metrics_render_sample(out, f->name, f->label, s->label, bitsd(v));
			else
				rc = put_series_name(out, f->name, "", f->label, s->label, NULL) ||
				     cv_buf_printf(out, " %" PRIu64 "\n", v) ? -ENOMEM : 0;
			if (rc)
				return -ENOMEM;
		}
	}
	return 0;
}

/* ---- chatvault's catalogue ------------------------------------------------- */

/* Batch durations: 5 ms (a small ingest batch) to a minute (a slow archive
 * write); the default ingest batch of 5000 lands around 0.1–1 s. */
static const double batch_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
				       1, 2.5, 5, 10, 30, 60 };

struct cv_metrics *cv_metrics_new_chatvault(void)
{
	static const struct {
		enum cv_mid id;
		enum cv_metric_type type;
		const char *name, *label, *help;
	} cat[] = {
		{ CV_M_INGESTED, CV_METRIC_COUNTER, "chatvault_events_ingested_total", NULL,
		  "Events staged into PostgreSQL by ingest (duplicates not counted)." },
		{ CV_M_DUPLICATES, CV_METRIC_COUNTER, "chatvault_events_duplicate_total", NULL,
		  "Valid events not staged again because their id was already staged." },
		{ CV_M_QUARANTINED, CV_METRIC_COUNTER, "chatvault_events_quarantined_total", "stage",
		  "Events quarantined: invalid in the queue (ingest) or failed by an adapter (deliver)." },
		{ CV_M_GAPS, CV_METRIC_COUNTER, "chatvault_sequence_gaps_total", NULL,
		  "New gaps in a producer's source.seq recorded by ingest." },
		{ CV_M_INGEST_RETRIES, CV_METRIC_COUNTER, "chatvault_ingest_retries_total", NULL,
		  "Ingest batches read again after a transient queue or database failure." },
		{ CV_M_DELIVERED, CV_METRIC_COUNTER, "chatvault_events_delivered_total", "adapter",
		  "Events acknowledged by an adapter instance (committed with its cursor)." },
		{ CV_M_RETRIES, CV_METRIC_COUNTER, "chatvault_delivery_retries_total", "adapter",
		  "Delivery batches put back for a later attempt (adapter RETRY or database error)." },
		{ CV_M_BATCH_SECONDS, CV_METRIC_HISTOGRAM, "chatvault_batch_duration_seconds", "stage",
		  "Time of one committed batch: ingest from read to commit, deliver from lease to "
		  "commit." },
	};
	struct cv_metrics *m = cv_metrics_new();

	if (!m)
		return NULL;
	for (size_t i = 0; i < sizeof(cat) / sizeof(cat[0]); i++) {
		bool h = cat[i].type == CV_METRIC_HISTOGRAM;

		if (cv_metrics_register(m, cat[i].type, cat[i].name, cat[i].help, cat[i].label,
					h ? batch_bounds : NULL,
					h ? sizeof(batch_bounds) / sizeof(batch_bounds[0]) : 0) !=
		    (int)cat[i].id) {
			cv_metrics_free(m);
			return NULL;
		}
	}
	cv_metrics_touch(m, CV_M_QUARANTINED, "ingest");
	cv_metrics_touch(m, CV_M_QUARANTINED, "deliver");
	cv_metrics_touch(m, CV_M_BATCH_SECONDS, "ingest");
	cv_metrics_touch(m, CV_M_BATCH_SECONDS, "deliver");
	return m;
}
