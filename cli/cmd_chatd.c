/*
 * cmd_chatd — `chatvault chatd [--metrics HOST:PORT]`: run the SIP chat/IM
 * server (chat/, docs/CHAT.md) until SIGTERM/SIGINT, read through the CLI's
 * signalfd and watched by the server's event loop (no handler code, no
 * globals).
 *
 * With --metrics: chatd's own registry (chat_metrics.h, the server's) goes to
 * the server in chat_server_opts and is served by cli_metrics with the one
 * component chatd; no database figures (chatd serves from its user cache
 * when PostgreSQL is down, so its health does not hang on it).  /healthz
 * reads the heartbeat the loop stores about every second.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "chat_metrics.h"
#include "chat_server.h"
#include "cli.h"
#include "cli_metrics.h"
#include "cv_metrics.h"

int cmd_chatd(struct cli_ctx *ctx, int argc, char **argv)
{
	struct chat_srv *srv = NULL;
	struct cli_health health = { 0 };
	struct chat_server_opts so = { .heartbeat_ms = &health.chat_beat_ms };
	const struct cli_metrics_opts mo = { .components = CLI_C_CHATD };
	struct cli_metrics_srv *msrv = NULL;
	const char *listen = NULL;
	char err[512];
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!cli_metrics_arg(argc, argv, &i, &listen)) {
			cli_error(ctx, "unknown argument %s (see chatvault chatd --help)", argv[i]);
			return CLI_USAGE;
		}
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	/* before any thread starts, so they all inherit the blocked set */
	if (cli_signals_block(ctx) != 0) {
		cli_error(ctx, "cannot set up signal handling");
		return CLI_RUNTIME;
	}
	if (listen) {
		so.metrics = chat_metrics_new();
		if ((rc = cli_metrics_serve(ctx, listen, so.metrics, &health, &mo, &msrv)) != CLI_OK)
			return rc;
	}
	err[0] = '\0';
	if (chat_server_new(ctx->cfg, &so, &srv, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s", err[0] ? err : "cannot start");
		rc = CLI_RUNTIME;
		goto out;
	}
	rc = chat_server_run(srv, ctx->sigfd, cli_should_stop, ctx) == 0 ? CLI_OK : CLI_RUNTIME;
	chat_server_free(srv);
	if (rc != CLI_OK)
		cli_error(ctx, "stopped with an error (see above)");
out:
	cli_metrics_stop(msrv);
	return rc;
}
