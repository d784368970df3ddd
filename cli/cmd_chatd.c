/*
 * cmd_chatd — `chatvault chatd`: run the SIP chat/IM server (chat/,
 * docs/CHAT.md) until SIGTERM/SIGINT, read through the CLI's signalfd and
 * watched by the server's event loop (no handler code, no globals).
 */
#include <stdio.h>
#include <string.h>

#include "chat_server.h"
#include "cli.h"

int cmd_chatd(struct cli_ctx *ctx, int argc, char **argv)
{
	struct chat_srv *srv = NULL;
	char err[512];
	int rc;

	if (argc > 1) {
		cli_error(ctx, "unknown argument %s (see chatvault chatd --help)", argv[1]);
		return CLI_USAGE;
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	/* before any thread starts, so they all inherit the blocked set */
	if (cli_signals_block(ctx) != 0) {
		cli_error(ctx, "cannot set up signal handling");
		return CLI_RUNTIME;
	}
	err[0] = '\0';
	if (chat_server_new(ctx->cfg, &srv, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s", err[0] ? err : "cannot start");
		return CLI_RUNTIME;
	}
	rc = chat_server_run(srv, ctx->sigfd, cli_should_stop, ctx);
	chat_server_free(srv);
	if (rc != 0) {
		cli_error(ctx, "stopped with an error (see above)");
		return CLI_RUNTIME;
	}
	return CLI_OK;
}
