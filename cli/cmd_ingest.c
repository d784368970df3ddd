/*
 * cmd_ingest — `chatvault ingest [--once] [--metrics HOST:PORT]`.
 *
 * With --metrics the registry (the server's) goes to the consumer in
 * ing_consume_opts.metrics and is served by libmicrohttpd's thread with
 * components db and ingest; health.ingest is true while the consumer runs
 * (across a SIGHUP restart too) and false once it returned for good.
 * metrics.listen in the configuration is run's only (two processes sharing
 * one configuration would fight over the port).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_metrics.h"
#include "consumer.h"
#include "cv_metrics.h"
#include "sto_db.h"

int cmd_ingest(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ing_consume_opts o = { .should_stop = cli_should_stop, .stop_arg = ctx };
	struct ing_consume_stats st = { 0 };
	struct sto_db *db = NULL;
	struct cli_health health = { 0 };
	struct cli_metrics_srv *srv = NULL;
	const struct cli_metrics_opts mo = { .components = CLI_C_DB | CLI_C_INGEST,
					     .pipeline_gauges = true };
	const char *listen = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0) {
			o.once = true;
		} else if (!cli_metrics_arg(argc, argv, &i, &listen)) {
			cli_error(ctx, "unknown argument %s (see chatvault ingest --help)", argv[i]);
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
	atomic_store(&health.ingest, true);
	if (listen) {
		o.metrics = cv_metrics_new_chatvault();
		if ((rc = cli_metrics_serve(ctx, listen, o.metrics, &health, &mo, &srv)) != CLI_OK)
			return rc;
	}
	if ((rc = cli_open_db(ctx, "chatvault-ingest", &db)) != CLI_OK)
		goto out;
	o.should_stop = cli_should_yield;
	for (;;) {
		struct ing_consume_stats one;

		rc = ing_consume(ctx->cfg, db, &o, &one) == 0 ? CLI_OK : CLI_RUNTIME;
		st.staged += one.staged;
		st.duplicates += one.duplicates;
		st.quarantined += one.quarantined;
		st.gaps += one.gaps;
		st.batches += one.batches;
		if (rc != CLI_OK || o.once || ctx->stop || !ctx->reload)
			break;
		/* SIGHUP: the batch in hand is committed; start again on the new
		 * configuration with a fresh connection (the conninfo may differ). */
		if ((rc = cli_metrics_reload(srv, ctx, "chatvault-ingest", &db)) != CLI_OK)
			break;
	}
	atomic_store(&health.ingest, false);
	printf("ingest: %" PRId64 " staged, %" PRId64 " duplicates, %" PRId64 " quarantined, %"
	       PRId64 " sequence gaps, %" PRId64 " batches\n", st.staged, st.duplicates,
	       st.quarantined, st.gaps, st.batches);
	if (rc != CLI_OK)
		cli_error(ctx, "stopped on an error (see above); nothing consumed was lost");
	sto_db_close(db);
out:
	cli_metrics_stop(srv);
	return rc;
}
