/*
 * cmd_retention — `chatvault retention [--dry-run]`, `hold add|list|release`
 * and `erase` (design.md §2), over retention/ret_run and ret_admin.
 *
 * The clock: the system's, unless CHATVAULT_NOW holds an ISO 8601 instant
 * (for tests and rehearsals: "what would a run at T do").  An overridden
 * clock is announced on stderr and recorded in every audit row of the run;
 * WORM bundles are additionally checked against the database server's
 * clock, so setting CHATVAULT_NOW ahead cannot purge them early.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cv_log.h"
#include "cv_time.h"
#include "ret_admin.h"
#include "ret_run.h"
#include "sto_db.h"

int cli_retention_clock(const struct cli_ctx *ctx, int64_t *now_ms, bool *overridden)
{
	const char *env = getenv("CHATVAULT_NOW");
	char why[128];

	*overridden = false;
	*now_ms = cv_time_now_ms();
	if (!env || !env[0])
		return 0;
	if (cv_time_parse_arg(env, now_ms, why, sizeof(why)) != 0) {
		cli_error(ctx, "CHATVAULT_NOW=%s: %s", env, why);
		return -1;
	}
	*overridden = true;
	cv_warn("retention", "clock set by CHATVAULT_NOW=%s (recorded in the audit log; WORM "
		"bundles still need the database clock)", env);
	return 0;
}

int cli_retention_once(struct cli_ctx *ctx, struct sto_db *db, bool dry_run, FILE *out)
{
	struct ret_run_opts o = { .dry_run = dry_run };
	struct ret_run_stats st;
	char actor[600], err[STO_ERRLEN];

	if (cli_retention_clock(ctx, &o.now_ms, &o.clock_override) != 0)
		return CLI_USAGE;
	ret_actor(actor, sizeof(actor));
	o.actor = actor;
	if (ret_run(db, ctx->cfg, &o, out, &st, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s", err);
		return CLI_RUNTIME;
	}
	fprintf(out, "retention%s: %" PRId64 " bundles: %" PRId64 " %spurged, %" PRId64 " kept, %"
		PRId64 " held, %" PRId64 " refused (WORM), %" PRId64 " damaged; %" PRId64
		" interrupted purges finished\n", dry_run ? " (dry run)" : "", st.bundles, st.purged,
		dry_run ? "would be " : "", st.kept, st.held, st.refused, st.damaged, st.finished);
	fflush(out);
	return st.damaged ? CLI_RUNTIME : CLI_OK;
}

int cmd_retention(struct cli_ctx *ctx, int argc, char **argv)
{
	bool dry_run = false;
	struct sto_db *db = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0) {
			dry_run = true;
		} else {
			cli_error(ctx, "unknown argument %s (see chatvault retention --help)", argv[i]);
			return CLI_USAGE;
		}
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if ((rc = cli_open_db(ctx, "chatvault-retention", &db)) != CLI_OK)
		return rc;
	rc = cli_retention_once(ctx, db, dry_run, stdout);
	sto_db_close(db);
	return rc;
}

static int parse_time(struct cli_ctx *ctx, const char *opt, const char *s, int64_t *ms)
{
	char why[128];

	if (cv_time_parse_arg(s, ms, why, sizeof(why)) != 0) {
		cli_error(ctx, "%s %s: %s", opt, s, why);
		return -1;
	}
	return 0;
}

static int hold_add(struct cli_ctx *ctx, struct sto_db *db, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "user", required_argument, NULL, 'u' }, { "room", required_argument, NULL, 'r' },
		{ "from", required_argument, NULL, 'f' }, { "to", required_argument, NULL, 't' },
		{ "reason", required_argument, NULL, 'R' }, { NULL, 0, NULL, 0 },
	};
	struct ret_hold_req req = { .from_ms = INT64_MIN, .to_ms = INT64_MAX };
	char actor[600], err[STO_ERRLEN];
	int64_t id;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': req.user = optarg; break;
		case 'r': req.room = optarg; break;
		case 'f': if (parse_time(ctx, "--from", optarg, &req.from_ms)) return CLI_USAGE; break;
		case 't': if (parse_time(ctx, "--to", optarg, &req.to_ms)) return CLI_USAGE; break;
		case 'R': req.reason = optarg; break;
		default: return CLI_USAGE;
		}
	}
	if (optind != argc || (!req.user && !req.room) || !req.reason || !req.reason[0]) {
		cli_error(ctx, "usage: chatvault hold add --user URI | --room URI [--from T] [--to T] "
			  "--reason TEXT");
		return CLI_USAGE;
	}
	if (req.from_ms != INT64_MIN && req.to_ms != INT64_MAX && req.from_ms >= req.to_ms) {
		cli_error(ctx, "--from must be before --to");
		return CLI_USAGE;
	}
	ret_actor(actor, sizeof(actor));
	if ((rc = ret_hold_add(db, &req, actor, &id, err, sizeof(err))) != 0) {
		cli_error(ctx, "add: %s", err);
		return rc == -EINVAL ? CLI_USAGE : CLI_RUNTIME;
	}
	printf("hold %" PRId64 " added\n", id);
	return CLI_OK;
}

int cmd_hold(struct cli_ctx *ctx, int argc, char **argv)
{
	struct sto_db *db = NULL;
	char err[STO_ERRLEN], actor[600];
	const char *sub = argc > 1 ? argv[1] : "";
	int rc;

	if (strcmp(sub, "add") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "release") != 0) {
		cli_error(ctx, "usage: chatvault hold add|list|release ... (see chatvault hold --help)");
		return CLI_USAGE;
	}
	if (strcmp(sub, "release") == 0 &&
	    (argc != 5 || strcmp(argv[3], "--reason") != 0 || !argv[4][0])) {
		cli_error(ctx, "usage: chatvault hold release ID --reason TEXT");
		return CLI_USAGE;
	}
	if (strcmp(sub, "list") == 0) {
		for (int i = 2; i < argc; i++)
			if (strcmp(argv[i], "--all") != 0 && strcmp(argv[i], "--json") != 0) {
				cli_error(ctx, "usage: chatvault hold list [--all] [--json]");
				return CLI_USAGE;
			}
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if ((rc = cli_open_db(ctx, "chatvault-hold", &db)) != CLI_OK)
		return rc;
	if (strcmp(sub, "add") == 0) {
		rc = hold_add(ctx, db, argc - 1, argv + 1);
	} else if (strcmp(sub, "list") == 0) {
		bool all = false, json = false;

		for (int i = 2; i < argc; i++) {
			all |= strcmp(argv[i], "--all") == 0;
			json |= strcmp(argv[i], "--json") == 0;
		}
		rc = ret_hold_list(db, all, json, stdout, err, sizeof(err)) == 0 ? CLI_OK : CLI_RUNTIME;
		if (rc != CLI_OK)
			cli_error(ctx, "list: %s", err);
	} else {
		int64_t id;

		if (cv_parse_i64(argv[2], &id) != 0 || id <= 0) {
			cli_error(ctx, "release: %s: not a hold id", argv[2]);
			rc = CLI_USAGE;
		} else {
			ret_actor(actor, sizeof(actor));
			if (ret_hold_release(db, id, argv[4], actor, err, sizeof(err)) != 0) {
				cli_error(ctx, "release: %s", err);
				rc = CLI_RUNTIME;
			} else {
				printf("hold %" PRId64 " released\n", id);
				rc = CLI_OK;
			}
		}
	}
	sto_db_close(db);
	return rc;
}

int cmd_erase(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *user = NULL, *reason = NULL;
	struct ret_erasure res;
	struct sto_db *db = NULL;
	char err[STO_ERRLEN], actor[600];
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc)
			reason = argv[++i];
		else
			user = NULL, reason = NULL, i = argc;
	}
	if (!user || !user[0] || !reason || !reason[0]) {
		cli_error(ctx, "usage: chatvault erase --user URI --reason TEXT");
		return CLI_USAGE;
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if ((rc = cli_open_db(ctx, "chatvault-erase", &db)) != CLI_OK)
		return rc;
	ret_actor(actor, sizeof(actor));
	if (ret_erase(db, ctx->cfg, user, reason, actor, &res, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s: %s", user, err);
		sto_db_close(db);
		return CLI_RUNTIME;
	}
	sto_db_close(db);
	if (!res.honoured) {
		printf("erasure %" PRId64 " for %s: recorded and refused: %s\n", res.id, user,
		       res.refusal);
		cli_error(ctx, "%s: refused: %s", user, res.refusal);
		return CLI_RUNTIME;
	}
	printf("erasure %" PRId64 " for %s: honoured: %" PRId64 " staged event(s) redacted; exports "
	       "leave the user out from now on; sealed archive bundles are not rewritten "
	       "(docs/RETENTION.md)\n", res.id, user, res.redacted);
	return CLI_OK;
}
