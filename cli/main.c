/*
 * main — `chatvault`: global options and git-style subcommand dispatch.
 *
 *   chatvault [-c FILE] [-D DIR] [-v|-q] [--log-format=human|logfmt] COMMAND [ARGS]
 *
 * Every command of design.md §2 is listed; the ones not built yet say so
 * and exit 2 instead of pretending to work.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "cli.h"
#include "cv_log.h"

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
	{ "config", cmd_config, "config check [--room URI] [--user URI]",
	  "validate the configuration and print the effective one (secrets masked)",
	  "Loads -c FILE (or the built-in defaults), reports the first error as\n"
	  "FILE:LINE: KEY: reason (exit 2), else prints the effective configuration\n"
	  "followed by the effective retention: for any room and user, and for every\n"
	  "room prefix and user a profile names (or only for --room/--user): the\n"
	  "longest applicable retention, WORM, and whether erasure is honoured.\n" },
	{ "emit", cmd_emit, "emit [--check] [--acks FILE] [FILE|-]",
	  "read JSON Lines events and enqueue them durably",
	  "Reads one event per line (design.md §2, schema/event.v1.schema.json) from\n"
	  "FILE or standard input.  Each invalid line is reported as \"line N: reason\"\n"
	  "and skipped; valid ones are stamped (id, ts, source) when they lack them and\n"
	  "enqueued.  Exit 0 only when every line was valid and every event is durable;\n"
	  "1 when a line was invalid or an event could not be made durable.\n"
	  "  --check       validate only; enqueue nothing\n"
	  "  --acks FILE   append the id of each event to FILE once it is durable\n" },
	{ "ingest", cmd_ingest, "ingest [--once] [--metrics HOST:PORT]",
	  "queue -> staging (PostgreSQL), exactly once",
	  "Stages queued events into PostgreSQL in batches, quarantining invalid ones,\n"
	  "committing queue positions with the rows.  Runs until SIGTERM (finishes the\n"
	  "current batch, exits 0).\n"
	  "  --once               drain what is queued, then exit\n"
	  "  --metrics HOST:PORT  serve GET /metrics and GET /healthz for this process\n"
	  "                       (components db and ingest), e.g. 127.0.0.1:9188;\n"
	  "                       metrics.listen is run's only (docs/OPERATIONS.md)\n" },
	{ "deliver", cmd_deliver, "deliver [--once] [--adapter NAME] [--metrics HOST:PORT]",
	  "staging -> adapters; delete what every required adapter acknowledged",
	  "Runs the batch workers of every configured adapter (or only NAME) until\n"
	  "SIGTERM.  Exit 1 with --once if an adapter kept failing.\n"
	  "  --once               deliver what is staged, then exit\n"
	  "  --adapter NAME       only this adapter instance\n"
	  "  --metrics HOST:PORT  serve GET /metrics and GET /healthz for this process\n"
	  "                       (components db and deliver), e.g. 127.0.0.1:9189;\n"
	  "                       metrics.listen is run's only (docs/OPERATIONS.md)\n" },
	{ "run", cmd_run, "run [--metrics HOST:PORT]",
	  "ingest, deliver and the retention schedule in one process",
	  "Runs the ingest consumer, the delivery workers and retention (first after\n"
	  "one retention.schedule interval, then every interval) on three threads\n"
	  "until SIGTERM, which finishes the current batch and exits 0.\n"
	  "  --metrics HOST:PORT  serve GET /metrics (Prometheus text format 0.0.4)\n"
	  "                       and GET /healthz on HOST:PORT, e.g. 127.0.0.1:9187\n"
	  "                       (overrides metrics.listen; docs/OPERATIONS.md)\n" },
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
	{ "export", cmd_export, "export --from T --to T [--room URI]... [--user URI]... "
	  "[--format xml|jsonl|csv|eml] [--adapter NAME] -o FILE",
	  "auditor package from the archive (tar + zstd, docs/FORMATS.md)",
	  "Writes FILE: a tar + zstd package (format chatvault-export/1) holding\n"
	  "README.txt, the matching events, their attachments and manifest.json (the\n"
	  "query, counts, source bundles, bundles purged in the range, erasures, and the\n"
	  "SHA-256 and size of every member).  An event matches when from <= ts < to,\n"
	  "its room is one of the --room URIs (if any) and its user or to is one of the\n"
	  "--user URIs (if any).  Events of users with an honoured erasure are left out\n"
	  "and counted.  Reads the archive adapter's bundle catalog; every source bundle\n"
	  "is verified first, and a damaged one fails the export (exit 1) naming it.\n"
	  "The finished package is recorded in the audit log; if that fails, no file is\n"
	  "left.  Times are UTC: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fff]][Z].\n"
	  "  --from T, --to T    the range [from, to) (required)\n"
	  "  --room URI          only these rooms (repeatable)\n"
	  "  --user URI          only events by or to these users (repeatable)\n"
	  "  --format F          jsonl (default: the canonical lines), csv (RFC 4180),\n"
	  "                      xml (Lync compliance XML) or eml (RFC 5322)\n"
	  "  --adapter NAME      the archive adapter whose catalog to read (default:\n"
	  "                      the first of type archive in the configuration)\n"
	  "  -o, --output FILE   the package to write (replaced if it exists)\n"
	  "  -q, --quiet         no progress line and no summary\n"
	  "Exit 0 written and audited, 1 runtime failure, 2 bad arguments or no archive\n"
	  "adapter.\n" },
	{ "verify", cmd_verify, "verify [-q] PATH...",
	  "verify bundles, an archive directory, tombstones or an export package",
	  "Proves the files complete and untampered; needs no database and no\n"
	  "configuration.  PATH: a bundle (*.tar.zst), a tombstone (*.tombstone.json),\n"
	  "an archive directory (walked; other files there, e.g. a stray *.tmp, are\n"
	  "notes) or an export package (recognised by its first member, README.txt).\n"
	  "All PATHs are judged together:\n"
	  "  - each bundle: member order, SHA-256 and size of every member, event count,\n"
	  "    staging id ranges, file name, every events.jsonl line a valid event, the\n"
	  "    manifest's sources and min/max ts equal to the events;\n"
	  "  - per adapter, bundles and tombstones in batch order form a hash chain\n"
	  "    (prev_manifest_sha256), with no batch twice and no staging id missing\n"
	  "    between them; a tombstone is a known gap (printed with its reason);\n"
	  "  - per adapter, no event id twice, and every source.seq between a server's\n"
	  "    lowest and highest is in a bundle or a tombstone, and only once;\n"
	  "  - an export package: member order, every member listed in manifest.json\n"
	  "    with its size and SHA-256, files/<sha256> hash to their name; its source\n"
	  "    bundles, when given too, are the very files it names.\n"
	  "Removing the newest bundles cannot be told from the files alone (nor the\n"
	  "oldest: a chain that starts late is a note); compare the last manifest\n"
	  "hash with the catalog.  Prints one line per finding (FAIL:, ERROR:, note:,\n"
	  "known gap:) and a summary; the first failure also goes to stderr.\n"
	  "  -q, --quiet   failures and errors only (no notes, no known gaps)\n"
	  "Exit 0 everything checks, 3 a problem found, 1 a file could not be read\n"
	  "(permissions, I/O error, missing PATH, nothing to verify under a PATH),\n"
	  "2 usage.\n" },
	{ "retention", cmd_retention, "retention [--dry-run]",
	  "apply retention: purge expired archive bundles no hold touches",
	  "For every live bundle of every archive adapter: the applying profiles give\n"
	  "its retention (the longest wins); kept while not expired, while a legal hold\n"
	  "touches it, or when no profile applies.  WORM bundles (finra-4511, sec-17a4)\n"
	  "keep the retention locked when first seen and are never purged before the\n"
	  "database clock passes it; every refusal is audited.  A purge verifies the\n"
	  "bundle, writes a tombstone beside it (docs/FORMATS.md), records the purge and\n"
	  "its audit row in one transaction, then removes the file.  Prints every bundle\n"
	  "purged or kept and why; reports staged and quarantined events older than\n"
	  "retention.stale_staging_days (never dropped).  Exit 1 if a bundle due for\n"
	  "purge could not be verified (it is kept).\n"
	  "  --dry-run, -n   decide and print, change nothing\n"
	  "Environment: CHATVAULT_NOW=T runs with the clock set to T (tests, rehearsals;\n"
	  "announced and audited; WORM still needs the database clock).\n" },
	{ "hold", cmd_hold, "hold add|list|release ...", "legal holds (block purging)",
	  "add --user URI | --room URI [--from T] [--to T] --reason TEXT\n"
	  "        a hold on a user's events, a room's, or one user's in one room, in\n"
	  "        [from, to) (open when omitted); prints the new hold id\n"
	  "list [--all] [--json]\n"
	  "        active holds (--all: released ones too)\n"
	  "release ID --reason TEXT\n"
	  "        release a hold; bundles it kept go at the next retention run\n"
	  "Every add and release is in the audit log with the actor.\n" },
	{ "erase", cmd_erase, "erase --user URI --reason TEXT",
	  "GDPR erasure request for a user",
	  "Records the request and decides it: refused (exit 1) when a legal hold\n"
	  "touches the user or an included profile requires keeping (e.g. finra-4511),\n"
	  "or when no profile with erasure = true applies; otherwise honoured: the\n"
	  "user's staged events (as author or recipient) have their text and\n"
	  "attachment names replaced by \"[erased]\", and exports leave the user out.\n"
	  "Sealed archive bundles are not rewritten (see docs/RETENTION.md).\n" },
	{ "chatd", cmd_chatd, "chatd [--metrics HOST:PORT]",
	  "the SIP chat and IM server (REGISTER, MESSAGE, provisioning, push)",
	  "Serves SIP over UDP and TCP on chat.listen (default 127.0.0.1:5060) for\n"
	  "chat.domain until SIGTERM or SIGINT: REGISTER with digest authentication\n"
	  "against the users of `chatvault user` (realm chat.realm), one IM session per\n"
	  "registration (im.max_sessions, im.idle_timeout, im.inactivity_timeout),\n"
	  "MESSAGE between registered users, each one an im.message compliance event\n"
	  "acknowledged only once durable, SUBSCRIBE to vnd-microsoft-provisioning-v2,\n"
	  "and push notifications (chat.push_url) for mobile-only recipients.\n"
	  "SIGTERM ends every session (im.session.end \"shutdown\"), flushes the\n"
	  "producer and exits 0.  See docs/CHAT.md.\n"
	  "  --metrics HOST:PORT  serve GET /metrics (chatvault_chat_* sessions,\n"
	  "                       messages, refusals) and GET /healthz (the SIP loop\n"
	  "                       runs), e.g. 127.0.0.1:9190 (docs/OPERATIONS.md)\n" },
	{ "user", cmd_user, "user add|list|disable|enable|passwd ...",
	  "chat and IM users of chatd (schema chat.users)",
	  "add URI --password-file F [--no-chat] [--no-im]\n"
	  "        add a user, e.g. sip:alice@contoso.com (lower-cased; user part of\n"
	  "        letters, digits and . _ + -); the password is the first line of F\n"
	  "        (\"-\" for standard input; a file must be mode 600 or stricter) and\n"
	  "        is stored only as the digest credential HA1 for chat.realm\n"
	  "        --no-chat / --no-im: without persistent chat / instant messaging\n"
	  "list [--json]\n"
	  "        every user: URI, enabled, chat, im, created (never the credential)\n"
	  "disable URI, enable URI\n"
	  "        refuse or allow sign-in; a running chatd follows at once\n"
	  "passwd URI --password-file F\n"
	  "        set a new password (for the current chat.realm)\n"
	  "Needs `chatvault migrate` first.  Exit 1 when the user exists (add) or\n"
	  "does not (disable, enable, passwd), 2 for a bad URI or password file.\n" },
	{ "room", cmd_room, "room add|list|search|member|invite ...",
	  "persistent chat rooms (the pchat store)",
	  "add NAME --domain D [--description T] [--topic T] [--private] [--no-log]\n"
	  "        create a room; prints its URI, ma-chan://D/<guid>.  Names are unique\n"
	  "        per domain (ignoring case).  --private: listed and enterable only by\n"
	  "        its members and managers; --no-log: the room keeps no history\n"
	  "list [--json]\n"
	  "        every room (private ones too): URI, name, visibility, member count\n"
	  "search CRITERIA --user URI [--limit N] [--json]\n"
	  "        rooms whose name contains CRITERIA, as USER would find them\n"
	  "        (XCCOS chansrch BYNAME: private rooms only for their members)\n"
	  "member add|remove ROOM_URI USER_URI [--manager]\n"
	  "        grant or revoke membership (--manager: management) of a room\n"
	  "member list ROOM_URI [--json]\n"
	  "        members, then managers\n"
	  "invite ROOM_URI USER_URI\n"
	  "        an open invitation (what the client's getinv returns)\n"
	  "Needs the schema from `chatvault migrate`.  Exit 1 when the room, member or\n"
	  "database is missing or a name is taken.\n" },
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: chatvault [-c FILE] [-D DIR] [-v|-q] [--log-format=F] COMMAND [ARGS]\n"
		"\n"
		"Compliance archiving for persistent group chat and instant messaging.\n"
		"\n"
		"Global options:\n"
		"  -c FILE   configuration file (default: built-in defaults; see\n"
		"            conf/chatvault.conf)\n"
		"  -D DIR    data directory: spool, archives (default ./var)\n"
		"  -v        more log output (-vv for debug)\n"
		"  -q        errors only\n"
		"  --log-format=human|logfmt\n"
		"            log lines for a person or as key=value records (default:\n"
		"            logfmt under journald, and for ingest/deliver/run when stderr\n"
		"            is not a terminal; human otherwise)\n"
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
	static const struct option longopts[] = {
		{ "log-format", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_ctx ctx = { .sigfd = -1 };
	const struct command *cmd;
	int opt, rc, log_format = -1;
	bool journal;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	/* '+': stop at the first non-option, which is the subcommand. */
	while ((opt = getopt_long(argc, argv, "+c:D:vqh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'L':
			log_format = cv_log_format_parse(optarg);
			if (log_format < 0) {
				fprintf(stderr, "chatvault: --log-format: must be human or logfmt"
					" (got \"%s\")\n", optarg);
				return CLI_USAGE;
			}
			break;
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
	/* The log format (docs/OPERATIONS.md, "Logs"): --log-format wins; else
	 * logfmt when stderr is the journal, or when a long-running worker's
	 * stderr is not a terminal (a file, a pipe, a container log); else the
	 * human format, which keeps the one-shot commands' error lines
	 * ("chatvault: CMD: what: why") what scripts capturing them expect. */
	journal = cv_log_stderr_is_journal();
	if (log_format < 0)
		log_format = journal || ((strcmp(cmd->name, "ingest") == 0 ||
					  strcmp(cmd->name, "deliver") == 0 ||
					  strcmp(cmd->name, "run") == 0) && !isatty(2))
				     ? CV_LOG_LOGFMT : CV_LOG_HUMAN;
	cv_log_set_format((enum cv_log_format)log_format, journal);
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
