/*
 * test_metrics — common/cv_metrics: exposition text exactly as Prometheus
 * reads it (text format 0.0.4), label escaping, the NULL registry, and
 * counters/histograms updated from several threads at once adding up
 * exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_metrics.h"
#include "cv_metrics.h"

static char *render(struct cv_metrics *m)
{
	struct cv_buf b = { 0 };
	char *s;

	assert_int_equal(cv_metrics_render(m, &b), 0);
	s = strndup(b.data ? b.data : "", b.len);
	cv_buf_free(&b);
	return s;
}

static void test_counter_text(void **state)
{
	struct cv_metrics *m = cv_metrics_new();
	int plain, lab;
	char *s;

	(void)state;
	plain = cv_metrics_register(m, CV_METRIC_COUNTER, "x_events_total", "Events seen.", NULL,
				    NULL, 0);
	lab = cv_metrics_register(m, CV_METRIC_COUNTER, "x_delivered_total", "Per adapter.",
				  "adapter", NULL, 0);
	assert_int_equal(plain, 0);
	assert_int_equal(lab, 1);
	s = render(m);
	/* An unlabelled counter is there at 0; a labelled one has no series yet. */
	assert_string_equal(s, "# HELP x_events_total Events seen.\n"
			       "# TYPE x_events_total counter\n"
			       "x_events_total 0\n"
			       "# HELP x_delivered_total Per adapter.\n"
			       "# TYPE x_delivered_total counter\n");
	free(s);
	cv_metrics_add(m, plain, NULL, 5000);
	cv_metrics_add(m, plain, "ignored", 1);
	cv_metrics_add(m, lab, "archive", 7);
	cv_metrics_touch(m, lab, "xml");
	cv_metrics_add(m, lab, "archive", 3);
	s = render(m);
	assert_string_equal(s, "# HELP x_events_total Events seen.\n"
			       "# TYPE x_events_total counter\n"
			       "x_events_total 5001\n"
			       "# HELP x_delivered_total Per adapter.\n"
			       "# TYPE x_delivered_total counter\n"
			       "x_delivered_total{adapter=\"archive\"} 10\n"
			       "x_delivered_total{adapter=\"xml\"} 0\n");
	free(s);
	assert_true(cv_metrics_value(m, lab, "archive") == 10.0);
	assert_true(cv_metrics_value(m, lab, "nosuch") == 0.0);
	/* Type mismatches are no-ops, not corruption. */
	cv_metrics_set(m, plain, NULL, 99);
	cv_metrics_observe(m, plain, NULL, 1);
	assert_true(cv_metrics_value(m, plain, NULL) == 5001.0);
	cv_metrics_free(m);
}

static void test_histogram_text(void **state)
{
	static const double bounds[] = { 0.1, 1, 2.5 };
	struct cv_metrics *m = cv_metrics_new();
	int h;
	char *s;

	(void)state;
	h = cv_metrics_register(m, CV_METRIC_HISTOGRAM, "x_batch_seconds", "Batch time.", "stage",
				bounds, 3);
	assert_int_equal(h, 0);
	cv_metrics_touch(m, h, "deliver");
	cv_metrics_observe(m, h, "ingest", 0.05);
	cv_metrics_observe(m, h, "ingest", 0.1);   /* le is inclusive */
	cv_metrics_observe(m, h, "ingest", 2);
	cv_metrics_observe(m, h, "ingest", 7.25);
	s = render(m);
	assert_string_equal(s, "# HELP x_batch_seconds Batch time.\n"
			       "# TYPE x_batch_seconds histogram\n"
			       "x_batch_seconds_bucket{stage=\"deliver\",le=\"0.1\"} 0\n"
			       "x_batch_seconds_bucket{stage=\"deliver\",le=\"1\"} 0\n"
			       "x_batch_seconds_bucket{stage=\"deliver\",le=\"2.5\"} 0\n"
			       "x_batch_seconds_bucket{stage=\"deliver\",le=\"+Inf\"} 0\n"
			       "x_batch_seconds_sum{stage=\"deliver\"} 0\n"
			       "x_batch_seconds_count{stage=\"deliver\"} 0\n"
			       "x_batch_seconds_bucket{stage=\"ingest\",le=\"0.1\"} 2\n"
			       "x_batch_seconds_bucket{stage=\"ingest\",le=\"1\"} 2\n"
			       "x_batch_seconds_bucket{stage=\"ingest\",le=\"2.5\"} 3\n"
			       "x_batch_seconds_bucket{stage=\"ingest\",le=\"+Inf\"} 4\n"
			       "x_batch_seconds_sum{stage=\"ingest\"} 9.4\n"
			       "x_batch_seconds_count{stage=\"ingest\"} 4\n");
	free(s);
	cv_metrics_free(m);
}

static void test_gauge_and_helpers(void **state)
{
	struct cv_metrics *m = cv_metrics_new();
	struct cv_buf b = { 0 };
	int g;
	char *s;

	(void)state;
	g = cv_metrics_register(m, CV_METRIC_GAUGE, "x_up", "Up.", "component", NULL, 0);
	cv_metrics_set(m, g, "db", 1);
	cv_metrics_set(m, g, "db", 0);
	cv_metrics_set(m, g, "age", 0.25);
	s = render(m);
	assert_string_equal(s, "# HELP x_up Up.\n# TYPE x_up gauge\n"
			       "x_up{component=\"db\"} 0\nx_up{component=\"age\"} 0.25\n");
	free(s);
	assert_int_equal(cv_metrics_render_header(&b, "x_info", "Line one\nback\\slash",
						  CV_METRIC_GAUGE), 0);
	assert_int_equal(cv_metrics_render_sample(&b, "x_info", "version", "1.0", 1), 0);
	assert_int_equal(cv_metrics_render_sample(&b, "x_age_seconds", NULL, NULL, 1.0 / 0.0), 0);
	assert_int_equal(cv_metrics_render_sample(&b, "x_big", NULL, NULL, 123456789012.0), 0);
	assert_int_equal(cv_buf_append(&b, "", 1), 0);
	assert_string_equal(b.data, "# HELP x_info Line one\\nback\\\\slash\n# TYPE x_info gauge\n"
				    "x_info{version=\"1.0\"} 1\nx_age_seconds +Inf\n"
				    "x_big 123456789012\n");
	cv_buf_free(&b);
	cv_metrics_free(m);
}

static void test_label_escaping(void **state)
{
	struct cv_metrics *m = cv_metrics_new();
	char longv[200];
	int c;
	char *s;

	(void)state;
	c = cv_metrics_register(m, CV_METRIC_COUNTER, "x_total", "T.", "adapter", NULL, 0);
	cv_metrics_add(m, c, "a\"b\\c\nd", 1);
	memset(longv, 'z', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	cv_metrics_add(m, c, longv, 2);
	cv_metrics_add(m, c, longv, 2);   /* cut to the same series */
	s = render(m);
	assert_non_null(strstr(s, "x_total{adapter=\"a\\\"b\\\\c\\nd\"} 1\n"));
	{
		char want[CV_METRICS_LABEL_MAX + 64];

		snprintf(want, sizeof(want), "x_total{adapter=\"%.*s\"} 4\n",
			 CV_METRICS_LABEL_MAX - 1, longv);
		assert_non_null(strstr(s, want));
	}
	free(s);
	cv_metrics_free(m);
}

static void test_register_rejects(void **state)
{
	static const double bad[] = { 1, 1 };
	static const double ok[] = { 1 };
	struct cv_metrics *m = cv_metrics_new();

	(void)state;
	assert_true(cv_metrics_register(m, CV_METRIC_COUNTER, "9bad", "", NULL, NULL, 0) < 0);
	assert_true(cv_metrics_register(m, CV_METRIC_COUNTER, "bad-name", "", NULL, NULL, 0) < 0);
	assert_true(cv_metrics_register(m, CV_METRIC_COUNTER, "ok", "", "a:b", NULL, 0) < 0);
	assert_true(cv_metrics_register(m, CV_METRIC_HISTOGRAM, "h", "", NULL, bad, 2) < 0);
	assert_true(cv_metrics_register(m, CV_METRIC_HISTOGRAM, "h", "", NULL, ok, 0) < 0);
	assert_true(cv_metrics_register(m, CV_METRIC_HISTOGRAM, "h", "", "le", ok, 1) < 0);
	assert_int_equal(cv_metrics_register(m, CV_METRIC_HISTOGRAM, "h", "", NULL, ok, 1), 0);
	/* Full families drop further label values instead of growing. */
	for (int i = 0; i < CV_METRICS_MAX_SERIES + 5; i++) {
		char v[16];

		snprintf(v, sizeof(v), "v%d", i);
		cv_metrics_touch(m, 0, v);
	}
	cv_metrics_free(m);
	/* A NULL registry: every update is a no-op. */
	cv_metrics_add(NULL, 0, "x", 1);
	cv_metrics_set(NULL, 0, "x", 1);
	cv_metrics_observe(NULL, 0, "x", 1);
	cv_metrics_free(NULL);
}

static void test_catalogue(void **state)
{
	struct cv_metrics *m = cv_metrics_new_chatvault();
	char *s;

	(void)state;
	assert_non_null(m);
	s = render(m);
	assert_non_null(strstr(s, "# TYPE chatvault_events_ingested_total counter\n"
				  "chatvault_events_ingested_total 0\n"));
	assert_non_null(strstr(s, "chatvault_events_quarantined_total{stage=\"ingest\"} 0\n"));
	assert_non_null(strstr(s, "chatvault_batch_duration_seconds_count{stage=\"deliver\"} 0\n"));
	assert_non_null(strstr(s, "# TYPE chatvault_delivery_retries_total counter\n"));
	free(s);
	cv_metrics_free(m);
}

/* chatd's families: ids in enum order, the fixed series at 0, refusals by
 * code created on first use, and the NULL registry of a chatd without
 * --metrics doing nothing. */
static void test_chat_catalogue(void **state)
{
	struct cv_metrics *m = chat_metrics_new();
	char *s;

	(void)state;
	assert_non_null(m);
	cv_metrics_set(m, CHAT_M_SESSIONS, NULL, 2);
	cv_metrics_add(m, CHAT_M_MESSAGES, "im", 1);
	cv_metrics_add(m, CHAT_M_REFUSALS, "403", 1);
	cv_metrics_add(m, CHAT_M_REFUSALS, "403", 1);
	cv_metrics_add(m, CHAT_M_PRODUCER_BUSY, NULL, 1);
	cv_metrics_add(NULL, CHAT_M_REFUSALS, "404", 1);
	s = render(m);
	assert_non_null(strstr(s, "# TYPE chatvault_chat_sessions gauge\nchatvault_chat_sessions 2\n"));
	assert_non_null(strstr(s, "chatvault_chat_channel_sessions 0\n"));
	assert_non_null(strstr(s, "chatvault_chat_messages_total{kind=\"im\"} 1\n"
				  "chatvault_chat_messages_total{kind=\"post\"} 0\n"));
	assert_non_null(strstr(s, "# TYPE chatvault_chat_refusals_total counter\n"
				  "chatvault_chat_refusals_total{code=\"403\"} 2\n"));
	assert_null(strstr(s, "code=\"404\""));
	assert_non_null(strstr(s, "chatvault_chat_producer_busy_total 1\n"));
	assert_null(strstr(s, "chatvault_events_"));
	free(s);
	cv_metrics_free(m);
}

/* ---- concurrency ---------------------------------------------------------------- */

#define THREADS 8
#define ROUNDS 20000

struct worker_arg {
	struct cv_metrics *m;
	int c, h, n;
};

static void *hammer(void *p)
{
	struct worker_arg *a = p;
	char label[16];

	for (int i = 0; i < ROUNDS; i++) {
		/* New label values appear while other threads add. */
		snprintf(label, sizeof(label), "a%d", i % 4);
		cv_metrics_add(a->m, a->c, label, 3);
		cv_metrics_observe(a->m, a->h, (i & 1) ? "ingest" : "deliver", (i % 7) * 0.01);
	}
	(void)a->n;
	return NULL;
}

static void test_concurrent_exact(void **state)
{
	static const double bounds[] = { 0.01, 0.05 };
	struct cv_metrics *m = cv_metrics_new();
	pthread_t t[THREADS];
	struct worker_arg a[THREADS];
	uint64_t total = 0;
	char *s, *p;

	(void)state;
	int c = cv_metrics_register(m, CV_METRIC_COUNTER, "c_total", "C.", "adapter", NULL, 0);
	int h = cv_metrics_register(m, CV_METRIC_HISTOGRAM, "h_seconds", "H.", "stage", bounds, 2);

	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct worker_arg){ m, c, h, i };
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &a[i]), 0);
	}
	/* Render while they run: must never crash or show a torn series. */
	for (int i = 0; i < 50; i++)
		free(render(m));
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int k = 0; k < 4; k++) {
		char label[16];

		snprintf(label, sizeof(label), "a%d", k);
		total += (uint64_t)cv_metrics_value(m, c, label);
	}
	assert_int_equal(total, (uint64_t)THREADS * ROUNDS * 3);
	s = render(m);
	/* Exactly four series, each once. */
	for (int k = 0; k < 4; k++) {
		char want[64];

		snprintf(want, sizeof(want), "c_total{adapter=\"a%d\"} %d\n", k,
			 THREADS * ROUNDS * 3 / 4);
		p = strstr(s, want);
		assert_non_null(p);
		assert_null(strstr(p + 1, want));
	}
	{
		char want[96];

		snprintf(want, sizeof(want), "h_seconds_count{stage=\"ingest\"} %d\n",
			 THREADS * ROUNDS / 2);
		assert_non_null(strstr(s, want));
		snprintf(want, sizeof(want), "h_seconds_bucket{stage=\"ingest\",le=\"+Inf\"} %d\n",
			 THREADS * ROUNDS / 2);
		assert_non_null(strstr(s, want));
	}
	free(s);
	cv_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_text),
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_gauge_and_helpers),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_register_rejects),
		cmocka_unit_test(test_catalogue),
		cmocka_unit_test(test_chat_catalogue),
		cmocka_unit_test(test_concurrent_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
