/*
 * cmd_user — `chatvault user add|list|disable|enable|passwd`: the users of
 * the chat and IM server (chat/chat_store.h, schema chat.users).
 *
 * A password is only ever read from a file (--password-file F, its first
 * line; "-" for standard input), never from the command line where ps and
 * the shell history would see it.  It is hashed into the digest credential
 * (HA1, for the configured chat.realm) and wiped; it is never printed, and
 * neither is the HA1.
 *
 * Exit status: 2 usage (unknown option, bad URI, unusable password file),
 * 1 runtime (database, duplicate user, no such user).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "chat_store.h"
#include "cli.h"
#include "cv_log.h"
#include "cv_time.h"
#include "sto_db.h"

#define USER_USAGE "usage: chatvault user add URI --password-file F [--no-chat] [--no-im] | " \
		   "list [--json] | disable URI | enable URI | passwd URI --password-file F"

/* Canonical URI of arg into out, or a usage error printed. */
static int parse_uri(struct cli_ctx *ctx, const char *arg, char out[CHAT_URI_MAX])
{
	char why[160];

	if (chat_uri_normalize(arg, out, CHAT_URI_MAX, why, sizeof(why)) != 0) {
		cli_error(ctx, "%s: invalid user URI: %s", arg, why);
		return CLI_USAGE;
	}
	return CLI_OK;
}

static int read_password(struct cli_ctx *ctx, const char *path, char pw[CHAT_PASSWORD_MAX + 1])
{
	char why[160];
	const char *p = strcmp(path, "-") == 0 ? "/dev/stdin" : path;

	if (chat_password_read(p, pw, CHAT_PASSWORD_MAX + 1, why, sizeof(why)) != 0) {
		cli_error(ctx, "--password-file %s: %s", path, why);
		return CLI_USAGE;
	}
	return CLI_OK;
}

static int open_store(struct cli_ctx *ctx, struct chat_store **st)
{
	char err[STO_ERRLEN];
	int rc;

	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if (chat_store_open(ctx->cfg, st, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s", err);
		return CLI_RUNTIME;
	}
	return CLI_OK;
}

/* A user of another domain than chat.domain can be stored, but this
 * server will not sign them in: say so. */
static void warn_domain(const struct cli_ctx *ctx, const char *uri)
{
	const char *at = strchr(uri, '@');
	const char *dom = ctx->cfg->chat.domain;

	if (at && dom && strcasecmp(at + 1, dom) != 0)
		cv_warn("user", "%s is not in chat.domain \"%s\": this server will not sign it in",
			uri, dom);
}

/* add and passwd: URI --password-file F [--no-chat] [--no-im] */
static int user_set(struct cli_ctx *ctx, int argc, char **argv, bool add)
{
	static const struct option lo[] = {
		{ "password-file", required_argument, NULL, 'p' },
		{ "no-chat", no_argument, NULL, 'C' },
		{ "no-im", no_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	char uri[CHAT_URI_MAX], pw[CHAT_PASSWORD_MAX + 1], err[STO_ERRLEN];
	const char *pwfile = NULL;
	bool chat = true, im = true;
	struct chat_store *st = NULL;
	int c, rc;

	/* 0, not 1: a full re-initialisation, forgetting main's "+" (stop at the
	 * first non-option), so the URI may come before or after the options. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': pwfile = optarg; break;
		case 'C': if (!add) goto usage; chat = false; break;
		case 'I': if (!add) goto usage; im = false; break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || !pwfile)
		goto usage;
	if ((rc = parse_uri(ctx, argv[optind], uri)) != CLI_OK)
		return rc;
	if ((rc = read_password(ctx, pwfile, pw)) != CLI_OK)
		return rc;
	if ((rc = open_store(ctx, &st)) != CLI_OK)
		goto out;
	warn_domain(ctx, uri);
	if (add)
		rc = chat_store_user_add(st, uri, ctx->cfg->chat.realm, pw, chat, im, err, sizeof(err));
	else
		rc = chat_store_user_set_password(st, uri, ctx->cfg->chat.realm, pw, err, sizeof(err));
	if (rc != 0) {
		cli_error(ctx, "%s: %s", add ? "add" : "passwd", err);
		rc = rc == -EINVAL ? CLI_USAGE : CLI_RUNTIME;
		goto out;
	}
	if (add)
		printf("user %s added (realm \"%s\"; chat %s, im %s)\n", uri, ctx->cfg->chat.realm,
		       chat ? "on" : "off", im ? "on" : "off");
	else
		printf("user %s: password set (realm \"%s\")\n", uri, ctx->cfg->chat.realm);
	rc = CLI_OK;
out:
	explicit_bzero(pw, sizeof(pw));
	chat_store_close(st);
	return rc;
usage:
	cli_error(ctx, "usage: chatvault user %s URI --password-file F%s", add ? "add" : "passwd",
		  add ? " [--no-chat] [--no-im]" : "");
	return CLI_USAGE;
}

/* enable / disable URI */
static int user_toggle(struct cli_ctx *ctx, int argc, char **argv, bool disable)
{
	char uri[CHAT_URI_MAX], err[STO_ERRLEN];
	struct chat_store *st = NULL;
	int rc;

	if (argc != 2 || argv[1][0] == '-') {
		cli_error(ctx, "usage: chatvault user %s URI", disable ? "disable" : "enable");
		return CLI_USAGE;
	}
	if ((rc = parse_uri(ctx, argv[1], uri)) != CLI_OK)
		return rc;
	if ((rc = open_store(ctx, &st)) != CLI_OK)
		return rc;
	rc = disable ? chat_store_user_disable(st, uri, err, sizeof(err))
		     : chat_store_user_enable(st, uri, err, sizeof(err));
	chat_store_close(st);
	if (rc != 0) {
		cli_error(ctx, "%s: %s", disable ? "disable" : "enable", err);
		return CLI_RUNTIME;
	}
	printf("user %s %s\n", uri, disable ? "disabled" : "enabled");
	return CLI_OK;
}

struct list_ctx {
	json_t *arr;       /* --json */
	bool oom;
	size_t n;
};

/* Everything but the credential. */
static void list_one(void *arg, const struct chat_user *u)
{
	struct list_ctx *l = arg;
	char created[CV_TIME_BUFSZ];

	if (cv_time_format_ms(u->created_ms, created) != 0)
		snprintf(created, sizeof(created), "?");
	l->n++;
	if (l->arr) {
		json_t *o = json_pack("{ss, sb, sb, sb, ss, ss, sb}", "uri", u->uri,
				      "enabled", !u->disabled, "chat", u->chat_enabled,
				      "im", u->im_enabled, "realm", u->realm, "created", created,
				      "realm_mismatch", u->realm_mismatch);

		if (!o || json_array_append_new(l->arr, o) != 0)
			l->oom = true;
		return;
	}
	if (l->n == 1)
		printf("%-40s %-8s %-5s %-5s %s\n", "URI", "ENABLED", "CHAT", "IM", "CREATED");
	printf("%-40s %-8s %-5s %-5s %s%s\n", u->uri, u->disabled ? "no" : "yes",
	       u->chat_enabled ? "yes" : "no", u->im_enabled ? "yes" : "no", created,
	       u->realm_mismatch ? "  (other realm: cannot sign in)" : "");
}

static int user_list(struct cli_ctx *ctx, int argc, char **argv)
{
	struct list_ctx l = { 0 };
	struct chat_store *st = NULL;
	char err[STO_ERRLEN];
	bool json = false;
	int rc, n;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") != 0) {
			cli_error(ctx, "usage: chatvault user list [--json]");
			return CLI_USAGE;
		}
		json = true;
	}
	if ((rc = open_store(ctx, &st)) != CLI_OK)
		return rc;
	if (json && !(l.arr = json_array())) {
		chat_store_close(st);
		cli_error(ctx, "list: out of memory");
		return CLI_RUNTIME;
	}
	n = chat_store_users_load(st, list_one, &l, err, sizeof(err));
	chat_store_close(st);
	if (n < 0) {
		cli_error(ctx, "list: %s", err);
		rc = CLI_RUNTIME;
	} else if (l.oom) {
		cli_error(ctx, "list: out of memory");
		rc = CLI_RUNTIME;
	} else if (json) {
		if (json_dumpf(l.arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
			cli_error(ctx, "list: cannot write the output");
			rc = CLI_RUNTIME;
		} else {
			putchar('\n');
		}
	} else if (n == 0 && !ctx->quiet) {
		fprintf(stderr, "no chat users (chatvault user add URI --password-file F)\n");
	}
	json_decref(l.arr);
	return rc;
}

int cmd_user(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "add") == 0)
		return user_set(ctx, argc - 1, argv + 1, true);
	if (strcmp(sub, "passwd") == 0)
		return user_set(ctx, argc - 1, argv + 1, false);
	if (strcmp(sub, "list") == 0)
		return user_list(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "disable") == 0)
		return user_toggle(ctx, argc - 1, argv + 1, true);
	if (strcmp(sub, "enable") == 0)
		return user_toggle(ctx, argc - 1, argv + 1, false);
	cli_error(ctx, USER_USAGE);
	return CLI_USAGE;
}
