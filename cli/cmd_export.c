/*
 * cmd_export — `chatvault export --from T --to T [--room URI]... [--user URI]...
 * [--format xml|jsonl|csv|eml] [--adapter NAME] [-q] -o FILE`: the auditor
 * package (docs/FORMATS.md §3; the work is retention/ret_export.c).
 *
 * Exit: 0 written and audited; 1 runtime failure (database, a damaged
 * source bundle, I/O, interrupted); 2 bad arguments or configuration (no
 * archive adapter).  On success one summary line goes to stdout; a
 * progress line is redrawn on stderr when it is a terminal (not with -q).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cv_time.h"
#include "event.h"
#include "ret_export.h"
#include "sto_db.h"

/* A room or user URI from the command line: what an event could hold. */
static bool uri_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ING_EVENT_MAX_URI)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static int parse_time(struct cli_ctx *ctx, const char *opt, const char *s, int64_t *ms,
		      bool *set)
{
	char why[128];

	if (cv_time_parse_arg(s, ms, why, sizeof(why)) != 0) {
		cli_error(ctx, "%s %s: %s", opt, s, why);
		return CLI_USAGE;
	}
	*set = true;
	return CLI_OK;
}

int cmd_export(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "room", required_argument, NULL, 'r' },
		{ "user", required_argument, NULL, 'u' },
		{ "format", required_argument, NULL, 'F' },
		{ "adapter", required_argument, NULL, 'a' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct ret_export_query q = { .format = RET_EXPORT_JSONL };
	struct ret_export_opts o = { .should_stop = cli_should_stop, .stop_arg = ctx };
	struct ret_export_result res;
	struct sto_db *db = NULL;
	const char **rooms = NULL, **users = NULL;
	bool have_from = false, have_to = false, quiet = ctx->quiet;
	char err[RET_EXPORT_ERRLEN];
	size_t nrooms = 0, nusers = 0;
	int opt, rc = CLI_USAGE;

	rooms = calloc((size_t)argc, sizeof(*rooms));
	users = calloc((size_t)argc, sizeof(*users));
	if (!rooms || !users) {
		cli_error(ctx, "out of memory");
		rc = CLI_RUNTIME;
		goto out;
	}
	optind = 0;      /* glibc: start afresh on the subcommand's argv */
	opterr = 0;      /* our own one-line errors */
	while ((opt = getopt_long(argc, argv, ":o:q", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (parse_time(ctx, "--from", optarg, &q.from_ms, &have_from) != CLI_OK)
				goto out;
			break;
		case 't':
			if (parse_time(ctx, "--to", optarg, &q.to_ms, &have_to) != CLI_OK)
				goto out;
			break;
		case 'r':
		case 'u':
			if (!uri_ok(optarg)) {
				cli_error(ctx, "--%s: not a URI (empty, control characters, or "
					  "longer than %d bytes)", opt == 'r' ? "room" : "user",
					  ING_EVENT_MAX_URI);
				goto out;
			}
			if (opt == 'r')
				rooms[nrooms++] = optarg;
			else
				users[nusers++] = optarg;
			break;
		case 'F':
			if (ret_export_format_parse(optarg, &q.format) != 0) {
				cli_error(ctx, "--format %s: unknown format (xml, jsonl, csv or eml)",
					  optarg);
				goto out;
			}
			break;
		case 'a':
			o.adapter = optarg;
			break;
		case 'o':
			o.output = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case ':':
			cli_error(ctx, "%s needs a value (see chatvault export --help)",
				  argv[optind - 1]);
			goto out;
		default:
			cli_error(ctx, "unknown option %s (see chatvault export --help)",
				  argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		cli_error(ctx, "unexpected argument %s (see chatvault export --help)", argv[optind]);
		goto out;
	}
	if (!have_from || !have_to || !o.output || !*o.output) {
		cli_error(ctx, "--from, --to and -o FILE are required (see chatvault export --help)");
		goto out;
	}
	if (q.from_ms >= q.to_ms) {
		cli_error(ctx, "--from must be before --to (the range is [from, to))");
		goto out;
	}
	q.rooms = rooms;
	q.nrooms = nrooms;
	q.users = users;
	q.nusers = nusers;
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		goto out;
	if (o.adapter ? !cfg_find_adapter(ctx->cfg, o.adapter) ||
			strcmp(cfg_find_adapter(ctx->cfg, o.adapter)->type, "archive") != 0
		      : !ret_export_default_adapter(ctx->cfg)) {
		if (o.adapter)
			cli_error(ctx, "--adapter %s: no adapter of type \"archive\" by that name in "
				  "the configuration", o.adapter);
		else
			cli_error(ctx, "no adapter of type \"archive\" in the configuration");
		rc = CLI_USAGE;
		goto out;
	}
	if (cli_signals_block(ctx) != 0) {
		cli_error(ctx, "cannot set up signal handling");
		rc = CLI_RUNTIME;
		goto out;
	}
	if ((rc = cli_open_db(ctx, "chatvault-export", &db)) != CLI_OK)
		goto out;
	o.progress = !quiet && isatty(STDERR_FILENO);
	rc = ret_export_run(ctx->cfg, db, &q, &o, &res, err, sizeof(err));
	if (rc != 0) {
		cli_error(ctx, "%s", err[0] ? err : strerror(-rc));
		rc = rc == -EINVAL ? CLI_USAGE : CLI_RUNTIME;
		goto out;
	}
	if (!quiet)
		printf("export: %" PRId64 " events (%" PRId64 " rooms, %" PRId64 " users, %" PRId64
		       " attachments, %" PRId64 " left out by erasure) from %" PRId64
		       " bundles -> %s (sha256 %s)\n", res.events, res.rooms, res.users,
		       res.attachments, res.omitted_erased, res.bundles, res.path, res.sha256);
	rc = CLI_OK;
out:
	sto_db_close(db);
	free(rooms);
	free(users);
	return rc;
}
