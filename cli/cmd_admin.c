/*
 * cmd_admin — `migrate`, `config check`, `quarantine list|show`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ret_policy.h"
#include "cv_log.h"
#include "sto_db.h"
#include "sto_migrate.h"

int cmd_migrate(struct cli_ctx *ctx, int argc, char **argv)
{
	struct sto_db *db = NULL;
	char err[STO_ERRLEN];
	int applied = 0, rc;

	(void)argv;
	if (argc != 1) {
		cli_error(ctx, "takes no arguments (see chatvault migrate --help)");
		return CLI_USAGE;
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if ((rc = cli_open_db(ctx, "chatvault-migrate", &db)) != CLI_OK)
		return rc;
	if (sto_migrate(db, sto_migrations, sto_nmigrations, &applied, err, sizeof(err)) != CV_OK) {
		cli_error(ctx, "%s (database left at the last successful migration)", err);
		rc = CLI_RUNTIME;
	} else {
		int v = sto_schema_version(db, err, sizeof(err));

		printf("schema at version %d (%d migration%s applied now)\n", v, applied,
		       applied == 1 ? "" : "s");
	}
	sto_db_close(db);
	return rc;
}

int cmd_config(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *room = NULL, *user = NULL;
	int rc, i;

	for (i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--room") == 0)
			room = argv[i + 1];
		else if (strcmp(argv[i], "--user") == 0)
			user = argv[i + 1];
		else
			break;
	}
	if (argc < 2 || strcmp(argv[1], "check") != 0 || i != argc) {
		cli_error(ctx, "usage: chatvault [-c FILE] config check [--room URI] [--user URI]");
		return CLI_USAGE;
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	printf("# %s: OK\n", ctx->cfg->source);
	cfg_print(ctx->cfg, stdout);
	ret_policy_print(ctx->cfg, room, user, stdout);
	return CLI_OK;
}

int cmd_quarantine(struct cli_ctx *ctx, int argc, char **argv)
{
	struct sto_db *db = NULL;
	PGresult *res = NULL;
	char err[STO_ERRLEN];
	int rc;

	if (argc < 2 || (strcmp(argv[1], "list") == 0 && argc != 2) ||
	    (strcmp(argv[1], "show") == 0 && argc != 3) ||
	    (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "show") != 0)) {
		if (argc >= 2 && strcmp(argv[1], "replay") == 0) {
			cli_error(ctx, "replay: not built yet in this version");
			return CLI_USAGE;
		}
		cli_error(ctx, "usage: chatvault quarantine list | show ID");
		return CLI_USAGE;
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if ((rc = cli_open_db(ctx, "chatvault-quarantine", &db)) != CLI_OK)
		return rc;
	if (strcmp(argv[1], "list") == 0) {
		if (sto_exec(db, "list quarantine",
			     "SELECT qid, coalesce(adapter, '(ingest)'), to_char(quarantined_at AT TIME ZONE"
			     " 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), coalesce(event_id::text, '-'), reason"
			     " FROM chatvault.quarantine ORDER BY qid", 0, NULL, &res, err,
			     sizeof(err)) != CV_OK)
			goto fail;
		printf("%-8s %-12s %-20s %-36s %s\n", "ID", "STAGE", "TIME", "EVENT", "REASON");
		for (int i = 0; i < PQntuples(res); i++)
			printf("%-8s %-12s %-20s %-36s %s\n", PQgetvalue(res, i, 0),
			       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
			       PQgetvalue(res, i, 4));
	} else {
		const char *p[1] = { argv[2] };
		int64_t id;

		if (cv_parse_i64(argv[2], &id) != 0) {
			sto_db_close(db);
			cli_error(ctx, "show: \"%s\" is not a quarantine id", argv[2]);
			return CLI_USAGE;
		}
		if (sto_exec(db, "show quarantine",
			     "SELECT qid, coalesce(adapter, '(ingest)'), reason, coalesce(source, ''),"
			     " coalesce(position::text, ''), encode(raw, 'escape')"
			     " FROM chatvault.quarantine WHERE qid = $1", 1, p, &res, err,
			     sizeof(err)) != CV_OK)
			goto fail;
		if (PQntuples(res) == 0) {
			cli_error(ctx, "show: no quarantine entry %s", argv[2]);
			rc = CLI_RUNTIME;
		} else {
			printf("id:       %s\nstage:    %s\nreason:   %s\nsource:   %s\nposition: %s\n"
			       "raw:      ", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
			       PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
			/* encode(…, 'escape') already shows non-printable bytes
			 * as \ooo, so the terminal gets no control characters. */
			printf("%s\n", PQgetvalue(res, 0, 5));
		}
	}
	PQclear(res);
	sto_db_close(db);
	return rc;
fail:
	cli_error(ctx, "%s", err);
	sto_db_close(db);
	return CLI_RUNTIME;
}
