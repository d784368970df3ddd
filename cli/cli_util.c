/*
 * cli_util — helpers shared by the subcommands; see cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cv_log.h"
#include "sto_db.h"

void cli_error(const struct cli_ctx *ctx, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cv_log_cmd_error(ctx->cmd, msg);
}

/* -v / -q on the command line win over the file's log_level. */
static void set_log_level(const struct cli_ctx *ctx)
{
	if (ctx->quiet)
		cv_log_set_level(CV_LOG_ERROR);
	else if (ctx->verbosity > 0)
		cv_log_set_level(ctx->verbosity > 1 ? CV_LOG_DEBUG : CV_LOG_INFO);
	else
		cv_log_set_level((enum cv_log_level)ctx->cfg->log_level);
}

int cli_load_config(struct cli_ctx *ctx)
{
	char err[CFG_ERRLEN];

	if (ctx->cfg)
		return CLI_OK;
	if (cfg_load(ctx->config_path, ctx->data_dir, &ctx->cfg, err, sizeof(err)) != 0) {
		cli_error(ctx, "configuration: %s", err);
		return CLI_USAGE;
	}
	set_log_level(ctx);
	return CLI_OK;
}

int cli_open_db(struct cli_ctx *ctx, const char *application, struct sto_db **db)
{
	struct sto_db_opts o = {
		.conninfo = ctx->cfg->db.conninfo,
		.connect_timeout_s = ctx->cfg->db.connect_timeout_s,
		.retry_max_s = ctx->cfg->db.retry_max_s ? ctx->cfg->db.retry_max_s
						   : (ctx->oneshot ? 30 : 0),
		.application = application,
		.should_stop = ctx->sigfd >= 0 ? cli_should_stop : NULL,
		.stop_arg = ctx,
	};
	char err[STO_ERRLEN];

	if (sto_db_open(&o, db, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s", err);
		return CLI_RUNTIME;
	}
	return CLI_OK;
}

int cli_signals_block(struct cli_ctx *ctx)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -errno;
	ctx->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return ctx->sigfd < 0 ? -errno : 0;
}

bool cli_should_stop(void *arg)
{
	struct cli_ctx *ctx = arg;
	struct signalfd_siginfo si;

	if (ctx->sigfd < 0)
		return ctx->stop;
	while (read(ctx->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			ctx->reload = true;
			cv_info("main", "SIGHUP received");
		} else {
			if (!ctx->stop)
				cv_logkv(CV_LOG_INFO, "main", "shutting down: finishing the current"
					 " batch, then exiting", CV_KI("signal", si.ssi_signo));
			ctx->stop = true;
		}
	}
	return ctx->stop;
}

bool cli_should_yield(void *arg)
{
	struct cli_ctx *ctx = arg;

	return cli_should_stop(ctx) || ctx->reload;
}

int cli_reload_config(struct cli_ctx *ctx)
{
	struct cfg *fresh = NULL;
	char err[CFG_ERRLEN];

	ctx->reload = false;
	if (cfg_load(ctx->config_path, ctx->data_dir, &fresh, err, sizeof(err)) != 0) {
		cv_logkv(CV_LOG_ERROR, "main", "SIGHUP: the new configuration is invalid, keeping the"
			 " current one", CV_KS("error", err));
		return -1;
	}
	cfg_free(ctx->cfg);
	ctx->cfg = fresh;
	set_log_level(ctx);
	cv_logkv(CV_LOG_WARN, "main", "SIGHUP: configuration reloaded",
		 CV_KS("source", ctx->cfg->source), CV_KI("adapters", ctx->cfg->nadapters));
	return 0;
}
