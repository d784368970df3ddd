/*
 * cmd_deliver — `chatvault deliver [--once] [--adapter NAME] [--metrics
 * HOST:PORT]` and `chatvault run` (ingest, deliver and the retention
 * schedule on three threads of one process).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_metrics.h"
#include "consumer.h"
#include "cv_log.h"
#include "cv_metrics.h"
#include "cv_time.h"
#include "dlv_worker.h"
#include "sto_db.h"

/*
 * With --metrics the registry (the server's) goes to the workers in
 * dlv_opts.metrics and is served by libmicrohttpd's thread with components
 * db and deliver; health.deliver is true while dlv_run runs (across a
 * SIGHUP restart too) and false once it returned for good.  metrics.listen
 * in the configuration is run's only: two processes sharing one
 * configuration would fight over the port.
 */
int cmd_deliver(struct cli_ctx *ctx, int argc, char **argv)
{
	struct dlv_opts o = { .should_stop = cli_should_stop, .stop_arg = ctx };
	struct dlv_stats st = { 0 };
	struct sto_db *db = NULL;
	struct cli_health health = { 0 };
	struct cli_metrics_srv *srv = NULL;
	const struct cli_metrics_opts mo = { .components = CLI_C_DB | CLI_C_DELIVER,
					     .pipeline_gauges = true };
	const char *listen = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0) {
			o.once = true;
		} else if (strcmp(argv[i], "--adapter") == 0 && i + 1 < argc) {
			o.adapter = argv[++i];
		} else if (!cli_metrics_arg(argc, argv, &i, &listen)) {
			cli_error(ctx, "unknown argument %s (see chatvault deliver --help)", argv[i]);
			return CLI_USAGE;
		}
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	/* before the metrics thread starts, so it inherits the blocked set */
	if (cli_signals_block(ctx) != 0) {
		cli_error(ctx, "cannot set up signal handling");
		return CLI_RUNTIME;
	}
	atomic_store(&health.deliver, true);
	if (listen) {
		o.metrics = cv_metrics_new_chatvault();
		if ((rc = cli_metrics_serve(ctx, listen, o.metrics, &health, &mo, &srv)) != CLI_OK)
			return rc;
	}
	if ((rc = cli_open_db(ctx, "chatvault-deliver", &db)) != CLI_OK)
		goto out;
	o.should_stop = cli_should_yield;
	for (;;) {
		struct dlv_stats one;

		rc = dlv_run(ctx->cfg, db, &o, &one);
		st.batches += one.batches;
		st.events += one.events;
		st.retries += one.retries;
		st.failed_events += one.failed_events;
		st.deleted += one.deleted;
		if (rc != 0 || o.once || ctx->stop || !ctx->reload)
			break;
		/* SIGHUP: every adapter's batch in hand is committed; start again
		 * on the new configuration (adapters added, removed, re-optioned). */
		if ((rc = cli_metrics_reload(srv, ctx, "chatvault-deliver", &db)) != CLI_OK)
			break;
	}
	atomic_store(&health.deliver, false);
	printf("deliver: %" PRId64 " batches, %" PRId64 " events delivered, %" PRId64
	       " deleted from staging, %" PRId64 " retries, %" PRId64 " quarantined\n",
	       st.batches, st.events, st.deleted, st.retries, st.failed_events);
	sto_db_close(db);
	if (rc < 0)
		rc = rc == -22 ? CLI_USAGE : CLI_RUNTIME;
	else
		rc = rc == 1 ? CLI_RUNTIME : CLI_OK;
out:
	cli_metrics_stop(srv);
	return rc;
}

/* ---- run -------------------------------------------------------------------- */

/*
 * `run`: the ingest consumer, the delivery workers and retention on three
 * threads, each with its own database connection; the main thread only
 * waits for a signal (signalfd) and then raises the shared stop flag, which
 * the workers poll between batches.  With --metrics, the metrics registry
 * (the server's, passed to the workers) is served by libmicrohttpd's thread
 * (cli_metrics.c); each worker flags itself running in health.
 */
struct run_shared {
	struct cli_ctx *ctx;
	atomic_bool stop;
	int ingest_rc;
	int deliver_rc;
	int retention_rc;
	struct cv_metrics *metrics;   /* NULL without --metrics */
	struct cli_health health;
};

static bool run_should_stop(void *arg)
{
	struct run_shared *s = arg;

	return atomic_load(&s->stop);
}

static void *ingest_thread(void *arg)
{
	struct run_shared *s = arg;
	struct ing_consume_opts o = { .should_stop = run_should_stop, .stop_arg = s,
				      .metrics = s->metrics };
	struct ing_consume_stats st;
	struct sto_db *db = NULL;

	if (cli_open_db(s->ctx, "chatvault-run-ingest", &db) != CLI_OK ||
	    ing_consume(s->ctx->cfg, db, &o, &st) != 0)
		s->ingest_rc = CLI_RUNTIME;
	sto_db_close(db);
	atomic_store(&s->health.ingest, false);
	atomic_store(&s->stop, true);
	return NULL;
}

static void *deliver_thread(void *arg)
{
	struct run_shared *s = arg;
	struct dlv_opts o = { .should_stop = run_should_stop, .stop_arg = s,
			      .metrics = s->metrics };
	struct dlv_stats st;
	struct sto_db *db = NULL;

	if (cli_open_db(s->ctx, "chatvault-run-deliver", &db) != CLI_OK ||
	    dlv_run(s->ctx->cfg, db, &o, &st) < 0)
		s->deliver_rc = CLI_RUNTIME;
	sto_db_close(db);
	atomic_store(&s->health.deliver, false);
	atomic_store(&s->stop, true);
	return NULL;
}

/* Retention every retention.schedule seconds (the first run one interval
 * after start, so a restart loop cannot turn into a purge loop).  A failed
 * run is logged and retried at the next interval; it never stops the
 * pipeline. */
static void *retention_thread(void *arg)
{
	struct run_shared *s = arg;
	struct sto_db *db = NULL;
	int64_t next = cv_time_mono_ms() + (int64_t)s->ctx->cfg->retention.schedule_s * 1000;

	while (!atomic_load(&s->stop)) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };

		if (cv_time_mono_ms() < next) {
			nanosleep(&ts, NULL);
			continue;
		}
		if (!db && cli_open_db(s->ctx, "chatvault-run-retention", &db) != CLI_OK) {
			db = NULL;
		} else if (cli_retention_once(s->ctx, db, false, stdout) == CLI_USAGE) {
			s->retention_rc = CLI_USAGE;
			break;
		}
		next = cv_time_mono_ms() + (int64_t)s->ctx->cfg->retention.schedule_s * 1000;
	}
	sto_db_close(db);
	atomic_store(&s->health.retention, false);
	return NULL;
}

int cmd_run(struct cli_ctx *ctx, int argc, char **argv)
{
	struct run_shared s = { .ctx = ctx };
	struct cli_metrics_srv *srv = NULL;
	const char *listen = NULL;
	pthread_t ing, dlv, ret;
	bool ing_started, dlv_started, ret_started;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!cli_metrics_arg(argc, argv, &i, &listen)) {
			cli_error(ctx, "unknown argument %s (see chatvault run --help)", argv[i]);
			return CLI_USAGE;
		}
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if (!listen && ctx->cfg->metrics_listen)
		listen = ctx->cfg->metrics_listen;
	/* Block the signals before starting threads so they inherit the mask. */
	if (cli_signals_block(ctx) != 0) {
		cli_error(ctx, "cannot set up signal handling");
		return CLI_RUNTIME;
	}
	if (listen) {
		const struct cli_metrics_opts mo = { .components = CLI_C_RUN,
						     .pipeline_gauges = true };

		s.metrics = cv_metrics_new_chatvault();
		if ((rc = cli_metrics_serve(ctx, listen, s.metrics, &s.health, &mo, &srv)) != CLI_OK)
			return rc;
	}
	for (;;) {
		atomic_store(&s.health.ingest, true);
		atomic_store(&s.health.deliver, true);
		atomic_store(&s.health.retention, true);
		atomic_store(&s.health.reloading, false);
		ing_started = pthread_create(&ing, NULL, ingest_thread, &s) == 0;
		dlv_started = pthread_create(&dlv, NULL, deliver_thread, &s) == 0;
		ret_started = pthread_create(&ret, NULL, retention_thread, &s) == 0;
		if (!ing_started || !dlv_started || !ret_started) {
			cli_error(ctx, "cannot start worker threads");
			atomic_store(&s.stop, true);
		}
		while (!atomic_load(&s.stop)) {
			struct pollfd pfd = { .fd = ctx->sigfd, .events = POLLIN };

			if (poll(&pfd, 1, 200) > 0 && (cli_should_stop(ctx) || ctx->reload)) {
				atomic_store(&s.health.reloading, !ctx->stop);
				atomic_store(&s.stop, true);
			}
		}
		if (ing_started)
			pthread_join(ing, NULL);
		if (dlv_started)
			pthread_join(dlv, NULL);
		if (ret_started)
			pthread_join(ret, NULL);
		if (!ing_started || !dlv_started || !ret_started || s.ingest_rc || s.deliver_rc ||
		    s.retention_rc) {
			rc = CLI_RUNTIME;
			break;
		}
		rc = CLI_OK;
		if (ctx->stop || !ctx->reload)
			break;
		/* SIGHUP: every worker finished its batch and returned; start them
		 * again on the new configuration (or the old one, if invalid). */
		(void)cli_metrics_reload(srv, ctx, NULL, NULL);
		atomic_store(&s.stop, false);
	}
	cv_logkv(CV_LOG_INFO, "main", "stopped", CV_KI("exit", rc));
	cli_metrics_stop(srv);
	return rc;
}
