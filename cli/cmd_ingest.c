/*
 * cmd_ingest — `chatvault ingest [--once]`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "consumer.h"
#include "sto_db.h"

int cmd_ingest(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ing_consume_opts o = { .should_stop = cli_should_stop, .stop_arg = ctx };
	struct ing_consume_stats st = { 0 };
	struct sto_db *db = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0) {
			o.once = true;
		} else {
			cli_error(ctx, "unknown argument %s (see chatvault ingest --help)", argv[i]);
			return CLI_USAGE;
		}
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if (cli_signals_block(ctx) != 0) {
		cli_error(ctx, "cannot set up signal handling");
		return CLI_RUNTIME;
	}
	if ((rc = cli_open_db(ctx, "chatvault-ingest", &db)) != CLI_OK)
		return rc;
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
		if (cli_reload_config(ctx) == 0) {
			sto_db_close(db);
			db = NULL;
			if ((rc = cli_open_db(ctx, "chatvault-ingest", &db)) != CLI_OK)
				break;
		}
	}
	printf("ingest: %" PRId64 " staged, %" PRId64 " duplicates, %" PRId64 " quarantined, %"
	       PRId64 " sequence gaps, %" PRId64 " batches\n", st.staged, st.duplicates,
	       st.quarantined, st.gaps, st.batches);
	if (rc != CLI_OK)
		cli_error(ctx, "stopped on an error (see above); nothing consumed was lost");
	sto_db_close(db);
	return rc;
}
