/*
 * cmd_verify — `chatvault verify [-q] PATH...`: the auditor's check of
 * bundles, archive directories, tombstones and export packages
 * (retention/ret_verify.h).  Needs no database and no configuration: only
 * the files.
 *
 * stdout: one line per finding, then
 *     verify: N bundles, N tombstones (known gaps), N export packages,
 *     N events; OK | FAILED: N problems [, N unreadable] | ERROR: N unreadable
 * stderr: on failure, the contract's one line naming the first bad file
 * (and member): "chatvault: verify: <file>: member <member>: <what>".
 * Exit 0 all checked and sound, 3 a problem found, 1 something could not
 * be read (and nothing found wrong in the rest), 2 usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ret_verify.h"

int cmd_verify(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct ret_verify_opts o = { .out = stdout, .quiet = ctx->quiet };
	struct ret_verify_result res;
	int opt, rc;

	optind = 0;      /* glibc: start afresh on the subcommand's argv */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+q", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			o.quiet = true;
			break;
		default:
			cli_error(ctx, "unknown option %s (see chatvault verify --help)",
				  argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error(ctx, "no PATH given (see chatvault verify --help)");
		return CLI_USAGE;
	}
	rc = ret_verify_run(argv + optind, (size_t)(argc - optind), &o, &res);
	if (rc != 0) {
		cli_error(ctx, "out of memory after %" PRId64 " bundles", res.bundles);
		return CLI_RUNTIME;
	}
	printf("verify: %" PRId64 " bundles, %" PRId64 " tombstones (known gaps), %" PRId64
	       " export packages, %" PRId64 " events; ", res.bundles, res.tombstones,
	       res.exports, res.events);
	if (res.problems) {
		printf("FAILED: %" PRId64 " problem%s", res.problems, res.problems == 1 ? "" : "s");
		if (res.unreadable)
			printf(", %" PRId64 " unreadable", res.unreadable);
		printf("\n");
	} else if (res.unreadable) {
		printf("ERROR: %" PRId64 " unreadable\n", res.unreadable);
	} else {
		printf("OK\n");
	}
	if (fflush(stdout) != 0) {
		cli_error(ctx, "standard output: write failed");
		return CLI_RUNTIME;
	}
	if (res.problems) {
		cli_error(ctx, "%s", res.first_problem);
		return CLI_VERIFY;
	}
	if (res.unreadable) {
		cli_error(ctx, "%s", res.first_unreadable);
		return CLI_RUNTIME;
	}
	return CLI_OK;
}
