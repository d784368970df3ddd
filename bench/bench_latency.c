/*
 * bench_latency CONFIG RATE SECONDS — emit → durable latency of the producer
 * API (ingest/producer.h), against the latency of one small write +
 * fdatasync on the same filesystem, measured in the same process.
 *
 * Emits RATE events per second for SECONDS (paced on an absolute schedule,
 * so a slow write does not slow the sender down), records for each event the
 * time from the start of ing_producer_emit() to its durable callback, then
 * writes 64 bytes + fdatasync() the same number of times into a file in the
 * configuration's data directory (where the spool lives by default) and
 * prints, for bench/run.sh to pick up:
 *
 *   samples N busy N failed N
 *   emit_durable_us p50 X p99 X max X
 *   fdatasync_us p50 X p99 X max X
 *
 * Exit 0, or 1 when the producer cannot be created or an event failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "cv_log.h"
#include "event.h"
#include "producer.h"

struct sample {
	int64_t start_ns;   /* main thread, before emit() */
	int64_t done_ns;    /* writer thread, in the callback */
	int status;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
	struct timespec ts = { .tv_sec = t / 1000000000, .tv_nsec = t % 1000000000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Runs on the producer's writer thread. */
static void on_durable(void *opaque, const char *id, int status)
{
	struct sample *s = opaque;

	(void)id;
	s->done_ns = now_ns();
	s->status = status;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n), in µs. */
static double pct_us(const int64_t *v, size_t n, double p)
{
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1000.0;
}

static void report(const char *label, int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	printf("%s p50 %.1f p99 %.1f max %.1f\n", label, pct_us(v, n, 50), pct_us(v, n, 99),
	       pct_us(v, n, 100));
}

static int make_event(struct ing_event *ev, size_t i)
{
	ing_event_init(ev);
	ev->type = ING_EV_CHAT_POST;
	if (asprintf(&ev->room, "ma-chan://contoso.com/bench-room-%02zu", i % 24) < 0) {
		ev->room = NULL;
		return -ENOMEM;
	}
	if (asprintf(&ev->user, "sip:user%03zu@contoso.com", i % 300) < 0) {
		ev->user = NULL;
		return -ENOMEM;
	}
	ev->text = strdup("trade order fill price client desk risk limit swap bond equity fx "
			  "rate spread book hedge quote bid ask call put settle margin report");
	return ev->text ? 0 : -ENOMEM;
}

/* n samples of pwrite(64 bytes) + fdatasync() into dir/name, in ns. */
static int fsync_baseline(const char *dir, int64_t *v, size_t n)
{
	char path[4096], buf[64];
	int fd;

	memset(buf, 'x', sizeof(buf));
	snprintf(path, sizeof(path), "%s/bench-latency.probe", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "bench_latency: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		/* A small ring of blocks, like a log that keeps appending. */
		off_t off = (off_t)(i % 256) * (off_t)sizeof(buf);
		int64_t t0 = now_ns();

		if (pwrite(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf) || fdatasync(fd) != 0) {
			fprintf(stderr, "bench_latency: %s: %s\n", path, strerror(errno));
			close(fd);
			unlink(path);
			return -1;
		}
		v[i] = now_ns() - t0;
	}
	close(fd);
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	struct cfg *cfg = NULL;
	struct ing_producer *p = NULL;
	struct sample *s = NULL;
	int64_t *lat = NULL, t0, step;
	size_t n, busy = 0, failed = 0, nlat = 0;
	double rate, secs;
	char err[CFG_ERRLEN];
	int rc = 1;

	if (argc != 4 || (rate = atof(argv[2])) <= 0 || (secs = atof(argv[3])) <= 0) {
		fprintf(stderr, "usage: bench_latency CONFIG RATE SECONDS\n");
		return 2;
	}
	if (cfg_load(argv[1], NULL, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_latency: %s\n", err);
		return 2;
	}
	cv_log_set_level((enum cv_log_level)cfg->log_level);
	n = (size_t)(rate * secs);
	step = (int64_t)(1e9 / rate);
	s = calloc(n ? n : 1, sizeof(*s));
	lat = calloc(n ? n : 1, sizeof(*lat));
	if (!s || !lat) {
		fprintf(stderr, "bench_latency: out of memory\n");
		goto out;
	}
	p = ing_producer_new(cfg, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "bench_latency: %s\n", err);
		goto out;
	}

	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		struct ing_event ev;
		char why[ING_EVENT_ERRLEN];
		enum ing_emit_result er;

		if (make_event(&ev, i) != 0) {
			fprintf(stderr, "bench_latency: out of memory\n");
			ing_event_clear(&ev);
			goto out;
		}
		sleep_until_ns(t0 + (int64_t)i * step);
		for (;;) {
			s[i].start_ns = now_ns();
			er = ing_producer_emit(p, &ev, on_durable, &s[i], why, sizeof(why));
			if (er != ING_EMIT_BUSY)
				break;
			busy++;
			sleep_until_ns(now_ns() + 1000000);
		}
		ing_event_clear(&ev);
		if (er != ING_EMIT_OK) {
			fprintf(stderr, "bench_latency: event %zu: %s\n", i, why);
			goto out;
		}
	}
	while (ing_producer_flush(p, 10000) != 0)
		fprintf(stderr, "bench_latency: waiting for %zu events\n", ing_producer_pending(p));
	ing_producer_free(p);
	p = NULL;

	for (size_t i = 0; i < n; i++) {
		if (s[i].status != 0)
			failed++;
		else
			lat[nlat++] = s[i].done_ns - s[i].start_ns;
	}
	printf("samples %zu busy %zu failed %zu\n", nlat, busy, failed);
	if (nlat == 0)
		goto out;
	report("emit_durable_us", lat, nlat);
	if (fsync_baseline(cfg->data_dir, lat, nlat) != 0)
		goto out;
	report("fdatasync_us", lat, nlat);
	rc = failed ? 1 : 0;
out:
	ing_producer_free(p);
	free(s);
	free(lat);
	cfg_free(cfg);
	return rc;
}
