/*
 * main — `chatvault`: global options and git-style subcommand dispatch.
 *
 *   chatvault [-c FILE] [-D DIR] [-v|-q] COMMAND [ARGS]
 *
 * Every command of design.md §2 is listed; the ones not built yet say so
 * and exit 2 instead of pretending to work.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cli.h"

struct command {
	const char *name;
	int (*fn)(struct cli_ctx *ctx, int argc, char **argv);  /* NULL: not built yet */
	const char *usage;
	const char *summary;
	const char *help;
};

static const struct command commands[] = {
	{ "migrate", cmd_migrate, "migrate",
	  "create or upgrade the database schema (idempotent)",
	  "Applies the versioned migrations compiled into this binary (schema/NNN_*.sql)\n"
	  "to the database that the config's database.conninfo, or the PG* environment,\n"
	  "points at.  Each migration runs in its own transaction with the row that\n"
	  "records it; running migrate again changes nothing.\n" },
	{ "config", cmd_config, "config check",
	  "validate the configuration and print the effective one (secrets masked)",
	  "Loads -c FILE (or the built-in defaults), reports the first error as\n"
	  "FILE:LINE: KEY: reason (exit 2), else prints the effective configuration.\n" },
	{ "emit", cmd_emit, "emit [--check] [--acks FILE] [FILE|-]",
	  "read JSON Lines events and enqueue them durably",
	  "Reads one event per line (design.md §2, schema/event.v1.schema.json) from\n"
	  "FILE or standard input.  Each invalid line is reported as \"line N: reason\"\n"
	  "and skipped; valid ones are stamped (id, ts, source) when they lack them and\n"
	  "enqueued.  Exit 0 only when every line was valid and every event is durable;\n"
	  "1 when a line was invalid or an event could not be made durable.\n"
	  "  --check       validate only; enqueue nothing\n"
	  "  --acks FILE   append the id of each event to FILE once it is durable\n" },
	{ "ingest", cmd_ingest, "ingest [--once]",
	  "queue -> staging (PostgreSQL), exactly once",
	  "Stages queued events into PostgreSQL in batches, quarantining invalid ones,\n"
	  "committing queue positions with the rows.  Runs until SIGTERM (finishes the\n"
	  "current batch, exits 0).\n"
	  "  --once    drain what is queued, then exit\n" },
	{ "deliver", cmd_deliver, "deliver [--once] [--adapter NAME]",
	  "staging -> adapters; delete what every required adapter acknowledged",
	  "Runs the batch workers of every configured adapter (or only NAME) until\n"
	  "SIGTERM.  Exit 1 with --once if an adapter kept failing.\n"
	  "  --once          deliver what is staged, then exit\n"
	  "  --adapter NAME  only this adapter instance\n" },
	{ "run", cmd_run, "run",
	  "ingest and deliver in one process (retention: not built yet)",
	  "Runs the ingest consumer and the delivery workers together until SIGTERM.\n" },
	{ "status", cmd_status, "status [--json]",
	  "queue depth, staging backlog per adapter, quarantine, gaps",
	  "Shows the queue depth, staged events, and per adapter: backlog, oldest\n"
	  "undelivered age, last success, consecutive failures, next attempt; the\n"
	  "quarantine count and recorded sequence gaps.\n"
	  "  --json    machine-readable output\n" },
	{ "quarantine", cmd_quarantine, "quarantine list|show ID",
	  "inspect quarantined events (replay: not built yet)",
	  "list        one line per quarantined event: id, adapter, time, reason\n"
	  "show ID     the reason and the raw bytes of one entry\n" },
	{ "export", NULL, "export --from T --to T [--room URI]... [--user URI]... "
	  "[--format xml|jsonl|csv|eml] -o FILE",
	  "auditor package from the archive (not built yet)", NULL },
	{ "verify", NULL, "verify PATH...",
	  "verify bundles, an archive directory or an export (not built yet)", NULL },
	{ "retention", NULL, "retention [--dry-run]",
	  "apply retention (not built yet)", NULL },
	{ "hold", NULL, "hold add|list|release ...", "legal holds (not built yet)", NULL },
	{ "erase", NULL, "erase --user URI --reason TEXT",
	  "GDPR erasure request (not built yet)", NULL },
	{ "chatd", NULL, "chatd", "the SIP chat and IM server (not built yet)", NULL },
	{ "user", NULL, "user add|list|disable ...", "chat users (not built yet)", NULL },
	{ "room", NULL, "room add|list|member ...", "persistent chat rooms (not built yet)", NULL },
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: chatvault [-c FILE] [-D DIR] [-v|-q] COMMAND [ARGS]\n"
		"\n"
		"Compliance archiving for persistent group chat and instant messaging.\n"
		"\n"
		"Global options:\n"
		"  -c FILE   configuration file (default: built-in defaults; see\n"
		"            conf/chatvault.conf)\n"
		"  -D DIR    data directory: spool, archives (default ./var)\n"
		"  -v        more log output (-vv for debug)\n"
		"  -q        errors only\n"
		"  -h        this help; COMMAND --help for a command's\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nExit status: 0 ok, 1 runtime failure, 2 usage or configuration error,\n"
		"3 verification found a problem.\n");
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx = { .sigfd = -1 };
	const struct command *cmd;
	int opt, rc;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	/* '+': stop at the first non-option, which is the subcommand. */
	while ((opt = getopt(argc, argv, "+c:D:vqh")) != -1) {
		switch (opt) {
		case 'c': ctx.config_path = optarg; break;
		case 'D': ctx.data_dir = optarg; break;
		case 'v': ctx.verbosity++; break;
		case 'q': ctx.quiet = true; break;
		case 'h': usage(stdout); return CLI_OK;
		default: usage(stderr); return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0 || strcmp(argv[optind], "--help") == 0) {
		if (optind + 1 < argc && (cmd = find_command(argv[optind + 1]))) {
			printf("usage: chatvault %s\n\n%s\n%s", cmd->usage, cmd->summary,
			       cmd->help ? cmd->help : "");
			return CLI_OK;
		}
		usage(stdout);
		return CLI_OK;
	}
	cmd = find_command(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "chatvault: unknown command \"%s\" (see chatvault --help)\n",
			argv[optind]);
		return CLI_USAGE;
	}
	ctx.cmd = cmd->name;
	for (int i = optind + 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: chatvault %s\n\n%s\n%s", cmd->usage, cmd->summary,
			       cmd->help ? cmd->help : "");
			if (!cmd->fn)
				printf("\nThis command is not built yet in this version.\n");
			return cmd->fn ? CLI_OK : CLI_USAGE;
		}
		if (strcmp(argv[i], "--") == 0)
			break;
	}
	if (!cmd->fn) {
		fprintf(stderr, "chatvault: %s: not built yet in this version (planned: %s)\n",
			cmd->name, cmd->usage);
		return CLI_USAGE;
	}
	/* Only the long-running workers keep reconnecting forever. */
	ctx.oneshot = strcmp(cmd->name, "ingest") != 0 && strcmp(cmd->name, "deliver") != 0 &&
		      strcmp(cmd->name, "run") != 0;
	for (int i = optind + 1; i < argc; i++)
		if (strcmp(argv[i], "--once") == 0)
			ctx.oneshot = true;
	rc = cmd->fn(&ctx, argc - optind, argv + optind);
	cfg_free(ctx.cfg);
	return rc;
}
